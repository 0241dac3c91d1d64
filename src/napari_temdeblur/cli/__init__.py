"""The ``temdeblur`` command line: one private module per command, shared helpers in ``_output`` and
``_options``; it drives the core only (no napari, no Qt), and torch is imported inside the commands
that need it, so ``temdeblur --help`` starts fast.
"""

from __future__ import annotations

import argparse

from . import _demo, _dispatch

__all__ = ["build_parser", "main"]

#: Every command, the demo last (it runs the others).
_ALL = (*_dispatch.COMMANDS, _demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``temdeblur`` argument parser."""
    return _dispatch.build_parser(_ALL)


def main(argv: list[str] | None = None) -> int:
    """Run ``temdeblur`` with `argv` (default: the process's arguments); returns the exit status."""
    return _dispatch.run(argv, _ALL)
