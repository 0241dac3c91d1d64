"""``temdeblur evaluate``: the paper's tables (and figures) for trained runs on a registered dataset.

Torch-based modules are imported inside the command, so ``temdeblur --help`` stays light.
The protocol is documented in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "evaluate", help="score runs and classical baselines against the truth (SSIM, PSNR)",
        description="Score the unrestored input (the centre registered frame), optionally the classical "
                    "baselines and each RUN on the 128 x 128 sample tiles of the --split images of DATA, "
                    "as the paper's Tables 1-3; --cross-validation gives Table 4. A run's method key is "
                    "its folder name. See docs/evaluation.md.",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="dataset folder(s) in the published layout")
    p.add_argument("--model", nargs="+", default=[], metavar="RUN", help="run folder(s) (with best.pt)")
    p.add_argument("--split", default="Test", help="split to evaluate (default Test)")
    p.add_argument("--baselines", action="store_true",
                   help="add frame-mean, wiener and richardson-lucy (motion PSF fitted per image)")
    p.add_argument("--json", metavar="FILE", help="write the scores as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the tables as markdown")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--tile", type=int, default=128, help="evaluation tile side, px (default 128, as the paper)")
    p.add_argument("--all-rows", action="store_true",
                   help="score tiles in all rows (default: the top half of each image, as the paper)")
    p.add_argument("--restore-tile", type=int, default=128, help="inference tile side, px (default 128)")
    p.add_argument("--batch", type=int, default=1, help="inference tiles per forward pass (default 1)")
    p.add_argument("--adapt-bn", action="store_true",
                   help="adapt each run's batch-norm statistics to each sample first (runs are unchanged)")
    p.add_argument("--cross-validation", action="store_true",
                   help="score each run on all images of the sessions it held out (train with --hold-out)")
    p.add_argument("--figure", metavar="PNG", help="write GT | input | each method for the first scored image")
    p.add_argument("--synthetic-figure", metavar="PNG",
                   help="write the paper's Fig 8: each run on the three synthetic test images (adapted BN)")
    p.set_defaults(func=cmd_evaluate)
    return p


def cmd_evaluate(args: argparse.Namespace) -> int:
    from napari_temdeblur.core import atomic_write, drain, write_json
    from napari_temdeblur.core.evaluate import evaluate, format_table, markdown_table
    from napari_temdeblur.core.imaging import TOP_HALF_ROWS

    from .cli import print_progress

    if args.synthetic_figure and not args.model:
        raise ValueError("--synthetic-figure draws the runs' outputs: give them with --model RUN")
    work = evaluate(args.data, args.model, split=args.split, baselines=args.baselines, device=args.device,
                    tile=args.tile, adapt_bn=args.adapt_bn, cross_validation=args.cross_validation,
                    keep_examples=1 if args.figure else 0,
                    keep_rows_fraction=None if args.all_rows else TOP_HALF_ROWS,
                    restore_tile=args.restore_tile, batch=args.batch)
    # the per-tile events of restoration would flood a log: only each stage's end is printed for them
    evaluation = drain(work, lambda e: print_progress(e) if e.stage == "evaluate" or e.done == e.total else None)
    for message in evaluation.messages:
        print(f"  note: {message}")
    print()
    print(format_table(evaluation))
    if args.json:
        print(f"scores: {write_json(args.json, evaluation.to_json(), allow_nan=False)}")
    if args.markdown:
        text = markdown_table(evaluation) + "\n"
        print(f"tables: {atomic_write(args.markdown, lambda tmp: tmp.write_text(text))}")
    if args.figure:
        from napari_temdeblur.core.evaluate import comparison_figure

        print(f"figure: {comparison_figure(evaluation.examples[0], Path(args.figure))}")
    if args.synthetic_figure:
        from napari_temdeblur.core.evaluate import synthetic_figure

        png = drain(synthetic_figure(args.model, Path(args.synthetic_figure), device=args.device, adapt_bn=True,
                                     tile=args.restore_tile, batch=args.batch),
                    print_progress)
        print(f"synthetic figure: {png}")
    return 0
