"""``temdeblur restore``: apply a trained run to registered bursts or a session stream and write the images.

Torch is imported inside the command, so ``temdeblur --help`` stays light.

Output, per restored image ``<name>`` (a burst's name, or ``frame_0123`` for stream position 123)::

    OUT/<name>.tif          float32 (H, W) in [0, 1] (the run's GT window)
    OUT/<name>_counts.tif   uint16 (H, W) in GT detector counts
    OUT/<name>_trust.tif    with --trust: float32 (H, W) width of each pixel's calibrated interval, in the
                            [0, 1] scale of <name>.tif (the interval is <name>.tif +- half of it; docs/trust.md)
    OUT/<name>_flags.tif    with --flags: uint8 (H, W), 1 where the frames contradict the restored image
    OUT/restore.json        run, model, windows, tiling and per-image frames (also in each TIFF's description);
                            with --flags each image's ``flagged_fraction`` and fitted ``flags`` model

A dataset with more than one split writes into ``OUT/<Sample>/<Split>/`` so that names cannot collide.
Bursts are read one at a time and each result is written as soon as it is made (restore.json first),
so memory stays at about one image and an interrupted run keeps what it wrote.

OUT may hold earlier restorations: restore.json keeps every run's images, and a file is replaced only
when restore.json lists it (restored there before) or with ``--overwrite``; the input is never
replaced. OUT is locked while the run writes (docs/safety.md).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import tifffile

from napari_temdeblur.core import DataError, atomic_write, write_json
from napari_temdeblur.core.io import (
    RESTORE_FORMAT,
    RESTORE_RECORD,
    check_overwrite,
    folder_lock,
    is_session_folder,
    open_session,
    path_component,
    read_inputs,
    read_json,
    write_image,
)
from napari_temdeblur.core.restore import RestoreOptions

from ._options import add_options, options_from

#: Exit status when some inputs were skipped and the others restored (documented in the help).
SKIPPED = 1


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``restore`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "restore",
        help="restore registered bursts or a session stream with a trained run",
        description="Restore every burst of INPUT with the network of RUN. INPUT is a dataset folder in the "
        "published layout (root, sample or split: every burst), a burst folder of frame TIFFs "
        "<name>/<name>_0.tif, <name>_1.tif, ..., one multipage TIFF burst, or an acquisition "
        "session folder: then stream positions are restored, each from the frames around it "
        "registered on the fly to it.",
        epilog="OUT keeps earlier restorations: a file is replaced only when OUT's restore.json lists it, "
        "or with --overwrite; the input never. Exit status 0 when every input was restored, exit status "
        f"{SKIPPED} when some inputs were skipped (each named, the others restored), 2 on bad input or a "
        "device failure (nothing restored), 130 when interrupted.",
    )
    p.add_argument(
        "run",
        metavar="RUN",
        help="run folder (its best.pt), checkpoint file, a model written by temdeblur export (.onnx, or a "
        "bioimage.io package .zip) or pretrained",
    )
    p.add_argument("input", metavar="INPUT", help="dataset folder, burst folder, burst TIFF or session folder")
    p.add_argument("out", metavar="OUT", help="output folder")
    # --tile: the flag's name before inference and score tiles were told apart
    add_options(p, RestoreOptions, aliases={"inference_tile": ("--tile",)})
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--positions",
        type=_positions,
        help="session stream only: frames to restore, e.g. 10,20,30 (default: every frame)",
    )
    where.add_argument("--every", type=int, metavar="K", help="session stream only: every K-th frame from 0")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files in OUT that restore did not write there (never the input's)",
    )
    p.set_defaults(func=cmd_restore, memory_flags=("--inference-tile", "--batch"))
    return p


def _positions(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"positions must be frame numbers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("no positions given")
    return values


def _write_float(path: Path, image: np.ndarray, metadata: dict) -> Path:
    return atomic_write(
        path, lambda tmp: tifffile.imwrite(tmp, image.astype(np.float32), metadata=metadata, photometric="minisblack")
    )


def _files(out: Path, key: str) -> list[Path]:
    """The files of image `key` in OUT: float, counts, and (with --trust, --flags) interval widths and flags."""
    return [out / f"{key}.tif", out / f"{key}_counts.tif", out / f"{key}_trust.tif", out / f"{key}_flags.tif"]


def _check_input(out: Path, source: Path, keys: list[str]) -> None:
    """Refuse, before the long restore, to replace a file of the input (--overwrite or not)."""
    for key in keys:
        for file in _files(out, key):
            resolved = file.resolve()
            if file.exists() and (resolved == source or source in resolved.parents):
                raise DataError(file, "is a file of the input; choose another output folder")


def _earlier_images(out: Path, keys: list[str], overwrite: bool) -> dict:
    """The images OUT's restore.json lists from earlier runs, once this run's files are known to
    replace only those (or `overwrite` was given)."""
    path = out / RESTORE_RECORD
    try:
        record = read_json(path) if path.is_file() else {}
    except DataError:
        record = {}
    ours = record.get("format") == RESTORE_FORMAT
    images = record.get("images") if ours and isinstance(record.get("images"), dict) else {}
    owned = [file for key in images for file in _files(out, key)] + ([path] if ours else [])
    check_overwrite(out, [*(file for key in keys for file in _files(out, key)), path], owned, overwrite=overwrite)
    return images


def cmd_restore(args: argparse.Namespace) -> int:
    from napari_temdeblur.core.restore import (
        ImageRestored,
        InputSkipped,
        TileProgress,
        frame_name,
        restore,
        restore_stream,
    )

    out, source = Path(args.out), Path(args.input).resolve()
    options = options_from(RestoreOptions, args)
    if is_session_folder(args.input):
        session = open_session(args.input)
        n_frames = session.stream.shape[0]
        if args.every is not None and args.every < 1:
            raise ValueError(f"--every must be at least 1, got {args.every}")
        positions = args.positions or list(range(0, n_frames, args.every or 1))
        folders = [Path()] * len(positions)
        pixel_sizes = [session.meta["stream_pixel_size_nm"]] * len(positions)
        names = [frame_name(p, n_frames) if 0 <= p < n_frames else str(p) for p in positions]
        work = restore_stream(args.run, session, positions, options)
    else:
        if args.positions is not None or args.every is not None:
            raise ValueError(
                f"{args.input}: --positions and --every are for a session stream, and this is not a "
                "session folder (no session.json)"
            )
        inputs = read_inputs(args.input)
        folders, names, pixel_sizes = inputs.folders, inputs.names, inputs.pixel_sizes_nm
        work = restore(args.run, inputs, options)
    keys = [
        "/".join(path_component(part, args.input, "input name") for part in (*folder.parts, name))
        for folder, name in zip(folders, names)
    ]
    _check_input(out, source, keys)
    # the first event comes once the run is loaded: a bad run is reported before OUT is made
    first = next(work)
    with folder_lock(out, "restoring"):
        images = _earlier_images(out, keys, args.overwrite)
        again = sum(key in images for key in keys)
        if again:
            print(f"  replacing {again} image(s) restored earlier into {out} (those of this input)")
        common, restored, skipped = None, 0, 0
        for event in itertools.chain([first], work):
            if isinstance(event, ImageRestored):
                result, key = event.result, keys[event.index]
                for message in result.messages:
                    print(f"  note: {message}")
                # the input as an absolute path: the folder is opened again from anywhere (napari OUT)
                meta = {**result.metadata, "name": result.name, "input": str(source)}
                per_image = ("frames", "input_frames", "position", "origin_yx", "registration", "flags")
                common = {k: v for k, v in result.metadata.items() if k not in per_image}
                images[key] = {
                    **{k: meta[k] for k in per_image if k in meta},
                    "messages": result.messages,
                    "run": meta["run"],
                    "input": str(source),
                    # the restored image lies on its input's grid: opened alone, it shows in nm
                    **({"pixel_size_nm": pixel_sizes[event.index]} if pixel_sizes[event.index] else {}),
                }
                if result.flags is not None:
                    images[key]["flagged_fraction"] = result.flags.fraction
                # the record first: a kill between the two never leaves a file restore.json does not list
                write_json(
                    out / RESTORE_RECORD, {"format": RESTORE_FORMAT, **common, "input": str(source), "images": images}
                )
                float_file, counts_file, trust_file, flags_file = _files(out, key)
                _write_float(float_file, result.image, meta)
                write_image(counts_file, result.counts, metadata=meta)
                # an earlier --trust or --flags run's file would no longer match this image
                if result.interval_width is not None:
                    _write_float(trust_file, result.interval_width, meta)
                else:
                    trust_file.unlink(missing_ok=True)
                if result.flags is not None:
                    write_image(flags_file, result.flags.mask.astype(np.uint8), metadata=meta)
                else:
                    flags_file.unlink(missing_ok=True)
                restored += 1
            elif isinstance(event, InputSkipped):
                skipped += 1
                print(f"  skipped: {event.message}", flush=True)
            elif event.done == event.total or (event.stage == "restore" and not isinstance(event, TileProgress)):
                print(f"  {event.stage} {event.done}/{event.total} {event.message}".rstrip(), flush=True)
    if common is None:
        raise DataError(args.input, "nothing could be restored (see the messages above)")
    print(f"restored {restored} image(s) with {common['model']['name']} into {out}")
    if skipped:
        print(f"{skipped} of {len(keys)} input(s) skipped (named above): exit status {SKIPPED}")
        return SKIPPED
    return 0
