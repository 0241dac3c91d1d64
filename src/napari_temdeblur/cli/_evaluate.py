"""``temdeblur evaluate``: the paper's tables (and figures) for trained runs on a registered dataset.

Torch-based modules are imported inside the command, so ``temdeblur --help`` stays light.
The protocol is documented in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from napari_temdeblur.core.evaluate import EvaluateOptions
from napari_temdeblur.core.io import check_overwrite
from napari_temdeblur.core.restore import RestoreOptions

from ._options import add_options, options_from
from ._output import print_progress


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "evaluate",
        help="score runs and classical baselines against the truth (SSIM, PSNR)",
        description="Score the unrestored input (the centre registered frame), optionally the classical "
        "baselines and each RUN on the --score-tile sample tiles (128 px, as the paper) of the --split images of DATA, "
        "as the paper's Tables 1-3; --cross-validation gives Table 4. A run's method key is "
        "its folder name. See docs/evaluation.md.",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="dataset folder(s) in the published layout")
    p.add_argument("--model", nargs="+", default=[], metavar="RUN", help="run folder(s) (with best.pt)")
    # --tile and --restore-tile: the flags' names before score and inference tiles were told apart
    add_options(p, EvaluateOptions, aliases={"score_tile": ("--tile",)})
    # scores only: the runs' trust intervals are asked for with --uncertainty (which also scores them);
    # the flags are for looking at one restoration (restore --flags)
    restoring = [
        f.name
        for f in dataclasses.fields(RestoreOptions)
        if "help" in f.metadata and f.name not in ("trust", "flags", "streak_px")
    ]
    add_options(p, RestoreOptions, restoring, aliases={"inference_tile": ("--restore-tile",)})
    p.add_argument("--json", metavar="FILE", help="write the scores as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the tables as markdown")
    p.add_argument("--figure", metavar="PNG", help="write GT | input | each method for the first scored image")
    p.add_argument(
        "--synthetic-figure",
        metavar="PNG",
        help="write the paper's Fig 8: each run on the three synthetic test images (adapted BN)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files that evaluate did not write (its own earlier outputs are replaced anyway)",
    )
    p.set_defaults(func=cmd_evaluate, memory_flags=("--inference-tile", "--batch"))
    return p


def cmd_evaluate(args: argparse.Namespace) -> int:
    from napari_temdeblur.core import atomic_write, drain, write_json
    from napari_temdeblur.core.evaluate import (
        TABLES_MARK,
        comparison_figure,
        evaluate,
        format_table,
        markdown_table,
        synthetic_figure,
        written_by_evaluate,
    )

    if args.synthetic_figure and not args.model:
        raise ValueError("--synthetic-figure draws the runs' outputs: give them with --model RUN")
    outputs = [Path(p) for p in (args.json, args.markdown, args.figure, args.synthetic_figure) if p]
    check_overwrite(None, outputs, written_by_evaluate, overwrite=args.overwrite)  # before the long scoring
    restoring = options_from(RestoreOptions, args)
    options = options_from(EvaluateOptions, args, keep_examples=1 if args.figure else 0, restore=restoring)
    # the per-tile events of restoration would flood a log: only each stage's end is printed for them
    evaluation = drain(
        evaluate(args.data, args.model, options),
        lambda e: print_progress(e) if e.stage == "evaluate" or e.done == e.total else None,
    )
    for message in evaluation.messages:
        print(f"  note: {message}")
    print()
    print(format_table(evaluation))
    if args.json:
        print(f"scores: {write_json(args.json, evaluation.to_json(), allow_nan=False)}")
    if args.markdown:
        text = f"{TABLES_MARK}\n{markdown_table(evaluation)}\n"
        print(f"tables: {atomic_write(args.markdown, lambda tmp: tmp.write_text(text))}")
    if args.figure:
        print(f"figure: {comparison_figure(evaluation.examples[0], Path(args.figure))}")
    if args.synthetic_figure:
        # the paper adapted the batch-norm statistics to the synthetic images
        synthetic = dataclasses.replace(restoring, adapt_bn=True)
        png = drain(synthetic_figure(args.model, Path(args.synthetic_figure), synthetic), print_progress)
        print(f"synthetic figure: {png}")
    return 0
