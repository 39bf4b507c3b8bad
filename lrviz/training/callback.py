"""The streaming callback: each epoch's metrics and per-step LR go to a sink as they happen.

Small on purpose (DVCLive's Keras callback is about 40 lines). It also ends a run early:
a NaN/inf batch loss -> ``diverged`` (the partial epoch is still sent, so it is drawn as a
gap), the sink asking to stop -> ``cancelled``.

Cheap on purpose too (issue 3: at most 5% per epoch): nothing touches TensorFlow on every
batch. Evaluating the LR eagerly each step costs more than a small MLP's step itself, so
the per-step LR is read once per epoch: a ``LearningRateSchedule`` is evaluated at the
optimizer iterations the epoch actually ran (exactly what the optimizer computed), and a
plain LR variable (set by ``LearningRateScheduler`` / ``ReduceLROnPlateau`` between
epochs) is read at the epoch's start and re-read every ``check_every`` batches.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class StreamingCallback(keras.callbacks.Callback):
    """Sends epochs (numbered from 1) to ``sink.on_epoch`` and per-step LRs to ``sink.on_step_lr``.

    Put it after the schedule's callbacks: its ``on_epoch_begin`` then sees the LR they set.
    """

    # Only on_train_batch_end runs per batch (a NaN check): Keras may call it from its
    # thread pool, so batches are not serialised on Python for it.
    async_safe = True

    def __init__(self, sink, steps_per_epoch: int, check_every: int = 50):
        super().__init__()
        self.sink, self.spe, self.check_every = sink, steps_per_epoch, check_every
        self.status, self.epochs_done = "finished", 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._first = int(np.asarray(self.model.optimizer.iterations))
        self._lr_reads = [(0, self._read_lr())]  # (batch, LR from that batch on)

    def on_train_batch_begin(self, batch, logs=None):
        if batch and batch % self.check_every == 0:
            self._lr_reads.append((batch, self._read_lr()))
            if self.sink.should_stop():
                self._stop("cancelled")

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self._stop("diverged")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not math.isfinite(logs.get("loss", 0.0)):
            self._stop("diverged")
        lrs = self._epoch_lrs(int(np.asarray(self.model.optimizer.iterations)) - self._first)
        if self.status == "cancelled" and len(lrs) < self.spe:
            return  # a half-trained epoch cut by a cancel is not an epoch's result
        metrics = {k: float(logs.get(k, math.nan)) for k in METRICS}
        metrics["learning_rate"] = float(lrs[0]) if len(lrs) else math.nan
        self.sink.on_step_lr(epoch * self.spe, lrs)
        self.sink.on_epoch(epoch + 1, metrics, time.perf_counter() - self._start)
        self.epochs_done = epoch + 1
        more = epoch + 1 < self.params.get("epochs", math.inf)
        if self.status == "finished" and more and self.sink.should_stop():
            self._stop("cancelled")

    def _read_lr(self) -> float | None:
        lr = self.model.optimizer._learning_rate  # the variable or schedule, not its value
        if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
            return None  # evaluated per step at epoch end
        return float(np.asarray(self.model.optimizer.learning_rate))

    def _epoch_lrs(self, steps: int) -> np.ndarray:
        if self._lr_reads[0][1] is not None:  # a variable: hold each read until the next
            out = np.empty(steps)
            for (batch, lr), (until, _) in zip(self._lr_reads, self._lr_reads[1:] + [(steps, 0)]):
                out[batch:until] = lr
            return out
        schedule = self.model.optimizer._learning_rate
        iters = np.arange(self._first, self._first + steps, dtype=np.int64)
        values = np.asarray(schedule(iters), dtype=np.float64).ravel()
        if values.shape != iters.shape:  # a schedule that does not take a vector of steps
            values = np.array([float(np.asarray(schedule(i))) for i in iters])
        return values

    def _stop(self, status: str) -> None:
        if self.status == "finished":  # the first reason wins
            self.status = status
        self.model.stop_training = True
