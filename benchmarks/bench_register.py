"""Registration accuracy and speed against the simulator's truth (issue 3's targets).

Simulates one session into a temporary folder, registers every HQ image from starts 8 px off the
truth (as a hand drag would be; random direction) and from the frame matcher alone, and prints:

* accuracy: mean |error| (stream px) of the accepted frames against the truth, i.e. the centroid of
  the stage path during each exposure; target <= 0.25 px; also split along / across the scan;
* speed: seconds per frame pair (one stream frame registered to one HQ image, ECC translation), end
  to end (reading, frame matching, ECC, quality control, saving) and ECC alone; target <= 0.3 s on
  2 cores. Wall time depends on what else the machine runs, so the process's CPU time (all threads) is
  printed too: it bounds the wall time on free cores from above; either within the target passes.

    python benchmarks/bench_register.py [--size full|demo] [--specimen kidney|grid] [--seed N] [--no-streak]

``--size full`` is the paper's geometry: 2048 x 2048 HQ images, 1024 x 1024 stream frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from napari_temdeblur.core import Progress, drain
from napari_temdeblur.core.io import open_session
from napari_temdeblur.core.register import (
    FrameDone,
    InitialGuess,
    PairDone,
    RegistrationSettings,
    register_session,
)
from napari_temdeblur.core.simulate import (
    SAMPLE_NAMES,
    SimulationConfig,
    read_true_translations,
    simulate,
)

ACCURACY_TARGET_PX = 0.25
SPEED_TARGET_S = 0.3


def starts_off_by(truth: dict, distance: float, rng: np.random.Generator) -> dict:
    """An InitialGuess per HQ image: the truth at its best frame, moved `distance` px in a random direction."""
    inits = {}
    for name, t in truth.items():
        best = int(np.argmin(np.abs(t[:, 0])))
        angle = rng.uniform(0, 2 * np.pi)
        inits[name] = InitialGuess(best, (t[best, 0] + distance * np.sin(angle), t[best, 1] + distance * np.cos(angle)))
    return inits


def run(session, truth: dict, inits: dict | None, settings: RegistrationSettings) -> dict:
    """Register the whole session; errors of accepted frames, flags and timings."""
    ecc_seconds, last = [], None

    def timing(event: Progress):
        nonlocal last
        now = time.perf_counter()
        if isinstance(event, FrameDone) and last is not None:
            ecc_seconds.append(now - last)
        last = None if isinstance(event, PairDone) else now

    start, cpu = time.perf_counter(), time.process_time()
    pairs = drain(register_session(session, settings, inits), timing)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    errors = np.array([np.subtract(f.translation_yx, truth[p.hq][f.index]) for p in pairs for f in p.accepted]).reshape(
        -1, 2
    )
    frames = sum(len(p.frames) for p in pairs)
    return {
        "errors": errors,
        "frames": frames,
        "flagged": frames - len(errors),
        "pairs": len(pairs),
        "seconds_per_frame": total / max(frames, 1),
        "cpu_seconds_per_frame": cpu / max(frames, 1),
        "ecc_seconds_per_frame": float(np.mean(ecc_seconds)),
    }


def report(label: str, r: dict) -> bool:
    e = r["errors"]
    norm = np.hypot(*e.T) if len(e) else np.array([np.inf])
    ok_acc = norm.mean() <= ACCURACY_TARGET_PX and r["flagged"] == 0
    # CPU time (all threads) bounds the wall time on free cores from above, so either number within
    # the target shows it is met, however busy the machine was
    ok_speed = min(r["seconds_per_frame"], r["cpu_seconds_per_frame"]) <= SPEED_TARGET_S
    print(f"{label}: {r['pairs']} HQ images, {r['frames']} frames, {r['flagged']} flagged")
    print(
        f"  accuracy  mean |error| {norm.mean():.3f} px (along scan {np.abs(e[:, 0]).mean():.3f}, across "
        f"{np.abs(e[:, 1]).mean():.3f}; max {norm.max():.3f}; mean signed along {e[:, 0].mean():+.3f})"
        f"  target <= {ACCURACY_TARGET_PX}  {'PASS' if ok_acc else 'FAIL'}"
    )
    print(
        f"  speed     {r['seconds_per_frame']:.3f} s per frame pair end to end, wall (ECC alone "
        f"{r['ecc_seconds_per_frame']:.3f} s); {r['cpu_seconds_per_frame']:.3f} s CPU; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores  target <= {SPEED_TARGET_S}  "
        f"{'PASS' if ok_speed else 'FAIL'}"
    )
    return ok_acc and ok_speed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "demo"), default="full")
    parser.add_argument("--specimen", choices=("kidney", "grid"), default="kidney")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, help="HQ images in the session (default: the configuration's)")
    parser.add_argument("--off", type=float, default=8.0, help="distance of the starts from the truth, px")
    parser.add_argument("--no-streak", action="store_true", help="register without the motion-streak model")
    args = parser.parse_args()
    cfg = SimulationConfig() if args.size == "full" else SimulationConfig.demo()
    cfg = dataclasses.replace(cfg, sessions=1, **({"hq_per_session": args.images} if args.images else {}))
    sample = SAMPLE_NAMES[args.specimen]
    print(
        f"cv2 {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads; {args.size} geometry: HQ {cfg.hq_size} px, "
        f"stream {cfg.stream_size} px, {cfg.hq_per_session} HQ images; specimen {args.specimen}, seed {args.seed}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        drain(simulate(out, cfg, [args.specimen], layout="session", seed=args.seed))
        truth = read_true_translations(out / "truth" / sample / "sess1.json")
        session = open_session(out / sample / "sess1")
        print(f"stream: {session.stream.shape[0]} frames of {session.stream.shape[1]} x {session.stream.shape[2]}")
        inits = starts_off_by(truth, args.off, np.random.default_rng(args.seed))
        settings = RegistrationSettings(streak=not args.no_streak)
        ok = report(f"starts {args.off:g} px off the truth", run(session, truth, inits, settings))
        ok &= report("frame matcher's starts", run(session, truth, None, settings))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
