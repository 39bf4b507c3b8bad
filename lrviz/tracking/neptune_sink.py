"""Mirror a run to Neptune with the real ``neptune`` 1.x client, as the article did.

A run sends its config as ``parameters``, its schedule and optimizer as ``sys/tags``,
per-epoch metrics under ``metrics/`` (step = epoch) and, at the end, the LR chart and the
loss and accuracy charts (training vs validation) under ``charts/`` (PNG through
``lrviz.export``; self-contained HTML when there is no Chromium for PNG).

Neptune's own environment variables decide where it goes: ``NEPTUNE_MODE`` (default:
``async`` with a token and a project, else ``offline``), ``NEPTUNE_PROJECT``,
``NEPTUNE_API_TOKEN`` and ``NEPTUNE_DATA_DIRECTORY``. lrviz defaults the last to
``<cache>/.neptune``, so offline runs sit beside the run cache and
``neptune sync --path <cache>`` uploads them later.

``neptune`` is imported lazily: it costs seconds and most runs do not track.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import os
import re
import threading
from pathlib import Path
from typing import Any

from lrviz.settings import app_switches, cache_dir
from lrviz.tracking._common import env_flag, flatten_config

MODES = ("async", "sync", "offline")
DEFAULT_TIMEOUT = 5.0  # seconds Neptune may take to open or close a run before we give up
CHART_METRICS = ("loss", "accuracy")


def neptune_settings() -> dict[str, Any]:
    """Whether Neptune is on, why, and where runs would go (never the token itself)."""
    flag = env_flag("LRVIZ_NEPTUNE")
    project = os.environ.get("NEPTUNE_PROJECT") or None
    token_set = bool(os.environ.get("NEPTUNE_API_TOKEN"))
    if flag is False:
        enabled, why = False, "off: LRVIZ_NEPTUNE=0"
    elif flag:
        enabled, why = True, "on: LRVIZ_NEPTUNE=1"
    elif app_switches()["neptune"]:
        enabled, why = True, "on: switched on in the app"
    elif project:
        enabled, why = True, "on: NEPTUNE_PROJECT is set"
    else:
        enabled, why = False, "off: switch it on here, or set NEPTUNE_PROJECT or LRVIZ_NEPTUNE=1"
    mode = os.environ.get("NEPTUNE_MODE") or ("async" if token_set and project else "offline")
    return {
        "enabled": enabled,
        "why": why,
        "from_env": flag is not None or (bool(project) and not app_switches()["neptune"]),
        "mode": mode,
        "project": project,
        "token_set": token_set,
        "data_directory": str(Path(os.environ.get("NEPTUNE_DATA_DIRECTORY")
                                   or cache_dir() / ".neptune").resolve()),
        "installed": importlib.util.find_spec("neptune") is not None,
    }


def _secrets() -> list[str]:
    """The API token and the key inside it: text that must never leave the process."""
    token = os.environ.get("NEPTUNE_API_TOKEN") or ""
    found = [token] if len(token) >= 4 else []
    try:
        key = json.loads(base64.b64decode(token + "==").decode()).get("api_key")
        if isinstance(key, str) and len(key) >= 4:
            found.append(key)
    except Exception:  # noqa: BLE001 - not a Neptune-shaped token; the raw text is enough
        pass
    return found


def scrub_secrets(text: str) -> str:
    """``text`` with the Neptune API token (and the key inside it) replaced by ``***``."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def short_error(exc: BaseException) -> str:
    """One line for the Runs page: Neptune's errors are coloured, page-long help texts.

    Keeps the exception's name and its first two sentences of text, token scrubbed.
    """
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines()]
    text = " ".join(line for line in lines if line and not line.startswith("---"))
    sentences = re.split(r"(?<=[.!?])\s+", text)
    summary = " ".join(sentences[:2])
    if len(summary) > 300:
        summary = summary[:297] + "..."
    return scrub_secrets(f"{type(exc).__name__}: {summary}".strip().rstrip(":"))


class NeptuneTracker:
    """One Neptune run per lrviz run. Each method may raise; ``TrackedSink`` contains it."""

    name = "neptune"

    def __init__(self, config: Any, run_id: str, *, timeout: float | None = None) -> None:
        self.config = config
        self.run_id = run_id
        self.params: dict[str, Any] = {}
        self.timeout = timeout
        self.mode = "offline"
        self.data_directory = ""
        self._run: Any = None
        self._abandoned = False

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        settings = neptune_settings()
        if self.timeout is None:  # read here, not in __init__: a typo is reported, not raised
            raw = os.environ.get("LRVIZ_NEPTUNE_TIMEOUT") or str(DEFAULT_TIMEOUT)
            try:
                self.timeout = float(raw)
            except ValueError:
                raise ValueError("LRVIZ_NEPTUNE_TIMEOUT must be a number of seconds. "
                                 f"Received: LRVIZ_NEPTUNE_TIMEOUT={raw!r}") from None
        self.mode = settings["mode"]
        if self.mode not in MODES:
            raise ValueError(f"NEPTUNE_MODE must be one of {', '.join(MODES)}. "
                             f"Received: NEPTUNE_MODE={self.mode!r}")
        self.data_directory = settings["data_directory"]
        self.params = flatten_config(self.config)
        run = self._run = self._open_run()
        run["parameters"] = self.params
        tags = [str(getattr(self.config, key, None) or self.params.get(key, "")) for key in
                ("schedule", "optimizer")]
        run["sys/tags"].add([t for t in tags if t])
        run["lrviz/run_id"] = self.run_id
        info: dict[str, Any] = {"mode": self.mode}
        if self.mode == "offline":
            info["path"] = self._offline_path()
        else:
            info["url"] = run.get_url()
            info["project"] = settings["project"]
        return info

    def log_epoch(self, epoch: int, metrics: dict[str, float], seconds: float) -> None:
        for key, value in metrics.items():
            # Neptune 1.x rejects NaN/inf points; the local cache keeps them as gaps.
            if value is not None and math.isfinite(float(value)):
                self._run[f"metrics/{key}"].append(float(value), step=epoch)
        if seconds is not None and math.isfinite(float(seconds)):
            self._run["timing/epoch_seconds"].append(float(seconds), step=epoch)

    def log_step_lr(self, first_step: int, lrs: Any) -> None:
        """The per-step LR reaches Neptune as the end-of-run chart, not as points."""

    def finish(self, status: str, sink: Any) -> dict[str, Any]:
        run = self._run
        run["lrviz/status"] = status
        info = upload_charts(run, sink)
        self._stop()
        return info

    def abort(self) -> None:
        """Close whatever was opened after an error; a late-opening run is closed too."""
        self._abandoned = True
        if self._run is not None:
            self._stop()

    # -- Neptune calls ---------------------------------------------------------------
    def _open_run(self) -> Any:
        # Neptune reads its data folder from the environment when it opens a run; lend it
        # lrviz's default for that moment only, so the process environment is left as found.
        saved = os.environ.get("NEPTUNE_DATA_DIRECTORY")
        os.environ["NEPTUNE_DATA_DIRECTORY"] = self.data_directory
        try:
            return self._init_run()
        finally:
            if saved is None:
                os.environ.pop("NEPTUNE_DATA_DIRECTORY", None)

    def _init_run(self) -> Any:
        """``neptune.init_run`` bounded by ``timeout``: Neptune retries for a minute."""
        import neptune

        kwargs = dict(
            mode=self.mode,
            name=_label(self.config, self.run_id),
            capture_stdout=False, capture_stderr=False, capture_hardware_metrics=False,
            capture_traceback=False, source_files=[], git_ref=False,
        )
        if self.mode == "offline":  # nothing to wait for: no network involved
            return neptune.init_run(**kwargs)
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["run"] = neptune.init_run(**kwargs)
                if self._abandoned:  # it opened after we gave up: close it quietly
                    box["run"].stop(seconds=self.timeout)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                box["error"] = exc

        thread = threading.Thread(target=target, name="lrviz-neptune-init", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if "error" in box:
            raise box["error"]
        if "run" not in box:
            self._abandoned = True
            project = os.environ.get("NEPTUNE_PROJECT") or "(no NEPTUNE_PROJECT)"
            raise TimeoutError(f"Neptune did not open the run within {self.timeout:g} s "
                               f"(NEPTUNE_MODE={self.mode}, project {project}); is the server reachable?")
        return box["run"]

    def _stop(self) -> None:
        run, self._run = self._run, None
        if run is not None:
            run.stop(seconds=None if self.mode == "offline" else self.timeout)

    def _offline_path(self) -> str:
        processor = getattr(self._run, "_op_processor", None)
        path = getattr(processor, "data_path", None)
        if path is None:  # private attribute moved: find the folder by the run's id
            root = Path(self.data_directory) / self.mode
            matches = sorted(root.glob(f"run__{self._run._id}__*"))
            path = matches[-1] if matches else root
        return str(Path(path).resolve())


def _label(config: Any, run_id: str) -> str:
    try:
        return config.label()
    except Exception:  # noqa: BLE001 - needs the schedule catalogue; the id always works
        return run_id


def run_figures(sink: Any) -> dict[str, Any]:
    """The run's LR chart and its loss and accuracy charts (training vs validation),
    drawn by ``lrviz.charts`` so they look like the app's."""
    import pandas as pd

    from lrviz import charts

    label = _label(sink.config, sink.run_id)
    figures: dict[str, Any] = {}
    lrs = sink.step_lrs()
    if len(lrs):
        spe = getattr(sink.config, "steps_per_epoch", None) or len(lrs)
        figures["learning_rate"] = charts.lr_figure({label: charts.curve_frame(lrs, spe)}, x="epoch")
    history = sink.history()
    for metric in CHART_METRICS:
        # Training and validation as two "runs" of one chart: the article's loss/accuracy plots.
        parts = [pd.DataFrame({"run_id": part, "epoch": history["epoch"], metric: history[column],
                               "seconds": history["seconds"]})
                 for part, column in (("training", metric), ("validation", f"val_{metric}"))
                 if history[column].notna().any()]
        if parts:
            frame = pd.concat(parts, ignore_index=True)
            names = {part: f"{label} · {part}" for part in frame["run_id"].unique()}
            figures[metric] = charts.metric_figure(frame, metric, names)
    return figures


def render_images(figures: dict[str, Any]) -> tuple[dict[str, bytes], str, str | None]:
    """PNG bytes per figure through ``lrviz.export`` (one Chromium for all of them), or
    self-contained HTML pages when PNG cannot be made here.

    Returns (images, "png"|"html", why PNG failed or None).
    """
    from lrviz import export

    try:
        with export.image_session() as available:
            if not available:
                raise export.ExportUnavailable(export.NO_BROWSER)
            return {name: export.figure_image(fig, "png") for name, fig in figures.items()}, "png", None
    except Exception as exc:  # noqa: BLE001 - no Chromium here: HTML still carries the chart
        html = {name: export.figure_html(fig) for name, fig in figures.items()}
        return html, "html", f"PNG export failed ({short_error(exc)}); uploaded HTML"


def upload_charts(run: Any, sink: Any) -> dict[str, Any]:
    """Upload the run's charts under ``charts/``; a chart failure is reported, not raised."""
    from neptune.types import File

    try:
        figures = run_figures(sink)
        if not figures:
            return {"images": "none"}
        images, kind, why = render_images(figures)
        for name, content in images.items():
            run[f"charts/{name}"].upload(File.from_content(content, extension=kind))
        info: dict[str, Any] = {"images": kind, "charts": sorted(images)}
        if why:
            info["images_note"] = why
        return info
    except Exception as exc:  # noqa: BLE001 - metrics are already mirrored; keep them
        return {"images": "none", "images_error": short_error(exc)}
