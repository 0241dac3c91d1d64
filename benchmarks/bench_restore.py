"""Peak memory and time of restoring one large burst through the real path (checkpoint -> restore()).

A full-width network with fresh weights is saved as a checkpoint, then a ``--size`` x ``--size``
uint16 burst of ``--frames`` frames is restored by :func:`napari_temdeblur.core.restore.restore`
(windowing, frame selection, tiled inference, conversion to counts). Peak RSS is the whole process's
``ru_maxrss`` (the burst itself included), measured in a fresh child process per setting. Targets on
the CPU for a 4096 x 4096, 5-frame burst: peak RSS <= 1 GB for the default network, fast-burst (issue
"A fast default burst network"), <= 2 GB for the paper's networks (issue 5).

    python benchmarks/bench_restore.py [--model fast-burst] [--size 4096] [--inference-tile PX] [--overlap 32]
                                       [--batch 1] [--device cpu]

``--inference-tile`` is :class:`~napari_temdeblur.core.restore.RestoreOptions`' ``inference_tile``, the
side of the tiles the network sees; by default the network's own, as ``temdeblur restore`` (``--tile``,
its earlier name, still works).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Peak RSS targets, GiB: the default network's, and every other's.
TARGET_GIB = {"fast-burst": 1.0}
OTHER_TARGET_GIB = 2.0


def measure(args: argparse.Namespace) -> dict:
    """Restore one burst in this process; returns seconds and peak RSS (GiB)."""
    import numpy as np

    from napari_temdeblur.core import drain
    from napari_temdeblur.core.imaging import IntensityWindow
    from napari_temdeblur.core.models import (
        ModelConfig,
        build_model,
        frames_required,
        save_checkpoint,
    )
    from napari_temdeblur.core.restore import RestoreOptions, collect_restored, restore

    cfg = ModelConfig.full(args.model)
    frames = frames_required(cfg) or args.frames  # deblurgan restores the 3 central frames of the burst
    with tempfile.TemporaryDirectory() as tmp:
        run = save_checkpoint(
            Path(tmp) / "best.pt",
            model=cfg,
            state_dict=build_model(cfg).state_dict(),
            epoch=1,
            gt_window=IntensityWindow(0, 20000),
            low_window=IntensityWindow(0, 5000),
            frames=(frames, frames),
        )
        burst = np.random.default_rng(0).integers(500, 5000, size=(args.frames, args.size, args.size), dtype=np.uint16)
        start = time.perf_counter()
        (result,) = drain(
            collect_restored(
                restore(
                    run,
                    [burst],
                    RestoreOptions(
                        device=args.device, inference_tile=args.inference_tile, overlap=args.overlap, batch=args.batch
                    ),
                )
            )
        )
        seconds = time.perf_counter() - start
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30
    assert result.image.shape == (args.size, args.size)
    return {
        "model": args.model,
        "size": args.size,
        "frames": args.frames,
        "used": frames,
        "inference_tile": args.inference_tile,
        "batch": args.batch,
        "device": args.device,
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(peak, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fast-burst")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument(
        "--inference-tile", "--tile", dest="inference_tile", type=int, default=None, metavar="PX"
    )  # --tile: the name before inference and score tiles were told apart, as in temdeblur restore
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return 0
    # a fresh process, so nothing imported or allocated before counts towards the peak
    out = subprocess.run(
        [sys.executable, __file__, "--child", *sys.argv[1:]], capture_output=True, text=True, check=False
    )
    if out.returncode:
        print(out.stderr, file=sys.stderr)
        return out.returncode
    row = json.loads(out.stdout.strip().splitlines()[-1])
    target = TARGET_GIB.get(row["model"], OTHER_TARGET_GIB)
    verdict = "PASS" if row["peak_rss_gib"] <= target else "FAIL"
    print(
        f"{row['model']} {row['size']} x {row['size']} x {row['frames']} frames ({row['used']} used), "
        f"inference tile {row['inference_tile'] or 'auto (the network' + chr(39) + 's own)'}, "
        f"batch {row['batch']}, {row['device']}: {row['seconds']} s, peak RSS {row['peak_rss_gib']:.2f} GiB "
        f"(target <= {target} GiB): {verdict}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
