"""Stream geometry: speed of frame-to-frame matching and accuracy of the solved positions (issue 12's targets).

Simulates one session into a temporary folder and prints

* speed: milliseconds per pair of 1024 x 1024 frames (one frame matched to one neighbour, both already
  read and prepared: the along-scan prior, coarse phase correlation, fine correlation), with OpenCV on
  ``--threads`` (2) threads; wall and CPU time (all threads), since wall time depends on what else the
  machine runs; also the whole ``stream_positions`` (reading, preparing, 3 neighbours per frame,
  solving) per pair; target <= 30 ms per pair;
* accuracy: mean / max |error| (stream px) of the solved frame positions against the simulator's truth
  (the centroid of the stage path during each exposure), the common offset removed; target <= 0.2 px.

    python benchmarks/bench_positions.py [--size full|demo] [--specimen kidney|grid] [--images 8] [--seed N] [--anchor]

``--anchor`` first registers the session's HQ images (``register_session``, matcher starts), so that
they anchor the solution as in ``temdeblur mosaic`` after ``temdeblur register``; it also prints the
error of the solved HQ positions.

``--size full`` is the paper's geometry: 2048 x 2048 HQ images, 1024 x 1024 stream frames, 240 ms
between 15 ms frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from napari_temdeblur.core import drain
from napari_temdeblur.core.io import open_session
from napari_temdeblur.core.register import match_pair, prepare_frame, register_session, stream_positions
from napari_temdeblur.core.simulate import SAMPLE_NAMES, SimulationConfig, simulate

SPEED_TARGET_MS = 30.0
ACCURACY_TARGET_PX = 0.2


def true_corners(truth_file: Path) -> np.ndarray:
    """(T, 2) true top-left corners of the stream frames, stream px (the truth's positions are HQ px)."""
    record = json.loads(truth_file.read_text())
    return np.array([f["position"] for f in record["frames"]]) / record["stream_binning"]


def pair_speed(session, repeats: int) -> tuple[float, float]:
    """Median wall and CPU ms of matching each consecutive pair (frames prepared beforehand)."""
    frames = [prepare_frame(t, session.stream[t]) for t in range(session.stream.shape[0])]
    first = match_pair(frames[0], frames[1], None)  # the along-scan prior, as stream_positions finds it
    wall, cpu = [], []
    for _ in range(repeats):
        for a, b in zip(frames, frames[1:]):
            start, start_cpu = time.perf_counter(), time.process_time()
            match_pair(a, b, first.shift_yx)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return 1000 * float(np.median(wall)), 1000 * float(np.median(cpu))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "demo"), default="full")
    parser.add_argument("--specimen", choices=("kidney", "grid"), default="kidney")
    parser.add_argument("--images", type=int, default=8, help="HQ images in the simulated session")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the pairs")
    parser.add_argument("--anchor", action="store_true", help="register the HQ images first (they anchor)")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    cfg = SimulationConfig() if args.size == "full" else SimulationConfig.demo()
    cfg = dataclasses.replace(cfg, sessions=1, hq_per_session=args.images)
    sample = SAMPLE_NAMES[args.specimen]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        drain(simulate(out, cfg, [args.specimen], layout="session", seed=args.seed))
        truth = true_corners(out / "truth" / sample / "sess1.json")
        record = json.loads((out / "truth" / sample / "sess1.json").read_text())
        hq_truth = {h["name"]: np.array(h["position"]) / record["stream_binning"] for h in record["hq"]}
        session = open_session(out / sample / "sess1")
        if args.anchor:
            drain(register_session(session))
        n_frames, h, w = session.stream.shape
        print(
            f"cv2 {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads; {args.size} geometry, specimen "
            f"{args.specimen}, seed {args.seed}: {n_frames} frames of {h} x {w}, load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        wall, cpu = pair_speed(session, args.repeats)
        start, start_cpu = time.perf_counter(), time.process_time()
        positions = drain(stream_positions(session))
        total, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    pairs = sum(min(3, t) for t in range(n_frames))
    placed = positions.placed
    found = np.array([f.yx for f in placed])
    error = found - truth[[f.index for f in placed]]
    error -= error.mean(axis=0)
    norm = np.hypot(*error.T)
    ok_speed = min(wall, cpu) <= SPEED_TARGET_MS
    ok_accuracy = norm.mean() <= ACCURACY_TARGET_PX and len(placed) == n_frames
    print(
        f"  speed     {wall:.1f} ms per pair wall ({cpu:.1f} ms CPU); whole stream_positions "
        f"{1000 * total / pairs:.1f} ms per pair wall ({1000 * total_cpu / pairs:.1f} CPU), {pairs} pairs  "
        f"target <= {SPEED_TARGET_MS:g}  {'PASS' if ok_speed else 'FAIL'}"
    )
    print(
        f"  accuracy  mean |error| {norm.mean():.3f} px (along scan {np.abs(error[:, 0]).mean():.3f}, across "
        f"{np.abs(error[:, 1]).mean():.3f}; max {norm.max():.3f}); {n_frames - len(placed)} flagged  "
        f"target <= {ACCURACY_TARGET_PX}  {'PASS' if ok_accuracy else 'FAIL'}"
    )
    if positions.hq:
        offset = np.mean(found - truth[[f.index for f in placed]], axis=0)
        hq_error = [np.hypot(*(np.subtract(yx, hq_truth[name]) - offset)) for name, yx in positions.hq.items()]
        print(f"  HQ anchors: {len(hq_error)}, mean |error| {np.mean(hq_error):.3f} px (max {np.max(hq_error):.3f})")
    for message in positions.messages:
        print(f"  note: {message}")
    ok = ok_speed and ok_accuracy
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
