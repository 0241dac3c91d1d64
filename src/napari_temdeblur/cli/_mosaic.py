"""``temdeblur mosaic``: a session's scan restored and blended into one OME-Zarr overview (docs/mosaic.md).

Torch is imported inside the command, so ``temdeblur --help`` stays light.
"""

from __future__ import annotations

import argparse

from napari_temdeblur.core import drain
from napari_temdeblur.core.restore import RestoreOptions

from ._options import POSITION_OPTIONS, add_options, options_from


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``mosaic`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "mosaic",
        help="restore a session's scan into one OME-Zarr mosaic",
        description="Solve where every stream frame of SESSION lies (frame-to-frame matching, anchored on "
        "registered HQ images), restore the stream positions that cover the scan with RUN, each from the "
        "frames around it, and blend them into OUT/mosaic.ome.zarr (a multiscale pyramid, pixel size in nm); "
        "also writes OUT/positions.json. Stopped and started again with the same OUT, it continues where it "
        "stopped and gives the same mosaic.",
    )
    p.add_argument("session", metavar="SESSION", help="acquisition session folder (session.json, stream)")
    p.add_argument("--run", required=True, metavar="RUN", help="run folder, checkpoint file or 'pretrained'")
    p.add_argument("--out", required=True, metavar="OUT", help="output folder (continued when it holds a mosaic)")
    p.add_argument(
        "--every", type=int, metavar="K", help="restore every K-th frame (default: the fewest covering the scan)"
    )
    p.add_argument("--raw", action="store_true", help="also write OUT/raw.ome.zarr from the positions' raw frames")
    p.add_argument(
        "--scheduler",
        metavar="local|ADDRESS",
        help="restore the positions on dask.distributed workers: 'local' starts a LocalCluster of --workers "
        "processes, an address (tcp://host:8786) uses a running cluster (default: in this process)",
    )
    p.add_argument("--workers", type=int, metavar="N", help="workers of the LocalCluster (with --scheduler local)")
    add_options(p, RestoreOptions, POSITION_OPTIONS)
    p.set_defaults(func=cmd_mosaic, memory_flags=("--inference-tile", "--batch"))
    return p


def cmd_mosaic(args: argparse.Namespace) -> int:
    from napari_temdeblur.core.restore import InputSkipped, PositionRestored, mosaic

    options = options_from(RestoreOptions, args)
    if args.every is not None and args.every < 1:
        raise ValueError(f"--every must be at least 1, got {args.every}")
    work = mosaic(
        args.run,
        args.session,
        args.out,
        every=args.every,
        raw=args.raw,
        options=options,
        scheduler=args.scheduler,
        workers=args.workers,
    )

    def show(event) -> None:
        if isinstance(event, PositionRestored):
            print(f"  restored {event.message} ({event.done}/{event.total})", flush=True)
        elif isinstance(event, InputSkipped):
            print(f"  skipped: {event.message}", flush=True)
        elif event.stage in ("positions", "blend") and event.done == event.total:
            print(f"  {event.stage}: {event.done}/{event.total}", flush=True)

    result = drain(work, show)
    for message in result.messages:
        print(f"  note: {message}")
    rows, cols = result.shape
    again = f", {result.resumed} of them restored before" if result.resumed else ""
    print(
        f"mosaic of {len(result.positions)} stream positions{again}: {rows} x {cols} px into "
        + ", ".join(str(f) for f in result.files)
    )
    return 0
