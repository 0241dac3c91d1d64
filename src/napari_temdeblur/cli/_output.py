"""What the commands print: progress lines, and one line for a failure inside torch.

A user needs the first line of torch's long out-of-memory or CUDA / MPS message and what to change.
Other RuntimeErrors are bugs (also those raised through torch's frames, such as a network's
``forward``) and keep their traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from napari_temdeblur.core import Progress, device_failure, first_line, out_of_memory


def print_progress(event: Progress) -> None:
    """One line per finished stage or message (not per step: logs stay readable)."""
    if event.done == event.total or event.message:
        detail = f" - {event.message}" if event.message else ""
        print(f"  {event.stage}: {event.done}/{event.total}{detail}", flush=True)


def torch_failure(exc: RuntimeError, memory_flags: Sequence[str] = ()) -> str | None:
    """The message to print for an out-of-memory or GPU runtime error; None for any other
    RuntimeError (a bug, which keeps its traceback).

    Parameters
    ----------
    exc : RuntimeError
    memory_flags : sequence of str
        The command's options that size what goes through the network (``--inference-tile``,
        ``--patch``, ``--batch``), named in the advice on running out of memory.
    """
    first = first_line(exc)
    if out_of_memory(exc):
        smaller = f"use a smaller {' or '.join(memory_flags)}, or --device cpu" if memory_flags else "use --device cpu"
        return f"the device ran out of memory ({first}): {smaller}"
    if device_failure(exc):
        return f"the device failed ({first}): try --device cpu"
    return None
