"""The schedule catalogue: every schedule as a pure, vectorised numpy function of time.

Time conventions (DESIGN.md): ``step`` is the global optimizer step from 0,
``t = step / steps_per_epoch`` and ``epoch = step // steps_per_epoch``. Durations given in
epochs (floats allowed) become whole steps (``round(epochs * steps_per_epoch)``, at least 1).

Each definition below takes an array of *evaluation steps* and a ``_Horizon``:

- granularity ``batch`` evaluates every optimizer step ``0 .. n-1``;
- granularity ``epoch`` evaluates each epoch's first step ``e * steps_per_epoch`` and holds
  that value for the whole epoch. For schedules defined in epochs this is the definition at
  the integer epoch; for step-defined ones (``keras_legacy_decay``) it is the value of the
  epoch's first step.

Schedules that run "to the end" (cosine, one_cycle, warmup_stable_decay) reach their final
value at the *last evaluated point*: the last step (batch) or the last epoch (epoch). This
is PyTorch's ``CosineAnnealingLR(T_max=n-1)`` / ``OneCycleLR(total_steps=n)`` convention.
Polynomial follows Keras's ``PolynomialDecay(decay_steps=n)``: ``end_lr`` is reached at
step ``n``, one step after training ends, so the last step still learns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from lrviz.config import MAX_TOTAL_STEPS
from lrviz.params import Param, ParamError, coerce_all, shown
from lrviz.schedules.custom import compile_expression

GRANULARITIES = ("epoch", "batch")

_LR = dict(low=0.0, high=10.0, low_open=True)
_MIN_LR = dict(low=0.0, high=10.0)
_EPOCHS = dict(low=0.0, high=10_000.0, low_open=True)
_EPOCHS0 = dict(low=0.0, high=10_000.0)


def _lr(name: str, default: float, help: str = "learning rate") -> Param:
    return Param(name, "float", default, help, **_LR)


@dataclass(frozen=True)
class _Horizon:
    """Where a curve is evaluated: total steps ``n``, steps between evaluation points
    ``unit`` (1 per batch, ``spe`` per epoch) and the last evaluated step ``last``."""

    epochs: int
    spe: int
    granularity: str

    @property
    def n(self) -> int:
        return self.epochs * self.spe

    @property
    def unit(self) -> int:
        return self.spe if self.granularity == "epoch" else 1

    @property
    def last(self) -> int:
        return self.n - self.unit

    def steps(self, epochs: float) -> int:
        """A duration in epochs as whole optimizer steps (at least 1)."""
        return max(1, int(math.floor(epochs * self.spe + 0.5)))

    def steps0(self, epochs: float) -> int:
        """Like ``steps`` but 0 epochs stays 0 (optional warmups)."""
        return 0 if epochs == 0 else self.steps(epochs)


Definition = Callable[[np.ndarray, dict, _Horizon], np.ndarray]


@dataclass(frozen=True)
class ScheduleSpec:
    """A catalogue entry: its public name, parameters, formula and defaults."""

    name: str
    title: str
    params: tuple[Param, ...]
    formula: str  # LaTeX
    default_granularity: str
    adaptive: bool
    description: str
    definition: Definition
    check: Callable[[dict], None] | None = None  # cross-parameter rules

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)


@dataclass(frozen=True, eq=True)
class Schedule:
    """A validated schedule: complete parameters and the granularity it runs at."""

    name: str
    params: dict
    granularity: str
    spec: ScheduleSpec


# --- definitions: (steps, params, horizon) -> lr, all numpy, no loop per step ---------

def _constant(s, p, h):
    return np.full(s.shape, p["lr"])


def _legacy(s, p, h):
    return p["initial_lr"] / (1.0 + p["decay"] * s)


def _time_based(s, p, h):
    t = s / h.spe
    if not p["compound"]:
        return p["initial_lr"] / (1.0 + p["decay"] * t)
    # The article's recursion lr_e = lr_(e-1) / (1 + decay * e) is a cumulative product;
    # between epochs (batch granularity) the next epoch's factor is applied geometrically,
    # so integer epochs give exactly the recursion's values.
    e = np.floor(t).astype(np.int64)
    factors = 1.0 + p["decay"] * np.arange(1, int(e.max(initial=0)) + 2)
    at_epoch = p["initial_lr"] / np.concatenate(([1.0], np.cumprod(factors)))
    return at_epoch[e] * factors[e] ** -(t - e)


def _step(s, p, h):
    return p["initial_lr"] * p["drop_rate"] ** np.floor(s / h.steps(p["epochs_drop"]))


def _exponential(s, p, h):
    return p["initial_lr"] * np.exp(-p["k"] * (s / h.spe))


def _polynomial(s, p, h):
    frac = np.minimum(s, h.n) / h.n
    return (p["initial_lr"] - p["end_lr"]) * (1.0 - frac) ** p["power"] + p["end_lr"]


def _multistep(s, p, h):
    # Milestone m: the LR drops from step round(m * spe) on (PyTorch MultiStepLR).
    marks = np.array([h.steps0(m) for m in p["milestones"]], dtype=np.float64)
    return p["initial_lr"] * p["gamma"] ** np.searchsorted(marks, s, side="right")


def _cosine_part(frac, top, bottom):
    return bottom + (top - bottom) * 0.5 * (1.0 + np.cos(np.pi * frac))


def _cosine(s, p, h):
    warm = h.steps0(p["warmup_epochs"])
    frac = np.clip((s - warm) / max(h.last - warm, 1), 0.0, 1.0)
    lr = _cosine_part(frac, p["initial_lr"], p["min_lr"])
    if warm:
        lr = np.where(s < warm, p["initial_lr"] * s / warm, lr)
    return lr


def _cosine_restarts(s, p, h):
    first = h.steps(p["first_cycle_epochs"])
    t_mul, frac = p["t_mul"], s / first
    if t_mul == 1.0:  # equal cycles: no table needed (it could be millions of cycles long)
        i = np.floor(frac)
        top = p["min_lr"] + (p["initial_lr"] - p["min_lr"]) * p["m_mul"] ** i
        return _cosine_part(frac - i, top, p["min_lr"])
    # Cycle k starts at (t_mul**k - 1) / (t_mul - 1) first-cycle lengths.
    # The few starts inside the horizon are tabulated and looked up, so restarts land on
    # exactly the step they belong to (no log/floor rounding) and the pass stays cheap.
    k = np.arange(_cycles_needed(h.n / first, t_mul) + 1, dtype=np.float64)
    starts = (t_mul ** k - 1.0) / (t_mul - 1.0)
    i = np.searchsorted(starts, frac, side="right") - 1
    pos = (frac - starts[i]) / (t_mul ** k)[i]
    top = (p["min_lr"] + (p["initial_lr"] - p["min_lr"]) * p["m_mul"] ** k)[i]
    return _cosine_part(pos, top, p["min_lr"])


def _cycles_needed(span: float, t_mul: float) -> int:
    """How many cycles (t_mul > 1) start within ``span`` first-cycle lengths."""
    return int(math.ceil(math.log1p(span * (t_mul - 1.0)) / math.log(t_mul))) + 1


def _cyclic(s, p, h):
    half = h.steps(p["step_size_epochs"])
    cycle = np.floor(1.0 + s / (2 * half))
    x = np.abs(s / half - 2.0 * cycle + 1.0)
    height = (p["max_lr"] - p["base_lr"]) * np.maximum(0.0, 1.0 - x)
    if p["mode"] == "triangular2":
        height = height / 2.0 ** (cycle - 1.0)
    elif p["mode"] == "exp_range":
        height = height * p["gamma"] ** s  # per optimizer step, as Smith and PyTorch
    return p["base_lr"] + height


def _anneal(start, end, pct, how):
    if how == "cos":
        return end + (start - end) / 2.0 * (1.0 + np.cos(np.pi * pct))
    return (end - start) * pct + start


def _one_cycle(s, p, h):
    # PyTorch OneCycleLR (two phases) in evaluation units: the rise ends at
    # pct_start * total - 1 units, the fall at the last unit.
    initial = p["max_lr"] / p["div_factor"]
    low = initial / p["final_div_factor"]
    up_end = p["pct_start"] * h.n - h.unit
    # Degenerate phases (a run of one or two units) go straight to the phase's end.
    rise = int(np.searchsorted(s, up_end, side="right"))  # s is sorted: the rise is a prefix
    up, down = s[:rise], s[rise:]
    pct_up = up / up_end if up_end > 0 else np.ones_like(up)
    pct_down = (down - up_end) / (h.last - up_end) if h.last > up_end else np.ones_like(down)
    return np.concatenate((_anneal(initial, p["max_lr"], pct_up, p["anneal"]),
                           _anneal(p["max_lr"], low, pct_down, p["anneal"])))


def _wsd(s, p, h):
    warm = h.steps0(p["warmup_epochs"])
    up = p["peak_lr"] * np.minimum(1.0, s / warm) if warm else np.full(s.shape, p["peak_lr"])
    decay = h.steps0(p["decay_epochs"])
    if not decay:
        return up
    start = h.n - decay
    frac = np.clip((s - start) / max(h.last - start, 1), 0.0, 1.0)
    down = p["peak_lr"] + (p["min_lr"] - p["peak_lr"]) * frac
    return np.minimum(up, down)


def _inverse_sqrt(s, p, h):
    warm = h.steps(p["warmup_epochs"])
    with np.errstate(divide="ignore"):
        decay = p["initial_lr"] * np.sqrt(warm / np.maximum(s, warm))
    return np.where(s < warm, p["initial_lr"] * s / warm, decay)


def _plateau(s, p, h):
    return np.full(s.shape, p["initial_lr"])  # adaptive: the preview is the start value


def _custom(s, p, h):
    env = {"t": s / h.spe, "epoch": np.floor(s / h.spe), "step": s,
           "epochs": np.float64(h.epochs), "steps_per_epoch": np.float64(h.spe)}
    return compile_expression(p["expression"]).evaluate(env)


# --- cross-parameter rules --------------------------------------------------------------

def _not_above(low: str, high: str) -> Callable[[dict], None]:
    def check(p: dict) -> None:
        if p[low] > p[high]:
            raise ParamError(low, f"Argument `{low}` must be <= {high} ({p[high]:g}). "
                                  f"Received: {low}={p[low]:g}")
    return check


def _max_above_base(p: dict) -> None:
    if p["max_lr"] < p["base_lr"]:
        raise ParamError("max_lr", f"Argument `max_lr` must be >= base_lr ({p['base_lr']:g}). "
                                   f"Received: max_lr={p['max_lr']:g}")


def _check_custom(p: dict) -> None:
    compile_expression(p["expression"])


# --- the catalogue, in DESIGN.md's order -----------------------------------------------

_SPECS = (
    ScheduleSpec(
        "constant", "Constant", (_lr("lr", 0.01),),
        r"\eta(t) = \eta", "epoch", False,
        "The same learning rate for the whole run.", _constant),
    ScheduleSpec(
        "keras_legacy_decay", "Keras 2 decay= (per batch)",
        (_lr("initial_lr", 0.1, "learning rate at step 0"),
         Param("decay", "float", 0.01, "decay per optimizer step", low=0.0, high=10.0)),
        r"\eta(s) = \frac{\eta_0}{1 + \mathrm{decay} \cdot s}", "batch", False,
        "What Keras 2's optimizer `decay=` argument did: divide by 1 + decay * step, every "
        "batch. Keras 3 ignores that argument; at 250 batches per epoch 0.1 falls to 0.0286 "
        "after the first epoch, not 0.099.", _legacy),
    ScheduleSpec(
        "time_based", "Time-based decay",
        (_lr("initial_lr", 0.5, "learning rate at epoch 0"),
         Param("decay", "float", 0.005, "decay per epoch", low=0.0, high=10.0),
         Param("compound", "bool", False, "the article's compounding recursion")),
        r"\eta(t) = \frac{\eta_0}{1 + \mathrm{decay} \cdot t}"
        r"\quad\text{or (compound)}\quad \eta_e = \frac{\eta_{e-1}}{1 + \mathrm{decay} \cdot e}",
        "epoch", False,
        "Divides by 1 + decay * epoch. With compound=true it is the article's callback, which "
        "divides the previous epoch's LR again each epoch.", _time_based),
    ScheduleSpec(
        "step", "Step decay",
        (_lr("initial_lr", 0.5),
         Param("drop_rate", "float", 0.8, "factor at each drop", low=0.0, high=1.0, low_open=True),
         Param("epochs_drop", "float", 10.0, "epochs between drops", **_EPOCHS)),
        r"\eta(t) = \eta_0 \cdot \mathrm{drop\_rate}^{\lfloor t / \mathrm{epochs\_drop} \rfloor}",
        "epoch", False, "Multiplies by drop_rate every epochs_drop epochs.", _step),
    ScheduleSpec(
        "exponential", "Exponential decay",
        (_lr("initial_lr", 0.5), Param("k", "float", 0.1, "decay rate per epoch", low=0.0, high=100.0)),
        r"\eta(t) = \eta_0 \, e^{-k t}", "epoch", False,
        "Shrinks by the factor exp(-k) every epoch.", _exponential),
    ScheduleSpec(
        "polynomial", "Polynomial (linear) decay",
        (_lr("initial_lr", 0.5),
         Param("power", "float", 1.0, "exponent; 1 is linear", low=0.0, high=100.0, low_open=True),
         Param("end_lr", "float", 0.0, "learning rate reached at the end", **_MIN_LR)),
        r"\eta(t) = (\eta_0 - \eta_{end}) \left(1 - \frac{t}{E}\right)^{p} + \eta_{end}",
        "epoch", False,
        "Falls from initial_lr towards end_lr, reached when training ends (Keras "
        "PolynomialDecay with decay_steps = all steps).", _polynomial),
    ScheduleSpec(
        "multistep", "Multi-step decay",
        (_lr("initial_lr", 0.1),
         Param("milestones", "float_list", (30.0, 60.0, 90.0), "epochs at which the LR drops",
               low=0.0, high=10_000.0, sorted_strict=True),
         Param("gamma", "float", 0.1, "factor at each milestone", low=0.0, high=1.0, low_open=True)),
        r"\eta(t) = \eta_0 \cdot \gamma^{\,|\{m \in \mathrm{milestones} : m \le t\}|}",
        "epoch", False, "Multiplied by gamma at each milestone epoch.", _multistep),
    ScheduleSpec(
        "cosine", "Cosine annealing (warmup)",
        (_lr("initial_lr", 0.1, "peak learning rate"),
         Param("min_lr", "float", 0.0, "learning rate at the last step", **_MIN_LR),
         Param("warmup_epochs", "float", 0.0, "linear warmup from 0", **_EPOCHS0)),
        r"\eta(s) = \begin{cases} \eta_0 \frac{s}{W} & s < W \\ \eta_{min} + "
        r"\frac{\eta_0 - \eta_{min}}{2}\left(1 + \cos\frac{\pi (s - W)}{S_{last} - W}\right) "
        r"& s \ge W \end{cases}",
        "batch", False,
        "Linear warmup from 0 to initial_lr, then half a cosine down to min_lr, reached at "
        "the last step (the last epoch at epoch granularity).", _cosine, _not_above("min_lr", "initial_lr")),
    ScheduleSpec(
        "cosine_restarts", "Cosine with warm restarts (SGDR)",
        (_lr("initial_lr", 0.1),
         Param("first_cycle_epochs", "float", 10.0, "length of the first cycle", **_EPOCHS),
         Param("t_mul", "float", 2.0, "each cycle is t_mul times longer", low=1.0, high=10.0),
         Param("m_mul", "float", 1.0, "each cycle's peak is m_mul times lower", low=0.0, high=1.0,
               low_open=True),
         Param("min_lr", "float", 0.0, "floor of every cycle", **_MIN_LR)),
        r"\eta = \eta_{min} + \frac{m_{mul}^{\,i} (\eta_0 - \eta_{min})}{2}"
        r"\left(1 + \cos \frac{\pi\, T_{cur}}{T_i}\right),\ T_i = T_0 \, t_{mul}^{\,i}",
        "batch", False,
        "SGDR: cosine cycles restarting at initial_lr, each t_mul times longer and m_mul times "
        "lower (Keras CosineDecayRestarts).", _cosine_restarts, _not_above("min_lr", "initial_lr")),
    ScheduleSpec(
        "cyclic", "Cyclical learning rate",
        (_lr("base_lr", 0.001, "lowest learning rate"), _lr("max_lr", 0.1, "highest learning rate"),
         Param("step_size_epochs", "float", 2.0, "half a cycle, in epochs", **_EPOCHS),
         Param("mode", "choice", "triangular", "cycle shape",
               choices=("triangular", "triangular2", "exp_range")),
         Param("gamma", "float", 1.0, "exp_range: amplitude factor per optimizer step",
               low=0.0, high=1.0, low_open=True)),
        r"\eta(s) = \eta_{base} + (\eta_{max} - \eta_{base}) \max(0, 1 - x)\, \phi(s),\ "
        r"x = \left|\frac{s}{S} - 2c + 1\right|,\ c = \left\lfloor 1 + \frac{s}{2S} \right\rfloor",
        "batch", False,
        "Smith's cyclical LR between base_lr and max_lr; triangular2 halves the amplitude each "
        "cycle, exp_range multiplies it by gamma every step.", _cyclic, _max_above_base),
    ScheduleSpec(
        "one_cycle", "One-cycle policy",
        (_lr("max_lr", 0.1, "peak learning rate"),
         Param("pct_start", "float", 0.3, "share of the run spent rising", low=0.0, high=1.0,
               low_open=True, high_open=True),
         Param("div_factor", "float", 25.0, "start = max_lr / div_factor", low=1.0, high=1e6),
         Param("final_div_factor", "float", 1e4, "end = start / final_div_factor", low=1.0, high=1e9),
         Param("anneal", "choice", "cos", "shape of both phases", choices=("cos", "linear"))),
        r"\eta: \frac{\eta_{max}}{d} \nearrow \eta_{max} \text{ over } p_{start} N,\ "
        r"\text{then } \searrow \frac{\eta_{max}}{d \cdot d_{final}} \text{ at the last step}",
        "batch", False,
        "Rises from max_lr/div_factor to max_lr, then falls to a far lower LR at the last "
        "step (PyTorch OneCycleLR, two phases).", _one_cycle),
    ScheduleSpec(
        "warmup_stable_decay", "Warmup-stable-decay",
        (_lr("peak_lr", 0.1),
         Param("warmup_epochs", "float", 5.0, "linear warmup from 0", **_EPOCHS0),
         Param("decay_epochs", "float", 20.0, "linear decay at the end", **_EPOCHS0),
         Param("min_lr", "float", 0.0, "learning rate at the last step", **_MIN_LR)),
        r"\eta(s) = \min\left(\eta_{peak} \min(1, \tfrac{s}{W}),\ \eta_{peak} + "
        r"(\eta_{min} - \eta_{peak}) \,\mathrm{clip}\left(\tfrac{s - (N - D)}{S_{last} - (N - D)}, 0, 1\right)\right)",
        "batch", False,
        "Linear warmup, a flat stretch at peak_lr, then a linear fall to min_lr over the last "
        "decay_epochs.", _wsd, _not_above("min_lr", "peak_lr")),
    ScheduleSpec(
        "inverse_sqrt", "Inverse square root",
        (_lr("initial_lr", 0.1, "peak learning rate"),
         Param("warmup_epochs", "float", 5.0, "linear warmup from 0", **_EPOCHS)),
        r"\eta(s) = \begin{cases} \eta_0 \frac{s}{W} & s < W \\ \eta_0 \sqrt{W / s} & s \ge W "
        r"\end{cases}", "batch", False,
        "Linear warmup to initial_lr, then decay with the inverse square root of the step "
        "(the Transformer schedule).", _inverse_sqrt),
    ScheduleSpec(
        "reduce_on_plateau", "Reduce on plateau",
        (_lr("initial_lr", 0.1),
         Param("factor", "float", 0.1, "factor applied on a plateau", low=0.0, high=1.0,
               low_open=True, high_open=True),
         Param("patience", "int", 10, "epochs without improvement before reducing", low=0, high=10_000),
         Param("min_lr", "float", 0.0, "floor", **_MIN_LR),
         Param("monitor", "choice", "val_loss", "metric watched",
               choices=("val_loss", "loss", "val_accuracy", "accuracy"))),
        r"\eta \leftarrow \max(\eta \cdot \mathrm{factor}, \eta_{min}) \text{ after "
        r"\textit{patience} epochs without improvement}",
        "epoch", True,
        "Adaptive: reacts to the monitored metric while training, so the preview shows only "
        "its starting value (Keras ReduceLROnPlateau).", _plateau, _not_above("min_lr", "initial_lr")),
    ScheduleSpec(
        "custom", "Custom formula",
        (Param("expression", "text", "0.1 * exp(-0.05 * t)",
               "formula in t, epoch, step, epochs, steps_per_epoch, pi, e with + - * / ** and "
               "min max exp log sqrt cos sin floor abs", max_len=500),),
        r"\eta = f(t, \mathrm{epoch}, \mathrm{step}, E, \mathrm{steps\_per\_epoch})", "batch", False,
        "Your own formula, parsed safely (never eval'd). t = step / steps_per_epoch.",
        _custom, _check_custom),
)
_CATALOGUE = {spec.name: spec for spec in _SPECS}


def catalogue() -> dict[str, ScheduleSpec]:
    """Every schedule by name, in DESIGN.md's order."""
    return dict(_CATALOGUE)


def build(name: str, params: Mapping[str, Any] | None = None,
          granularity: str | None = None) -> Schedule:
    """Validate ``params`` (defaults filled in) and return the schedule.

    Raises:
        ParamError: naming the schedule, the granularity or the parameter refused.
    """
    if not isinstance(name, str) or name not in _CATALOGUE:
        raise ParamError("schedule", f"Argument `schedule` must be one of {', '.join(_CATALOGUE)}. "
                                     f"Received: schedule={shown(name)}")
    spec = _CATALOGUE[name]
    gran = spec.default_granularity if granularity is None else granularity
    if gran not in GRANULARITIES:
        raise ParamError("granularity", f"Argument `granularity` must be one of "
                                        f"{', '.join(GRANULARITIES)}. Received: granularity={shown(gran)}")
    values = coerce_all(spec.params, params, f"Schedule `{name}`")
    if spec.check:
        spec.check(values)
    return Schedule(name, values, gran, spec)


# Each alone is capped at the total-steps cap too, so epochs=1e308 is refused by name in a
# short message instead of printing a 300-digit product.
_EPOCHS_PARAM = Param("epochs", "int", 100, "training epochs", low=1, high=MAX_TOTAL_STEPS)
_SPE_PARAM = Param("steps_per_epoch", "int", 1, "optimizer steps per epoch", low=1,
                   high=MAX_TOTAL_STEPS)


def horizon(epochs: Any, steps_per_epoch: Any, granularity: str = "batch") -> _Horizon:
    """Validate a curve's length; refuse more than ``MAX_TOTAL_STEPS`` steps."""
    e = _EPOCHS_PARAM.coerce(epochs)
    spe = _SPE_PARAM.coerce(steps_per_epoch)
    if e * spe > MAX_TOTAL_STEPS:
        raise ParamError("epochs", f"Argument `epochs` makes {e * spe:,} optimizer steps with "
                                   f"steps_per_epoch={spe}, more than {MAX_TOTAL_STEPS:,}. "
                                   f"Received: epochs={epochs}")
    return _Horizon(e, spe, granularity)


def lr_curve(schedule: Schedule, epochs: int, steps_per_epoch: int) -> np.ndarray:
    """The LR each optimizer step applies: float64 array of ``epochs * steps_per_epoch``.

    Raises:
        ParamError: for ``epochs``/``steps_per_epoch`` out of range, or for a custom
            ``expression`` that is negative, zero, NaN or infinite somewhere.
    """
    h = horizon(epochs, steps_per_epoch, schedule.granularity)
    points = np.arange(0, h.n, h.unit, dtype=np.float64)
    values = np.asarray(schedule.spec.definition(points, schedule.params, h), dtype=np.float64)
    if schedule.name == "custom":
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            expr = schedule.params["expression"]
            raise ParamError("expression", f"Argument `expression` must give a positive, finite "
                                           f"learning rate at every step; at step {int(points[i])} "
                                           f"it gives {values[i]}. Received: expression={expr!r}")
    if h.unit > 1:
        values = np.repeat(values, h.unit)
    return values
