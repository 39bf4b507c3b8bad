"""A run's configuration and its identity.

``RunConfig`` holds everything that changes a run's result; ``config_hash`` of its
canonical form is the run's identity in the cache. Building a ``RunConfig`` through
``RunConfig.create`` validates every field and raises ``ParamError`` naming the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from lrviz.optimizers import optimizer_params as _optimizer_params
from lrviz.params import Param, ParamError, coerce_all

MAX_TOTAL_STEPS = 5_000_000  # epochs x steps per epoch; refuses 10**9 epochs up front

RUN_PARAMS: tuple[Param, ...] = (
    Param("epochs", "int", 100, "training epochs", low=1, high=10_000),
    Param("batch_size", "int", 64, "images per optimizer step", low=1, high=60_000),
    Param("train_size", "int", 20_000, "training images drawn from the 60,000", low=10, high=60_000),
    Param("sample_seed", "int", 0, "seed of the training-image draw", low=0, high=2**31 - 1),
    Param("seed", "int", 0, "seed of weights and batch order", low=0, high=2**31 - 1),
    Param("validation", "choice", "test", "validation data", choices=("test", "split")),
    Param("validation_split", "float", 0.2, "share of the sample held out when validation=split",
          low=0.0, high=1.0, low_open=True, high_open=True),
    Param("hidden", "float_list", (512, 200), "hidden layer widths", low=1, high=8192),
)


def steps_per_epoch(train_size: int, batch_size: int, validation: str = "test",
                    validation_split: float = 0.2) -> int:
    """Optimizer steps in one epoch, as Keras counts them (the last batch may be partial)."""
    n = train_size
    if validation == "split":
        n = train_size - int(train_size * validation_split)
    return max(1, -(-n // batch_size))


@dataclass(frozen=True)
class RunConfig:
    schedule: str
    schedule_params: dict = field(default_factory=dict)
    granularity: str = "epoch"
    optimizer: str = "sgd"
    optimizer_params: dict = field(default_factory=dict)
    epochs: int = 100
    batch_size: int = 64
    train_size: int = 20_000
    sample_seed: int = 0
    seed: int = 0
    validation: str = "test"
    validation_split: float = 0.2
    hidden: tuple = (512, 200)

    @classmethod
    def create(cls, schedule: str, schedule_params: Mapping[str, Any] | None = None,
               granularity: str | None = None, optimizer: str = "sgd",
               optimizer_params: Mapping[str, Any] | None = None, **run: Any) -> "RunConfig":
        """Validate everything and return a complete config (defaults filled in)."""
        from lrviz.schedules import build  # numpy only; no TensorFlow

        sched = build(schedule, schedule_params, granularity)
        opt = _optimizer_params(optimizer, optimizer_params)
        settings = coerce_all(RUN_PARAMS, run, "A run")
        settings["hidden"] = tuple(int(h) for h in settings["hidden"])
        if not settings["hidden"]:
            raise ParamError("hidden", "Argument `hidden` must list at least one layer width. Received: hidden=[]")
        if any(h != int(h) for h in run.get("hidden", ()) if isinstance(h, (int, float))):
            raise ParamError("hidden", f"Argument `hidden` must be whole numbers. Received: hidden={run['hidden']}")
        spe = steps_per_epoch(settings["train_size"], settings["batch_size"],
                              settings["validation"], settings["validation_split"])
        if settings["epochs"] * spe > MAX_TOTAL_STEPS:
            raise ParamError(
                "epochs",
                f"Argument `epochs` makes {settings['epochs'] * spe:,} optimizer steps, more than "
                f"{MAX_TOTAL_STEPS:,}. Received: epochs={settings['epochs']}",
            )
        return cls(schedule=sched.name, schedule_params=dict(sched.params),
                   granularity=sched.granularity, optimizer=optimizer,
                   optimizer_params=opt, **settings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        # to_dict() writes validation_split as None when unused: let the default stand
        data = {k: v for k, v in data.items() if v is not None}
        return cls.create(data.pop("schedule"), data.pop("schedule_params", None),
                          data.pop("granularity", None), data.pop("optimizer", "sgd"),
                          data.pop("optimizer_params", None), **data)

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.train_size, self.batch_size, self.validation, self.validation_split)

    def to_dict(self) -> dict:
        """Canonical, JSON-ready form (tuples as lists; unused validation_split dropped)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["schedule_params"] = {k: list(v) if isinstance(v, tuple) else v
                                for k, v in sorted(self.schedule_params.items())}
        d["optimizer_params"] = dict(sorted(self.optimizer_params.items()))
        if self.validation != "split":
            d["validation_split"] = None
        return d

    def config_hash(self) -> str:
        """The run's identity: sha256 of the canonical JSON, 16 hex digits."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def label(self) -> str:
        """A short human name: schedule, its parameters, optimizer."""
        from lrviz.schedules import catalogue

        spec = catalogue()[self.schedule]
        changed = [f"{p.name}={format_value(self.schedule_params[p.name])}" for p in spec.params
                   if p.name in self.schedule_params]
        return f"{self.schedule}({', '.join(changed)}) · {self.optimizer}"


def format_value(v: Any) -> str:
    """A parameter value as a short label text: 0.5, [30,60,90], True."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    return str(v)
