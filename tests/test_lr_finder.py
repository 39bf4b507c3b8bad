"""The range test's maths on synthetic curves: ramp, smoothing, stop rule, suggestions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrviz.lr_finder import (
    RangeTestConfig,
    Smoother,
    ramp,
    should_stop,
    smooth,
    suggestions,
    usable_length,
    valley_index,
)
from lrviz.params import ParamError


def _fastai_valley(losses):
    """fastai's published valley rule, verbatim in spirit (quadratic loop)."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


class TestRamp:
    def test_exponential(self):
        lrs = ramp(1e-6, 10.0, 8, "exp")
        expected = 1e-6 * (10.0 / 1e-6) ** (np.arange(8) / 7)
        np.testing.assert_allclose(lrs, expected, rtol=1e-12)
        assert lrs[0] == 1e-6 and lrs[-1] == 10.0
        ratios = lrs[1:] / lrs[:-1]
        np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)

    def test_linear(self):
        lrs = ramp(0.1, 1.1, 11, "linear")
        np.testing.assert_allclose(lrs, 0.1 + 0.1 * np.arange(11), rtol=1e-12)

    @pytest.mark.parametrize("args, field", [
        ((1.0, 0.5, 10), "end_lr"),
        ((1.0, 1.0, 10), "end_lr"),
        ((0.0, 1.0, 10), "start_lr"),
        ((-1.0, 1.0, 10), "start_lr"),
        ((1e-3, 1.0, 4), "steps"),
        ((1e-3, 1.0, 100_001), "steps"),
        ((1e-3, 1.0, 10.5), "steps"),
    ])
    def test_refuses(self, args, field):
        with pytest.raises(ParamError) as err:
            ramp(*args)
        assert err.value.field == field
        assert f"Argument `{field}`" in str(err.value) and "Received" in str(err.value)

    def test_unknown_mode(self):
        with pytest.raises(ParamError, match="`mode`"):
            ramp(1e-3, 1.0, 10, "cubic")


class TestSmooth:
    def test_matches_reference_formula(self):
        rng = np.random.default_rng(0)
        losses = rng.uniform(0.5, 3.0, 50)
        beta, avg, ref = 0.9, 0.0, []
        for i, x in enumerate(losses):
            avg = beta * avg + (1 - beta) * x
            ref.append(avg / (1 - beta ** (i + 1)))
        np.testing.assert_allclose(smooth(losses, beta), ref, rtol=1e-12)

    def test_debiased_first_value_and_constant(self):
        # debiasing means a constant loss is smoothed to itself from the first step
        np.testing.assert_allclose(smooth(np.full(20, 2.5)), 2.5, rtol=1e-12)

    def test_streaming_equals_batch(self):
        losses = np.linspace(3, 1, 30) + np.sin(np.arange(30))
        s = Smoother(0.95)
        np.testing.assert_allclose([s(x) for x in losses], smooth(losses, 0.95), rtol=1e-12)

    def test_nan_propagates(self):
        out = smooth([1.0, 2.0, float("nan"), 1.0])
        assert np.isfinite(out[:2]).all() and np.isnan(out[2:]).all()


class TestStop:
    def test_factor(self):
        assert not should_stop(3.9, 1.0, 4.0)
        assert should_stop(4.1, 1.0, 4.0)
        assert should_stop(2.1, 1.0, 2.0)

    def test_non_finite(self):
        assert should_stop(float("nan"), 1.0)
        assert should_stop(float("inf"), 1.0)


class TestSuggestions:
    lrs = ramp(1e-4, 1.0, 200)
    x = np.log10(lrs)

    def test_known_steepest_and_minimum(self):
        # falls fastest at lr=1e-2 (x=-2), lowest at x=-1, then rises sharply
        losses = 2 - np.tanh(3 * (self.x + 2)) + np.where(self.x > -1, 20 * (self.x + 1) ** 2, 0)
        s = suggestions(self.lrs, losses, losses)
        assert set(s) == {"steepest", "valley", "min_div_10"}
        assert s["steepest"].lr == pytest.approx(1e-2, rel=0.1)
        i_min = int(np.argmin(losses))
        assert s["min_div_10"].lr == pytest.approx(self.lrs[i_min] / 10)
        for sug in s.values():
            assert self.lrs[0] <= sug.lr <= self.lrs[-1]
            assert sug.rule
            # in the falling part: before the minimum
            assert sug.lr <= self.lrs[i_min]

    def test_steepest_ignores_one_noisy_pair(self):
        losses = 2 - np.tanh(3 * (self.x + 2))
        noisy = losses.copy()
        noisy[150] -= 0.05  # a single sharp dip far from the true steepest point
        s = suggestions(self.lrs, noisy, smooth(noisy, 0.5))
        assert s["steepest"].lr == pytest.approx(1e-2, rel=0.15)

    def test_valley_matches_fastai_loop(self):
        rng = np.random.default_rng(1)
        for _ in range(20):
            losses = np.cumsum(rng.normal(-0.05, 0.3, 60)) + 10
            assert valley_index(losses) == max(0, _fastai_valley(list(losses)))

    def test_valley_on_parabola(self):
        losses = (self.x + 2) ** 2  # decreasing up to x=-2 (index ~100), then rising
        i = valley_index(losses)
        assert 0 < i < 100
        assert losses[i] > losses.min()

    def test_divergence_points_ignored(self):
        losses = np.linspace(3, 1, 50)
        losses = np.concatenate([losses, [np.nan, np.nan]])
        lrs = ramp(1e-4, 1.0, 52)
        sm = smooth(losses)
        assert usable_length(losses, sm) == 50
        s = suggestions(lrs, losses, sm)
        assert all(np.isfinite(v.lr) and v.index < 50 for v in s.values())

    def test_min_div_10_clipped_to_range(self):
        losses = np.linspace(1, 5, 30)  # minimum at the first point
        lrs = ramp(1e-3, 1.0, 30)
        s = suggestions(lrs, losses, losses)
        assert s["min_div_10"].lr == lrs[0]
        assert "clipped" in s["min_div_10"].rule

    def test_too_few_points(self):
        assert suggestions([1e-3, 1e-2], [1.0, float("nan")], [1.0, float("nan")]) == {}


class TestConfig:
    def test_defaults_and_one_epoch_steps(self):
        cfg = RangeTestConfig.create(train_size=1000, batch_size=64)
        assert cfg.steps == math.ceil(1000 / 64)
        assert cfg.start_lr == 1e-6 and cfg.end_lr == 10.0 and cfg.mode == "exp"
        assert len(cfg.ramp()) == cfg.steps

    def test_hash_is_identity(self):
        a = RangeTestConfig.create(train_size=1000, steps=50)
        b = RangeTestConfig.from_dict(a.to_dict())
        assert a == b and a.config_hash() == b.config_hash()
        assert a.config_hash() != RangeTestConfig.create(train_size=1000, steps=51).config_hash()
        # unused validation settings do not split the cache
        assert a.config_hash() == RangeTestConfig.create(train_size=1000, steps=50,
                                                         val_every=3).config_hash()

    @pytest.mark.parametrize("kw, field", [
        (dict(start_lr=1.0, end_lr=0.1), "end_lr"),
        (dict(start_lr=-1.0), "start_lr"),
        (dict(steps=3), "steps"),
        (dict(steps=200_000), "steps"),
        (dict(mode="log"), "mode"),
        (dict(train_size=5), "train_size"),
        (dict(stop_factor=1.0), "stop_factor"),
        (dict(bogus=1), "bogus"),
    ])
    def test_refuses(self, kw, field):
        with pytest.raises(ParamError) as err:
            RangeTestConfig.create(**kw)
        assert err.value.field == field

    def test_bad_optimizer(self):
        with pytest.raises(ParamError, match="`optimizer`"):
            RangeTestConfig.create("lion")


class TestIntoSchedule:
    def test_mapping(self):
        from lrviz.lr_finder import schedule_params_for, schedule_targets

        assert schedule_params_for("cyclic", 0.2) == {"max_lr": 0.2, "base_lr": pytest.approx(0.02)}
        assert schedule_params_for("one_cycle", 0.2) == {"max_lr": 0.2}
        assert schedule_params_for("cosine", 0.2) == {"initial_lr": 0.2}
        assert schedule_params_for("constant", 0.2) == {"lr": 0.2}
        assert "custom" not in schedule_targets()
        with pytest.raises(ParamError, match="`schedule`"):
            schedule_params_for("custom", 0.2)

    def test_every_target_builds(self):
        from lrviz.lr_finder import schedule_params_for, schedule_targets
        from lrviz.schedules import build

        for name in schedule_targets():
            params = schedule_params_for(name, 0.05)
            assert build(name, params).params.items() >= params.items()


def test_chart_marks_and_data():
    from lrviz.charts_lr_finder import lr_finder_data, lr_finder_figure
    from lrviz.lr_finder import RangeTestResult

    cfg = RangeTestConfig.create(start_lr=1e-4, end_lr=10.0, steps=60, train_size=1000)
    lrs = ramp(1e-4, 10.0, 60)[:50]
    x = np.log10(lrs)
    loss = 2.3 - np.tanh(2 * (x + 2)) + np.where(x > -0.5, 80 * (x + 0.5) ** 2, 0)
    rows = np.column_stack([np.arange(50), lrs, loss, smooth(loss)])
    result = RangeTestResult.from_points(cfg, rows, "diverged")
    fig = lr_finder_figure(result)
    names = [t.name for t in fig.data]
    for mark in ("steepest", "valley", "min_div_10", "diverged"):
        assert any(n.startswith(mark) for n in names)
    assert fig.layout.xaxis.type == "log"
    data = lr_finder_data(result)
    assert list(data.columns) == ["step", "lr", "loss", "smoothed", "mark"]
    assert data["mark"].iloc[-1].endswith("diverged")
    for name, s in result.suggestions().items():
        assert f"{name}=" in data["mark"].iloc[s.index]


def test_core_imports_neither_tensorflow_nor_streamlit():
    import subprocess
    import sys

    code = ("import sys, lrviz.lr_finder, lrviz.charts_lr_finder, lrviz.cli.find_lr_cmd; "
            "print([m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
