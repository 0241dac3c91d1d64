"""``temdeblur restore``: apply a trained run to registered bursts and write the restored images.

Torch is imported inside the command, so ``temdeblur --help`` stays light.

Output, per burst ``<name>``::

    OUT/<name>.tif          float32 (H, W) in [0, 1] (the run's GT window)
    OUT/<name>_counts.tif   uint16 (H, W) in GT detector counts
    OUT/restore.json        run, model, windows, tiling and per-image frames (also in each TIFF's description)

A dataset with more than one split writes into ``OUT/<Sample>/<Split>/`` so that names cannot collide.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile

from .core.atomic import atomic_write, write_json
from .core.dataset import BurstPair, find_splits, frame_files, read_dataset
from .core.errors import DataError
from .core.tiffio import read_image, tiff_info, write_image

RESTORE_FORMAT = "temdeblur-restore/1"


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``restore`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "restore", help="restore registered bursts with a trained run",
        description="Restore every burst of INPUT with the network of RUN. INPUT is a dataset folder in the "
                    "published layout (root, sample or split: every burst), a burst folder of frame TIFFs "
                    "<name>/<name>_0.tif, <name>_1.tif, ... or one multipage TIFF burst.",
    )
    p.add_argument("run", metavar="RUN", help="run folder (its best.pt) or checkpoint file")
    p.add_argument("input", metavar="INPUT", help="dataset folder, burst folder or burst TIFF")
    p.add_argument("out", metavar="OUT", help="output folder")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--tile", type=int, default=128,
                   help="tile side, px (default 128, which keeps full-width models under 2 GB on the CPU; "
                        "larger tiles are faster where memory allows, e.g. on a GPU)")
    p.add_argument("--overlap", type=int, default=32, help="overlap between tiles, px (default 32)")
    p.add_argument("--batch", type=int, default=1,
                   help="tiles per forward pass (default 1; more is faster on a GPU, costs memory)")
    p.add_argument("--adapt-bn", action="store_true",
                   help="first adapt the batch-norm statistics to INPUT (for a new sample type; the run is unchanged)")
    p.set_defaults(func=cmd_restore)
    return p


def read_inputs(path: str | Path) -> list[tuple[Path, BurstPair]]:
    """(relative output folder, burst) for every burst of a dataset, a burst folder or a burst TIFF.

    Raises
    ------
    DataError
        When `path` is none of these.
    """
    path = Path(path)
    if path.is_file():
        return [(Path(), BurstPair(path.stem, None, read_image(path, ndim=3)))]
    if not path.is_dir():
        raise DataError(path, "no such file or folder")
    if find_splits(path):
        found = read_dataset(path)
        for message in (m for split in found for m in split.skipped):
            print(f"  skipped: {message}")
        splits = [s for s in found if s.pairs]
        many = len(splits) > 1
        return [(Path(s.sample, s.split) if many else Path(), pair) for s in splits for pair in s.pairs]
    files = frame_files(path, path.name)  # in frame order: a plain name sort puts _10 before _2
    if not files:
        raise DataError(path, f"neither a dataset (<Sample>/<Split>/GT, Low) nor a burst folder of frame TIFFs "
                              f"{path.name}_0.tif, {path.name}_1.tif, ...")
    shapes = {tiff_info(f)[0] for f in files}
    if len(shapes) > 1:
        raise DataError(path, f"the frames of a burst must share one shape, found {sorted(shapes)}")
    return [(Path(), BurstPair(path.name, None, np.stack([read_image(f) for f in files])))]


def _write_float(path: Path, image: np.ndarray, metadata: dict) -> Path:
    return atomic_write(path, lambda tmp: tifffile.imwrite(
        tmp, image.astype(np.float32), metadata=metadata, photometric="minisblack"))


def cmd_restore(args: argparse.Namespace) -> int:
    from .core.progress import drain
    from .core.restore import restore

    inputs = read_inputs(args.input)
    out = Path(args.out)
    source = Path(args.input).resolve()
    for folder, pair in inputs:  # checked before the long restore: never replace a file of the input
        for target in (out / folder / f"{pair.name}.tif", out / folder / f"{pair.name}_counts.tif"):
            resolved = target.resolve()
            if target.exists() and (resolved == source or source in resolved.parents):
                raise DataError(target, "is a file of the input; choose another output folder")
    work = restore(args.run, [pair for _, pair in inputs], device=args.device, tile=args.tile,
                   overlap=args.overlap, batch=args.batch, adapt_bn=args.adapt_bn)
    results = drain(work, lambda e: print(f"  {e.stage} {e.done}/{e.total} {e.message}".rstrip(), flush=True))
    images = {}
    for (folder, _), result in zip(inputs, results):
        for message in result.messages:
            print(f"  note: {message}")
        meta = {**result.metadata, "name": result.name, "input": str(args.input)}
        # not with_suffix: a name like "burst.v2" would lose its ".v2"
        _write_float(out / folder / f"{result.name}.tif", result.image, meta)
        write_image(out / folder / f"{result.name}_counts.tif", result.counts, metadata=meta)
        images[str(folder / result.name)] = {"frames": result.frames, "input_frames": meta["input_frames"],
                                             "messages": result.messages}
    common = {k: v for k, v in results[0].metadata.items() if k not in ("frames", "input_frames")}
    write_json(out / "restore.json", {"format": RESTORE_FORMAT, **common, "input": str(args.input),
                                      "images": images})
    print(f"restored {len(results)} image(s) with {common['model']['name']} into {out}")
    return 0
