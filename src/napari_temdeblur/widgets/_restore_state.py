"""The restore dock's state (one evented record its controls follow) and its error messages."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from psygnal import evented

from napari_temdeblur.core import DataError, out_of_memory

#: What a run folder is, for messages about a missing or bad one.
RUN_HINT = "a run folder holds best.pt: train one in the Train network dock or with temdeblur train"


class RestoreState(Enum):
    """``idle`` (nothing run yet), ``running``, ``done``, ``cancelled`` (nothing added), ``failed``."""

    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@evented
@dataclass
class RestoreStatus:
    """What the dock shows; every change emits ``status.events.<field>``."""

    state: RestoreState = RestoreState.IDLE
    message: str = ""

    @property
    def running(self) -> bool:
        return self.state is RestoreState.RUNNING


def describe_error(exc: BaseException) -> str:
    """One line for the dock naming what went wrong and, where it helps, what to try."""
    if isinstance(exc, DataError):
        return f"{exc} ({RUN_HINT})"
    if out_of_memory(exc):
        return f"out of memory ({exc}): try a smaller tile or batch, or the cpu device"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
