"""Calibrate the shipped pretrained fast-burst's trust intervals (docs/trust.md), and measure them.

    python scripts/calibrate_pretrained.py --out /tmp/calibrate

1. simulate both samples at the paper's geometry with seed 12 (the pretrained weights were trained on
   seed 11's Train and Val splits, so these images are new to them);
2. calibrate on their Val splits (90 % coverage) into ``core/models/pretrained/calibration.json``
   (``temdeblur calibrate`` refuses the shipped weights, so that a user never rewrites the package);
3. evaluate on their Test splits with ``--uncertainty``: coverage, width, width-error Spearman.

A step whose output exists is not redone (delete it to redo it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from napari_temdeblur.core import drain
from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.models import PRETRAINED, load_model
from napari_temdeblur.core.restore import CalibrateOptions, calibrate_with, write_calibration

SAMPLES = ("Kidney", "CalibrationGrid")


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
    temdeblur(["evaluate", *map(str, folders), "--model", PRETRAINED, "--uncertainty", "--json", str(scores)])


if __name__ == "__main__":
    main()
