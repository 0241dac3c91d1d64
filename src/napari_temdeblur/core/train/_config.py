"""The training configuration: data, saved as the ``train`` entry of every run's config.json."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from napari_temdeblur.core import reject_unknown_keys
from napari_temdeblur.core.models import ModelConfig, frames_required, size_multiple


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one network.

    What an *epoch* is: `steps_per_epoch` optimiser steps of `batch` random crops each, followed by
    one validation pass over the fixed validation tiles (the best epoch by val SSIM is kept). With
    the default ``steps_per_epoch=None`` an epoch draws about one crop per training image
    (``ceil(train images / batch)`` steps), the meaning of the paper's 2000 epochs over its ~38
    training images (about 9500 steps of 8 crops).

    Attributes
    ----------
    model : ModelConfig
        Network name and widths.
    epochs : int
        Epochs to train in total (a resumed run continues up to this number).
    steps_per_epoch : int or None
        Batches per epoch; None: ``ceil(len(train pairs) / batch)``.
    patch : int
        Training crop side, px; a multiple of the model's size multiple.
    batch : int
        Crops per step.
    frames : int or (int, int)
        Frames per burst: a fixed count, or an inclusive (min, max) range drawn per batch (the paper
        trained the burst networks with 3-5). Validation uses the max. deblurgan takes exactly 3.
    lr : float or None
        Adam learning rate; None takes the paper's recipe for the model (:func:`core.models.recipe`).
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU) or a name from :func:`available_devices`.
    seed : int
        Seeds the network initialisation, crop sampling and dropout: same seed, same history.
    patience : int or None
        Stop when the val SSIM has not improved for this many epochs; None: never.
    time_limit_s : float or None
        Wall-clock limit in seconds for this call; the epoch in progress ends early, is validated
        and saved.
    val_tile : int
        Validation tile side, px (the paper's 128).
    """

    model: ModelConfig
    epochs: int = 2000
    steps_per_epoch: int | None = None
    patch: int = 128
    batch: int = 8
    frames: int | tuple[int, int] = 5
    lr: float | None = None
    device: str = "auto"
    seed: int = 0
    patience: int | None = None
    time_limit_s: float | None = None
    val_tile: int = 128

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ValueError(f"model must be a ModelConfig, got {type(self.model).__name__}")
        if isinstance(self.frames, (list, tuple)):
            object.__setattr__(self, "frames", tuple(self.frames))
        for name in ("epochs", "patch", "batch", "val_tile"):
            _positive_int(name, getattr(self, name))
        for name in ("steps_per_epoch", "patience"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        low, high = self.frame_range
        if low > high:
            raise ValueError(f"frames range must be (min, max) with min <= max, got {self.frames}")
        required = frames_required(self.model)
        if required is not None and (low, high) != (required, required):
            raise ValueError(f"model {self.model.name} takes exactly {required} frames, got frames={self.frames}")
        multiple = size_multiple(self.model)
        for name in ("patch", "val_tile"):
            if getattr(self, name) % multiple:
                raise ValueError(
                    f"{name} {getattr(self, name)} must be a multiple of {multiple} for model {self.model.name}"
                )
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number or None, got {self.lr!r}")
        if self.time_limit_s is not None and not self.time_limit_s >= 0:
            raise ValueError(f"time_limit_s must be >= 0 seconds or None, got {self.time_limit_s!r}")

    @property
    def frame_range(self) -> tuple[int, int]:
        """Frames per burst as an inclusive (min, max) range."""
        frames = self.frames if isinstance(self.frames, tuple) else (self.frames, self.frames)
        if len(frames) != 2:
            raise ValueError(f"frames must be a count or a (min, max) pair, got {self.frames!r}")
        for value in frames:
            _positive_int("frames", value)
        return frames

    def to_dict(self) -> dict:
        """Plain-JSON form; ``model`` is :meth:`ModelConfig.to_dict`."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["model"] = self.model.to_dict()
        data["frames"] = list(self.frames) if isinstance(self.frames, tuple) else self.frames
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused by name."""
        reject_unknown_keys(cls, data, "training parameter")
        if "model" not in data:
            raise ValueError("training configuration has no 'model'")
        return cls(**{**data, "model": ModelConfig.from_dict(data["model"])})


def default_frames(model: ModelConfig) -> int:
    """Frames per burst when the user gives none: the model's requirement, else the paper's 5."""
    return frames_required(model) or 5


def parse_frames(text: str) -> int | tuple[int, int]:
    """Frames per burst as typed by a user: ``"5"`` -> 5, ``"3-5"`` -> (3, 5); a ValueError otherwise."""
    try:
        numbers = [int(part.strip()) for part in str(text).split("-")]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2):
        raise ValueError(f"frames must be a count such as 5 or a range such as 3-5, got '{text}'")
    return numbers[0] if len(numbers) == 1 else (numbers[0], numbers[1])
