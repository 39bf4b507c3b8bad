"""The streaming callback: each epoch's metrics and per-step LR go to a sink as they happen.

Small on purpose (DVCLive's Keras callback is about 40 lines). It also ends a run early:
a NaN/inf batch loss -> ``diverged`` (the partial epoch is still sent, so it is drawn as a
gap), the sink asking to stop -> ``cancelled``.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class StreamingCallback(keras.callbacks.Callback):
    """Sends epochs (numbered from 1) to ``sink.on_epoch`` and per-step LRs to ``sink.on_step_lr``."""

    def __init__(self, sink, steps_per_epoch: int, check_every: int = 50):
        super().__init__()
        self.sink, self.spe, self.check_every = sink, steps_per_epoch, check_every
        self.status, self.epochs_done = "finished", 0

    def on_epoch_begin(self, epoch, logs=None):
        self._lrs: list[float] = []
        self._start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        # The optimizer applies exactly this value in the coming step (a schedule is
        # evaluated at the current iteration; a scheduler callback has set the variable).
        self._lrs.append(float(np.asarray(self.model.optimizer.learning_rate)))
        if batch and batch % self.check_every == 0 and self.sink.should_stop():
            self._stop("cancelled")

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self._stop("diverged")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not math.isfinite(logs.get("loss", 0.0)):
            self._stop("diverged")
        if self.status == "cancelled" and len(self._lrs) < self.spe:
            return  # a half-trained epoch cut by a cancel is not an epoch's result
        metrics = {k: float(logs.get(k, math.nan)) for k in METRICS}
        metrics["learning_rate"] = self._lrs[0] if self._lrs else math.nan
        self.sink.on_step_lr(epoch * self.spe, np.asarray(self._lrs, dtype=np.float64))
        self.sink.on_epoch(epoch + 1, metrics, time.perf_counter() - self._start)
        self.epochs_done = epoch + 1
        more = epoch + 1 < self.params.get("epochs", math.inf)
        if self.status == "finished" and more and self.sink.should_stop():
            self._stop("cancelled")

    def _stop(self, status: str) -> None:
        if self.status == "finished":  # the first reason wins
            self.status = status
        self.model.stop_training = True
