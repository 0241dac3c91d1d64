"""Accuracy and speed of the on-the-fly registration that restoring a raw stream does per position.

Simulates one session into a temporary folder and, for every ``--every``-th stream position, registers
the ``--frames`` frames around it onto it (:func:`napari_temdeblur.core.register.register_stream_burst`),
then prints the mean / max error of the frame-to-frame translations against the simulator's truth
(relative stage positions of the exposures' centroids, stream px), frames left out, and seconds per
position (wall and CPU; both depend on what else the machine runs). Restoring the bursts themselves
is measured by ``bench_restore.py``.

    python benchmarks/bench_restore_stream.py [--size full|demo] [--specimen kidney|grid] [--frames 5] [--every 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_temdeblur.core import drain
from napari_temdeblur.core.io import open_session
from napari_temdeblur.core.register import register_stream_burst
from napari_temdeblur.core.simulate import (
    SAMPLE_NAMES,
    SimulationConfig,
    read_true_translations,
    simulate,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "demo"), default="full")
    parser.add_argument("--specimen", choices=("kidney", "grid"), default="kidney")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--images", type=int, default=3, help="HQ images in the simulated session")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = SimulationConfig() if args.size == "full" else SimulationConfig.demo()
    cfg = dataclasses.replace(cfg, sessions=1, hq_per_session=args.images)
    sample = SAMPLE_NAMES[args.specimen]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        drain(simulate(out, cfg, [args.specimen], layout="session", seed=args.seed))
        truth = next(iter(read_true_translations(out / "truth" / sample / "sess1.json").values()))
        session = open_session(out / sample / "sess1")
        n_frames = session.stream.shape[0]
        errors, left_out, seconds, cpu = [], 0, 0.0, 0.0
        positions = range(0, n_frames, args.every)
        for position in positions:
            start, start_cpu = time.perf_counter(), time.process_time()
            burst = register_stream_burst(session.stream, position, args.frames)
            seconds += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
            for reg in burst.registrations:
                if reg.flag is None and reg.index != position:
                    errors.append(np.hypot(*np.subtract(reg.translation_yx, truth[reg.index] - truth[position])))
            left_out += sum(reg.flag is not None for reg in burst.registrations)
    errors = np.array(errors)
    print(
        f"{args.size} geometry, {args.specimen}: {len(positions)} positions of {n_frames} frames "
        f"{session.stream.shape[1]} x {session.stream.shape[2]} px, {args.frames} frames each"
    )
    print(
        f"  accuracy  mean |error| {errors.mean():.3f} px, max {errors.max():.3f} px over {len(errors)} frames; "
        f"{left_out} left out"
    )
    print(
        f"  speed     {seconds / len(positions):.3f} s per position wall, {cpu / len(positions):.3f} s CPU; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
