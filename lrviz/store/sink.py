"""``StoreSink``: the training ``MetricsSink`` that writes into the run cache.

The training callback calls it at every epoch end (and may ask ``should_stop`` after
every batch), so it keeps its own cost small: the cancel flag is read from SQLite at most
every ``check_every`` seconds and the run's heartbeat is written at most every
``heartbeat_every`` seconds between epochs (each epoch's row bumps it too).
"""

from __future__ import annotations

import os
import time
from typing import Mapping

import numpy as np

from lrviz.store.runs import RunStore


class StoreSink:
    """Streams one run's metrics into ``store`` and reports a cancel request."""

    def __init__(self, store: RunStore, run_id: str, *, check_every: float = 0.5,
                 heartbeat_every: float = 5.0):
        self.store = store
        self.run_id = run_id
        self.check_every = check_every
        self.heartbeat_every = heartbeat_every
        self._pid = os.getpid()
        self._stop = False
        self._checked_at = float("-inf")
        self._beat_at = time.monotonic()

    def on_epoch(self, epoch: int, metrics: Mapping[str, float], seconds: float) -> None:
        try:
            self.store.log_epoch(self.run_id, epoch, metrics, seconds)
        except KeyError:  # the run was deleted while training: stop, do not crash
            self._stop = True
        self._beat_at = time.monotonic()

    def on_step_lr(self, first_step: int, lrs: np.ndarray) -> None:
        try:
            self.store.log_step_lr(self.run_id, first_step, lrs)
        except KeyError:
            self._stop = True

    def should_stop(self) -> bool:
        """True once a cancel was requested (or the run deleted / no longer running)."""
        if self._stop:
            return True
        now = time.monotonic()
        if now - self._checked_at < self.check_every:
            return False
        self._checked_at = now
        self._stop = self.store.cancel_requested(self.run_id)
        if not self._stop and now - self._beat_at >= self.heartbeat_every:
            self._beat_at = now
            self.store.heartbeat(self.run_id, self._pid)
        return self._stop
