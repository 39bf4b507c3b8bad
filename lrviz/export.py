"""Charts and their data out of lrviz: PNG, SVG, self-contained HTML, CSV, a report zip.

PNG and SVG go through Kaleido, which drives a Chromium; without one they raise
``ExportUnavailable`` with one sentence, while HTML and CSV never need a browser.
``report_zip`` bundles every chart of some runs, their data and their configs.
No Streamlit here: the Compare page and ``python -m lrviz runs export`` share it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lrviz import charts, summary
from lrviz.params import ParamError

FORMATS: tuple[str, ...] = ("png", "svg", "html", "csv")
IMAGE_FORMATS: tuple[str, ...] = ("png", "svg")
MIME: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml", "html": "text/html",
                        "csv": "text/csv", "zip": "application/zip"}
WIDTH, HEIGHT, PNG_SCALE = 1000, 600, 2
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
NO_BROWSER = "PNG and SVG export needs Chromium: apt-get install chromium"


class ExportUnavailable(RuntimeError):
    """An export format cannot be produced here (no Chromium for PNG/SVG)."""


def chromium_path() -> str | None:
    """The browser Kaleido would drive: ``$BROWSER_PATH`` or the first Chromium on PATH."""
    override = os.environ.get("BROWSER_PATH")
    if override:
        return override if os.access(override, os.X_OK) else None
    for name in _BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def images_available() -> bool:
    """Whether PNG/SVG export can work here."""
    return chromium_path() is not None


def _check_format(fmt: str, allowed: Sequence[str] = FORMATS) -> str:
    fmt = str(fmt).lower()
    if fmt not in allowed:
        raise ParamError("format", f"Argument `format` must be one of {', '.join(allowed)}. "
                                   f"Received: format={fmt!r}")
    return fmt


def _sized(fig: go.Figure) -> tuple[int, int]:
    # small multiples set their own height; keep it so panels are not squashed
    return int(fig.layout.width or WIDTH), int(fig.layout.height or HEIGHT)


def figure_image(fig: go.Figure, fmt: str = "png") -> bytes:
    """PNG or SVG bytes of a figure (title and legend included).

    Raises:
        ExportUnavailable: no Chromium, or it would not start.
    """
    fmt = _check_format(fmt, IMAGE_FORMATS)
    if not images_available():
        raise ExportUnavailable(NO_BROWSER)
    width, height = _sized(fig)
    try:
        with warnings.catch_warnings():  # "kopts ignored" when a shared server is running
            warnings.simplefilter("ignore", UserWarning)
            return fig.to_image(format=fmt, width=width, height=height,
                                scale=PNG_SCALE if fmt == "png" else 1)
    except (RuntimeError, OSError) as exc:  # choreographer's ChromeNotFound/BrowserFailed
        if "chrom" in type(exc).__name__.lower() or "browser" in type(exc).__name__.lower():
            raise ExportUnavailable(f"{NO_BROWSER} (the browser failed: {exc})".replace("\n", " ")) from exc
        raise


def figure_html(fig: go.Figure) -> bytes:
    """A self-contained HTML page (plotly.js inline, so it opens offline).

    Trace arrays are written as plain JSON numbers rather than plotly's base64 blocks,
    so the values can be read (and searched) in the file itself."""
    import plotly.io as pio

    plain = _plain(fig.to_plotly_json())
    return pio.to_html(plain, include_plotlyjs=True, full_html=True, validate=False).encode("utf-8")


def _plain(value: Any) -> Any:
    # numpy arrays -> lists (NaN -> None, drawn as a gap), recursively
    if isinstance(value, np.ndarray):
        return [None if isinstance(v, float) and not np.isfinite(v) else v for v in value.tolist()]
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:  # plotly's base64 typed array
            import base64

            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            shape = value.get("shape")
            if shape:
                array = array.reshape([int(n) for n in str(shape).split(",")])
            return _plain(array)
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def frame_csv(data: pd.DataFrame) -> bytes:
    """CSV bytes of a chart's data; floats round-trip exactly, NaN/inf written as nan/inf."""
    return data.to_csv(index=False, na_rep="nan").encode("utf-8")


def chart_bytes(fig: go.Figure, fmt: str, data: pd.DataFrame | None = None) -> bytes:
    """One chart in one format; ``data`` (the chart's data) is what ``csv`` writes."""
    fmt = _check_format(fmt)
    if fmt == "csv":
        if data is None:
            raise ParamError("data", "Argument `data` is needed for format='csv'. Received: data=None")
        return frame_csv(data)
    if fmt == "html":
        return figure_html(fig)
    return figure_image(fig, fmt)


@contextlib.contextmanager
def image_session() -> Iterator[bool]:
    """Keep one Chromium open for many PNG/SVG exports (Kaleido's sync server);
    yields whether images are available. Safe when a server is already running."""
    if not images_available():
        yield False
        return
    import kaleido

    try:
        kaleido.start_sync_server(silence_warnings=True)
    except Exception:  # no server: each export starts its own browser, slower but works
        yield True
        return
    try:
        yield True
    finally:
        kaleido.stop_sync_server(silence_warnings=True)


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temp file next to ``path`` then rename: never half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


# ---------------------------------------------------------------- runs -> charts
def run_charts(store: Any, run_ids: Sequence[str], metrics: Sequence[str] = charts.METRICS, *,
               smoothing: float = 0.0, log_x: bool = False, log_y: bool = False,
               epoch_range: tuple[float, float] | None = None, include_steps: bool = True,
               ) -> dict[str, tuple[go.Figure, pd.DataFrame]]:
    """chart name -> (figure, data behind it) for some stored runs, as the Compare page
    draws them: one overlay per metric, plus the per-step LR (``lr_steps``)."""
    runs = [store.get(rid) for rid in run_ids]
    labels = summary.run_labels(runs)
    colours = charts.run_colors(labels, {r.id: (r.config or {}).get("schedule", "") for r in runs})
    history = store.history(list(run_ids))
    out: dict[str, tuple[go.Figure, pd.DataFrame]] = {}
    for metric in metrics:
        fig = charts.metric_figure(history, metric, labels, smoothing=smoothing, log_x=log_x,
                                   log_y=log_y,
                                   epoch_range=epoch_range, colors=colours)
        out[metric] = (fig, charts.metric_data(history, metric, labels, smoothing=smoothing,
                                               epoch_range=epoch_range))
    if include_steps:
        step_lrs = {rid: np.asarray(store.step_lr(rid), dtype=float) for rid in run_ids}
        step_lrs = {rid: lrs for rid, lrs in step_lrs.items() if lrs.size}
        if step_lrs:
            spe = {r.id: config_steps_per_epoch(r.config) for r in runs}
            fig = charts.lr_steps_figure(step_lrs, labels, steps_per_epoch=spe, log_y=log_y, colors=colours)
            out["lr_steps"] = (fig, charts.lr_steps_data(step_lrs, labels))
    return out


def config_steps_per_epoch(config: dict | None) -> int:
    """Optimizer steps per epoch of a stored config (1 when the config lacks the fields)."""
    from lrviz.config import steps_per_epoch

    c = config or {}
    try:
        return steps_per_epoch(int(c.get("train_size", 20_000)), int(c.get("batch_size", 64)),
                               c.get("validation", "test"), float(c.get("validation_split") or 0.2))
    except (TypeError, ValueError):
        return 1


def runs_json(store: Any, run_ids: Sequence[str]) -> bytes:
    """The runs' identities, status and full configs as JSON (the report's runs.json)."""
    runs = [store.get(rid) for rid in run_ids]
    labels = summary.run_labels(runs)
    keys = ("id", "kind", "name", "status", "config_hash", "tags", "epochs_done", "epochs_total",
            "created_at", "started_at", "finished_at", "error", "group_id")
    rows = []
    for run in runs:
        row = {k: getattr(run, k, None) for k in keys}
        row["label"] = labels[run.id]
        row["config"] = run.config
        row["validation_setup"] = summary.validation_setup(run.config or {})
        rows.append(row)
    return json.dumps({"runs": rows}, indent=2, default=str, allow_nan=True).encode("utf-8")


def report_zip(store: Any, run_ids: Sequence[str], metrics: Sequence[str] = charts.METRICS, *,
               smoothing: float = 0.0, log_x: bool = False, log_y: bool = False,
               epoch_range: tuple[float, float] | None = None, images: bool = True) -> bytes:
    """One zip: every chart as PNG (when a browser is here), SVG and HTML, each chart's
    data as CSV, the full history and summary as CSV, and runs.json with the configs.
    A README.txt lists what is inside and says why images are missing if they are."""
    if not run_ids:
        raise ParamError("run_ids", "Argument `run_ids` must name at least one run. Received: run_ids=[]")
    figures = run_charts(store, run_ids, metrics, smoothing=smoothing, log_x=log_x, log_y=log_y,
                         epoch_range=epoch_range)
    runs = [store.get(rid) for rid in run_ids]
    history = store.history(list(run_ids))
    notes = [f"lrviz report, {time.strftime('%Y-%m-%d %H:%M:%S')}, {len(run_ids)} run(s)."]
    buffer = io.BytesIO()
    # level 1: each HTML carries plotly.js (4.8 MB); harder compression costs seconds, saves little
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with image_session() as can_draw:
            can_draw = can_draw and images
            for name, (fig, data) in figures.items():
                zf.writestr(f"charts/{name}.html", figure_html(fig))
                zf.writestr(f"data/{name}.csv", frame_csv(data))
                if can_draw:
                    for fmt in IMAGE_FORMATS:
                        try:
                            zf.writestr(f"charts/{name}.{fmt}", figure_image(fig, fmt))
                        except ExportUnavailable as exc:
                            can_draw = False
                            notes.append(f"No PNG/SVG: {exc}")
                            break
        if not images:
            notes.append("PNG/SVG left out on request.")
        elif not images_available():
            notes.append(f"No PNG/SVG: {NO_BROWSER}.")
        zf.writestr("data/history.csv", frame_csv(history))
        zf.writestr("data/summary.csv", frame_csv(summary.summarise(runs, history)))
        zf.writestr("runs.json", runs_json(store, run_ids))
        warning = summary.validation_warning(runs)
        if warning:
            notes.append(warning)
        notes.append("charts/: one file per chart and format; data/: the numbers behind them.")
        zf.writestr("README.txt", "\n".join(notes) + "\n")
    return buffer.getvalue()
