"""The training dock's state: one evented record that the dock's controls follow.

The dock never keeps state in button labels: it changes :class:`TrainingStatus` and the controls
redraw from it (careamics-napari's explicit state, with typed fields instead of update payloads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from psygnal import evented


class TrainingState(Enum):
    """Where a training run stands.

    ``idle``: nothing started yet. ``training``: the worker runs. ``stopped``: the user pressed Stop
    (the best weights so far are kept). ``done``: the run ended by itself (all epochs, early stop or
    time limit). ``failed``: an error ended or prevented the run; the message says why.
    """

    IDLE = "idle"
    TRAINING = "training"
    STOPPED = "stopped"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class EpochRecord:
    """One point of the live plot: the mean training loss and validation SSIM of an epoch (1-based)."""

    epoch: int
    train_loss: float
    val_ssim: float


@evented
@dataclass
class TrainingStatus:
    """What the dock shows; every field change emits ``status.events.<field>``.

    Attributes
    ----------
    state : TrainingState
    message : str
        One line for the status label (progress, the outcome or the error with a hint).
    device : str
        The device the running or last run actually used ("" before the first run).
    history : tuple of EpochRecord
        Epochs finished in the current or last run, in order.
    best_epoch : int or None
        Epoch (1-based) with the highest validation SSIM so far.
    best_checkpoint : Path or None
        Where that epoch's weights are (``<run>/best.pt``).
    """

    state: TrainingState = TrainingState.IDLE
    message: str = ""
    device: str = ""
    history: tuple[EpochRecord, ...] = field(default_factory=tuple)
    best_epoch: int | None = None
    best_checkpoint: Path | None = None

    @property
    def running(self) -> bool:
        """True while a worker trains."""
        return self.state is TrainingState.TRAINING
