"""Make the pretrained fast-burst weights shipped in the package: the exact commands, from simulation on.

    python scripts/make_pretrained.py --out /tmp/pretrain [--epochs 400]

1. simulate kidney-like tissue and the calibration grid at the paper's geometry (2048 px sharp images,
   1024 px stream frames, 4 sessions of 6 sharp images each, seed 11: not the seed of the data the docs'
   tables are measured on);
2. train fast-burst from scratch on both samples' Train splits (best epoch by Val SSIM), on the CPU
   with 2 threads, a fixed number of epochs so the run is reproducible;
3. evaluate it on both samples' Test splits with the classical baselines;
4. copy best.pt into ``src/napari_temdeblur/core/models/pretrained/`` with a manifest (size, SHA-256,
   these commands, the scores) that ``temdeblur`` checks before using the file.

Every step is a ``temdeblur`` command, printed as it runs; a step whose output exists is not redone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

MODEL = "fast-burst"
TARGET = Path(__file__).resolve().parents[1] / "src" / "napari_temdeblur" / "core" / "models" / "pretrained"
SAMPLES = ("Kidney", "CalibrationGrid")


def temdeblur(args: list[str]) -> None:
    """Run ``temdeblur ARGS`` on 2 CPU threads, failing loudly."""
    print("$ temdeblur " + " ".join(args), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    if subprocess.run([sys.executable, "-m", "napari_temdeblur.cli", *args], env=env).returncode:
        raise SystemExit(f"failed: temdeblur {' '.join(args)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (data, run, evaluation)")
    parser.add_argument("--epochs", type=int, default=400, help="epochs of 50 steps (default 400)")
    args = parser.parse_args()
    data, run, scores = args.out / "data", args.out / "run", args.out / "evaluation.json"
    simulate = [
        "simulate",
        str(data),
        "--size",
        "full",
        "--layout",
        "dataset",
        "--specimen",
        "kidney",
        "grid",
        "--sessions",
        "4",
        "--images",
        "6",
        "--seed",
        "11",
    ]
    train = [
        "train",
        *(str(data / s) for s in SAMPLES),
        "--model",
        MODEL,
        "--init",
        "scratch",
        "--out",
        str(run),
        "--epochs",
        str(args.epochs),
        "--steps-per-epoch",
        "50",
        "--patch",
        "64",
        "--batch",
        "8",
        "--val-tile",
        "128",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--time-limit",
        "none",
        "--patience",
        "none",
    ]
    evaluate = [
        "evaluate",
        *(str(data / s) for s in SAMPLES),
        "--model",
        str(run),
        "--baselines",
        "--inference-tile",
        "512",
        "--device",
        "cpu",
        "--json",
        str(scores),
    ]
    if not (data / SAMPLES[0]).is_dir():
        temdeblur(simulate)
    if not (run / "last.pt").is_file():
        temdeblur(train)
    elif json.loads((run / "config.json").read_text())["train"]["epochs"] != args.epochs:
        raise SystemExit(f"{run} was trained for other --epochs; remove it or give the same --epochs")
    elif len((run / "history.csv").read_text().splitlines()) - 1 < args.epochs:
        temdeblur([*train, "--resume"])  # an interrupted run continues exactly where it stopped
    temdeblur(evaluate)
    TARGET.mkdir(parents=True, exist_ok=True)
    weights = TARGET / f"{MODEL}.pt"
    shutil.copyfile(run / "best.pt", weights)
    evaluation = json.loads(scores.read_text())
    manifest = {
        "model": MODEL,
        "file": weights.name,
        "bytes": weights.stat().st_size,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "made": str(date.today()),
        "commands": [
            "python scripts/make_pretrained.py " + " ".join(sys.argv[1:]),
            *("temdeblur " + " ".join(step) for step in (simulate, train, evaluate)),
        ],
        "test_scores": {
            sample: {
                (MODEL if key == run.name else key): {k: round(v, 4) for k, v in method.items() if v is not None}
                for key, method in part["methods"].items()
            }
            for sample, part in evaluation["samples"].items()
        },
    }
    (TARGET / f"{MODEL}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {weights} ({manifest['bytes']:,} bytes) and its manifest")
    for sample, methods in manifest["test_scores"].items():
        print(f"  {sample} Test SSIM: " + ", ".join(f"{k} {v['ssim_mean']:.3f}" for k, v in methods.items()))


if __name__ == "__main__":
    main()
