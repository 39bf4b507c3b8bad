"""The learning-rate range test's maths: the LR ramp, smoothing, stop rule, suggestions.

Pure numpy, no TensorFlow: ``lrviz.training.range_test`` runs the test with Keras and
uses these functions step by step, the page and the CLI use them to read the result.
The rules follow Leslie Smith's range test as fastai's ``lr_find`` popularised it:
a debiased exponential moving average of the loss, a stop once the smoothed loss
exceeds ``stop_factor`` times its best, and three suggestions (steepest, valley, min/10).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from lrviz.config import RUN_PARAMS, steps_per_epoch
from lrviz.optimizers import optimizer_params as _optimizer_params
from lrviz.params import Param, ParamError, coerce_all

MODES = ("exp", "linear")
DEFAULT_START_LR = 1e-6
DEFAULT_END_LR = 10.0
DEFAULT_BETA = 0.98
DEFAULT_STOP_FACTOR = 4.0

_LR_LIMITS = dict(low=0.0, high=1e6, low_open=True)
_RUN = {p.name: p for p in RUN_PARAMS}

# Settings of a range test other than the model/optimizer/sample ones shared with runs.
FINDER_PARAMS: tuple[Param, ...] = (
    _RUN["hidden"], _RUN["train_size"], _RUN["sample_seed"], _RUN["batch_size"], _RUN["seed"],
    Param("start_lr", "float", DEFAULT_START_LR, "learning rate of the first step", **_LR_LIMITS),
    Param("end_lr", "float", DEFAULT_END_LR, "learning rate of the last step", **_LR_LIMITS),
    Param("steps", "int", 0, "optimizer steps of the ramp (0: one epoch of the sample)",
          low=0, high=100_000),
    Param("mode", "choice", "exp", "how the LR rises from start_lr to end_lr", choices=MODES),
    Param("stop_factor", "float", DEFAULT_STOP_FACTOR,
          "stop once the smoothed loss exceeds this multiple of its best", low=1.0, high=1e6,
          low_open=True),
    Param("beta", "float", DEFAULT_BETA, "smoothing of the loss (EMA weight of the past)",
          low=0.0, high=1.0, high_open=True),
    Param("use_validation", "bool", False,
          "Smith's variant: record the loss on a fixed held-out batch set"),
    Param("val_batches", "int", 4, "held-out batches in the validation variant", low=1, high=200),
    Param("val_every", "int", 1, "validation variant: evaluate every this many steps",
          low=1, high=10_000),
)
MIN_STEPS, MAX_STEPS = 5, 100_000
_P = {p.name: p for p in FINDER_PARAMS}


def ramp(start_lr: float, end_lr: float, steps: int, mode: str = "exp") -> np.ndarray:
    """The LR of each step of the range test, from ``start_lr`` to ``end_lr`` inclusive.

    ```
    exp:    lr_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
    linear: lr_i = start_lr + (end_lr - start_lr) * i / (steps - 1)
    ```

    Raises:
        ParamError: a non-positive LR, start_lr >= end_lr, steps outside [5, 100000] or
            an unknown mode.
    """
    start_lr = _P["start_lr"].coerce(start_lr)
    end_lr = _P["end_lr"].coerce(end_lr)
    _check_order(start_lr, end_lr)
    steps = _check_steps(steps)
    if mode not in MODES:
        raise ParamError("mode", f"Argument `mode` must be one of {', '.join(MODES)}. "
                                 f"Received: mode={mode!r}")
    if mode == "exp":
        lrs = np.geomspace(start_lr, end_lr, steps)
    else:
        lrs = np.linspace(start_lr, end_lr, steps)
    lrs[0], lrs[-1] = start_lr, end_lr  # exact ends: the explored range is what was asked
    return lrs


def smooth(losses: Sequence[float] | np.ndarray, beta: float = DEFAULT_BETA) -> np.ndarray:
    """fastai's debiased exponential moving average of the loss.

    ```
    avg_i = beta * avg_(i-1) + (1 - beta) * loss_i      (avg_(-1) = 0)
    smoothed_i = avg_i / (1 - beta ** (i + 1))
    ```

    A NaN or inf loss makes every later smoothed value non-finite, which is what the
    stop rule wants to see.
    """
    if not 0.0 <= beta < 1.0:
        raise ParamError("beta", f"Argument `beta` must be in [0, 1). Received: beta={beta}")
    losses = np.asarray(losses, dtype=np.float64)
    out = np.empty_like(losses)
    avg = 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * loss
        out[i] = avg / (1.0 - beta ** (i + 1))
    return out


class Smoother:
    """``smooth`` one value at a time, for a test that streams its points."""

    def __init__(self, beta: float = DEFAULT_BETA):
        if not 0.0 <= beta < 1.0:
            raise ParamError("beta", f"Argument `beta` must be in [0, 1). Received: beta={beta}")
        self.beta = beta
        self._avg = 0.0
        self._n = 0

    def __call__(self, loss: float) -> float:
        self._avg = self.beta * self._avg + (1.0 - self.beta) * float(loss)
        self._n += 1
        return self._avg / (1.0 - self.beta ** self._n)


def should_stop(smoothed: float, best: float, factor: float = DEFAULT_STOP_FACTOR) -> bool:
    """True once the smoothed loss has diverged: above ``factor * best`` or not finite."""
    if not math.isfinite(smoothed):
        return True
    return math.isfinite(best) and smoothed > factor * best


@dataclass(frozen=True)
class Suggestion:
    """One suggested learning rate, the point of the curve it comes from, and its rule."""

    name: str
    lr: float
    index: int  # the recorded point nearest to ``lr`` (on log LR)
    loss: float  # the smoothed loss at ``index``
    rule: str

    def to_dict(self) -> dict:
        return asdict(self)


SUGGESTION_RULES = {
    "steepest": "steepest descent: most negative slope of the smoothed loss against log LR",
    "valley": "valley (fastai): the longest descending stretch of the smoothed loss, "
              "taken about halfway down it",
    "min_div_10": "minimum / 10: the LR of the lowest smoothed loss, divided by 10",
}


def usable_length(losses: Sequence[float], smoothed: Sequence[float]) -> int:
    """How many leading points are finite in both the raw and the smoothed loss."""
    raw = np.asarray(losses, dtype=np.float64)
    sm = np.asarray(smoothed, dtype=np.float64)
    bad = ~(np.isfinite(raw) & np.isfinite(sm))
    return int(np.argmax(bad)) if bad.any() else len(raw)


def suggestions(lrs: Sequence[float], losses: Sequence[float],
                smoothed: Sequence[float]) -> dict[str, Suggestion]:
    """Suggested learning rates from a range test, each inside the explored LR range.

    Only the leading finite points count. Like fastai, the first 10% of the points
    (where the loss has not started to move) and the last 5 (the divergence) are left
    out of steepest and valley when at least 20 points remain.

    Returns:
        {"steepest": ..., "valley": ..., "min_div_10": ...} as ``Suggestion``s, or an
        empty dict when fewer than 3 finite points were recorded.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    smoothed = np.asarray(smoothed, dtype=np.float64)
    if not len(lrs) == len(losses) == len(smoothed):
        raise ValueError(f"lrs, losses and smoothed must have the same length. Received: "
                         f"{len(lrs)}, {len(losses)}, {len(smoothed)}")
    n = usable_length(losses, smoothed)
    if n < 3:
        return {}
    lrs, sm = lrs[:n], smoothed[:n]
    lo, hi = (n // 10, n - 5) if n - n // 10 - 5 >= 20 else (0, n)
    log_lr = np.log(lrs)

    out: dict[str, Suggestion] = {}
    i = lo + _steepest_index(log_lr[lo:hi], sm[lo:hi])
    out["steepest"] = Suggestion("steepest", float(lrs[i]), i, float(sm[i]),
                                 SUGGESTION_RULES["steepest"])
    i = lo + valley_index(sm[lo:hi])
    out["valley"] = Suggestion("valley", float(lrs[i]), i, float(sm[i]), SUGGESTION_RULES["valley"])

    i_min = int(np.argmin(sm))
    lr = float(lrs[i_min]) / 10.0
    rule = SUGGESTION_RULES["min_div_10"]
    if lr < lrs[0]:  # the minimum is within a decade of the start: stay inside the range
        lr, rule = float(lrs[0]), rule + " (clipped to the start of the range)"
    i = int(np.argmin(np.abs(log_lr - math.log(lr))))
    out["min_div_10"] = Suggestion("min_div_10", lr, i, float(sm[i]), rule)
    return out


def _steepest_index(log_lr: np.ndarray, sm: np.ndarray) -> int:
    """Index of the most negative d(smoothed)/d(log lr), the gradient lightly smoothed.

    The light moving average (about 2% of the points, at least 1) keeps a single noisy
    pair of steps from winning; ``np.gradient`` handles the uneven log spacing of a
    linear ramp.
    """
    if len(sm) < 2:
        return 0
    grad = np.gradient(sm, log_lr)
    width = max(1, len(sm) // 50)
    if width > 1:
        kernel = np.ones(width) / width
        grad = np.convolve(np.pad(grad, (width // 2, width - 1 - width // 2), mode="edge"),
                           kernel, mode="valid")
    return int(np.argmin(grad))


def valley_index(losses: Sequence[float]) -> int:
    """fastai's ``valley`` rule, the index it suggests.

    fastai finds the longest strictly decreasing subsequence of the (smoothed) loss,
    takes the span from its end back by its length, and picks the point
    ``int(span / 3) + int(span / 6)`` into it (about halfway down the valley). The
    quadratic search is replaced by the O(n log n) patience method: same lengths,
    same first index reaching the longest.
    """
    losses = np.asarray(losses, dtype=np.float64)
    n = len(losses)
    if n == 0:
        raise ValueError("Argument `losses` must not be empty. Received: losses=[]")
    lds = np.empty(n, dtype=int)  # longest strictly decreasing run ending at i
    tails: list[float] = []  # tails[k]: smallest -loss ending an increasing run of k+1
    for i, x in enumerate(-losses):
        k = bisect.bisect_left(tails, x)
        if k == len(tails):
            tails.append(x)
        else:
            tails[k] = x
        lds[i] = k + 1
    max_end = int(np.argmax(lds))  # first index with the longest run, as fastai's loop
    max_start = max_end - int(lds[max_end])
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return min(max(idx, 0), n - 1)


# --- the test's configuration --------------------------------------------------------


@dataclass(frozen=True)
class RangeTestConfig:
    """Everything that changes a range test's result; ``config_hash`` is its identity."""

    optimizer: str = "sgd"
    optimizer_params: dict = field(default_factory=dict)
    hidden: tuple = (512, 200)
    train_size: int = 20_000
    sample_seed: int = 0
    batch_size: int = 64
    seed: int = 0
    start_lr: float = DEFAULT_START_LR
    end_lr: float = DEFAULT_END_LR
    steps: int = 313
    mode: str = "exp"
    stop_factor: float = DEFAULT_STOP_FACTOR
    beta: float = DEFAULT_BETA
    use_validation: bool = False
    val_batches: int = 4
    val_every: int = 1

    @classmethod
    def create(cls, optimizer: str = "sgd", optimizer_params: Mapping[str, Any] | None = None,
               **settings: Any) -> "RangeTestConfig":
        """Validate everything and return a complete config.

        ``steps`` left out (or 0 / None) means one epoch of the sample.

        Raises:
            ParamError: naming the first bad setting.
        """
        if settings.get("steps") is None:
            settings.pop("steps", None)
        opt = _optimizer_params(optimizer, optimizer_params)
        values = coerce_all(FINDER_PARAMS, settings, "A range test")
        values["hidden"] = tuple(int(h) for h in values["hidden"])
        if not values["hidden"]:
            raise ParamError("hidden", "Argument `hidden` must list at least one layer width. "
                                       "Received: hidden=[]")
        _check_order(values["start_lr"], values["end_lr"])
        if values["steps"] == 0:
            values["steps"] = steps_per_epoch(values["train_size"], values["batch_size"])
        values["steps"] = _check_steps(values["steps"])
        if not values["use_validation"]:  # unused: keep equal configs equal
            values["val_batches"], values["val_every"] = _P["val_batches"].default, _P["val_every"].default
        return cls(optimizer=optimizer, optimizer_params=opt, **values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RangeTestConfig":
        # None marks a setting the canonical form dropped as unused
        data = {k: v for k, v in dict(data).items() if k != "kind" and v is not None}
        return cls.create(data.pop("optimizer", "sgd"), data.pop("optimizer_params", None), **data)

    def to_dict(self) -> dict:
        """Canonical, JSON-ready form; ``kind`` tells it apart from a training config."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["optimizer_params"] = dict(sorted(self.optimizer_params.items()))
        if not self.use_validation:  # unused settings must not split the cache
            d["val_batches"] = d["val_every"] = None
        return {"kind": "lr_find", **d}

    def config_hash(self) -> str:
        """The test's identity in the cache: sha256 of the canonical JSON, 16 hex digits."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def ramp(self) -> np.ndarray:
        return ramp(self.start_lr, self.end_lr, self.steps, self.mode)

    def recorded_steps(self) -> np.ndarray:
        """The steps that record a point: all, or every ``val_every`` and the last one."""
        if not self.use_validation:
            return np.arange(self.steps)
        return np.union1d(np.arange(0, self.steps, self.val_every), [self.steps - 1])

    def label(self) -> str:
        return (f"LR range test · {self.optimizer} · {self.start_lr:g} to {self.end_lr:g} "
                f"({self.mode}, {self.steps} steps)")


def _check_order(start_lr: float, end_lr: float) -> None:
    if not start_lr < end_lr:
        raise ParamError("end_lr", f"Argument `end_lr` must be greater than start_lr={start_lr:g}. "
                                   f"Received: end_lr={end_lr:g}")


def _check_steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) \
            or not MIN_STEPS <= steps <= MAX_STEPS:
        raise ParamError("steps", f"Argument `steps` must be a whole number in "
                                  f"[{MIN_STEPS}, {MAX_STEPS}]. Received: steps={steps}")
    return int(steps)


# --- a test's result -------------------------------------------------------------------

RESULT_STATUSES = ("finished", "diverged", "cancelled")


@dataclass(frozen=True)
class RangeTestResult:
    """The recorded points of a range test and how it ended.

    ``idx`` is the step of each point (every step, or every ``val_every`` steps in the
    validation variant); ``lrs`` the LR that step applied; ``losses`` the loss the test
    watches (the batch's training loss, or the held-out loss); ``smoothed`` its EMA.
    """

    config: RangeTestConfig
    idx: np.ndarray
    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    status: str = "finished"

    @classmethod
    def from_points(cls, config: RangeTestConfig, points: Sequence[Sequence[float]],
                    status: str = "finished") -> "RangeTestResult":
        """From ``(idx, lr, loss, smoothed)`` rows, as the store keeps them."""
        if status not in RESULT_STATUSES:
            raise ValueError(f"Argument `status` must be one of {', '.join(RESULT_STATUSES)}. "
                             f"Received: status={status!r}")
        arr = np.asarray(points, dtype=np.float64).reshape(-1, 4)
        return cls(config, arr[:, 0].astype(int), arr[:, 1].copy(), arr[:, 2].copy(),
                   arr[:, 3].copy(), status)

    @property
    def divergence_index(self) -> int | None:
        """Position (in the recorded points) where the test stopped for divergence."""
        return len(self.lrs) - 1 if self.status == "diverged" and len(self.lrs) else None

    def suggestions(self) -> dict[str, Suggestion]:
        return suggestions(self.lrs, self.losses, self.smoothed)

    def to_dict(self) -> dict:
        """JSON-ready: non-finite losses become None (JSON has no NaN)."""
        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        div = self.divergence_index
        return {
            "config": self.config.to_dict(),
            "config_hash": self.config.config_hash(),
            "status": self.status,
            "divergence": None if div is None else {"step": int(self.idx[div]),
                                                    "lr": float(self.lrs[div])},
            "points": [{"step": int(i), "lr": float(lr), "loss": num(loss), "smoothed": num(sm)}
                       for i, lr, loss, sm in zip(self.idx, self.lrs, self.losses, self.smoothed)],
            "suggestions": {k: v.to_dict() for k, v in self.suggestions().items()},
        }


# --- stored tests ----------------------------------------------------------------------


def load_result(store: Any, run_id: str) -> RangeTestResult:
    """The stored test ``run_id`` as a result so far (its points may still be arriving).

    The store numbers points 0, 1, ... as recorded; they become steps again here. A run
    still queued or running, or failed, reads as "finished" up to its last point; the
    caller has the run's own status for the rest.
    """
    info = store.get(run_id)
    if info.kind != "lr_find":
        raise ValueError(f"Run {run_id} is a {info.kind} run, not an LR range test.")
    cfg = RangeTestConfig.from_dict(info.config)
    frame = store.points(run_id)
    steps = cfg.recorded_steps()
    n = min(len(frame), len(steps))
    rows = np.column_stack([steps[frame["idx"].to_numpy()[:n]], frame["lr"].to_numpy()[:n],
                            frame["loss"].to_numpy()[:n], frame["smoothed"].to_numpy()[:n]])
    status = info.status if info.status in RESULT_STATUSES else "finished"
    return RangeTestResult.from_points(cfg, rows, status)


def submit(cfg: RangeTestConfig, store: Any = None, *, retrain: bool = False) -> tuple[str, bool]:
    """Queue the test ``cfg`` as a ``kind='lr_find'`` run, or reuse the cached one.

    Returns ``(run_id, reused)``. The same test is never run twice: a finished,
    diverged, queued or running test with the same ``config_hash`` is returned instead
    (``retrain`` still joins a queued/running one). A worker runs the queued test
    (``lrviz.training.range_test.run_lr_find``).
    """
    if store is None:
        from lrviz.store import RunStore

        store = RunStore()
    info, reused = store.create_or_reuse(cfg, retrain=retrain, kind="lr_find",
                                         name=cfg.label())
    return info.id, reused


# --- taking a suggestion into a schedule -----------------------------------------------

# The parameter a suggested LR becomes, for schedules whose name for "the top LR" is
# not initial_lr. cyclic also gets base_lr = max_lr / 10 (Smith's usual ratio).
_LR_PARAM = {"constant": "lr", "one_cycle": "max_lr", "cyclic": "max_lr",
             "warmup_stable_decay": "peak_lr"}


def schedule_targets() -> list[str]:
    """Catalogue schedules a suggested LR can be taken into (all but ``custom``)."""
    from lrviz.schedules import catalogue

    return [name for name, spec in catalogue().items()
            if _LR_PARAM.get(name) in {p.name for p in spec.params}
            or "initial_lr" in {p.name for p in spec.params}]


def schedule_params_for(schedule: str, lr: float) -> dict[str, float]:
    """The schedule parameters a suggested ``lr`` sets.

    ``initial_lr`` for most schedules; ``max_lr`` for one_cycle and cyclic (cyclic also
    ``base_lr = max_lr / 10``); ``lr`` for constant; ``peak_lr`` for warmup_stable_decay.

    Raises:
        ParamError: ``schedule`` has no LR parameter (custom) or ``lr`` is refused.
    """
    if schedule not in schedule_targets():
        raise ParamError("schedule", f"Argument `schedule` must be one of "
                                     f"{', '.join(schedule_targets())}. Received: schedule={schedule!r}")
    name = _LR_PARAM.get(schedule, "initial_lr")
    lr = _P["end_lr"].coerce(lr)
    params = {name: lr}
    if schedule == "cyclic":
        params["base_lr"] = lr / 10.0
    return params
