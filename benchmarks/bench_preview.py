"""Seconds per stream position of the Restore dock's preview: one position restored with a loaded run.

Simulates one kidney session into a temporary folder, loads the run once and restores a few positions
in the middle of the stream with :func:`napari_temdeblur.core.restore.restore_position`, as the
preview does: registered on the fly, and at the stream's solved positions (what a mosaic folder of
the session gives), side by side in one run. Prints wall and CPU seconds per position and the load
average (timings on a shared machine are noisy: compare the two rows, not runs).

    python benchmarks/bench_preview.py [--size full|demo] [--run pretrained] [--device cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

from napari_temdeblur.core import drain, resolve_device
from napari_temdeblur.core.io import open_session
from napari_temdeblur.core.models import load_model
from napari_temdeblur.core.register import stream_positions
from napari_temdeblur.core.restore import RestoreOptions, restore_position
from napari_temdeblur.core.simulate import SimulationConfig, simulate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "demo"), default="full")
    parser.add_argument("--run", default="pretrained")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    base = SimulationConfig() if args.size == "full" else SimulationConfig.demo()
    cfg = dataclasses.replace(base, sessions=1, hq_per_session=2)
    with tempfile.TemporaryDirectory(prefix="temdeblur-preview-") as tmp:
        result = drain(simulate(Path(tmp), cfg, ["kidney"], layout="session", seed=3))
        session = open_session(result.folders["Kidney"][0])
        n_frames = session.stream.shape[0]
        model, checkpoint = load_model(args.run, resolve_device(args.device))
        positions = drain(stream_positions(session))
        options = RestoreOptions(device=args.device)
        print(f"stream {tuple(session.stream.shape)}, run {args.run}, device {args.device}, {args.threads} threads")
        for label, solved in (("registered on the fly", None), ("at solved positions", positions)):
            walls, cpus = [], []
            for t in (n_frames // 2 - 1, n_frames // 2, n_frames // 2 + 1):
                wall, cpu = time.perf_counter(), time.process_time()
                drain(restore_position(model, checkpoint, session.stream, t, options, positions=solved))
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            seconds = " ".join(f"{w:.2f}" for w in walls), " ".join(f"{c:.2f}" for c in cpus)
            print(f"{label:24s} wall {seconds[0]} s, CPU {seconds[1]} s")
    print("load average", tuple(round(v, 2) for v in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
