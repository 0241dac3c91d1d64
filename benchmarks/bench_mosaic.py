"""Speed of ``temdeblur mosaic``: restored stream positions per second in process and on 1 and 2 local
dask.distributed workers, and whether the mosaics are identical (issue 12, section 3).

Simulates one session into a temporary folder, solves its geometry once, then makes the same mosaic
in process and with ``--scheduler local --workers N`` for each N of ``--workers``, each into its own
folder, and prints per run: wall seconds in all, seconds restoring (first to last position saved,
which leaves out starting the cluster and blending) and positions per second over them. It prints the
devices it found: on a machine with several GPUs each local worker takes its own, and the same script
measures that unchanged.

    python benchmarks/bench_mosaic.py [--size full|demo] [--run pretrained|RUN] [--workers 1 2] [--every K]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_temdeblur.core import drain
from napari_temdeblur.core.io import read_pyramid
from napari_temdeblur.core.restore import PositionRestored, RestoreOptions, mosaic
from napari_temdeblur.core.simulate import SAMPLE_NAMES, SimulationConfig, simulate


def timed(run, session, out: Path, every, device, scheduler=None, workers=None) -> dict:
    saved = []
    start = time.perf_counter()
    options = RestoreOptions(device=device)
    result = drain(
        mosaic(run, session, out, every=every, options=options, scheduler=scheduler, workers=workers),
        lambda e: saved.append(time.perf_counter()) if isinstance(e, PositionRestored) else None,
    )
    total = time.perf_counter() - start
    # restoring: from the first position saved back by one position's mean time, to the last saved
    span = saved[-1] - saved[0]
    restoring = span * len(saved) / max(len(saved) - 1, 1) if len(saved) > 1 else total
    return {"result": result, "total": total, "restoring": restoring, "levels": read_pyramid(result.files[0]).levels}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "demo"), default="full")
    parser.add_argument("--specimen", choices=("kidney", "grid"), default="kidney")
    parser.add_argument("--run", default="pretrained", help="run folder, checkpoint or 'pretrained'")
    parser.add_argument("--images", type=int, default=4, help="HQ images in the simulated session")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--every", type=int, help="restore every K-th frame (default: the fewest covering the scan)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = SimulationConfig() if args.size == "full" else SimulationConfig.demo()
    cfg = dataclasses.replace(cfg, sessions=1, hq_per_session=args.images)
    gpus = torch.cuda.device_count()
    print(
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; {gpus} CUDA GPU(s)"
        f"{': ' + ', '.join(torch.cuda.get_device_name(i) for i in range(gpus)) if gpus else ''}; "
        f"torch {torch.__version__} on {torch.get_num_threads()} threads; device {args.device}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        drain(simulate(out / "sim", cfg, [args.specimen], layout="session", seed=args.seed))
        session = out / "sim" / SAMPLE_NAMES[args.specimen] / "sess1"
        runs = {"in process": timed(args.run, session, out / "in-process", args.every, args.device)}
        for n in args.workers:
            # the geometry is solved once: each folder starts from the same positions.json
            folder = out / f"workers{n}"
            folder.mkdir()
            shutil.copy(out / "in-process" / "positions.json", folder / "positions.json")
            runs[f"{n} local worker(s)"] = timed(args.run, session, folder, args.every, args.device, "local", n)
        reference = runs["in process"]
        positions = len(reference["result"].positions)
        print(f"{args.size} session, {positions} positions, mosaic {reference['result'].shape}")
        for label, r in runs.items():
            same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(r["levels"], reference["levels"]))
            print(
                f"  {label:>20}: {r['total']:6.1f} s in all, restoring {r['restoring']:6.1f} s = "
                f"{positions / r['restoring']:.2f} positions/s; identical to in process: {same}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
