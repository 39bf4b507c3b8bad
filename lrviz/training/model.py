"""The article's model and the optimizers, built from lrviz's typed settings.

The MLP is Flatten(28x28), one ``Dense(h, relu)`` per hidden width (the article: 512,
200), then ``Dense(10, softmax)``. Weights are seeded layer by layer so a config always
starts from the same weights, whatever else the process ran before.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras

from lrviz.optimizers import optimizer_params

# lrviz optimizer name -> Keras class; the settings names in lrviz.optimizers are
# Keras's own argument names, so they pass straight through.
_KERAS_OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
}


def build_model(hidden: Sequence[int] = (512, 200), seed: int = 0) -> keras.Model:
    """The uncompiled MLP: Flatten, Dense(h, relu) for each width, Dense(10, softmax)."""
    if not hidden or any(int(h) < 1 for h in hidden):
        raise ValueError(f"Argument `hidden` must list positive layer widths. Received: hidden={list(hidden)}")
    layers: list[keras.layers.Layer] = [keras.Input((28, 28)), keras.layers.Flatten()]
    widths = [int(h) for h in hidden]
    for i, width in enumerate(widths + [10]):
        last = i == len(widths)
        layers.append(keras.layers.Dense(
            width,
            activation="softmax" if last else "relu",
            # a distinct, fixed seed per layer: same config -> same initial weights
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 1000 + i),
            name="output" if last else f"dense_{i + 1}",
        ))
    return keras.Sequential(layers, name="mlp")


def make_optimizer(name: str, params: Mapping[str, Any] | None, learning_rate: Any) -> keras.optimizers.Optimizer:
    """The Keras optimizer ``name`` with validated settings, driven by ``learning_rate``
    (a float or a ``keras.optimizers.schedules.LearningRateSchedule``)."""
    settings = optimizer_params(name, params)  # ParamError for unknown names/values
    return _KERAS_OPTIMIZERS[name](learning_rate=learning_rate, **settings)
