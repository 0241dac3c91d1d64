"""Typed progress events shared by every long-running core generator."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


#: Sent into a long operation's generator (``gen.send(STOP)``, superqt's ``worker.send``) that accepts it
#: (training, live restoration): it ends after its current step and returns its result, unlike closing it.
STOP = "stop"


@dataclass(frozen=True)
class Progress:
    """One step of long work.

    Attributes
    ----------
    stage : str
        What is being done, e.g. ``"simulate Kidney sess2"``.
    done, total : int
        Steps finished and steps in this stage.
    message : str
        Optional detail for a log line.
    """

    stage: str
    done: int
    total: int
    message: str = ""


def drain(work: Generator[Progress, None, T], on_progress: Callable[[Progress], None] | None = None) -> T:
    """Run a progress generator to completion and return its result.

    Parameters
    ----------
    work : generator
        Yields :class:`Progress`, returns the result.
    on_progress : callable, optional
        Called with each event (e.g. to print it).
    """
    while True:
        try:
            event = next(work)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(event)


def time_left(seconds: float | None) -> str:
    """``about 3 min left`` (or seconds, hours) for an estimate in seconds; "" when there is none (None, inf)."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 90:
        return f"about {seconds:.0f} s left"
    return f"about {seconds / 60:.0f} min left" if seconds < 5400 else f"about {seconds / 3600:.1f} h left"
