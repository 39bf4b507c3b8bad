"""The batched engine: grouping, Keras's batch order, equivalence with single runs,
and one run cancelled or diverging without stopping the others."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrviz.config import RunConfig
from lrviz.training.batched import group_runs

SMALL = {"epochs": 2, "train_size": 1000}
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class MemorySink:
    """Keeps what a run reports; ``stop_after`` epochs it asks to stop."""

    def __init__(self, stop_after: int | None = None):
        self.epochs: list[tuple[int, dict, float]] = []
        self.lrs: dict[int, np.ndarray] = {}
        self.stop_after = stop_after

    def on_epoch(self, epoch, metrics, seconds):
        self.epochs.append((epoch, dict(metrics), seconds))

    def on_step_lr(self, first_step, lrs):
        self.lrs[first_step] = np.asarray(lrs)

    def should_stop(self):
        return self.stop_after is not None and len(self.epochs) >= self.stop_after


def cfg(schedule, params=None, optimizer="sgd", opt=None, granularity=None, **run):
    return RunConfig.create(schedule, params, granularity, optimizer, opt, **{**SMALL, **run})


class TestGroupRuns:
    def test_compatible_runs_share_a_group_and_the_rest_fall_back(self):
        configs = [
            cfg("constant", {"lr": 0.01}),
            cfg("step", {"initial_lr": 0.1}, "sgd", {"momentum": 0.8}),
            cfg("constant", {"lr": 0.001}, "adam"),
            cfg("constant", {"lr": 0.01}, hidden=[64]),       # other model shape
            cfg("constant", {"lr": 0.01}, batch_size=32),     # other batch size
            cfg("reduce_on_plateau"),                          # adaptive: alone
            cfg("constant", {"lr": 0.01}, seed=1),            # other weights and order
            cfg("cosine", optimizer="rmsprop"),
        ]
        assert group_runs(configs) == [[0, 1, 2, 7], [3], [4], [5], [6]]

    def test_article_preset_is_one_group(self):
        from lrviz.presets import preset_configs

        assert group_runs(preset_configs("article", epochs=2)) == [list(range(7))]


@pytest.mark.slow
def test_batch_order_is_model_fits():
    """The permutation model.fit(shuffle=True) draws under the run's seed, every epoch."""
    import keras
    import tensorflow as tf

    from lrviz.training.batched import fit_batch_order

    seen = []

    class Recorder(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            seen.append(data[0].numpy()[:, 0].astype(int))
            return {"n": tf.constant(0.0)}

    n = 150
    keras.utils.set_random_seed(3)
    model = Recorder()
    model.compile(run_eagerly=True)
    model.fit(np.arange(n, dtype="float32")[:, None], np.zeros(n), batch_size=64, epochs=2,
              shuffle=True, verbose=0)
    order = fit_batch_order(n, 3)
    fitted = np.concatenate(seen)
    assert sorted(order) == list(range(n)) and not np.array_equal(order, np.arange(n))
    np.testing.assert_array_equal(fitted[:n], order)
    np.testing.assert_array_equal(fitted[n:], order)


def _compare(single: MemorySink, batched: MemorySink, atol: float) -> None:
    assert [e for e, _, _ in single.epochs] == [e for e, _, _ in batched.epochs]
    for (_, m1, _), (_, m2, _) in zip(single.epochs, batched.epochs):
        for key in METRICS:
            assert m2[key] == pytest.approx(m1[key], abs=atol), key
        assert m2["learning_rate"] == m1["learning_rate"]
    assert single.lrs.keys() == batched.lrs.keys()
    for step in single.lrs:
        np.testing.assert_array_equal(batched.lrs[step], single.lrs[step])


@pytest.mark.slow
def test_batched_runs_match_single_runs():
    """Same curves as run_training, within float tolerance.

    SGD/Adagrad agree to ~1e-7 (only summation order differs: one wide matmul against
    per-run matmuls), so 1e-4 is generous. Adam divides each step by sqrt(v): a last-bit
    difference in a near-zero gradient becomes a whole lr-sized step for that weight, so
    after an epoch Adam's metrics drift by ~1e-3; 2e-2 still fails any real mismatch (a
    wrong init, order, LR or update moves these metrics by 0.05 or more).
    """
    from lrviz.training.batched import train_batched
    from lrviz.training.run import run_training

    configs = [
        cfg("exponential", {"initial_lr": 0.1, "k": 0.1}, "sgd", {"momentum": 0.8}),
        cfg("cosine", {"initial_lr": 0.05}, "sgd", {"momentum": 0.9, "nesterov": True}, "batch"),
        cfg("constant", {"lr": 0.001}, "adam"),
    ]
    sinks = [MemorySink() for _ in configs]
    outcomes = train_batched(configs, sinks)
    assert [o.status for o in outcomes] == ["finished"] * 3
    assert [o.epochs_done for o in outcomes] == [2, 2, 2]
    for config, sink in zip(configs, sinks):
        alone = MemorySink()
        assert run_training(config, alone).status == "finished"
        _compare(alone, sink, 2e-2 if config.optimizer == "adam" else 1e-4)
    # the runs really differ (not one run reported three times)
    assert len({s.epochs[-1][1]["val_loss"] for s in sinks}) == 3


@pytest.mark.slow
def test_cancel_one_and_diverge_one_while_the_others_go_on():
    from lrviz.training.batched import train_batched
    from lrviz.training.run import run_training

    steady = cfg("constant", {"lr": 0.05}, "sgd", {"momentum": 0.5})
    # LR 0.01 in epoch 1, 50 from epoch 2: finite first, NaN/inf in the second
    blowup = cfg("custom", {"expression": "0.01 + 50 * min(floor(t), 1)"}, granularity="epoch")
    configs = [steady, cfg("constant", {"lr": 0.02}), blowup]
    sinks = [MemorySink(), MemorySink(stop_after=1), MemorySink()]
    outcomes = train_batched(configs, sinks)
    assert (outcomes[0].status, outcomes[0].epochs_done) == ("finished", 2)
    assert (outcomes[1].status, outcomes[1].epochs_done) == ("cancelled", 1)
    assert (outcomes[2].status, outcomes[2].epochs_done) == ("diverged", 2)
    assert [e for e, _, _ in sinks[1].epochs] == [1]
    assert [e for e, _, _ in sinks[2].epochs] == [1, 2]
    assert not math.isfinite(sinks[2].epochs[1][1]["loss"])
    spe = blowup.steps_per_epoch
    assert len(sinks[2].lrs[spe]) < spe  # it stopped at the step that went non-finite
    alone = MemorySink()
    run_training(steady, alone)
    _compare(alone, sinks[0], 1e-4)
    alone = MemorySink()
    assert run_training(blowup, alone).status == "diverged"
    assert alone.epochs[0][1] == pytest.approx(sinks[2].epochs[0][1], abs=1e-4)
    assert len(alone.lrs[spe]) == len(sinks[2].lrs[spe])
