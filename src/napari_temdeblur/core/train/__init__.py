"""Training of the paper's networks: configuration, devices, the training loop and its events.

``train(cfg, data, out)`` is a generator of progress events returning a :class:`TrainResult`; the CLI
prints its events, the training dock runs it in a napari thread worker. See docs/training.md.
"""

from .config import TrainConfig, default_frames, parse_frames
from .devices import available_devices, describe_device, resolve_device
from .events import STOP, STOP_REASONS, BatchDone, EpochDone, TrainResult, TrainStarted
from .loop import DeviceOutOfMemory, train
from .run import CONFIG, HISTORY, HISTORY_COLUMNS, read_history

__all__ = [
    "TrainConfig",
    "default_frames",
    "parse_frames",
    "available_devices",
    "describe_device",
    "resolve_device",
    "STOP",
    "STOP_REASONS",
    "BatchDone",
    "EpochDone",
    "TrainResult",
    "TrainStarted",
    "DeviceOutOfMemory",
    "train",
    "CONFIG",
    "HISTORY",
    "HISTORY_COLUMNS",
    "read_history",
]
