"""What the training dock shows: the shared dock status plus the run's device and history.

The dock never keeps state in button labels: it changes :class:`TrainingStatus` and the controls
redraw from it (careamics-napari's explicit state, with typed fields instead of update payloads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from psygnal import evented

from napari_temdeblur.widgets._dock import DockStatus


@dataclass(frozen=True)
class EpochRecord:
    """One point of the live plot: an epoch's (1-based) mean training loss, validation SSIM and PSNR (dB)."""

    epoch: int
    train_loss: float
    val_ssim: float
    val_psnr: float = float("nan")


@evented
@dataclass
class TrainingStatus(DockStatus):
    """:class:`DockStatus` (``state``: ``running`` while a worker trains; ``stopped`` after Stop, the
    best weights so far kept; ``done`` when the run ended by itself: all epochs, early stop or time
    limit) and the run; every field change emits ``status.events.<field>``.

    Attributes
    ----------
    device : str
        The device the running or last run actually used ("" before the first run).
    history : tuple of EpochRecord
        Epochs finished in the current or last run, in order.
    best_epoch : int or None
        Epoch (1-based) with the highest validation SSIM so far.
    best_checkpoint : Path or None
        Where that epoch's weights are (``<run>/best.pt``).
    input_val : (float, float) or None
        Val SSIM and PSNR (dB) of the unrestored input: the plot's reference lines.
    """

    device: str = ""
    history: tuple[EpochRecord, ...] = field(default_factory=tuple)
    best_epoch: int | None = None
    best_checkpoint: Path | None = None
    input_val: tuple[float, float] | None = None
