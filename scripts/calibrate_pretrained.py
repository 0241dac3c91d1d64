"""Calibrate the shipped pretrained fast-burst's trust intervals (docs/trust.md), and measure them.

    python scripts/calibrate_pretrained.py --out /tmp/calibrate

1. simulate both samples at the paper's geometry with seed 12 (the pretrained weights were trained on
   seed 11's Train and Val splits, so these images are new to them);
2. calibrate on their Val splits (90 % coverage) into ``core/models/pretrained/calibration.json``
   (``temdeblur calibrate`` refuses the shipped weights, so that a user never rewrites the package);
3. evaluate on their Test splits with ``--uncertainty``: coverage, width, width-error Spearman;
4. the coverage of every Test pixel of the sample by its distance to the sample's edge (a grid bar,
   the registration padding), where the spread's edge factor widens the intervals. The distance is
   to the edge of the scoring mask (GT and every frame), not of the frames alone as the factor's.

Step 1 and step 3 are not redone when their output exists (delete it to redo it); steps 2 and 4 always run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from napari_temdeblur.core import drain
from napari_temdeblur.core.imaging import window_pair
from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.models import PRETRAINED, load_model
from napari_temdeblur.core.restore import (
    CalibrateOptions,
    ImageRestored,
    RestoreOptions,
    calibrate_with,
    restore_with,
    write_calibration,
)

SAMPLES = ("Kidney", "CalibrationGrid")
#: Bands of distance (px) to the sample's edge whose coverage step 4 prints.
EDGE_BANDS_PX = (0, 2, 4, 6, 8, 12, 16, 32, np.inf)


def edge_coverage(model, checkpoint, pairs) -> None:
    """Print the coverage of the pairs' sample pixels (GT and every frame above its window minimum) by
    distance to the nearest non-sample pixel (the image border is no edge)."""
    inside = np.zeros(len(EDGE_BANDS_PX) - 1)
    count = np.zeros(len(EDGE_BANDS_PX) - 1)
    for event in restore_with(model, checkpoint, pairs, RestoreOptions(trust=True)):
        if not isinstance(event, ImageRestored):
            continue
        truth, _, mask = window_pair(pairs[event.index], checkpoint.gt_window, checkpoint.low_window)
        lo, hi = event.result.interval()
        padded = np.pad(mask.astype(np.uint8), 1, constant_values=1)
        distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        band = np.digitize(distance[mask], EDGE_BANDS_PX) - 1
        covered = ((truth >= lo) & (truth <= hi))[mask]
        np.add.at(inside, band, covered)
        np.add.at(count, band, 1)
    print("distance to the sample's edge (px) | pixels | coverage")
    for k, (a, b) in enumerate(zip(EDGE_BANDS_PX, EDGE_BANDS_PX[1:])):
        if count[k]:
            print(f"{a:g}-{b:g} | {int(count[k])} | {inside[k] / count[k]:.3f}")
    print(f"all | {int(count.sum())} | {inside.sum() / count.sum():.3f}")


def temdeblur(args: list[str]) -> None:
    print("$ temdeblur " + " ".join(args), flush=True)
    if subprocess.run([sys.executable, "-m", "napari_temdeblur.cli", *args]).returncode:
        raise SystemExit(f"failed: temdeblur {' '.join(args)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data = args.out / "data"
    if not data.exists():
        temdeblur(
            ["simulate", str(data), "--size", "full", "--layout", "dataset", "--specimen", "kidney", "grid"]
            + ["--sessions", "4", "--images", "6", "--seed", "12"]
        )
    folders = [data / s for s in SAMPLES]
    model, checkpoint = load_model(PRETRAINED)
    pairs = [p for f in folders for split in read_dataset(f, ["Val"]) for p in split.pairs]
    sources = ["temdeblur simulate DATA --size full --specimen kidney grid --sessions 4 --images 6 --seed 12"]
    calibration = drain(calibrate_with(model, checkpoint, pairs, CalibrateOptions(), data=sources))
    print(f"wrote {write_calibration(checkpoint.path, calibration)}: scale {calibration.scale:.4f}")
    scores = args.out / "evaluation.json"
    if not scores.exists():
        temdeblur(["evaluate", *map(str, folders), "--model", PRETRAINED, "--uncertainty", "--json", str(scores)])
    edge_coverage(model, checkpoint, [p for f in folders for split in read_dataset(f, ["Test"]) for p in split.pairs])


if __name__ == "__main__":
    main()
