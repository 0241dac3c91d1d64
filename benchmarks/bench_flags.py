"""Do the hallucination flags land where the restoration is wrong? (issue 14, docs/flags.md)

For each restored image with a known truth: the error ``|restored - GT|`` in one [0, 1] window (the
GT's, suggested over the images), "large" = above the 90th percentile of that image's checked pixels;
then over the checked pixels (registration padding and streak-wide borders left out)

* lift = P(large error | flagged) / P(large error): 1 is chance, 10 the most possible here;
* the mean error inside and outside the flags;
* the flagged fraction, and that of the GT itself checked against its own frames (the null: should be
  about 0; the threshold was chosen on it).

Two cases, as the issue asks:

(a) the paper's Fig 8 synthetic images (``synthetic_burst``: spots, lines, crosslines) restored by a
    run (default: the shipped pretrained fast-burst, trained on simulated kidney and grid), after
    batch-norm adaptation as ``evaluate --synthetic-figure`` does;
(b) a run trained on simulated grid only applied to simulated kidney (the paper's over-fitting case)::

        temdeblur simulate /tmp/flagsbench/data --specimen kidney grid --layout dataset --size demo \
            --seed 3 --sessions 3
        temdeblur train /tmp/flagsbench/data/CalibrationGrid --out /tmp/flagsbench/gridrun \
            --model fast-burst --init scratch --device cpu --time-limit 180 --patch 64 --batch 8 \
            --steps-per-epoch 20 --epochs 40

Run: ``python benchmarks/bench_flags.py --grid-run /tmp/flagsbench/gridrun --kidney
/tmp/flagsbench/data/Kidney/Test`` (CPU, about a minute).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from napari_temdeblur.core import drain
from napari_temdeblur.core.evaluate import sample_windows
from napari_temdeblur.core.flags import hallucination_flags
from napari_temdeblur.core.imaging import apply_window
from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.restore import RestoreOptions, collect_restored, restore
from napari_temdeblur.core.simulate import SYNTHETIC_SPECIMENS, synthetic_burst

LARGE_PERCENTILE = 90


def measure(pairs, run, options: RestoreOptions, png: str | None = None) -> list[dict]:
    """Restore `pairs` with `run` (flags on) and measure each image; `png`: GT | restored | error with
    the flags outlined, one row per image."""
    restored = drain(collect_restored(restore(run, pairs, options)))
    window = sample_windows(pairs)["gt"]
    rows, panels = [], []
    for pair, result in zip(pairs, restored):
        gt = apply_window(pair.gt, window)
        image = apply_window(result.counts, window)
        flags = result.flags
        checked = np.isfinite(flags.score)
        error = np.abs(image - gt)[checked]
        flagged = flags.mask[checked]
        large = error > np.percentile(error, LARGE_PERCENTILE)
        null = hallucination_flags(pair.gt, pair.low, streak_px=options.streak_px)
        panels.append((pair.name, gt, image, flags.mask))
        rows.append(
            {
                "name": pair.name,
                "flagged": float(flagged.mean()),
                "gt_flagged": null.fraction,
                "lift": float(large[flagged].mean() / large.mean()) if flagged.any() else float("nan"),
                "error_in": float(error[flagged].mean()) if flagged.any() else float("nan"),
                "error_out": float(error[~flagged].mean()),
                "gt_score_999": float(np.nanpercentile(null.score, 99.9)),
                "streak_px": float(np.mean([f.length_px for f in flags.frames])),
            }
        )
    if png:
        _figure(panels, png)
    return rows


def _figure(panels, png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 3, figsize=(12, 3.2 * len(panels)), squeeze=False)
    for row, (name, gt, image, mask) in zip(axes, panels):
        for ax, data, title in zip(row, (gt, image, np.abs(image - gt)), ("GT", "restored", "|restored - GT|")):
            ax.imshow(
                data, cmap="gray" if title != "|restored - GT|" else "magma", vmin=0, vmax=1 if ax != row[2] else 0.3
            )
            if mask.any():
                ax.contour(mask, [0.5], colors="cyan", linewidths=0.8)
            ax.set_title(f"{name} {title}", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    print(f"figure: {png}")


def report(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'image':14s} flagged  GT flagged  lift   error in / out   GT score p99.9  streak px")
    for r in rows:
        print(
            f"{r['name']:14s} {r['flagged']:7.2%}  {r['gt_flagged']:9.2%}  {r['lift']:5.2f}   "
            f"{r['error_in']:.3f} / {r['error_out']:.3f}   {r['gt_score_999']:13.1f}  {r['streak_px']:8.1f}"
        )
    lifts = [r["lift"] for r in rows if np.isfinite(r["lift"])]
    if lifts:
        print(f"mean lift {np.mean(lifts):.2f} over {len(lifts)} image(s) with flags")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="pretrained", help="run for the synthetic images (a)")
    parser.add_argument("--grid-run", help="a run trained on grid only, for (b)")
    parser.add_argument("--kidney", help="a kidney dataset split (e.g. .../Kidney/Test), for (b)")
    parser.add_argument("--size", type=int, default=512, help="synthetic images' side, HQ px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--streak",
        type=float,
        help="the known streak, stream px (the simulator's 25 um/s x 15 ms / 31.25 nm = 12); default: fitted",
    )
    parser.add_argument("--png", help="stem of figures: GT | restored | error with the flags outlined")
    args = parser.parse_args()
    started = time.perf_counter()
    synthetic = [synthetic_burst(s, size=args.size, seed=args.seed) for s in SYNTHETIC_SPECIMENS]
    options = RestoreOptions(device="cpu", flags=True, adapt_bn=True, streak_px=args.streak)
    report(
        f"(a) Fig 8 synthetic images restored by {args.run}",
        measure(synthetic, args.run, options, args.png and f"{args.png}_synthetic.png"),
    )
    if args.grid_run and args.kidney:
        pairs = [p for split in read_dataset(args.kidney) for p in split.pairs]
        rows = measure(
            pairs,
            args.grid_run,
            RestoreOptions(device="cpu", flags=True, streak_px=args.streak),
            args.png and f"{args.png}_kidney.png",
        )
        report(f"(b) kidney {args.kidney} restored by the grid-trained {args.grid_run}", rows)
    print(f"streak: {'fitted per frame' if args.streak is None else f'{args.streak} px given, +-2 px per frame'}")
    print(f"\n{time.perf_counter() - started:.0f} s, load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
