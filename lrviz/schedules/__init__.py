"""The schedule catalogue: pure numpy, never TensorFlow.

``catalogue()`` lists every schedule; ``build`` validates one; ``lr_curve`` gives the LR
each optimizer step applies; ``keras_snippet`` writes the Keras code that reproduces it.
The Keras adapter (``lrviz.training.keras_schedule``) trains with exactly ``lr_curve``.
"""

from lrviz.schedules.catalogue import (
    GRANULARITIES,
    Schedule,
    ScheduleSpec,
    build,
    catalogue,
    horizon,
    lr_curve,
)
from lrviz.schedules.snippets import keras_snippet

__all__ = ["GRANULARITIES", "Schedule", "ScheduleSpec", "build", "catalogue", "horizon",
           "keras_snippet", "lr_curve"]
