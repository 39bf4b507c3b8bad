"""Ready-made experiments. ``article`` is the blog article's comparison.

The article trained its MLP on 20,000 Fashion-MNIST images for 100 epochs, batch 64, with
plain SGD (Keras's default, no momentum) under each schedule, and compared it with Adam.
Plain SGD matters: at the article's initial LR of 0.5, SGD with momentum 0.8 diverges in
the first epoch on this model, while plain SGD learns (measured with `python -m lrviz
train step --opt momentum=0.8` against `--opt momentum=0`).
"""

from __future__ import annotations

from typing import Any

from lrviz.config import RunConfig

# (schedule, schedule params, optimizer, optimizer params)
ARTICLE: tuple[tuple[str, dict, str, dict], ...] = (
    ("constant", {"lr": 0.01}, "sgd", {}),
    ("keras_legacy_decay", {"initial_lr": 0.1, "decay": 0.01}, "sgd", {}),
    ("polynomial", {"initial_lr": 0.5, "power": 1.0, "end_lr": 0.0}, "sgd", {}),
    ("time_based", {"initial_lr": 0.5, "decay": 0.005, "compound": True}, "sgd", {}),
    ("exponential", {"initial_lr": 0.5, "k": 0.1}, "sgd", {}),
    ("step", {"initial_lr": 0.5, "drop_rate": 0.8, "epochs_drop": 10}, "sgd", {}),
    ("constant", {"lr": 0.001}, "adam", {}),
)

PRESETS = {"article": ARTICLE}


def preset_configs(name: str = "article", **run: Any) -> list[RunConfig]:
    """The preset's runs as validated configs; ``run`` overrides shared settings
    (epochs, train_size, batch_size, seed, validation...)."""
    if name not in PRESETS:
        from lrviz.params import ParamError

        raise ParamError("preset", f"Argument `preset` must be one of {', '.join(PRESETS)}. "
                                   f"Received: preset={name!r}")
    return [RunConfig.create(s, sp, None, o, op, **run) for s, sp, o, op in PRESETS[name]]
