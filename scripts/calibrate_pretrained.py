"""Calibrate the shipped pretrained fast-burst's trust intervals (docs/trust.md), and measure them.

    python scripts/calibrate_pretrained.py --out /tmp/calibrate

1. simulate both samples at the paper's geometry with seeds 12, 13 and 14 (calibration) and 15 and 16
   (measurement); the pretrained weights were trained on seed 11's Train and Val splits, so all these
   images are new to them;
2. calibrate on the Val splits of the three calibration simulations (90 % coverage) into
   ``core/models/pretrained/calibration.json`` (``temdeblur calibrate`` refuses the shipped weights, so
   that a user never rewrites the package): the spread's regression is fitted on half their pixels,
   the scale on the other half; several simulations, so that the regression learns how the error's
   level varies between acquisitions, not only within one;
3. evaluate with ``--uncertainty`` on the Test splits of the two measurement simulations, which played
   no part in calibrating or in choosing the spread: coverage, width, width-error Spearman.

A step whose output exists is not redone (delete it to redo it).
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

from napari_temdeblur.core import drain
from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.models import PRETRAINED, load_model
from napari_temdeblur.core.restore import CalibrateOptions, calibrate_with, write_calibration

SAMPLES = ("Kidney", "CalibrationGrid")
CALIBRATION_SEEDS = (12, 13, 14)
MEASUREMENT_SEEDS = (15, 16)
SIMULATE = ["--size", "full", "--layout", "dataset", "--specimen", "kidney", "grid", "--sessions", "4", "--images", "6"]


def temdeblur(args: list[str]) -> None:
    print("$ temdeblur " + " ".join(args), flush=True)
    if subprocess.run([sys.executable, "-m", "napari_temdeblur.cli", *args]).returncode:
        raise SystemExit(f"failed: temdeblur {' '.join(args)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for seed in CALIBRATION_SEEDS + MEASUREMENT_SEEDS:
        if not (args.out / f"seed{seed}").exists():
            temdeblur(["simulate", str(args.out / f"seed{seed}"), *SIMULATE, "--seed", str(seed)])
    model, checkpoint = load_model(PRETRAINED)
    pairs = [
        dataclasses.replace(p, name=f"seed{seed}/{sample}/{p.name}")
        for seed in CALIBRATION_SEEDS
        for sample in SAMPLES
        for split in read_dataset(args.out / f"seed{seed}" / sample, ["Val"])
        for p in split.pairs
    ]
    sources = [f"temdeblur simulate DATA {' '.join(SIMULATE)} --seed {seed}" for seed in CALIBRATION_SEEDS]
    calibration = drain(calibrate_with(model, checkpoint, pairs, CalibrateOptions(), data=sources))
    print(f"wrote {write_calibration(checkpoint.path, calibration)}: scale {calibration.scale:.4f}")
    for seed in MEASUREMENT_SEEDS:
        folders = [str(args.out / f"seed{seed}" / s) for s in SAMPLES]
        scores = args.out / f"evaluation_seed{seed}.json"
        temdeblur(["evaluate", *folders, "--model", PRETRAINED, "--uncertainty", "--json", str(scores)])


if __name__ == "__main__":
    main()
