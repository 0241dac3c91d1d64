"""``temdeblur replay``: a recorded session written into a new folder frame by frame at a given rate, as a
live acquisition, to try ``temdeblur live`` without a microscope (docs/live.md, "Replay")."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``replay`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "replay",
        help="write a session's frames into a new session folder at a given rate (to try temdeblur live)",
        description="Copy SESSION_IN's session.json and HQ images into SESSION_OUT, then write its stream "
        "frames one file at a time as SESSION_OUT/stream/<index>.tif at --fps frames per second, each file in "
        "pieces (as acquisition software writes them).",
    )
    p.add_argument("source", metavar="SESSION_IN", help="a session folder (stream.tif or stream/)")
    p.add_argument("dest", metavar="SESSION_OUT", help="the new session folder (must not hold a session)")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second (default 10)")
    p.add_argument("--frames", type=int, metavar="N", help="write only the first N frames")
    p.add_argument(
        "--corrupt", type=int, nargs="+", default=[], metavar="T", help="write frames T as half files, never completed"
    )
    p.set_defaults(func=cmd_replay)
    return p


def cmd_replay(args: argparse.Namespace) -> int:
    from napari_temdeblur.core import drain
    from napari_temdeblur.core.io import replay_session

    work = replay_session(args.source, args.dest, args.fps, corrupt=set(args.corrupt), frames=args.frames)

    def show(event) -> None:
        if event.done % 10 == 0 or event.done == event.total:
            print(f"  {event.done}/{event.total} frames written", flush=True)

    print(f"replayed {drain(work, show)} frames into {args.dest}")
    return 0
