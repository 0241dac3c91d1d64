"""Typed progress events of training and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from napari_temdeblur.core import STOP as _STOP
from napari_temdeblur.core import Progress

#: core.STOP: sent into the training generator (``gen.send(STOP)``, e.g. superqt's ``worker.send``), it
#: stops after the current batch and gives a :class:`TrainResult` with ``stopped_reason="cancelled"``; the
#: epoch in progress is discarded, the saved checkpoints stay as they are.
STOP = _STOP

STOP_REASONS = ("done", "early-stop", "time-limit", "cancelled")


@dataclass(frozen=True)
class TrainStarted(Progress):
    """First event: what is being trained, where and on what.

    ``done``/``total`` count epochs (``done`` = epochs already finished when resuming).
    """

    device: str = ""
    parameters: int = 0
    steps_per_epoch: int = 0
    train_images: int = 0
    val_tiles: int = 0
    input_val_ssim: float = float("nan")
    input_val_psnr: float = float("nan")


@dataclass(frozen=True)
class BatchDone(Progress):
    """One optimiser step; ``done``/``total`` count the steps of this epoch."""

    epoch: int = 0
    step: int = 0
    loss: float = float("nan")


@dataclass(frozen=True)
class EpochDone(Progress):
    """One finished, validated and saved epoch; ``done``/``total`` count epochs."""

    epoch: int = 0
    train_loss: float = float("nan")
    val_ssim: float = float("nan")
    val_psnr: float = float("nan")
    seconds: float = 0.0
    is_best: bool = False
    best_epoch: int = 0
    lr: float = float("nan")
    seconds_left: float | None = None  #: estimated time to the end (epochs or time limit, whichever first)


@dataclass
class TrainResult:
    """What a training run ended with.

    Attributes
    ----------
    out : Path
        The run folder.
    best_epoch : int or None
        Epoch saved in best.pt (None if no epoch finished).
    best_val_ssim : float
        Its validation SSIM (nan if none).
    input_val_ssim : float
        Validation SSIM of the unrestored input (centre frame), to compare with.
    best_val_psnr, input_val_psnr : float
        Validation PSNR (dB) of the best epoch (by SSIM) and of the unrestored input.
    stopped_reason : str
        One of :data:`STOP_REASONS`.
    history : list of dict
        One row per epoch: epoch, train_loss, val_ssim, val_psnr, seconds.
    """

    out: Path
    best_epoch: int | None
    best_val_ssim: float
    input_val_ssim: float
    stopped_reason: str
    history: list[dict] = field(default_factory=list)
    best_val_psnr: float = float("nan")
    input_val_psnr: float = float("nan")

    @property
    def psnr_below_input(self) -> bool:
        """The best epoch (chosen by SSIM, as the paper) has a lower val PSNR than the unrestored input:
        its structure is closer to the truth but its intensities are further off."""
        return self.best_val_psnr < self.input_val_psnr
