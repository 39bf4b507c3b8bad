"""Write a run's scalars as TensorBoard event files, without TensorFlow.

On when ``LRVIZ_TENSORBOARD=1``. Each run gets ``<cache>/tensorboard/<run_id>``, so
``tensorboard --logdir cache/tensorboard`` lists lrviz's runs beside a person's others.
Per epoch (step = epoch): ``metrics/<name>`` for every metric including the learning
rate, and ``timing/epoch_seconds``; per optimizer step: ``lr/step``.

Events are written with tensorboard's own record writer and protos: the TFRecord
framing TensorBoard reads, with no TensorFlow import (only ``lrviz/training`` may).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from lrviz.settings import app_switches, cache_dir
from lrviz.tracking._common import env_flag


def tensorboard_dir() -> Path:
    """Where runs' TensorBoard logs go: ``<cache>/tensorboard``."""
    return cache_dir() / "tensorboard"


def tensorboard_settings() -> dict[str, Any]:
    """Whether TensorBoard logging is on, why, and the log folder."""
    flag = env_flag("LRVIZ_TENSORBOARD")
    if flag is not None:
        on, why = flag, f"{'on' if flag else 'off'}: LRVIZ_TENSORBOARD={'1' if flag else '0'}"
    else:
        on = app_switches()["tensorboard"]
        why = "on: switched on in the app" if on else "off: switch it on here, or set LRVIZ_TENSORBOARD=1"
    return {
        "enabled": on,
        "why": why,
        "from_env": flag is not None,
        "logdir": str(tensorboard_dir()),
    }


class EventWriter:
    """A minimal ``events.out.tfevents.*`` writer: scalar values, flushed on demand."""

    def __init__(self, logdir: Path) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event_pb2 = event_pb2
        logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = logdir / f"events.out.tfevents.{now:.0f}.{socket.gethostname()}.{os.getpid()}.lrviz"
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._records = RecordWriter(self._file)
        # TensorBoard expects the file to open with its format version.
        self._write(event_pb2.Event(wall_time=now, file_version="brain.Event:2"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        from tensorboard.compat.proto import summary_pb2

        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(v))
                                             for tag, v in values.items()])
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        self._records.close()

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())


class TensorBoardTracker:
    """One event file per lrviz run under ``<cache>/tensorboard/<run_id>``."""

    name = "tensorboard"

    def __init__(self, run_id: str, *, steps_per_epoch: int | None = None) -> None:
        self.run_id = run_id
        self.steps_per_epoch = steps_per_epoch
        self.logdir: Path | None = None
        self._writer: EventWriter | None = None

    def start(self) -> dict[str, Any]:
        self.logdir = tensorboard_dir() / self.run_id
        self._writer = EventWriter(self.logdir)
        return {"path": str(self.logdir.resolve())}

    def log_epoch(self, epoch: int, metrics: dict[str, float], seconds: float) -> None:
        values = {f"metrics/{k}": v for k, v in metrics.items() if v is not None}
        if seconds is not None:
            values["timing/epoch_seconds"] = seconds
        self._writer.scalars(epoch, values)
        self._writer.flush()  # the epoch is visible in TensorBoard as soon as it ends

    def log_step_lr(self, first_step: int, lrs: Any) -> None:
        for offset, lr in enumerate(np.asarray(lrs, dtype=np.float64)):
            self._writer.scalars(int(first_step) + offset, {"lr/step": lr})

    def finish(self, status: str, sink: Any) -> dict[str, Any]:
        self.abort()
        return {}

    def abort(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
