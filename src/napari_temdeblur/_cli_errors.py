"""One-line messages for failures inside torch (out of memory, CUDA or MPS errors) on the command line.

A user needs the first line of torch's long message and what to change. Other RuntimeErrors are bugs
(also those raised through torch's frames, such as a network's ``forward``) and keep their traceback.
"""

from __future__ import annotations

import argparse

from napari_temdeblur.core import device_failure, first_line, out_of_memory


def torch_failure(exc: RuntimeError, args: argparse.Namespace) -> str | None:
    """The message to print for an out-of-memory or GPU runtime error; None for any other
    RuntimeError (a bug, which keeps its traceback).

    Parameters
    ----------
    exc : RuntimeError
    args : argparse.Namespace
        The command's arguments, to name the options that lower memory use.
    """
    first = first_line(exc)
    if out_of_memory(exc):
        # the options that size what goes through the network (evaluate's --tile is the scoring tile)
        size = next((name for name in ("restore_tile", "tile", "patch") if hasattr(args, name)), None)
        options = [f"--{name.replace('_', '-')}" for name in (size, "batch") if name and hasattr(args, name)]
        advice = f"use a smaller {' or '.join(options)}, or --device cpu" if options else "use --device cpu"
        return f"the device ran out of memory ({first}): {advice}"
    if device_failure(exc):
        return f"the device failed ({first}): try --device cpu"
    return None
