"""Real training on small real Fashion-MNIST samples, streamed into an in-memory sink."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrviz.config import RunConfig
from lrviz.data import find_data_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_data_dir() is None, reason="real Fashion-MNIST not installed"),
]

METRICS = {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}


class MemorySink:
    """The MetricsSink protocol, kept in lists; ``stop_after`` epochs it asks to stop."""

    def __init__(self, stop_after: int | None = None):
        self.epochs: list[tuple[int, dict, float]] = []
        self.step_lrs: list[tuple[int, np.ndarray]] = []
        self.stop_after = stop_after

    def on_epoch(self, epoch, metrics, seconds):
        self.epochs.append((epoch, dict(metrics), seconds))

    def on_step_lr(self, first_step, lrs):
        self.step_lrs.append((first_step, np.array(lrs)))

    def should_stop(self):
        return self.stop_after is not None and len(self.epochs) >= self.stop_after

    def all_lrs(self) -> np.ndarray:
        starts = [f for f, _ in self.step_lrs]
        assert starts == sorted(starts)
        return np.concatenate([lrs for _, lrs in self.step_lrs])

    def history(self, key):
        return [m[key] for _, m, _ in self.epochs]


def small(schedule, params=None, granularity=None, optimizer="sgd", opt=None, **run):
    run = {"epochs": 2, "train_size": 1000, "batch_size": 64, "hidden": [32], **run}
    return RunConfig.create(schedule, params, granularity, optimizer, opt, **run)


def train(config, sink=None):
    from lrviz.training import run_training

    sink = sink or MemorySink()
    return run_training(config, sink), sink


def test_two_epochs_stream_all_metrics_and_the_applied_lr():
    from lrviz.schedules import build, lr_curve

    config = small("cosine", {"initial_lr": 0.1, "min_lr": 0.001}, "batch",
                   optimizer="sgd", opt={"momentum": 0.8}, hidden=[64, 32])
    outcome, sink = train(config)
    assert (outcome.status, outcome.epochs_done, outcome.error) == ("finished", 2, None)
    assert [e for e, _, _ in sink.epochs] == [1, 2]
    for _, metrics, seconds in sink.epochs:
        assert set(metrics) == METRICS and all(math.isfinite(v) for v in metrics.values())
        assert seconds > 0
    assert sink.history("val_accuracy")[-1] > 0.4  # it learned something on 1,000 images
    spe = config.steps_per_epoch
    assert spe == 16 and [f for f, _ in sink.step_lrs] == [0, spe]
    expected = lr_curve(build("cosine", config.schedule_params, "batch"), 2, spe)
    np.testing.assert_allclose(sink.all_lrs(), expected, rtol=1e-6)
    assert len(set(np.round(sink.all_lrs(), 9))) > 20  # per step, not per epoch
    # learning_rate of an epoch is the LR of its first step
    assert sink.history("learning_rate") == pytest.approx([expected[0], expected[spe]], rel=1e-6)


def test_epoch_granularity_holds_the_lr_for_the_epoch():
    from lrviz.schedules import build, lr_curve

    config = small("exponential", {"initial_lr": 0.1, "k": 0.5}, "epoch")
    _, sink = train(config)
    expected = lr_curve(build("exponential", config.schedule_params, "epoch"), 2, 16)
    np.testing.assert_allclose(sink.all_lrs(), expected, rtol=1e-6)
    assert sink.history("learning_rate") == pytest.approx([0.1, 0.1 * math.exp(-0.5)], rel=1e-6)


def test_same_config_same_metrics():
    config = small("constant", {"lr": 0.05}, optimizer="adam", train_size=500)
    _, first = train(config)
    _, second = train(config)
    assert [m for _, m, _ in first.epochs] == [m for _, m, _ in second.epochs]
    _, other = train(small("constant", {"lr": 0.05}, optimizer="adam", train_size=500, seed=1))
    assert other.history("loss") != first.history("loss")


def test_huge_lr_diverges_and_keeps_the_epochs_before():
    # 0.01 for the first epoch, then 50: the second epoch blows up to NaN. (A narrow net
    # can instead "survive" with all ReLUs dead, so this uses the article's widths.)
    config = small("custom", {"expression": "0.01 + 50 * min(floor(t), 1)"}, "epoch", epochs=4,
                   hidden=[512, 200])
    outcome, sink = train(config)
    assert outcome.status == "diverged" and outcome.epochs_done == 2
    assert [e for e, _, _ in sink.epochs] == [1, 2]
    first, second = sink.epochs[0][1], sink.epochs[1][1]
    assert all(math.isfinite(v) for v in first.values())
    assert math.isnan(second["loss"]) or math.isinf(second["loss"])  # drawn as a gap
    assert second["learning_rate"] == pytest.approx(50.01)
    # the diverged epoch stopped early: fewer LRs than a whole epoch
    assert sink.step_lrs[1][0] == 16 and len(sink.step_lrs[1][1]) < 16


def test_article_constant_lr_5_ends_diverged_not_crashed():
    outcome, sink = train(small("constant", {"lr": 5.0}, epochs=3, hidden=[512, 200]))
    assert outcome.status == "diverged" and 1 <= outcome.epochs_done <= 3
    assert not math.isfinite(sink.epochs[-1][1]["loss"])


def test_cancel_via_should_stop():
    outcome, sink = train(small("constant", {"lr": 0.01}, epochs=5, train_size=500),
                          MemorySink(stop_after=1))
    assert outcome.status == "cancelled" and outcome.epochs_done == 1
    assert [e for e, _, _ in sink.epochs] == [1]


def test_cancel_before_start_trains_nothing():
    outcome, sink = train(small("constant", train_size=500), MemorySink(stop_after=0))
    assert (outcome.status, outcome.epochs_done, sink.epochs) == ("cancelled", 0, [])


def test_validation_split_trains_on_the_head():
    config = small("constant", {"lr": 0.05}, epochs=1, validation="split", validation_split=0.2)
    outcome, sink = train(config)
    assert outcome.status == "finished"
    assert config.steps_per_epoch == 13 and len(sink.all_lrs()) == 13  # 800 images / 64


def test_optimizers_build_with_their_settings():
    from lrviz.optimizers import OPTIMIZERS
    from lrviz.training.model import build_model, make_optimizer

    for name in OPTIMIZERS:
        opt = make_optimizer(name, None, 0.01)
        assert float(np.asarray(opt.learning_rate)) == pytest.approx(0.01)
    sgd = make_optimizer("sgd", {"momentum": 0.8, "nesterov": True}, 0.1)
    assert sgd.momentum == pytest.approx(0.8) and sgd.nesterov
    model = build_model((512, 200), seed=3)
    assert [layer.units for layer in model.layers[1:]] == [512, 200, 10]
    assert model.count_params() == 784 * 512 + 512 + 512 * 200 + 200 + 200 * 10 + 10
    again = build_model((512, 200), seed=3)
    np.testing.assert_array_equal(model.get_weights()[0], again.get_weights()[0])


def test_cancel_mid_epoch_is_checked_every_50_batches():
    class StopOnSecondAsk(MemorySink):
        asked = 0

        def should_stop(self):
            self.asked += 1
            return self.asked >= 2  # the first ask is before training starts

    # 4,000 images / 64 = 63 steps: the check at batch 50 stops epoch 1 part-way.
    outcome, sink = train(small("constant", {"lr": 0.01}, epochs=3, train_size=4000),
                          StopOnSecondAsk())
    assert outcome.status == "cancelled" and outcome.epochs_done == 0
    assert sink.epochs == [] and sink.asked == 2  # the cut epoch is not reported
