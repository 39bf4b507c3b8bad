"""The sweep chart: one line per configuration (mean over its seeds) in a shaded band.

Reads what ``lrviz.sweep.seed_bands`` computes: the band is mean +/- ``sigmas`` standard
deviations over the seeds; epochs where one seed remains (std undefined) draw the mean
alone. Pure plotly/pandas: no Streamlit, no Ray.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lrviz.charts import METRIC_TITLES, PALETTE, _layout
from lrviz.params import ParamError


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def band_colors(group_keys: list[str]) -> dict[str, str]:
    """A stable colour per group, in the order the groups are given."""
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(group_keys)}


def band_figure(bands: pd.DataFrame, metric: str = "val_accuracy", *, sigmas: float = 1.0,
                labels: Mapping[str, str] | None = None, colors: Mapping[str, str] | None = None,
                log_y: bool = False, title: str | None = None) -> go.Figure:
    """Mean over seeds per configuration, with a band of +/- ``sigmas`` standard deviations.

    ``bands``: ``seed_bands(history, runs, metric)`` (group_key, epoch, mean, std, n).
    Each group gets a filled band (legend-grouped with its line, so one click hides both)
    and a line whose hover shows the mean, the std and how many seeds contributed.
    """
    missing = {"group_key", "epoch", "mean", "std", "n"} - set(bands.columns)
    if missing:
        raise ParamError("bands", f"Argument `bands` must come from seed_bands (missing {sorted(missing)}). "
                                  f"Received: columns={list(bands.columns)}")
    if not (isinstance(sigmas, (int, float)) and 0 <= sigmas <= 5):
        raise ParamError("sigmas", f"Argument `sigmas` must be in [0, 5]. Received: sigmas={sigmas}")
    keys = list(dict.fromkeys(bands["group_key"]))
    colours = dict(band_colors(keys), **(colors or {}))
    fig = go.Figure()
    for key in keys:
        part = bands[bands["group_key"] == key].sort_values("epoch")
        x = part["epoch"].to_numpy()
        mean = part["mean"].to_numpy(dtype=float)
        std = np.nan_to_num(part["std"].to_numpy(dtype=float), nan=0.0)  # one seed: no band
        label = (labels or {}).get(key, key)
        colour = colours[key]
        if sigmas > 0 and np.any(std > 0):
            fig.add_trace(go.Scatter(
                x=np.concatenate([x, x[::-1]]),
                y=np.concatenate([mean + sigmas * std, (mean - sigmas * std)[::-1]]),
                fill="toself", fillcolor=_rgba(colour, 0.18), line={"width": 0},
                hoverinfo="skip", showlegend=False, legendgroup=key, name=f"{label} band"))
        fig.add_trace(go.Scatter(
            x=x, y=mean, mode="lines+markers", name=label, legendgroup=key, meta=key,
            line={"color": colour, "width": 2}, marker={"size": 5},
            customdata=np.column_stack([part["std"].to_numpy(dtype=float), part["n"].to_numpy()]),
            hovertemplate=(f"<b>{label}</b><br>epoch %{{x}}<br>mean %{{y:.6~g}}"
                           "<br>std %{customdata[0]:.4~g} over %{customdata[1]} seeds<extra></extra>")))
    name = METRIC_TITLES.get(metric, metric)
    spread = f"mean ± {sigmas:g} std over seeds" if sigmas else "mean over seeds"
    fig = _layout(fig, title or f"{name}: {spread}", "Epoch", name, False, log_y)
    fig.update_layout(legend={"title": {"text": "Configuration"}})
    return fig
