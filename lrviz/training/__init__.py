"""Training with Keras: the only package in lrviz that imports TensorFlow/Keras.

Import it lazily from anything the Schedules page touches.
"""

from lrviz.training.run import MetricsSink, Outcome, run_training

__all__ = ["MetricsSink", "Outcome", "run_training"]
