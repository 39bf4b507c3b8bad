"""Plotly figures from store data: LR curves, per-epoch metrics, small multiples.

The Schedules, Runs and Compare pages all draw through these functions, so a run has
the same colour on every chart and NaN/inf (a diverged run) is drawn as a gap
everywhere. Pure plotly/pandas/numpy: no Streamlit, no TensorFlow.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lrviz.params import ParamError

# Qualitative palette with enough distinct hues for the whole catalogue (15 schedules).
PALETTE: tuple[str, ...] = (
    "#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2",
    "#17BECF", "#BCBD22", "#7F7F7F", "#3366CC", "#DC3912", "#109618", "#990099",
    "#0099C6", "#DD4477", "#66AA00", "#B82E2E", "#316395", "#AAAA11",
)
# Lightness shifts that tell apart runs of one schedule (0 = the schedule's own colour),
# at least 0.15 apart: closer shades of one hue read as the same line. Past five runs of
# one schedule shades repeat; the legend and hover still name each run.
_SHADES: tuple[float, ...] = (0.0, -0.18, 0.18, -0.33, 0.33)

METRICS: tuple[str, ...] = ("val_loss", "val_accuracy", "loss", "accuracy", "learning_rate")
METRIC_TITLES: dict[str, str] = {
    "loss": "Training loss",
    "accuracy": "Training accuracy",
    "val_loss": "Validation loss",
    "val_accuracy": "Validation accuracy",
    "learning_rate": "Learning rate",
    "seconds": "Seconds per epoch",
}
# Largest number of points one LR trace keeps; more only slows the browser and the SVG.
MAX_CURVE_POINTS = 4000

_HOVER_Y = "%{y:.12~g}"  # full precision, trailing zeros trimmed


def _digest(text: str) -> int:
    # hashlib, not hash(): Python salts str hashes per process, colours must not move.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _schedule_index(name: str) -> int:
    """Catalogue position of a schedule (its colour), or a stable hash for unknown names."""
    try:
        from lrviz.schedules import catalogue  # numpy only

        names = list(catalogue())
    except Exception:  # the catalogue is optional here: charts work without it
        names = []
    if name in names:
        return names.index(name)
    return _digest(name)


def _shade(colour: str, shift: float) -> str:
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    h, lightness, s = colorsys.rgb_to_hls(r, g, b)
    lightness = min(0.85, max(0.15, lightness + shift))
    r, g, b = colorsys.hls_to_rgb(h, lightness, s)
    return "#{:02X}{:02X}{:02X}".format(*(round(c * 255) for c in (r, g, b)))


def run_colors(run_ids: Iterable[str], schedules: Mapping[str, str] | None = None) -> dict[str, str]:
    """A stable colour per run, the same on every chart.

    With ``schedules`` (run id -> schedule name) the hue is the schedule's and runs of
    one schedule get different shades of it; without, the hue comes from the run id.
    Colours depend on the run id only (a hash), so adding a run to the selection does
    not repaint the others, unless two runs of one schedule would collide, in which
    case the later id (sorted) moves to the next free shade.
    """
    ids = sorted(dict.fromkeys(str(r) for r in run_ids))
    colours: dict[str, str] = {}
    taken: dict[str, set[int]] = {}
    for rid in ids:
        group = (schedules or {}).get(rid)
        if group is None:  # no schedule: the hue alone tells runs apart
            colours[rid] = PALETTE[_digest(rid) % len(PALETTE)]
            continue
        base = PALETTE[_schedule_index(group) % len(PALETTE)]
        used = taken.setdefault(group, set())
        first = _digest(rid) % len(_SHADES)
        shade = first
        for k in range(len(_SHADES)):
            shade = (first + k) % len(_SHADES)
            if shade not in used:
                break
        used.add(shade)
        colours[rid] = _shade(base, _SHADES[shade]) if _SHADES[shade] else base
    return colours


def ema(values: Sequence[float] | np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average; non-finite points pass through.

    ``last = last*w + (1-w)*y; smoothed = last / (1 - w**n)`` over the n finite points
    seen so far, so the start is not dragged towards 0 and a NaN leaves a gap without
    poisoning what follows.
    """
    if not 0.0 <= weight < 1.0:
        raise ParamError("smoothing", f"Argument `smoothing` must be in [0, 1). Received: smoothing={weight}")
    y = np.asarray(values, dtype=float)
    out = y.copy()
    finite = np.isfinite(y)
    if weight == 0.0 or not finite.any() or np.all(y[finite] == y[finite][0]):
        return out
    last, n = 0.0, 0
    for i in np.flatnonzero(finite):
        last = last * weight + (1.0 - weight) * y[i]
        n += 1
        out[i] = last / (1.0 - weight**n)
    return out


def curve_frame(lrs: Sequence[float] | np.ndarray, steps_per_epoch: int) -> pd.DataFrame:
    """DataFrame(step, epoch, lr) from the LR of every optimizer step; ``epoch`` is
    the time t = step / steps_per_epoch (0 at the first step, as in the catalogue)."""
    if int(steps_per_epoch) < 1:
        raise ParamError("steps_per_epoch", "Argument `steps_per_epoch` must be >= 1. "
                                            f"Received: steps_per_epoch={steps_per_epoch}")
    lr = np.asarray(lrs, dtype=float)
    step = np.arange(lr.size)
    return pd.DataFrame({"step": step, "epoch": step / int(steps_per_epoch), "lr": lr})


def keep_points(lr: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of an LR curve worth drawing: every change point (both sides of it) so
    steps and jumps stay exact; a smooth curve with more changes than ``max_points`` is
    thinned to an even grid plus its jumps (restarts, drops) and its extremes."""
    n = lr.size
    if n <= max_points:
        return np.arange(n)
    y = np.where(np.isfinite(lr), lr, np.nan)
    diff = np.diff(y)
    changed = np.flatnonzero(~(diff == 0))  # NaN counts as a change: gaps stay gaps
    if 2 * changed.size + 2 <= max_points:
        idx = np.concatenate(([0, n - 1], changed, changed + 1))
        return np.unique(idx)
    grid = np.linspace(0, n - 1, max_points // 2).round().astype(int)
    step = np.abs(diff[np.isfinite(diff)])
    typical = np.median(step[step > 0]) if np.any(step > 0) else 0.0
    jumps = np.flatnonzero(~np.isfinite(diff) | (np.abs(diff) > 20 * typical))
    if jumps.size > max_points // 4:  # a jumpy curve (cyclic): keep the largest jumps
        jumps = np.sort(jumps[np.argsort(-np.nan_to_num(np.abs(diff[jumps]), nan=np.inf))[: max_points // 4]])
    extremes = [int(np.nanargmax(y)), int(np.nanargmin(y))] if np.isfinite(y).any() else []
    return np.unique(np.concatenate((grid, jumps, jumps + 1, extremes, [0, n - 1])).astype(int))


def _axis_title(x: str) -> str:
    return {"epoch": "Epoch", "step": "Optimizer step", "time": "Wall time (s)"}[x]


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ParamError(name, f"Argument `{name}` must be one of {', '.join(choices)}. "
                               f"Received: {name}={value!r}")


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, log_x: bool, log_y: bool) -> go.Figure:
    fig.update_layout(
        title={"text": title},
        template="plotly_white",
        hovermode="closest",
        # below the plot: run labels are long, and a side legend would squeeze the curves
        legend={"title": {"text": "Run"}, "orientation": "h", "x": 0, "xanchor": "left",
                "y": -0.18, "yanchor": "top"},
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
        showlegend=True,  # legends stay even for one trace: exported files need them
    )
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear")
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear")
    return fig


def _integer_epoch_ticks(fig: go.Figure, epochs: Iterable[float], log_x: bool = False) -> go.Figure:
    """Whole-number ticks on an epoch axis: epochs are counted, so 1.2, 1.4... mislead.

    Plotly picks fractional steps for short spans, so a span of up to 20 epochs gets a
    fixed step (1, or 2 past 10 epochs); longer spans keep Plotly's own steps, which are
    whole there (1, 2, 5, 10...). A log axis keeps its own ticks.
    """
    if log_x:
        return fig
    values = np.asarray(list(epochs), dtype=float)
    values = values[np.isfinite(values)]
    span = float(values.max() - values.min()) if values.size else 0.0
    ticks: dict = {"tickformat": ",d"}
    if span <= 20:
        ticks.update(tickmode="linear", tick0=0, dtick=1 if span <= 10 else 2)
    fig.update_xaxes(**ticks)
    return fig


def lr_figure(curves: Mapping[str, pd.DataFrame], x: str = "epoch", log_y: bool = False, *,
              colors: Mapping[str, str] | None = None, title: str = "Learning rate") -> go.Figure:
    """Overlaid learning-rate curves, one trace per label.

    ``curves``: label -> DataFrame(step, epoch, lr) with one row per optimizer step.
    Long curves are thinned by :func:`keep_points` (every change point kept), and the
    hover shows the exact step, epoch and LR.
    """
    _check_choice("x", x, ("epoch", "step"))
    fig = go.Figure()
    colours = colors or run_colors(curves)
    for label, frame in curves.items():
        lr = frame["lr"].to_numpy(dtype=float)
        idx = keep_points(lr)
        part = frame.iloc[idx]
        y = part["lr"].to_numpy(dtype=float)
        fig.add_trace(go.Scatter(
            x=part[x].to_numpy(), y=np.where(np.isfinite(y), y, np.nan), name=str(label),
            mode="lines", connectgaps=False, meta=str(label), legendgroup=str(label),
            line={"color": colours.get(label, colours.get(str(label)))},
            customdata=np.column_stack((part["step"].to_numpy(), part["epoch"].to_numpy())),
            hovertemplate=(f"<b>{label}</b><br>step %{{customdata[0]}}<br>"
                           f"epoch %{{customdata[1]:.4~f}}<br>lr {_HOVER_Y}<extra></extra>"),
        ))
    _layout(fig, title, _axis_title(x), "Learning rate", False, log_y)
    if x == "epoch":
        ends = [e for frame in curves.values() if len(frame) for e in frame["epoch"].iloc[[0, -1]]]
        _integer_epoch_ticks(fig, ends)
    return fig


def lr_steps_figure(step_lrs: Mapping[str, np.ndarray], labels: Mapping[str, str], *,
                    steps_per_epoch: Mapping[str, int] | None = None, log_y: bool = False,
                    colors: Mapping[str, str] | None = None) -> go.Figure:
    """The LR each optimizer step applied, per run (``RunStore.step_lr``), x in steps."""
    curves, colours = {}, colors or run_colors(step_lrs)
    label_colours = {}
    for rid, lrs in step_lrs.items():
        spe = (steps_per_epoch or {}).get(rid) or 1
        label = labels.get(rid, rid)
        curves[label] = curve_frame(lrs, spe)
        label_colours[label] = colours.get(rid)
    return lr_figure(curves, x="step", log_y=log_y, colors=label_colours,
                     title="Learning rate per optimizer step")


def _metric_frame(history: pd.DataFrame, metric: str, epoch_range: tuple[float, float] | None) -> pd.DataFrame:
    if metric not in history.columns:
        known = [c for c in METRIC_TITLES if c in history.columns]
        raise ParamError("metric", f"Argument `metric` must be one of {', '.join(known)}. "
                                   f"Received: metric={metric!r}")
    frame = history.sort_values(["run_id", "epoch"])
    if epoch_range is not None:
        lo, hi = epoch_range
        if lo > hi:
            raise ParamError("epoch_range", "Argument `epoch_range` must be (low, high) with low <= high. "
                                            f"Received: epoch_range={tuple(epoch_range)}")
        frame = frame[(frame["epoch"] >= lo) & (frame["epoch"] <= hi)]
    return frame


def _metric_traces(part: pd.DataFrame, metric: str, label: str, colour: str | None, smoothing: float,
                   x: str, run_id: str, show_legend: bool = True) -> list[go.Scatter]:
    """The traces of one run: raw, or a faint raw line behind its EMA."""
    y = part[metric].to_numpy(dtype=float)
    y = np.where(np.isfinite(y), y, np.nan)  # inf would break the axis range; draw a gap
    xs = part["epoch"].to_numpy() if x == "epoch" else part["seconds"].fillna(0).cumsum().to_numpy()
    hover = f"<b>{label}</b><br>epoch %{{customdata}}<br>{metric} {_HOVER_Y}"
    common = dict(x=xs, mode="lines", connectgaps=False,
                  legendgroup=str(run_id), meta=str(run_id), customdata=part["epoch"].to_numpy())
    lone = _isolated(y)
    if lone.any():  # a finite point between gaps has no line to draw: show it as a dot
        common.update(mode="lines+markers", marker={"size": np.where(lone, 6, 0).tolist()})
    if smoothing <= 0:
        return [go.Scatter(y=y, name=label, line={"color": colour}, showlegend=show_legend,
                           hovertemplate=hover + "<extra></extra>", **common)]
    raw = go.Scatter(y=y, name=f"{label} (raw)", line={"color": colour, "width": 1}, opacity=0.25,
                     showlegend=False, hovertemplate=hover + " (raw)<extra></extra>", **common)
    smooth = go.Scatter(y=ema(y, smoothing), name=label, line={"color": colour, "width": 2},
                        showlegend=show_legend,
                        hovertemplate=hover + f" (EMA {smoothing:g})<extra></extra>", **common)
    return [raw, smooth]


def _isolated(y: np.ndarray) -> np.ndarray:
    """Finite points whose neighbours are both missing (or absent)."""
    finite = np.isfinite(y)
    before = np.concatenate(([False], finite[:-1]))
    after = np.concatenate((finite[1:], [False]))
    return finite & ~before & ~after


def _check_smoothing(smoothing: float) -> None:
    if not (isinstance(smoothing, (int, float)) and 0.0 <= smoothing < 1.0) or math.isnan(smoothing):
        raise ParamError("smoothing", f"Argument `smoothing` must be in [0, 1). Received: smoothing={smoothing}")


def metric_figure(history: pd.DataFrame, metric: str, labels: Mapping[str, str], *,
                  smoothing: float = 0.0, log_x: bool = False, log_y: bool = False,
                  epoch_range: tuple[float, float] | None = None,
                  colors: Mapping[str, str] | None = None, x: str = "epoch") -> go.Figure:
    """One metric of several runs overlaid, one trace per run named by its label.

    ``history``: ``RunStore.history`` (run_id, epoch, metrics...). NaN and inf are gaps.
    ``smoothing`` in [0, 1): with > 0 each run is an EMA (:func:`ema`) drawn over its
    faint raw curve in the same colour. ``x``: "epoch" or "time" (cumulative seconds).
    Runs in ``labels`` are drawn in its order; runs without rows still get a legend entry.
    """
    _check_smoothing(smoothing)
    _check_choice("x", x, ("epoch", "time"))
    frame = _metric_frame(history, metric, epoch_range)
    colours = colors or run_colors(labels)
    fig = go.Figure()
    for rid, label in labels.items():
        part = frame[frame["run_id"] == rid]
        for trace in _metric_traces(part, metric, label, colours.get(rid), smoothing, x, rid):
            fig.add_trace(trace)
    title = METRIC_TITLES.get(metric, metric)
    if smoothing > 0:
        title += f" (smoothed {smoothing:g})"
    _layout(fig, title, _axis_title(x), METRIC_TITLES.get(metric, metric), log_x, log_y)
    if x == "epoch":
        _integer_epoch_ticks(fig, frame["epoch"], log_x)
    return fig


def small_multiples(history: pd.DataFrame, metric: str, labels: Mapping[str, str], *,
                    smoothing: float = 0.0, log_x: bool = False, log_y: bool = False,
                    epoch_range: tuple[float, float] | None = None,
                    colors: Mapping[str, str] | None = None, x: str = "epoch",
                    cols: int = 3) -> go.Figure:
    """The same metric as :func:`metric_figure`, one panel per run, axes shared."""
    _check_smoothing(smoothing)
    _check_choice("x", x, ("epoch", "time"))
    frame = _metric_frame(history, metric, epoch_range)
    colours = colors or run_colors(labels)
    n = max(1, len(labels))
    cols = max(1, min(int(cols), n))
    rows = -(-n // cols)
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes="all", shared_yaxes="all",
                        subplot_titles=[str(v) for v in labels.values()] or None,
                        horizontal_spacing=0.04, vertical_spacing=min(0.12, 0.3 / rows))
    for i, (rid, label) in enumerate(labels.items()):
        part = frame[frame["run_id"] == rid]
        for trace in _metric_traces(part, metric, label, colours.get(rid), smoothing, x, rid):
            fig.add_trace(trace, row=i // cols + 1, col=i % cols + 1)
    title = METRIC_TITLES.get(metric, metric) + " per run"
    if smoothing > 0:
        title += f" (smoothed {smoothing:g})"
    _layout(fig, title, "", "", log_x, log_y)
    fig.update_layout(height=max(320, 260 * rows))
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text=_axis_title(x), row=rows, col=c)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text=METRIC_TITLES.get(metric, metric), row=r, col=1)
    if x == "epoch":
        _integer_epoch_ticks(fig, frame["epoch"], log_x)
    return fig


def metric_data(history: pd.DataFrame, metric: str, labels: Mapping[str, str], *,
                smoothing: float = 0.0, epoch_range: tuple[float, float] | None = None) -> pd.DataFrame:
    """The data behind a metric chart (for CSV): run_id, label, epoch, metric
    (and ``<metric>_smoothed`` when smoothing), full precision, NaN/inf as stored."""
    _check_smoothing(smoothing)
    frame = _metric_frame(history, metric, epoch_range)
    parts = []
    for rid, label in labels.items():
        part = frame.loc[frame["run_id"] == rid, ["run_id", "epoch", metric]].copy()
        part.insert(1, "label", label)
        if smoothing > 0:
            y = part[metric].to_numpy(dtype=float)
            part[f"{metric}_smoothed"] = ema(np.where(np.isfinite(y), y, np.nan), smoothing)
        parts.append(part)
    cols = ["run_id", "label", "epoch", metric] + ([f"{metric}_smoothed"] if smoothing > 0 else [])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def lr_steps_data(step_lrs: Mapping[str, np.ndarray], labels: Mapping[str, str]) -> pd.DataFrame:
    """The data behind :func:`lr_steps_figure`: run_id, label, step, lr (every step)."""
    parts = [pd.DataFrame({"run_id": rid, "label": labels.get(rid, rid),
                           "step": np.arange(len(lrs)), "lr": np.asarray(lrs, dtype=float)})
             for rid, lrs in step_lrs.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run_id", "label", "step", "lr"])
