"""The schedule catalogue: values, boundaries, references and refused input.

Expected values come from tiny reference formulas (PyTorch's ``lr_scheduler`` written
out here, since torch is not installed) and from Keras's own schedule classes.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest

from lrviz.config import MAX_TOTAL_STEPS
from lrviz.params import ParamError
from lrviz.schedules import GRANULARITIES, build, catalogue, keras_snippet, lr_curve

DESIGN_ORDER = ["constant", "keras_legacy_decay", "time_based", "step", "exponential",
                "polynomial", "multistep", "cosine", "cosine_restarts", "cyclic", "one_cycle",
                "warmup_stable_decay", "inverse_sqrt", "reduce_on_plateau", "custom"]

DESIGN_PARAMS = {
    "constant": {"lr": 0.01},
    "keras_legacy_decay": {"initial_lr": 0.1, "decay": 0.01},
    "time_based": {"initial_lr": 0.5, "decay": 0.005, "compound": False},
    "step": {"initial_lr": 0.5, "drop_rate": 0.8, "epochs_drop": 10},
    "exponential": {"initial_lr": 0.5, "k": 0.1},
    "polynomial": {"initial_lr": 0.5, "power": 1.0, "end_lr": 0.0},
    "multistep": {"initial_lr": 0.1, "milestones": (30, 60, 90), "gamma": 0.1},
    "cosine": {"initial_lr": 0.1, "min_lr": 0.0, "warmup_epochs": 0},
    "cosine_restarts": {"initial_lr": 0.1, "first_cycle_epochs": 10, "t_mul": 2.0, "m_mul": 1.0,
                        "min_lr": 0.0},
    "cyclic": {"base_lr": 0.001, "max_lr": 0.1, "step_size_epochs": 2, "mode": "triangular",
               "gamma": 1.0},
    "one_cycle": {"max_lr": 0.1, "pct_start": 0.3, "div_factor": 25, "final_div_factor": 10000,
                  "anneal": "cos"},
    "warmup_stable_decay": {"peak_lr": 0.1, "warmup_epochs": 5, "decay_epochs": 20, "min_lr": 0.0},
    "inverse_sqrt": {"initial_lr": 0.1, "warmup_epochs": 5},
    "reduce_on_plateau": {"initial_lr": 0.1, "factor": 0.1, "patience": 10, "min_lr": 0.0,
                          "monitor": "val_loss"},
}


def curve(name, params=None, granularity="batch", epochs=6, spe=7):
    return lr_curve(build(name, params, granularity), epochs, spe)


# --- the catalogue as a contract ------------------------------------------------------

class TestCatalogue:
    def test_names_in_design_order(self):
        assert list(catalogue()) == DESIGN_ORDER

    @pytest.mark.parametrize("name", DESIGN_PARAMS)
    def test_parameter_names_and_defaults(self, name):
        spec = catalogue()[name]
        assert {p.name: p.default for p in spec.params} == DESIGN_PARAMS[name]

    def test_custom_has_expression(self):
        assert [p.name for p in catalogue()["custom"].params] == ["expression"]

    def test_only_reduce_on_plateau_is_adaptive(self):
        assert [n for n, s in catalogue().items() if s.adaptive] == ["reduce_on_plateau"]

    @pytest.mark.parametrize("name", DESIGN_ORDER)
    @pytest.mark.parametrize("granularity", GRANULARITIES)
    def test_every_default_curve_is_positive_and_full_length(self, name, granularity):
        lrs = curve(name, None, granularity, epochs=100, spe=313)
        assert lrs.dtype == np.float64 and lrs.shape == (31_300,)
        assert np.isfinite(lrs).all() and (lrs >= 0).all()
        spec = catalogue()[name]
        assert spec.formula and spec.title and spec.description
        assert spec.default_granularity in GRANULARITIES


@pytest.mark.parametrize("name", DESIGN_ORDER)
def test_whole_curve_is_vectorised(name):
    """A million-step curve costs a few numpy passes, not a Python loop per step
    (which would be hundreds of times one ``np.cos`` pass). Timed against that pass in
    the same process, best of three, so a busy machine does not fail it."""
    import time

    def best(fn):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    schedule = build(name, {"first_cycle_epochs": 0.01} if name == "cosine_restarts" else None, "batch")
    x = np.linspace(0.0, 1.0, 1_000_000)
    baseline = best(lambda: np.cos(x))
    elapsed = best(lambda: lr_curve(schedule, 1000, 1000))
    assert elapsed < 40 * baseline + 0.02, (elapsed, baseline)
    assert np.isfinite(lr_curve(schedule, 1000, 1000)).all()


# --- time conventions ---------------------------------------------------------------

class TestTime:
    def test_article_lesson_legacy_decay_per_batch(self):
        lrs = curve("keras_legacy_decay", {"initial_lr": 0.1, "decay": 0.01}, "batch", 3, 250)
        assert lrs[250] == pytest.approx(0.1 / (1 + 0.01 * 250))
        assert round(lrs[250], 4) == 0.0286
        assert lrs[0] == 0.1 and lrs[1] == pytest.approx(0.1 / 1.01)

    def test_legacy_decay_per_epoch_holds_first_step_value(self):
        lrs = curve("keras_legacy_decay", {"initial_lr": 0.1, "decay": 0.01}, "epoch", 3, 250)
        assert (lrs[:250] == 0.1).all()
        np.testing.assert_allclose(lrs[250:500], 0.1 / 3.5)

    @pytest.mark.parametrize("name", ["exponential", "time_based", "polynomial", "cosine"])
    def test_epoch_granularity_holds_the_integer_epoch_value(self, name):
        per_epoch = curve(name, None, "epoch", 5, 4)
        per_batch = curve(name, None, "batch", 5, 4)
        held = per_epoch.reshape(5, 4)
        assert (held == held[:, :1]).all()
        if name != "cosine":  # cosine's horizon (last point) differs between granularities
            np.testing.assert_allclose(held[:, 0], per_batch[::4])

    def test_exponential_is_continuous_in_t_per_batch(self):
        lrs = curve("exponential", {"initial_lr": 1.0, "k": 0.5}, "batch", 2, 4)
        np.testing.assert_allclose(lrs, np.exp(-0.5 * np.arange(8) / 4))

    def test_time_based_compound_is_the_articles_recursion(self):
        lrs = curve("time_based", {"initial_lr": 0.5, "decay": 0.1, "compound": True}, "epoch", 5, 3)
        expected, lr = [], 0.5
        for epoch in range(5):  # the article's callback: lr = lr / (1 + decay * epoch)
            lr = lr / (1 + 0.1 * epoch)
            expected.append(lr)
        np.testing.assert_allclose(lrs[::3], expected)

    def test_time_based_compound_per_batch_meets_recursion_at_epochs(self):
        params = {"initial_lr": 0.5, "decay": 0.1, "compound": True}
        batch, epoch = curve("time_based", params, "batch", 5, 3), curve("time_based", params, "epoch", 5, 3)
        np.testing.assert_allclose(batch[::3], epoch[::3])
        assert (np.diff(batch) < 0).all()

    def test_float_durations_become_whole_steps(self):
        lrs = curve("step", {"initial_lr": 1.0, "drop_rate": 0.5, "epochs_drop": 1.5}, "batch", 4, 4)
        # 1.5 epochs x 4 steps = 6 steps per drop
        np.testing.assert_allclose(lrs, 0.5 ** (np.arange(16) // 6))


# --- references: PyTorch formulas ----------------------------------------------------

def torch_step(base, gamma, step_size, s):
    return base * gamma ** (s // step_size)


def torch_polynomial(base, power, total_iters, s):
    return base * (1 - min(total_iters, s) / total_iters) ** power


def torch_multistep(base, gamma, milestones, s):
    return base * gamma ** bisect.bisect_right(milestones, s)


def torch_cosine(base, eta_min, t_max, s):
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * s / t_max)) / 2


def torch_warm_restarts(base, eta_min, t_0, t_mult, n):
    """CosineAnnealingWarmRestarts, stepped once per step (its recursive form)."""
    out, t_cur, t_i = [], 0, t_0
    for _ in range(n):
        out.append(eta_min + (base - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)
        t_cur += 1
        if t_cur >= t_i:
            t_cur, t_i = t_cur - t_i, t_i * t_mult
    return out


def torch_cyclic(base, top, step_size, mode, gamma, s):
    total, ratio = 2.0 * step_size, 0.5
    cycle = math.floor(1 + s / total)
    x = 1.0 + s / total - cycle
    scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
    height = (top - base) * scale
    if mode == "triangular":
        return base + height * 1.0
    if mode == "triangular2":
        return base + height * (1 / (2.0 ** (cycle - 1)))
    return base + height * gamma ** s  # exp_range scales by iterations


def torch_one_cycle(max_lr, total_steps, pct_start, div_factor, final_div_factor, anneal, s):
    initial = max_lr / div_factor
    phases = [(float(pct_start * total_steps) - 1, initial, max_lr),
              (total_steps - 1, max_lr, initial / final_div_factor)]
    start_step = 0
    for i, (end_step, a, b) in enumerate(phases):
        if s <= end_step or i == len(phases) - 1:
            pct = (s - start_step) / (end_step - start_step)
            if anneal == "cos":
                return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
            return (b - a) * pct + a
        start_step = end_step


class TestPyTorchReferences:
    E, SPE = 12, 10
    N = E * SPE

    def check(self, lrs, reference):
        assert len(lrs) == self.N
        np.testing.assert_allclose(lrs, reference, rtol=1e-12, atol=1e-15)

    def test_step_lr(self):
        lrs = curve("step", {"initial_lr": 0.5, "drop_rate": 0.8, "epochs_drop": 3}, "batch", self.E, self.SPE)
        self.check(lrs, [torch_step(0.5, 0.8, 30, s) for s in range(self.N)])
        assert lrs[29] == 0.5 and lrs[30] == pytest.approx(0.4)  # boundary pinned

    def test_exponential_lr_per_epoch(self):
        lrs = curve("exponential", {"initial_lr": 0.5, "k": 0.1}, "epoch", self.E, self.SPE)
        gamma = math.exp(-0.1)  # ExponentialLR(gamma), stepped each epoch
        self.check(lrs, [0.5 * gamma ** (s // self.SPE) for s in range(self.N)])

    @pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
    def test_polynomial_lr(self, power):
        lrs = curve("polynomial", {"initial_lr": 0.5, "power": power, "end_lr": 0.0}, "batch", self.E, self.SPE)
        self.check(lrs, [torch_polynomial(0.5, power, self.N, s) for s in range(self.N)])

    def test_polynomial_lr_per_epoch(self):
        lrs = curve("polynomial", {"initial_lr": 0.5}, "epoch", self.E, self.SPE)
        self.check(lrs, [torch_polynomial(0.5, 1.0, self.E, s // self.SPE) for s in range(self.N)])

    def test_multistep_lr(self):
        lrs = curve("multistep", {"initial_lr": 0.1, "milestones": [2, 5.5, 9], "gamma": 0.5},
                    "batch", self.E, self.SPE)
        self.check(lrs, [torch_multistep(0.1, 0.5, [20, 55, 90], s) for s in range(self.N)])
        assert (lrs[19], lrs[20], lrs[54], lrs[55]) == pytest.approx((0.1, 0.05, 0.05, 0.025))

    def test_cosine_annealing_lr_reaches_min_at_last_step(self):
        lrs = curve("cosine", {"initial_lr": 0.1, "min_lr": 0.001}, "batch", self.E, self.SPE)
        self.check(lrs, [torch_cosine(0.1, 0.001, self.N - 1, s) for s in range(self.N)])
        assert lrs[0] == 0.1 and lrs[-1] == pytest.approx(0.001)

    def test_cosine_per_epoch_reaches_min_in_last_epoch(self):
        lrs = curve("cosine", {"initial_lr": 0.1, "min_lr": 0.001}, "epoch", self.E, self.SPE)
        self.check(lrs, [torch_cosine(0.1, 0.001, self.E - 1, s // self.SPE) for s in range(self.N)])
        np.testing.assert_allclose(lrs[-self.SPE:], 0.001)

    @pytest.mark.parametrize("t_mul", [1, 2, 3])
    def test_cosine_annealing_warm_restarts(self, t_mul):
        lrs = curve("cosine_restarts", {"initial_lr": 0.1, "first_cycle_epochs": 1.3, "t_mul": t_mul,
                                        "min_lr": 0.002}, "batch", self.E, self.SPE)
        self.check(lrs, torch_warm_restarts(0.1, 0.002, 13, t_mul, self.N))
        assert lrs[13] == pytest.approx(0.1)  # the first restart, pinned

    @pytest.mark.parametrize("mode,gamma", [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.99)])
    def test_cyclic_lr(self, mode, gamma):
        params = {"base_lr": 0.01, "max_lr": 0.1, "step_size_epochs": 1.5, "mode": mode, "gamma": gamma}
        lrs = curve("cyclic", params, "batch", self.E, self.SPE)
        self.check(lrs, [torch_cyclic(0.01, 0.1, 15, mode, gamma, s) for s in range(self.N)])
        assert lrs[0] == 0.01 and lrs[15] == pytest.approx(0.1 * (gamma ** 15 if mode == "exp_range" else 1)
                                                            + (0.01 * (1 - gamma ** 15) if mode == "exp_range" else 0))

    @pytest.mark.parametrize("anneal", ["cos", "linear"])
    @pytest.mark.parametrize("granularity", GRANULARITIES)
    def test_one_cycle_lr(self, anneal, granularity):
        params = {"max_lr": 0.2, "pct_start": 0.25, "div_factor": 10, "final_div_factor": 100, "anneal": anneal}
        lrs = curve("one_cycle", params, granularity, self.E, self.SPE)
        if granularity == "batch":
            ref = [torch_one_cycle(0.2, self.N, 0.25, 10, 100, anneal, s) for s in range(self.N)]
        else:  # OneCycleLR stepped once per epoch
            ref = [torch_one_cycle(0.2, self.E, 0.25, 10, 100, anneal, s // self.SPE) for s in range(self.N)]
        self.check(lrs, ref)
        assert lrs[0] == pytest.approx(0.02) and lrs[-1] == pytest.approx(0.0002)
        assert lrs.max() == pytest.approx(0.2)


# --- references: Keras's own classes --------------------------------------------------

@pytest.fixture(scope="module")
def kschedules():
    keras = pytest.importorskip("keras")
    return keras.optimizers.schedules


def keras_values(schedule, n):
    return np.array([float(schedule(s)) for s in range(n)])


class TestKerasReferences:
    E, SPE = 6, 9
    N = E * SPE

    def check(self, lrs, reference):
        np.testing.assert_allclose(lrs, reference, rtol=2e-6, atol=1e-9)  # Keras runs in float32

    def test_exponential_decay(self, kschedules):
        lrs = curve("exponential", {"initial_lr": 0.5, "k": 0.3}, "batch", self.E, self.SPE)
        ref = kschedules.ExponentialDecay(0.5, decay_steps=self.SPE, decay_rate=math.exp(-0.3))
        self.check(lrs, keras_values(ref, self.N))

    def test_staircase_is_step(self, kschedules):
        lrs = curve("step", {"initial_lr": 0.5, "drop_rate": 0.7, "epochs_drop": 2}, "batch", self.E, self.SPE)
        ref = kschedules.ExponentialDecay(0.5, decay_steps=18, decay_rate=0.7, staircase=True)
        self.check(lrs, keras_values(ref, self.N))

    def test_inverse_time_decay_is_keras_legacy_decay(self, kschedules):
        lrs = curve("keras_legacy_decay", {"initial_lr": 0.1, "decay": 0.05}, "batch", self.E, self.SPE)
        ref = kschedules.InverseTimeDecay(0.1, decay_steps=1, decay_rate=0.05)
        self.check(lrs, keras_values(ref, self.N))

    def test_polynomial_decay(self, kschedules):
        lrs = curve("polynomial", {"initial_lr": 0.5, "power": 2.0, "end_lr": 0.01}, "batch", self.E, self.SPE)
        ref = kschedules.PolynomialDecay(0.5, decay_steps=self.N, end_learning_rate=0.01, power=2.0)
        self.check(lrs, keras_values(ref, self.N))

    def test_piecewise_constant_is_multistep(self, kschedules):
        lrs = curve("multistep", {"initial_lr": 0.1, "milestones": [1, 3], "gamma": 0.1}, "batch", self.E, self.SPE)
        # Keras keeps values[i] while step <= boundaries[i]: milestone step - 1.
        ref = kschedules.PiecewiseConstantDecay([8, 26], [0.1, 0.01, 0.001])
        self.check(lrs, keras_values(ref, self.N))

    def test_cosine_decay_with_warmup(self, kschedules):
        lrs = curve("cosine", {"initial_lr": 0.1, "min_lr": 0.005, "warmup_epochs": 1.5}, "batch", self.E, self.SPE)
        warm = 14  # round(1.5 * 9) = 13.5 -> 14
        ref = kschedules.CosineDecay(0.0, decay_steps=self.N - 1 - warm, alpha=0.05,
                                     warmup_target=0.1, warmup_steps=warm)
        self.check(lrs, keras_values(ref, self.N))
        assert lrs[0] == 0.0 and lrs[warm] == pytest.approx(0.1)

    @pytest.mark.parametrize("t_mul,m_mul", [(1.0, 1.0), (2.0, 0.5), (1.5, 0.8)])
    def test_cosine_decay_restarts(self, kschedules, t_mul, m_mul):
        params = {"initial_lr": 0.1, "first_cycle_epochs": 1, "t_mul": t_mul, "m_mul": m_mul, "min_lr": 0.01}
        lrs = curve("cosine_restarts", params, "batch", self.E, self.SPE)
        ref = kschedules.CosineDecayRestarts(0.1, first_decay_steps=self.SPE, t_mul=t_mul,
                                             m_mul=m_mul, alpha=0.1)
        self.check(lrs, keras_values(ref, self.N))


# --- other schedules' own definitions --------------------------------------------------

class TestOwnDefinitions:
    def test_warmup_stable_decay_shape(self):
        lrs = curve("warmup_stable_decay", {"peak_lr": 0.1, "warmup_epochs": 2, "decay_epochs": 3,
                                            "min_lr": 0.01}, "batch", 10, 4)
        np.testing.assert_allclose(lrs[:8], 0.1 * np.arange(8) / 8)
        assert (lrs[8:28] == 0.1).all()
        # decay over the last 3 epochs (12 steps), reaching min_lr at the last step
        np.testing.assert_allclose(lrs[28:], 0.1 + (0.01 - 0.1) * np.arange(12) / 11)

    def test_inverse_sqrt(self):
        lrs = curve("inverse_sqrt", {"initial_lr": 0.2, "warmup_epochs": 1}, "batch", 5, 4)
        s = np.arange(20)
        np.testing.assert_allclose(lrs[:4], 0.2 * s[:4] / 4)
        np.testing.assert_allclose(lrs[4:], 0.2 * np.sqrt(4 / s[4:]))

    def test_reduce_on_plateau_previews_flat(self):
        lrs = curve("reduce_on_plateau", {"initial_lr": 0.3}, "epoch", 4, 5)
        assert (lrs == 0.3).all()

    def test_custom_sees_every_time_name(self):
        lrs = curve("custom", {"expression": "0.1 + step + 10*t + 100*epoch + 1000*epochs + "
                                             "10000*steps_per_epoch"}, "batch", 2, 4)
        s = np.arange(8)
        np.testing.assert_allclose(lrs, 0.1 + s + 10 * s / 4 + 100 * (s // 4) + 2000 + 40000)

    def test_custom_per_epoch_uses_integer_epoch(self):
        lrs = curve("custom", {"expression": "1 / (1 + t)"}, "epoch", 3, 4)
        np.testing.assert_allclose(lrs, np.repeat([1, 1 / 2, 1 / 3], 4))


# --- refused input --------------------------------------------------------------------

class TestRefused:
    @pytest.mark.parametrize("name,params,field,fragment", [
        ("constant", {"lr": -0.1}, "lr", "lr=-0.1"),
        ("constant", {"lr": 0}, "lr", "lr=0"),
        ("constant", {"lr": float("nan")}, "lr", "finite"),
        ("constant", {"lr": "fast"}, "lr", "must be a number"),
        ("step", {"drop_rate": 1.5}, "drop_rate", "in (0, 1]"),
        ("step", {"drop_rate": 0}, "drop_rate", "drop_rate=0"),
        ("step", {"epochs_drop": 0}, "epochs_drop", "epochs_drop=0"),
        ("multistep", {"milestones": [60, 30]}, "milestones", "increasing"),
        ("multistep", {"milestones": "30, abc"}, "milestones", "list of numbers"),
        ("cyclic", {"base_lr": 0.1, "max_lr": 0.01}, "max_lr", "max_lr=0.01"),
        ("cosine", {"initial_lr": 0.1, "min_lr": 0.5}, "min_lr", "min_lr=0.5"),
        ("cyclic", {"mode": "sawtooth"}, "mode", "triangular"),
        ("time_based", {"compound": "maybe"}, "compound", "true or false"),
        ("reduce_on_plateau", {"monitor": "val_acc"}, "monitor", "val_accuracy"),
        ("one_cycle", {"pct_start": 1.0}, "pct_start", "pct_start=1"),
    ])
    def test_bad_params(self, name, params, field, fragment):
        with pytest.raises(ParamError) as err:
            build(name, params)
        assert err.value.field == field
        assert "Argument `" in str(err.value) and fragment in str(err.value)

    def test_unknown_parameter(self):
        with pytest.raises(ParamError, match="no parameter `learning_rate`. Its parameters: lr"):
            build("constant", {"learning_rate": 0.1})

    def test_unknown_schedule_and_granularity(self):
        with pytest.raises(ParamError, match="schedule='nope'"):
            build("nope")
        with pytest.raises(ParamError) as err:
            build("constant", None, "minute")
        assert err.value.field == "granularity"

    @pytest.mark.parametrize("epochs,spe,field", [
        (10**9, 313, "epochs"), (0, 10, "epochs"), (10, 0, "steps_per_epoch"),
        ("ten", 10, "epochs"), (MAX_TOTAL_STEPS + 1, 1, "epochs"),
    ])
    def test_horizon(self, epochs, spe, field):
        with pytest.raises(ParamError) as err:
            lr_curve(build("constant"), epochs, spe)
        assert err.value.field == field

    def test_max_total_steps_is_allowed(self):
        assert len(lr_curve(build("constant"), MAX_TOTAL_STEPS, 1)) == MAX_TOTAL_STEPS

    @pytest.mark.parametrize("expression", ["0.1 - t", "log(t)", "1 / t", "exp(1000 * t)",
                                             "0 * t", "sqrt(t - 3)"])
    def test_custom_bad_values_refused_by_lr_curve(self, expression):
        schedule = build("custom", {"expression": expression})
        with pytest.raises(ParamError) as err:
            lr_curve(schedule, 5, 4)
        assert err.value.field == "expression" and "at step" in str(err.value)


# --- Keras snippets -------------------------------------------------------------------

SNIPPET_CASES = {
    "step": {"epochs_drop": 1.5},
    "multistep": {"milestones": [1, 2.5]},
    "cosine": {"warmup_epochs": 1, "min_lr": 0.01},
    "cosine_restarts": {"first_cycle_epochs": 0.75, "t_mul": 2.0, "m_mul": 0.5, "min_lr": 0.001},
    "cyclic": {"step_size_epochs": 0.5, "mode": "triangular2"},
    "warmup_stable_decay": {"warmup_epochs": 1, "decay_epochs": 2, "min_lr": 0.001},
    "inverse_sqrt": {"warmup_epochs": 0.5},
    "time_based": {"compound": True, "decay": 0.3},
    "custom": {"expression": "0.1 * exp(-0.2 * t) + 0.01 * abs(sin(pi * step / 5)) + max(0, min(1e-3, e))"},
}


@pytest.mark.parametrize("name", DESIGN_ORDER)
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_keras_snippet_runs_and_matches(name, granularity):
    keras = pytest.importorskip("keras")
    epochs, spe = 5, 6
    schedule = build(name, SNIPPET_CASES.get(name), granularity)
    expected = lr_curve(schedule, epochs, spe)
    code = keras_snippet(schedule, epochs, spe)
    compile(code, "<snippet>", "exec")
    namespace: dict = {}
    exec(code, namespace)  # test only: the snippet is meant to be pasted and run
    optimizer = namespace["optimizer"]
    assert isinstance(optimizer, keras.optimizers.Optimizer)
    if name == "reduce_on_plateau":
        assert isinstance(namespace["callback"], keras.callbacks.ReduceLROnPlateau)
        assert float(optimizer.learning_rate) == pytest.approx(expected[0])
        return
    steps = sorted({0, 1, spe - 1, spe, 2 * spe + 1, len(expected) // 2, len(expected) - 1})
    if granularity == "epoch":
        by_epoch = namespace["callback"].schedule
        got = [by_epoch(s // spe, None) for s in steps]
    else:
        lr = namespace["learning_rate"]
        got = [float(lr(s)) if callable(lr) else float(lr) for s in steps]
    np.testing.assert_allclose(got, expected[steps], rtol=2e-6, atol=1e-9)
