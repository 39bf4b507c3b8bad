"""lrviz: a learning-rate schedule lab for Keras.

The core is free of Streamlit; only ``lrviz.training`` (and what it imports)
pays TensorFlow's import.
"""

__version__ = "0.1.0"
