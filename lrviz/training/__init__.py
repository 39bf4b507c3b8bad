"""Training with Keras: the only package in lrviz that imports TensorFlow/Keras.

The package itself imports nothing heavy: ``run_training`` and friends load
``lrviz.training.run`` (and TensorFlow) on first use, so TF-free helpers such as
``lrviz.training.batched.group_runs`` can be used from the app process.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MetricsSink", "Outcome", "run_training"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lrviz.training import run

        return getattr(run, name)
    raise AttributeError(f"module 'lrviz.training' has no attribute {name!r}")
