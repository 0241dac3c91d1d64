"""Time of restoring with trust intervals against plain restoration, side by side (docs/trust.md).

Target (issue 14): restoring with ``trust=True`` takes at most 2x the plain restoration's time for the
default network, fast-burst. Both go through the real path (checkpoint -> :func:`restore` -> windows,
tiles, counts; with trust also the mirrored pass, the spread and the calibration read). The two are
timed alternately, ``--repeats`` times each, after one warm-up of each, on the same bursts; the
ratio of the medians is printed with the load average, since a shared machine makes absolute times
noisy (the ratio much less so).

    python benchmarks/bench_trust.py [--run pretrained] [--size 1024] [--frames 5] [--repeats 5]
                                     [--threads 2] [--device cpu] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time

#: Issue 14: restoring with trust costs at most this many times the plain restoration.
TARGET_RATIO = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="pretrained", help="a calibrated run (default: the shipped fast-burst)")
    parser.add_argument("--size", type=int, default=1024, help="burst side, px (the paper's stream frames: 1024)")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    import numpy as np
    import torch

    from napari_temdeblur.core import drain
    from napari_temdeblur.core.restore import RestoreOptions, collect_restored, restore

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    burst = rng.integers(500, 5000, size=(args.frames, args.size, args.size), dtype=np.uint16)
    plain = RestoreOptions(device=args.device)
    trust = dataclasses.replace(plain, trust=True)

    def seconds(options: RestoreOptions) -> float:
        start = time.perf_counter()
        (result,) = drain(collect_restored(restore(args.run, [burst], options)))
        assert (result.interval_width is not None) == options.trust
        return time.perf_counter() - start

    seconds(plain), seconds(trust)  # warm-up: the first call loads torch's kernels
    times: dict[str, list[float]] = {"plain": [], "trust": []}
    for _ in range(args.repeats):
        times["plain"].append(seconds(plain))
        times["trust"].append(seconds(trust))
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["trust"] / medians["plain"]
    result = {
        "run": args.run,
        "burst": [args.frames, args.size, args.size],
        "device": args.device,
        "threads": args.threads,
        "seconds": times,
        "median_s": medians,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "load_average": os.getloadavg(),
    }
    print(
        f"{args.run} on a {args.frames} x {args.size} x {args.size} burst, {args.device}, {args.threads} thread(s): "
        f"plain {medians['plain']:.2f} s, with trust {medians['trust']:.2f} s (medians of {args.repeats}); "
        f"ratio {ratio:.2f} (target <= {TARGET_RATIO}): {'OK' if ratio <= TARGET_RATIO else 'MISSED'}"
    )
    print(f"load average {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
