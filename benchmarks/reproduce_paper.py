"""Reproduce the paper's experiments on simulated data: Tables 1-4 and the synthetic-image figure.

Simulates a registered dataset of both specimens at the paper's geometry, trains every run the tables
need through ``temdeblur train`` (each for the same wall-clock budget, one CPU thread per run, `--jobs`
runs at a time; runs that already have a best.pt are kept, so an interrupted reproduction resumes) and
evaluates them through ``temdeblur evaluate``, writing the tables as markdown:

    python benchmarks/reproduce_paper.py --out /tmp/repro [--minutes 4] [--width tiny] [--jobs 2]

OUT/data              the simulated dataset (Kidney, CalibrationGrid; the last session is Test)
OUT/runs/<Sample>/M   Tables 1 and 2: every model M trained on one specimen
OUT/runs/Both/M       Table 3: the best model trained on both specimens
OUT/runs/cv/holdout-sessK   Table 4: the best model trained on the kidney data without session K
OUT/table3/...        copies of the three Table 3 runs under names that say what they were trained on
OUT/reproduction.md   the tables; OUT/*.json the evaluations; OUT/synthetic.png the figure
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SAMPLES = ("Kidney", "CalibrationGrid")
PAPER_MODELS = ("bu", "bdu-t", "bdu-uc", "bdu-uc-ssim", "deblurgan")
# The plugin's default network beside the paper's, at its own width and from scratch (its pretrained
# start was made from the same simulator), so that Tables 1 and 2 compare equal training budgets.
DEFAULT_MODEL = "fast-burst"
MODELS = (*PAPER_MODELS, DEFAULT_MODEL)
BEST = "bdu-uc-ssim"


def temdeblur(*args: str, log: Path | None = None) -> None:
    """Run one ``temdeblur`` command in a child process (one thread), failing loudly."""
    command = [sys.executable, "-m", "napari_temdeblur.cli", *map(str, args)]
    print("$ temdeblur " + " ".join(map(str, args)), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "w") if log else open(os.devnull, "w") as sink:
        done = subprocess.run(command, env=env, stdout=sink if log else None, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(
            f"failed (exit {done.returncode}): temdeblur {' '.join(map(str, args))}" + (f"; see {log}" if log else "")
        )


def training_jobs(out: Path, args: argparse.Namespace) -> list[tuple[Path, list[str]]]:
    """(run folder, train arguments) of every run the tables need."""
    data = out / "data"
    common = [
        "--patch",
        "64",
        "--batch",
        "8",
        "--val-tile",
        "128",
        "--epochs",
        "100000",
        "--steps-per-epoch",
        "20",
        "--time-limit",
        str(round(args.minutes * 60)),
        "--seed",
        str(args.seed),
    ]
    jobs = [(out / "runs" / s / m, [str(data / s), "--model", m]) for s in SAMPLES for m in MODELS]
    jobs.append((out / "runs" / "Both" / BEST, [str(data / s) for s in SAMPLES] + ["--model", BEST]))
    # Session 1 holds the Val split and the last one the Test split, so the folds hold out the others
    # (each fold's run is also scored on the Test session, which no run saw).
    for k in range(2, args.sessions):
        jobs.append(
            (
                out / "runs" / "cv" / f"holdout-sess{k}",
                [str(data / "Kidney"), "--model", BEST, "--hold-out", f"sess{k}"],
            )
        )
    return [(run, ["train", *a, "--out", str(run), *common, *own_width(a, args.width)]) for run, a in jobs]


def own_width(train_args: list[str], width: str) -> list[str]:
    """Width options of a run: the paper's networks at ``--width``, the default network at its own."""
    if DEFAULT_MODEL in train_args:
        return ["--width", "full", "--init", "scratch"]
    return ["--width", width]


def train_all(out: Path, args: argparse.Namespace) -> None:
    todo = [(run, a) for run, a in training_jobs(out, args) if not (run / "best.pt").is_file()]
    for run, _ in todo:
        shutil.rmtree(run, ignore_errors=True)  # a run stopped before its first epoch
        run.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda job: temdeblur(*job[1], log=job[0].with_suffix(".log")), todo))
    print(f"trained {len(todo)} runs in {time.perf_counter() - start:.0f} s")


def evaluate_all(out: Path) -> None:
    data, runs = out / "data", out / "runs"
    for sample in SAMPLES:
        temdeblur(
            "evaluate",
            data / sample,
            "--model",
            *[runs / sample / m for m in MODELS],
            "--baselines",
            "--json",
            out / f"table_{sample}.json",
            "--markdown",
            out / f"table_{sample}.md",
            "--figure",
            out / f"figure_{sample}.png",
        )
    table3 = out / "table3"
    for name, run in (
        ("trained-on-kidney", runs / "Kidney" / BEST),
        ("trained-on-grid", runs / "CalibrationGrid" / BEST),
        ("trained-on-both", runs / "Both" / BEST),
    ):
        shutil.copytree(run, table3 / name, dirs_exist_ok=True)
    names = ["trained-on-kidney", "trained-on-grid", "trained-on-both"]
    temdeblur(
        "evaluate",
        data,
        "--model",
        *[table3 / n for n in names],
        "--json",
        out / "table3.json",
        "--markdown",
        out / "table3.md",
        "--synthetic-figure",
        out / "synthetic.png",
    )
    folds = sorted((runs / "cv").glob("holdout-sess*/"))
    temdeblur(
        "evaluate",
        data / "Kidney",
        "--model",
        *folds,
        "--cross-validation",
        "--json",
        out / "table4.json",
        "--markdown",
        out / "table4.md",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=4.0, help="training time per run (default 4)")
    parser.add_argument("--width", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (one thread each)")
    parser.add_argument("--sessions", type=int, default=4, help="sessions per specimen (default 4)")
    parser.add_argument("--images", type=int, default=6, help="sharp images per session (default 6)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = args.out
    if not (out / "data" / "Kidney").is_dir():
        temdeblur(
            "simulate",
            out / "data",
            "--size",
            "full",
            "--layout",
            "dataset",
            "--specimen",
            "kidney",
            "grid",
            "--sessions",
            str(args.sessions),
            "--images",
            str(args.images),
            "--seed",
            str(args.seed),
        )
    train_all(out, args)
    evaluate_all(out)
    print(f"tables in {out}/table_*.md, table3.md, table4.md; figures {out}/*.png")


if __name__ == "__main__":
    main()
