"""The optimizer catalogue: names and typed settings, free of TensorFlow.

The learning rate is not an optimizer setting here: the schedule drives it.
``lrviz.training`` maps these names onto Keras classes.
"""

from __future__ import annotations

from typing import Any, Mapping

from lrviz.params import Param, ParamError, coerce_all, shown

_UNIT = dict(low=0.0, high=1.0, high_open=True)
_EPS = Param("epsilon", "float", 1e-7, "numerical stability term", low=0.0, high=1.0, low_open=True)

OPTIMIZERS: dict[str, tuple[Param, ...]] = {
    "sgd": (
        Param("momentum", "float", 0.0, "momentum (the article used 0.8 with its schedules)", **_UNIT),
        Param("nesterov", "bool", False, "Nesterov momentum"),
    ),
    "adam": (
        Param("beta_1", "float", 0.9, "first-moment decay", **_UNIT),
        Param("beta_2", "float", 0.999, "second-moment decay", **_UNIT),
        _EPS,
    ),
    "adamw": (
        Param("weight_decay", "float", 0.004, "decoupled weight decay", low=0.0, high=1.0),
        Param("beta_1", "float", 0.9, "first-moment decay", **_UNIT),
        Param("beta_2", "float", 0.999, "second-moment decay", **_UNIT),
        _EPS,
    ),
    "rmsprop": (
        Param("rho", "float", 0.9, "decay of the squared-gradient average", **_UNIT),
        Param("momentum", "float", 0.0, "momentum", **_UNIT),
        _EPS,
    ),
    "adagrad": (
        Param("initial_accumulator_value", "float", 0.1, "starting accumulator", low=0.0, high=1e3),
        _EPS,
    ),
}


def optimizer_params(name: str, given: Mapping[str, Any] | None = None) -> dict:
    """Validated, complete settings for optimizer ``name``."""
    if not isinstance(name, str) or name not in OPTIMIZERS:  # a list is unhashable: check type first
        raise ParamError(
            "optimizer",
            f"Argument `optimizer` must be one of {', '.join(OPTIMIZERS)}. Received: optimizer={shown(name)}",
        )
    return coerce_all(OPTIMIZERS[name], given, f"Optimizer `{name}`")
