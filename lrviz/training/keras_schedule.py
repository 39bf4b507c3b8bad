"""The Keras adapter: a catalogue schedule as what a Keras optimizer applies.

The curve previewed is the curve trained: both granularities read the very array
``lrviz.schedules.lr_curve`` returns. Batch granularity hands the optimizer a
``LearningRateSchedule`` that looks the step up in that array; epoch granularity starts
from its first value and a ``LearningRateScheduler`` sets each epoch's value. The
adaptive ``reduce_on_plateau`` becomes Keras's ``ReduceLROnPlateau``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from lrviz.schedules import Schedule, lr_curve


@keras.saving.register_keras_serializable(package="lrviz")
class SampledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The LR of every optimizer step from a precomputed table; the last value is held.

    ```python
    lr(step) = values[min(step, len(values) - 1)]
    ```

    Args:
        values: the LR of each optimizer step (from ``lr_curve``), at least one.
        name: the schedule's name, kept for ``get_config``.
    """

    def __init__(self, values: Any, name: str = "SampledSchedule"):
        super().__init__()
        values = [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
        if not values:
            raise ValueError(f"Argument `values` must hold at least one LR. Received: values={values}")
        self.values = values
        self.name = name
        # Built now, eagerly: a table first created inside fit's compiled graph cannot be
        # used outside it (InaccessibleTensorError when the LR is read later).
        self._table = keras.ops.convert_to_tensor(np.asarray(self.values, dtype=np.float32))

    def __call__(self, step):
        index = keras.ops.minimum(keras.ops.cast(step, "int32"), len(self.values) - 1)
        return keras.ops.take(self._table, keras.ops.maximum(index, 0))

    def get_config(self) -> dict:
        return {"values": list(self.values), "name": self.name}


def keras_lr(schedule: Schedule, epochs: int, steps_per_epoch: int) -> tuple[Any, list]:
    """What to give the optimizer as ``learning_rate`` and the callbacks ``fit`` needs.

    Returns:
        ``(learning_rate, callbacks)``: a ``SampledSchedule`` and no callback (batch
        granularity); the first epoch's float LR and a ``LearningRateScheduler`` (epoch);
        the initial LR and a ``ReduceLROnPlateau`` (``reduce_on_plateau``).

    Raises:
        ParamError: from ``lr_curve`` when the horizon or the schedule is refused.
    """
    curve = lr_curve(schedule, epochs, steps_per_epoch)
    if schedule.spec.adaptive:
        p = schedule.params
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor=p["monitor"], factor=p["factor"], patience=p["patience"], min_lr=p["min_lr"])
        return float(curve[0]), [plateau]
    if schedule.granularity == "batch":
        return SampledSchedule(curve, name=schedule.name), []
    spe, last = int(steps_per_epoch), len(curve) - 1

    def by_epoch(epoch: int, lr: float | None = None) -> float:
        # fit(initial_epoch=...) or more epochs than planned hold the last value.
        return float(curve[min(epoch * spe, last)])

    return float(curve[0]), [keras.callbacks.LearningRateScheduler(by_epoch)]
