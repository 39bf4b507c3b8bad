"""The Keras adapter trains with exactly the previewed curve.

A tiny model is trained through ``keras_lr`` with every schedule; a callback reads the
LR the optimizer applies at the start of every batch and it must equal ``lr_curve``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lrviz.schedules import GRANULARITIES, build, catalogue, lr_curve

EPOCHS, SAMPLES, BATCH = 3, 64, 16
SPE = SAMPLES // BATCH  # 4 steps per epoch

# Short horizons need short durations so every schedule shows its shape in 12 steps.
SMALL = {
    "step": {"epochs_drop": 1},
    "multistep": {"milestones": [1, 2]},
    "cosine": {"warmup_epochs": 1, "min_lr": 0.01},
    "cosine_restarts": {"first_cycle_epochs": 0.5, "min_lr": 0.001},
    "cyclic": {"step_size_epochs": 0.5, "mode": "exp_range", "gamma": 0.9},
    "warmup_stable_decay": {"warmup_epochs": 0.5, "decay_epochs": 1, "min_lr": 0.001},
    "inverse_sqrt": {"warmup_epochs": 0.5},
    "exponential": {"k": 0.5},
    "keras_legacy_decay": {"decay": 0.1},
    "time_based": {"compound": True, "decay": 0.2},
    "reduce_on_plateau": {"monitor": "loss"},
}

CASES = [(name, gran) for name in catalogue() for gran in GRANULARITIES
         if not (name == "reduce_on_plateau" and gran == "batch")]


@pytest.fixture(scope="module")
def keras_mod():
    keras = pytest.importorskip("keras")
    return keras


def _applied_lrs(keras_mod, schedule):
    """Train the tiny model through the adapter; the LR of each optimizer step."""
    keras = keras_mod
    from lrviz.training.keras_schedule import keras_lr

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 8)).astype("float32")
    y = rng.integers(0, 4, size=SAMPLES)
    learning_rate, callbacks = keras_lr(schedule, EPOCHS, SPE)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy")
    seen: list[float] = []

    class Recorder(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=list(callbacks) + [Recorder()])
    return np.array(seen)


@pytest.mark.slow
@pytest.mark.parametrize("name,granularity", CASES)
def test_optimizer_applies_the_previewed_curve(keras_mod, name, granularity):
    schedule = build(name, SMALL.get(name), granularity)
    expected = lr_curve(schedule, EPOCHS, SPE)
    applied = _applied_lrs(keras_mod, schedule)
    assert len(applied) == EPOCHS * SPE
    np.testing.assert_allclose(applied, expected, rtol=2e-6, atol=1e-9)


@pytest.mark.slow
def test_reduce_on_plateau_uses_keras_callback(keras_mod):
    from lrviz.training.keras_schedule import keras_lr

    schedule = build("reduce_on_plateau", {"factor": 0.5, "patience": 3, "monitor": "loss",
                                           "min_lr": 0.001, "initial_lr": 0.2})
    lr, callbacks = keras_lr(schedule, 5, 2)
    assert lr == 0.2
    (cb,) = callbacks
    assert isinstance(cb, keras_mod.callbacks.ReduceLROnPlateau)
    assert (cb.monitor, cb.factor, cb.patience, cb.min_lr) == ("loss", 0.5, 3, 0.001)


def test_sampled_schedule_holds_last_value_and_round_trips(keras_mod):
    from lrviz.training.keras_schedule import SampledSchedule

    sched = SampledSchedule([0.3, 0.2, 0.1], name="x")
    assert [float(sched(s)) for s in (0, 2, 7)] == pytest.approx([0.3, 0.1, 0.1])
    again = SampledSchedule.from_config(sched.get_config())
    assert again.values == pytest.approx([0.3, 0.2, 0.1]) and again.name == "x"


def test_epoch_callback_holds_last_value_past_the_plan(keras_mod):
    from lrviz.training.keras_schedule import keras_lr

    schedule = build("step", {"initial_lr": 1.0, "drop_rate": 0.5, "epochs_drop": 1}, "epoch")
    lr, (cb,) = keras_lr(schedule, 3, 4)
    assert lr == 1.0
    assert [cb.schedule(e, None) for e in range(5)] == [1.0, 0.5, 0.25, 0.25, 0.25]


def test_importing_schedules_does_not_import_tensorflow():
    code = ("import sys, lrviz.schedules as s; s.lr_curve(s.build('cosine'), 3, 4); "
            "s.keras_snippet(s.build('custom'), 3, 4); "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
