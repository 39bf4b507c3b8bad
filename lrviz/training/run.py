"""One training run: config in, metrics streamed to a sink, an ``Outcome`` out.

``run_training`` is what a worker process (or ``python -m lrviz train``) calls. It seeds
everything so the same config gives the same metrics, trains the article's MLP with the
config's optimizer and schedule, and reports how the run ended. Exceptions are not
swallowed: the caller records them as ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import keras
import numpy as np

from lrviz.config import RunConfig
from lrviz.data import load_sample
from lrviz.training.callback import StreamingCallback
from lrviz.training.model import build_model, make_optimizer


class MetricsSink(Protocol):
    """Where a run's results go (the store, a test's memory, a tracker)."""

    def on_epoch(self, epoch: int, metrics: dict[str, float], seconds: float) -> None: ...
    def on_step_lr(self, first_step: int, lrs: np.ndarray) -> None: ...
    def should_stop(self) -> bool: ...


@dataclass(frozen=True)
class Outcome:
    """How a run ended: status finished, diverged or cancelled; epochs sent to the sink."""

    status: str
    epochs_done: int
    error: str | None = None


def prepare(config: RunConfig):
    """Seeded data, compiled model and the schedule's callbacks for ``config``."""
    from lrviz.schedules import build
    from lrviz.training.keras_schedule import keras_lr

    sample = load_sample(config.train_size, config.sample_seed, config.validation,
                         config.validation_split)
    # Python, numpy and TensorFlow seeds: weights and the shuffled batch order repeat.
    keras.utils.set_random_seed(config.seed)
    schedule = build(config.schedule, config.schedule_params, config.granularity)
    learning_rate, schedule_callbacks = keras_lr(schedule, config.epochs, config.steps_per_epoch)
    model = build_model(config.hidden, config.seed)
    model.compile(optimizer=make_optimizer(config.optimizer, config.optimizer_params, learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return sample, model, list(schedule_callbacks)


def run_training(config: RunConfig, sink: MetricsSink) -> Outcome:
    """Train ``config`` to the end, to divergence or to a cancel, streaming into ``sink``."""
    sample, model, callbacks = prepare(config)
    stream = StreamingCallback(sink, config.steps_per_epoch)
    if sink.should_stop():  # cancelled while it was being set up
        return Outcome("cancelled", 0)
    # The streaming callback comes last so it sees the LR the schedule callbacks set.
    model.fit(sample.x_train, sample.y_train, batch_size=config.batch_size,
              epochs=config.epochs, validation_data=(sample.x_val, sample.y_val),
              shuffle=True, callbacks=callbacks + [stream], verbose=0)
    return Outcome(stream.status, stream.epochs_done)
