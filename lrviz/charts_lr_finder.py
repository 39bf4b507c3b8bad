"""The LR finder's chart: loss against LR on a log x axis, with its suggestions.

Plotly only, like ``lrviz.charts``: the page draws it, export writes it to files. Marks
are traces, not shapes, so they carry data-space coordinates on the log axis, show in
the legend with their rule, and survive every export format.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lrviz.lr_finder import RangeTestResult

RAW_COLOUR = "rgba(31, 119, 180, 0.30)"
SMOOTH_COLOUR = "#1f77b4"
MARK_COLOURS = {"steepest": "#2ca02c", "valley": "#9467bd", "min_div_10": "#ff7f0e"}
DIVERGED_COLOUR = "#d62728"
# distinct label corners, so suggestions landing on the same point stay readable
LABEL_POSITIONS = {"steepest": "top right", "valley": "bottom left", "min_div_10": "bottom right",
                   "diverged": "top left"}


def _y_range(result: RangeTestResult) -> tuple[float, float] | None:
    """Room for the whole falling part; the divergence blow-up is cut at 3x the start."""
    sm = result.smoothed[np.isfinite(result.smoothed)]
    raw = result.losses[np.isfinite(result.losses)]
    if not len(sm):
        return None
    lo = float(min(sm.min(), np.percentile(raw, 2) if len(raw) else sm.min()))
    hi = float(max(sm.max(), np.percentile(raw, 90) if len(raw) else sm.max()))
    if sm[0] > 0:
        hi = min(hi, 3.0 * float(sm[0]))
    pad = 0.05 * (hi - lo or 1.0)
    return lo - pad, hi + pad


def lr_finder_figure(result: RangeTestResult, title: str | None = None) -> go.Figure:
    """Raw loss (faint) and smoothed loss against LR, each suggestion and the divergence
    point marked with a vertical line and its label."""
    fig = go.Figure()
    what = "held-out loss" if result.config.use_validation else "training loss"
    fig.add_trace(go.Scatter(x=result.lrs, y=result.losses, mode="lines", name=f"{what} (raw)",
                             line={"color": RAW_COLOUR, "width": 1},
                             hovertemplate="lr %{x:.4g}<br>loss %{y:.4g}<extra>raw</extra>"))
    fig.add_trace(go.Scatter(x=result.lrs, y=result.smoothed, mode="lines",
                             name=f"{what} (smoothed, beta={result.config.beta:g})",
                             line={"color": SMOOTH_COLOUR, "width": 2.5},
                             hovertemplate="lr %{x:.4g}<br>smoothed %{y:.4g}<extra></extra>"))
    y_range = _y_range(result)
    for name, s in result.suggestions().items():
        _mark(fig, s.lr, s.loss, f"{name}: {s.lr:.3g}", s.rule, MARK_COLOURS[name], y_range,
              position=LABEL_POSITIONS[name])
    div = result.divergence_index
    if div is not None:
        y = result.smoothed[div]
        if y_range is not None and not (math.isfinite(y) and y <= y_range[1]):
            y = y_range[1]  # off the chart (or NaN): pin the label to the top
        _mark(fig, float(result.lrs[div]), float(y), f"diverged at {result.lrs[div]:.3g}",
              f"stopped: smoothed loss above {result.config.stop_factor:g}x its best, or NaN",
              DIVERGED_COLOUR, y_range, dash="dot", position=LABEL_POSITIONS["diverged"])
    fig.update_layout(title={"text": title or result.config.label()}, template="plotly_white",
                      hovermode="closest", legend={"title": {"text": "LR range test"}},
                      margin={"l": 60, "r": 20, "t": 60, "b": 50}, showlegend=True)
    fig.update_xaxes(title_text="learning rate (log scale)", type="log")
    fig.update_yaxes(title_text="loss", range=list(y_range) if y_range else None)
    return fig


def _mark(fig: go.Figure, lr: float, loss: float, label: str, rule: str, colour: str,
          y_range: tuple[float, float] | None, dash: str = "dash",
          position: str = "top right") -> None:
    if y_range is not None:
        fig.add_trace(go.Scatter(x=[lr, lr], y=list(y_range), mode="lines", name=label,
                                 legendgroup=label, showlegend=False, hoverinfo="skip",
                                 line={"color": colour, "dash": dash, "width": 1.5}))
    fig.add_trace(go.Scatter(x=[lr], y=[loss], mode="markers+text", name=label,
                             legendgroup=label, text=[label], textposition=position, cliponaxis=False,
                             marker={"color": colour, "size": 10},
                             textfont={"color": colour},
                             hovertemplate=f"{label}<br>{rule}<extra></extra>"))


def lr_finder_data(result: RangeTestResult) -> pd.DataFrame:
    """The chart's data: one row per point, and what marks it (suggestions, divergence)."""
    marks = [""] * len(result.lrs)
    for name, s in result.suggestions().items():
        marks[s.index] = f"{marks[s.index]} {name}={s.lr:.6g}".strip()
    if result.divergence_index is not None:
        marks[result.divergence_index] = (marks[result.divergence_index] + " diverged").strip()
    return pd.DataFrame({"step": result.idx, "lr": result.lrs, "loss": result.losses,
                         "smoothed": result.smoothed, "mark": marks})
