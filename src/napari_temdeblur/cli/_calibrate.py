"""``temdeblur calibrate``: calibrate a run's per-pixel trust intervals on images with truth (docs/trust.md).

Torch is imported inside the command, so ``temdeblur --help`` stays light.
"""

from __future__ import annotations

import argparse

from napari_temdeblur.core.restore import CalibrateOptions, RestoreOptions

from ._options import POSITION_OPTIONS, add_options, options_from
from ._output import print_progress


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``calibrate`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "calibrate",
        help="calibrate a run's per-pixel trust intervals on images with truth",
        description="Restore the --split (Val) images of DATA with RUN, each also mirrored left-right, and "
        "scale the difference of the two into intervals that hold the truth for the --coverage share of the "
        "pixels (split conformal prediction); writes calibration.json into the run folder. Training "
        "calibrates on its Val split when it ends; run this for an older run or other data. Calibrate on "
        "images like those you will restore: the guarantee holds for such images. See docs/trust.md.",
    )
    p.add_argument("run", metavar="RUN", help="run folder (with best.pt) or checkpoint file")
    p.add_argument("data", nargs="+", metavar="DATA", help="dataset folder(s) in the published layout")
    add_options(p, CalibrateOptions)
    add_options(p, RestoreOptions, POSITION_OPTIONS)
    p.set_defaults(func=cmd_calibrate, memory_flags=("--inference-tile", "--batch"))
    return p


def cmd_calibrate(args: argparse.Namespace) -> int:
    from napari_temdeblur.core import drain
    from napari_temdeblur.core.models import checkpoint_path
    from napari_temdeblur.core.restore import calibrate, calibration_path

    options = options_from(CalibrateOptions, args, restore=options_from(RestoreOptions, args))
    calibration = drain(
        calibrate(args.run, args.data, options), lambda e: print_progress(e) if e.stage == "calibrate" else None
    )
    print(
        f"calibrated on {calibration.pixels:,} pixels of {len(calibration.images)} {calibration.split} image(s): "
        f"the {calibration.nominal_coverage:.0%} interval is the restoration +- {calibration.scale:.3g} x its "
        f"flip spread (it holds {calibration.empirical_coverage:.1%} of those pixels)"
    )
    print(f"wrote {calibration_path(checkpoint_path(args.run))}")
    return 0
