"""The ``temdeblur`` parser and running one command with one-line errors (no napari, no Qt).

The demo runs the other commands through :func:`run`, so this module does not know the demo.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from napari_temdeblur.core import DataError
from napari_temdeblur.core.io import OverwriteRefused

from . import _evaluate, _export, _live, _mosaic, _register, _replay, _restore, _simulate, _train
from ._output import torch_failure

#: The commands a user (or the demo) runs; each module has ``add_parser(subparsers)``.
COMMANDS: tuple[ModuleType, ...] = (
    _simulate,
    _register,
    _train,
    _restore,
    _mosaic,
    _live,
    _replay,
    _evaluate,
    _export,
)


def build_parser(commands: Sequence[ModuleType] = COMMANDS) -> argparse.ArgumentParser:
    """The ``temdeblur`` argument parser with a subcommand per module of `commands`."""
    parser = argparse.ArgumentParser(prog="temdeblur", description="Restore TEM images from fast image streams.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in commands:
        command.add_parser(sub)
    return parser


def run(argv: list[str] | None = None, commands: Sequence[ModuleType] = COMMANDS) -> int:
    """Parse `argv` and run its command; bad input, a device failure or Ctrl-C end in one line on stderr.

    Returns
    -------
    int
        The exit status: 0 done, 1 the command's own failure (an image not registered, an input not
        restored), 2 bad input or a device failure, 130 interrupted.
    """
    args = build_parser(commands).parse_args(argv)
    try:
        return args.func(args)
    except OverwriteRefused as exc:
        hint = ", or give --overwrite to replace them" if hasattr(args, "overwrite") else ""
        print(f"temdeblur: error: {exc}{hint}", file=sys.stderr)
        return 2
    except (DataError, ValueError, OSError) as exc:
        print(f"temdeblur: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # out of memory or a device error in torch: one line and what to change
        message = torch_failure(exc, getattr(args, "memory_flags", ()))
        if message is None:
            raise
        print(f"temdeblur: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("temdeblur: interrupted", file=sys.stderr)
        return 130
