"""``temdeblur export``: a trained run as a model file for other tools (core.share; docs/sharing.md)."""

from __future__ import annotations

import argparse

FORMATS = ("onnx", "bioimageio")


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``export`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "export",
        help="export a trained run for other tools (ONNX, bioimage.io)",
        description="Write a trained run as an ONNX model (dynamic height and width; the run's windows, frame "
        "count and size multiple in its metadata) and check onnxruntime against torch on random bursts, or "
        "as a bioimage.io model package (TorchScript and ONNX weights, the windows as pre- and "
        "post-processing, test tensors from a real burst, a cover) that must pass bioimage.io's own model "
        'test before it is written. Needs the export extra: pip install "napari-temdeblur[export]". '
        "See docs/sharing.md.",
    )
    p.add_argument("run", metavar="RUN", help="run folder (with best.pt), checkpoint file or 'pretrained'")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="model format (default: onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="the model file to write, e.g. MODEL.onnx or MODEL.zip")
    p.add_argument(
        "--sample",
        metavar="BURST",
        help="bioimageio: a registered burst (dataset, burst folder or TIFF: its first burst) for the package's "
        "test tensors and cover (default: the first Val burst of the run's training data)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace --out even if it is not a model temdeblur export wrote"
    )
    p.set_defaults(func=cmd_export)
    return p


def cmd_export(args: argparse.Namespace) -> int:
    from napari_temdeblur.core.share import export_bioimageio, export_onnx

    if args.format == "bioimageio":
        package = export_bioimageio(args.run, args.out, sample=args.sample, overwrite=args.overwrite)
        meta = package.metadata
        print(
            f"wrote {package.path}: bioimage.io model package of {meta['model']['name']} (width "
            f"{meta['model']['width']}), input burst (batch, {meta['frames']} frames, y, x) in counts with y and x "
            f"multiples of {meta['size_multiple']} px; TorchScript and ONNX match torch within "
            f"{package.max_abs_difference:.1e}; bioimage.io model test: {package.test}"
        )
        return 0
    if args.sample is not None:
        raise ValueError("--sample applies to --format bioimageio only")

    result = export_onnx(args.run, args.out, overwrite=args.overwrite)
    meta = result.metadata
    print(
        f"wrote {result.path}: {meta['model']['name']} (width {meta['model']['width']}), input burst (1, "
        f"{meta['frames']}, H, W) with H and W multiples of {meta['size_multiple']} px; onnxruntime matches "
        f"torch within {result.max_abs_difference:.1e}"
    )
    return 0
