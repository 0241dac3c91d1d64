"""``temdeblur export``: a trained run as a model file for other tools (core.share; docs/sharing.md)."""

from __future__ import annotations

import argparse

FORMATS = ("onnx",)


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``export`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "export",
        help="export a trained run for other tools (ONNX)",
        description="Write a trained run as an ONNX model (dynamic height and width; the run's windows, frame "
        "count and size multiple in its metadata) and check onnxruntime against torch on random bursts. "
        'Needs the export extra: pip install "napari-temdeblur[export]". See docs/sharing.md.',
    )
    p.add_argument("run", metavar="RUN", help="run folder (with best.pt), checkpoint file or 'pretrained'")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="model format (default: onnx)")
    p.add_argument("--out", required=True, metavar="FILE", help="the model file to write, e.g. MODEL.onnx")
    p.add_argument(
        "--overwrite", action="store_true", help="replace --out even if it is not a model temdeblur export wrote"
    )
    p.set_defaults(func=cmd_export)
    return p


def cmd_export(args: argparse.Namespace) -> int:
    from napari_temdeblur.core.share import export_onnx

    result = export_onnx(args.run, args.out, overwrite=args.overwrite)
    meta = result.metadata
    print(
        f"wrote {result.path}: {meta['model']['name']} (width {meta['model']['width']}), input burst (1, "
        f"{meta['frames']}, H, W) with H and W multiples of {meta['size_multiple']} px; onnxruntime matches "
        f"torch within {result.max_abs_difference:.1e}"
    )
    return 0
