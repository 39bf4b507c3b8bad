"""Mirror a training run to experiment trackers (Neptune, TensorBoard).

``tracked(sink, config, run_id, store)`` wraps the training ``MetricsSink``: every call
goes to the inner sink first (the local cache is the source of truth), then to each
enabled tracker. Tracking never breaks training: a tracker's first error is recorded on
the run (``store.set_tracking``) and that tracker is switched off for the rest of the run.

Which trackers are on is read from the environment (see ``tracking_settings``):

- Neptune: ``NEPTUNE_PROJECT`` set, or ``LRVIZ_NEPTUNE=1`` (``LRVIZ_NEPTUNE=0`` forces it
  off). Neptune's own variables do the rest: ``NEPTUNE_API_TOKEN``, ``NEPTUNE_MODE``,
  ``NEPTUNE_DATA_DIRECTORY``.
- TensorBoard: ``LRVIZ_TENSORBOARD=1``; logs go to ``<cache>/tensorboard/<run_id>``.

Usage in a worker::

    with tracked(StoreSink(store, run_id), config, run_id, store) as sink:
        outcome = run_training(config, sink)
        sink.finish(outcome.status)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from lrviz.tracking._common import flatten_config
from lrviz.tracking.neptune_sink import NeptuneTracker, neptune_settings, scrub_secrets, short_error
from lrviz.tracking.tensorboard_sink import TensorBoardTracker, tensorboard_settings

__all__ = ["TrackedSink", "tracked", "tracking_settings", "flatten_config"]

_log = logging.getLogger("lrviz.tracking")

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def tracking_settings() -> dict[str, dict[str, Any]]:
    """Which trackers are on and why, for the UI. Never contains the API token."""
    return {"neptune": neptune_settings(), "tensorboard": tensorboard_settings()}


class TrackedSink:
    """A ``MetricsSink`` that forwards to ``inner`` and mirrors to trackers.

    Args:
        inner: the sink that writes the local cache (``StoreSink``); always called first.
        config: the run's ``RunConfig`` (or its dict form).
        run_id: the run's id in the store.
        store: a ``RunStore`` to record where the run was mirrored and any tracker error;
            None keeps that only in ``self.tracking``.
        trackers: tracker objects (``start``/``log_epoch``/``log_step_lr``/``finish``);
            ``tracked()`` builds them from the environment.
    """

    def __init__(self, inner: Any, config: Any, run_id: str, store: Any = None,
                 trackers: list | None = None) -> None:
        self.inner = inner
        self.config = config
        self.run_id = run_id
        self.store = store
        self.tracking: dict[str, dict[str, Any]] = {}
        self._trackers = list(trackers or [])
        self._history: list[dict[str, Any]] = []
        self._lr_parts: list[tuple[int, np.ndarray]] = []
        self._finished = False
        for tracker in list(self._trackers):
            info = self._guard(tracker, "start")
            if info is not None:
                self._record(tracker.name, info)

    # -- the MetricsSink protocol ------------------------------------------------
    def on_epoch(self, epoch: int, metrics: dict[str, float], seconds: float) -> None:
        self.inner.on_epoch(epoch, metrics, seconds)
        if not self._trackers:  # nothing mirrors this run (any more): pass straight through
            return
        self._history.append({"run_id": self.run_id, "epoch": epoch, **metrics, "seconds": seconds})
        for tracker in list(self._trackers):
            self._guard(tracker, "log_epoch", epoch, metrics, seconds)

    def on_step_lr(self, first_step: int, lrs: np.ndarray) -> None:
        self.inner.on_step_lr(first_step, lrs)
        if not self._trackers:
            return
        self._lr_parts.append((int(first_step), np.asarray(lrs, dtype=np.float64).copy()))
        for tracker in list(self._trackers):
            self._guard(tracker, "log_step_lr", first_step, lrs)

    def should_stop(self) -> bool:
        return self.inner.should_stop()

    # -- end of run ----------------------------------------------------------------
    def finish(self, status: str) -> None:
        """Close the trackers; Neptune also gets the run's charts. Safe to call twice."""
        if self._finished:
            return
        self._finished = True
        for tracker in list(self._trackers):
            info = self._guard(tracker, "finish", status, self)
            if info:
                self._record(tracker.name, info)
        self._trackers.clear()

    def __enter__(self) -> "TrackedSink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # A crash inside training still closes the trackers; the exception goes on.
        self.finish("failed" if exc_type is not None else "finished")

    # -- what trackers read at the end --------------------------------------------
    def history(self):
        """The epochs seen so far as a DataFrame shaped like ``RunStore.history``."""
        import pandas as pd

        cols = ["run_id", "epoch", *METRICS, "seconds"]
        frame = pd.DataFrame(self._history)
        for col in cols:
            if col not in frame:
                frame[col] = np.nan if col != "run_id" else self.run_id
        return frame[cols + [c for c in frame.columns if c not in cols]]

    def step_lrs(self) -> np.ndarray:
        """The per-step LR seen so far, in step order (later reports win)."""
        if not self._lr_parts:
            return np.zeros(0)
        size = max(first + len(lrs) for first, lrs in self._lr_parts)
        out = np.full(size, np.nan)
        for first, lrs in self._lr_parts:
            out[first:first + len(lrs)] = lrs
        return out

    def label(self) -> str:
        try:
            return self.config.label()
        except Exception:  # noqa: BLE001 - a label is cosmetic; the id always works
            return self.run_id

    # -- error containment ---------------------------------------------------------
    def _guard(self, tracker: Any, method: str, *args: Any) -> Any:
        try:
            return getattr(tracker, method)(*args)
        except Exception as exc:  # noqa: BLE001 - tracking must never break training
            message = f"{method}: {short_error(exc)}"
            _log.warning("%s tracking switched off for run %s: %s", tracker.name, self.run_id, message)
            self._record(tracker.name, {"error": message})
            if tracker in self._trackers:
                self._trackers.remove(tracker)
            try:
                tracker.abort()
            except Exception:  # noqa: BLE001 - already failing; nothing more to report
                pass
            return None

    def _record(self, name: str, info: dict[str, Any]) -> None:
        entry = self.tracking.setdefault(name, {})
        if "error" in info and "error" in entry:
            info = {k: v for k, v in info.items() if k != "error"}  # keep the first error
        entry.update({k: scrub_secrets(v) if isinstance(v, str) else v for k, v in info.items()})
        if self.store is not None:
            try:
                self.store.set_tracking(self.run_id, self.tracking)
            except Exception as exc:  # noqa: BLE001 - the cache may be busy; training goes on
                _log.warning("could not record tracking info for run %s: %s", self.run_id, exc)


def tracked(sink: Any, config: Any, run_id: str, store: Any = None) -> TrackedSink:
    """Wrap ``sink`` so the run is mirrored to every tracker the environment enables.

    Returns a ``TrackedSink`` (a ``MetricsSink`` and a context manager); call
    ``finish(status)`` when training returns, or leave the ``with`` block.
    """
    trackers: list = []
    if neptune_settings()["enabled"]:
        trackers.append(NeptuneTracker(config, run_id))
    if tensorboard_settings()["enabled"]:
        trackers.append(TensorBoardTracker(run_id, steps_per_epoch=_spe(config)))
    return TrackedSink(sink, config, run_id, store, trackers)


def _spe(config: Any) -> int | None:
    try:
        return int(config.steps_per_epoch)
    except Exception:  # noqa: BLE001 - a dict config has no property; step is then the x
        return None

