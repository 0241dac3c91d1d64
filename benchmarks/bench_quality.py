"""Quality in equal time: networks trained for the same CPU wall-clock budget, scored on the Test split.

    python benchmarks/bench_quality.py --out /tmp/quality [--budgets 2 6] [--samples Kidney CalibrationGrid]
        [--runs fast-burst:scratch fast-burst:pretrained bu:tiny bdu-uc-ssim:tiny] [--pretrained-at 2]
        [--seed 1] [--dose 40]

The data are simulated at the paper's geometry (``temdeblur simulate --size full --layout dataset``,
4 sessions of 6 sharp images: 13 Train, 3 Val and 6 Test images per sample, the last session Test) with
``--seed`` and ``--dose`` (stream electrons per pixel; the simulator's default is 40), unless OUT/data
holds them already. Every run is ``temdeblur train`` with the CPU preset's crops and batch (64 px, 8),
20 steps per epoch, 128 px validation tiles, no early stop, ``--time-limit`` the budget, on
``--threads`` CPU threads, one run at a time so that all get the same machine; then
``temdeblur evaluate --baselines`` scores every run of a sample and budget on its Test split. A run is
``MODEL:WIDTH`` (tiny or full) or ``MODEL:scratch`` / ``MODEL:pretrained`` for the default network at its
own width. The run folders are kept: a second call only evaluates what it has.

Checks (issue "A fast default burst network"): per sample and budget, fast-burst's Test SSIM is >= the
best of tiny bdu-uc-ssim and tiny bu + 0.03, and >= the oracle Wiener baseline + 0.05; and, where both
were run, fast-burst fine-tuned from its pretrained start for the smallest budget reaches at least what
it reaches from scratch in the largest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT = "fast-burst"


def temdeblur(args: list[str], threads: int, log: Path | None = None) -> None:
    """Run ``temdeblur ARGS`` in a child process on `threads` CPU threads, failing loudly."""
    print("$ temdeblur " + " ".join(args), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") if log else open(os.devnull, "w") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "napari_temdeblur.cli", *args],
            env=env,
            stdout=sink if log else None,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        raise SystemExit(
            f"failed (exit {done.returncode}): temdeblur {' '.join(args)}" + (f"; see {log}" if log else "")
        )


def run_args(spec: str) -> tuple[str, list[str]]:
    """(run folder name, train options) of ``MODEL:WIDTH`` or ``fast-burst:scratch|pretrained``."""
    model, _, how = spec.partition(":")
    if how in ("scratch", "pretrained"):
        return f"{model}-{how}", ["--model", model, "--init", how]
    return f"{model}-{how or 'full'}", ["--model", model, "--width", how or "full", "--init", "scratch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budgets", nargs="+", type=float, default=[2.0, 6.0], help="training minutes")
    parser.add_argument("--samples", nargs="+", default=["Kidney", "CalibrationGrid"])
    parser.add_argument(
        "--runs", nargs="+", default=[f"{DEFAULT}:scratch", f"{DEFAULT}:pretrained", "bu:tiny", "bdu-uc-ssim:tiny"]
    )
    parser.add_argument(
        "--pretrained-at",
        nargs="+",
        type=float,
        help="budgets (minutes) at which the MODEL:pretrained runs train (default: the smallest budget, "
        "all the fine-tuning check needs)",
    )
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (the pretraining data used 11)")
    parser.add_argument("--dose", type=float, default=40.0, help="stream electrons per pixel (default 40)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    data = args.out / "data"
    if not all((data / s).is_dir() for s in args.samples):
        config = args.out / "simulation-config.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({"stream_electrons": args.dose}))
        temdeblur(
            [
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
                str(args.seed),
                "--config",
                str(config),
            ],
            args.threads,
        )
    results = {}
    for sample in args.samples:
        for minutes in args.budgets:
            runs = []
            for spec in args.runs:
                if spec.endswith(":pretrained") and minutes not in (args.pretrained_at or [min(args.budgets)]):
                    continue
                name, options = run_args(spec)
                run = args.out / "runs" / sample / f"{minutes:g}min" / name
                if not (run / "best.pt").is_file():
                    tic = time.monotonic()
                    temdeblur(
                        [
                            "train",
                            str(data / sample),
                            "--out",
                            str(run),
                            *options,
                            "--preset",
                            "quick",
                            "--patience",
                            "none",
                            "--val-tile",
                            "128",
                            "--time-limit",
                            str(round(minutes * 60)),
                            "--device",
                            "cpu",
                        ],
                        args.threads,
                        log=run.with_suffix(".log"),
                    )
                    print(f"  {sample} {minutes:g} min {name}: {time.monotonic() - tic:.0f} s", flush=True)
                runs.append(run)
            scores = args.out / f"{sample}-{minutes:g}min.json"
            temdeblur(
                [
                    "evaluate",
                    str(data / sample),
                    "--model",
                    *map(str, runs),
                    "--baselines",
                    "--device",
                    "cpu",
                    "--json",
                    str(scores),
                ],
                args.threads,
                log=scores.with_suffix(".log"),
            )
            methods = json.loads(scores.read_text())["methods"]
            results[f"{sample} {minutes:g} min"] = {k: round(v["ssim_mean"], 4) for k, v in methods.items()}
    print("\nTest SSIM (mean over the 128 px sample tiles of the Test split)")
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    print(f"{'':<26}" + "".join(f"{k:>22}" for k in keys))
    for row, scores in results.items():
        print(f"{row:<26}" + "".join(f"{scores.get(k, float('nan')):>22.4f}" for k in keys))
    checks = {}
    for row, scores in results.items():
        fast = scores.get(f"{DEFAULT}-scratch")
        paper = [scores[k] for k in ("bu-tiny", "bdu-uc-ssim-tiny") if k in scores]
        if fast is not None and paper:
            checks[f"{row}: {DEFAULT} from scratch >= best tiny paper model + 0.03"] = (fast, max(paper) + 0.03)
        if fast is not None and "wiener" in scores:
            checks[f"{row}: {DEFAULT} from scratch >= oracle Wiener + 0.05"] = (fast, scores["wiener"] + 0.05)
        if f"{DEFAULT}-pretrained" in scores and "wiener" in scores:
            checks[f"{row}: {DEFAULT} from pretrained >= oracle Wiener + 0.05"] = (
                scores[f"{DEFAULT}-pretrained"],
                scores["wiener"] + 0.05,
            )
    low, high = min(args.budgets), max(args.budgets)
    for sample in args.samples:
        short, long = results.get(f"{sample} {low:g} min", {}), results.get(f"{sample} {high:g} min", {})
        if f"{DEFAULT}-pretrained" in short and f"{DEFAULT}-scratch" in long and low < high:
            checks[f"{sample}: pretrained + {low:g} min >= scratch {high:g} min"] = (
                short[f"{DEFAULT}-pretrained"],
                long[f"{DEFAULT}-scratch"],
            )
    print()
    for name, (value, target) in checks.items():
        print(f"{name}: {value:.4f} vs {target:.4f}: {'met' if value >= target else 'MISSED'}")
    summary = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "test_ssim": results,
        "checks": {k: {"value": v, "target": t, "met": v >= t} for k, (v, t) in checks.items()},
    }
    (args.out / "quality.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{args.out / 'quality.json'}")


if __name__ == "__main__":
    main()
