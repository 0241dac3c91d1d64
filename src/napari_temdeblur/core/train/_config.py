"""The training configuration: data, saved as the ``train`` entry of every run's config.json."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from napari_temdeblur.core import DEVICE_HELP, check_int, option, reject_unknown_keys
from napari_temdeblur.core.models import PRETRAINED, ModelConfig, frames_required, has_pretrained, size_multiple


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


#: ``TrainConfig.init`` for fresh weights.
SCRATCH = "scratch"


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
    frames : int or (int, int) or None
        Frames per burst: a fixed count, or an inclusive (min, max) range drawn per batch (the paper
        trained the burst networks with 3-5). Validation uses the max. None: the model's own count
        (:func:`default_frames`: deblurgan 3, else the paper's 5).
    lr : float or None
        Adam learning rate; None takes the paper's recipe for the model (:func:`core.models.recipe`).
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU) or a name from :func:`~napari_temdeblur.core.available_devices`.
    seed : int
        Seeds the network initialisation, crop sampling and dropout: same seed, same history.
    patience : int or None
        Stop when the val SSIM has not improved for this many epochs; None: never.
    time_limit_s : float or None
        Wall-clock limit in seconds for this call; the epoch in progress ends early, is validated
        and saved.
    val_tile : int
        Validation tile side, px (the paper's 128).
    init : str or None
        Where the weights start: ``"pretrained"`` (the model's shipped weights), ``"scratch"``, or a
        run folder / checkpoint of the same model (fine-tuning a run). None: pretrained where the model
        ships weights (:func:`~napari_temdeblur.core.models.has_pretrained`), else scratch. A resumed
        run continues from its last.pt whatever this says.
    """

    model: ModelConfig
    epochs: int = option(2000, "epochs in total (the paper's 2000)")
    steps_per_epoch: int | None = option(None, "optimiser steps per epoch (default: ceil(training images / batch))")
    patch: int = option(128, "training crop side, px", metavar="PX")
    batch: int = option(8, "crops per step")
    frames: int | tuple[int, int] | None = option(
        None,
        "frames per burst, a count or a range like 3-5 drawn per batch (default 5; deblurgan: 3)",
        parse=parse_frames,
    )
    lr: float | None = option(None, "learning rate (default: the paper's for the model)")
    device: str = option("auto", DEVICE_HELP)
    seed: int = option(0, "seeds initialisation, crops and dropout: same seed, same history")
    patience: int | None = option(None, "stop after this many epochs without a better val SSIM")
    time_limit_s: float | None = option(
        None, "stop after this much wall-clock time", flag="--time-limit", metavar="SECONDS"
    )
    val_tile: int = option(128, "validation tile side, px (the paper's 128)", metavar="PX")
    init: str | None = option(
        None,
        "start from: pretrained (the weights shipped for the model: the default where there are any), "
        "scratch, or a run folder / checkpoint of the same model",
        metavar="pretrained|scratch|RUN",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ValueError(f"model must be a ModelConfig, got {type(self.model).__name__}")
        if self.frames is None:
            object.__setattr__(self, "frames", default_frames(self.model))
        if self.init is None:
            object.__setattr__(self, "init", PRETRAINED if has_pretrained(self.model.name) else SCRATCH)
        if not isinstance(self.init, str) or not self.init.strip():
            raise ValueError(f"init must be pretrained, scratch or a run folder / checkpoint, got {self.init!r}")
        if self.init == PRETRAINED and not has_pretrained(self.model.name):
            raise ValueError(f"no pretrained weights ship for {self.model.name}: start from scratch or a run of it")
        if isinstance(self.frames, (list, tuple)):
            object.__setattr__(self, "frames", tuple(self.frames))
        for name in ("epochs", "patch", "batch", "val_tile"):
            check_int(name, getattr(self, name))
        for name in ("steps_per_epoch", "patience"):
            check_int(name, getattr(self, name), optional=True)
        check_int("seed", self.seed, minimum=0)
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
            check_int("frames", value)
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
