"""``temdeblur live``: a session's stream restored while it is acquired, into a growing mosaic (docs/live.md).

Torch is imported inside the command, so ``temdeblur --help`` stays light.
"""

from __future__ import annotations

import argparse

from napari_temdeblur.core.restore import LiveOptions, RestoreOptions

from ._options import POSITION_OPTIONS, add_options, options_from


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``live`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "live",
        help="restore a session's stream while it is acquired, into a growing mosaic",
        description="Watch SESSION/stream/ for frames <index>.tif as the acquisition writes them: match each "
        "to the frames before it, restore the newest stream position with RUN (and the gaps left behind when "
        "there is time) and grow OUT/mosaic.ome.zarr and OUT/positions.json as temdeblur mosaic writes them. "
        "Prints frames/s, positions/s and latency. Ends after --idle-timeout seconds without a new frame, or "
        "on Ctrl-C, by filling the gaps and writing the mosaic (Ctrl-C again: at once). Started again with the "
        "same OUT, it continues.",
    )
    p.add_argument("run", metavar="RUN", help="run folder, checkpoint file or 'pretrained'")
    p.add_argument("session", metavar="SESSION", help="session folder (session.json; frames arrive in stream/)")
    p.add_argument("--out", required=True, metavar="OUT", help="output folder (continued when begun live before)")
    add_options(p, LiveOptions)
    add_options(p, RestoreOptions, POSITION_OPTIONS)
    p.set_defaults(func=cmd_live, memory_flags=("--inference-tile", "--batch"))
    return p


def _print(event) -> None:
    from napari_temdeblur.core.restore import FrameArrived, InputSkipped, LiveRate, LiveRestored, MosaicWritten

    if isinstance(event, FrameArrived) and event.problem:
        print(f"  skipped: {event.problem}", flush=True)
    elif isinstance(event, InputSkipped):
        print(f"  not restored: {event.message}", flush=True)
    elif isinstance(event, LiveRestored):
        when = "gap filled" if event.gap else f"latency {event.latency_s:.2f} s"
        print(f"  restored {event.message} ({when})", flush=True)
    elif isinstance(event, LiveRate):
        print(f"  {event.done} positions from {event.total} frames: {event.message}", flush=True)
    elif isinstance(event, MosaicWritten):
        rows, cols = event.shape
        print(f"  mosaic of {event.parts} positions written ({rows} x {cols} px)", flush=True)


def cmd_live(args: argparse.Namespace) -> int:
    from napari_temdeblur.core import STOP
    from napari_temdeblur.core.restore import live

    options = options_from(LiveOptions, args, restore=options_from(RestoreOptions, args))
    print(f"watching {args.session}/stream for frames (Ctrl-C to finish)", flush=True)
    work = live(args.run, args.session, args.out, options)
    command, interrupted = None, False
    while True:
        try:
            event = work.send(command)
        except StopIteration as done:
            result = done.value
            break
        except KeyboardInterrupt:  # between two events: the work finishes as after its own Ctrl-C
            if interrupted:
                raise
            interrupted, command = True, STOP
            continue
        command = None
        _print(event)
    for message in dict.fromkeys(result.messages):
        print(f"  note: {message}")
    why = {"idle": f"no new frame for {options.idle_timeout:g} s", "interrupted": "interrupted"}.get(
        result.stopped, result.stopped
    )
    if not result.positions:
        print(f"stopped ({why}): {result.frames} frames read, nothing restored; {result.out}")
        return 1
    rows, cols = result.shape
    again = f", {result.resumed} of them restored before" if result.resumed else ""
    skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
    print(
        f"stopped ({why}): {result.frames} frames{skipped}; mosaic of {len(result.positions)} positions{again}: "
        f"{rows} x {cols} px in {result.out}"
    )
    return 0
