"""How long the batch in progress has run and how long batches take: what a Stop is waiting for.

A Stop takes effect after the current batch (the trainer is only asked at its events), which with
heavy settings on a CPU can be a minute or more; the dock then says how far into the batch it is and
about how long is left, every second, instead of a silent "stopping".
"""

from __future__ import annotations

import statistics
import time

#: Batches the typical duration is taken over (the latest ones: the first may include warm-up).
RECENT = 20


class BatchClock:
    """Times of the training events, in ``time.monotonic`` seconds."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.durations: list[float] = []
        self.validating = False

    def restart(self) -> None:
        """A new run: nothing known about its batches yet."""
        self.started, self.durations, self.validating = time.monotonic(), [], False

    def event(self, batch_done: bool, epoch_end: bool = False) -> None:
        """A training event arrived: the next batch starts now; `batch_done` when it ended a batch,
        `epoch_end` when that was the epoch's last (validation and checkpoints come next)."""
        now = time.monotonic()
        if batch_done:
            self.durations.append(now - self.started)
        self.started, self.validating = now, epoch_end

    def stopping_message(self, now: float | None = None) -> str:
        """What the dock shows while a Stop waits for the batch in progress."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        if self.validating:
            return f"stopping after this epoch's validation and checkpoints: {elapsed:.0f} s into them"
        if not self.durations:
            return f"stopping after this batch: {elapsed:.0f} s into the first batch (its length is not known yet)"
        typical = statistics.median(self.durations[-RECENT:])
        left = max(typical - elapsed, 0.0)
        return (
            f"stopping after this batch: {elapsed:.0f} s into it, about {left:.0f} s left "
            f"(a batch takes about {typical:.1f} s)"
        )
