"""The Train network dock: data and settings, a training run in a thread worker, its live plot."""

from ._widget import TrainingWidget

__all__ = ["TrainingWidget"]
