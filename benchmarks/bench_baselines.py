"""Choose and report the classical baselines' parameters on simulated data.

Simulates a small kidney dataset (demo geometry, registered layout), windows GT and Low frames with
their own suggested windows, and prints the mean +- std SSIM and PSNR over the paper's 128 x 128 evaluation
tiles (top half of each image, sample only) for the centre frame, the frame mean, and Wiener /
Richardson-Lucy deconvolution over a sweep of their parameters, with the PSF fitted per pair.

    python benchmarks/bench_baselines.py [--sessions 4] [--seed 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import numpy as np

from napari_temdeblur.core import drain
from napari_temdeblur.core.evaluate import baseline, estimate_motion_psf
from napari_temdeblur.core.imaging import (
    TOP_HALF_ROWS,
    apply_window,
    evaluation_tiles,
    sample_mask,
    suggest_window,
    tile_scores,
)
from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.simulate import SimulationConfig, simulate

WIENER_BALANCE = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
RL_ITERATIONS = (1, 2, 3, 5, 10, 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    cfg = dataclasses.replace(SimulationConfig.demo(), sessions=args.sessions)
    with tempfile.TemporaryDirectory() as out:
        drain(simulate(out, cfg, ["kidney"], layout="dataset", seed=args.seed))
        pairs = [p for split in read_dataset(out) for p in split.pairs]
    gt_window = suggest_window([p.gt for p in pairs])
    low_window = suggest_window([p.low for p in pairs])
    methods = {"input": [], "frame-mean": []}
    methods.update({f"wiener balance={b}": [] for b in WIENER_BALANCE})
    methods.update({f"richardson-lucy iterations={n}": [] for n in RL_ITERATIONS})
    lengths, start = [], time.perf_counter()
    for pair in pairs:
        gt, low = apply_window(pair.gt, gt_window), apply_window(pair.low, low_window)
        origins = evaluation_tiles(sample_mask(np.concatenate([gt[None], low])), keep_rows_fraction=TOP_HALF_ROWS)
        if len(origins) == 0:
            continue
        psf = estimate_motion_psf(gt, low)
        lengths.append(1 / psf.max())  # interior weights of motion_psf are 1 / length
        outputs = {"input": low[len(low) // 2], "frame-mean": baseline("frame-mean", low)}
        outputs.update({f"wiener balance={b}": baseline("wiener", low, psf, balance=b) for b in WIENER_BALANCE})
        for n in RL_ITERATIONS:
            outputs[f"richardson-lucy iterations={n}"] = baseline("richardson-lucy", low, psf, iterations=n)
        for name, image in outputs.items():
            methods[name].append(np.stack(tile_scores(image, gt, origins), axis=1))
    print(
        f"{len(pairs)} pairs, {sum(len(s) for s in methods['input'])} tiles, "
        f"fitted PSF lengths {np.round(lengths, 1).tolist()} px, {time.perf_counter() - start:.1f} s"
    )
    for name, scores in methods.items():
        scores = np.concatenate(scores)
        (ssim_mean, psnr_mean), (ssim_std, psnr_std) = scores.mean(axis=0), scores.std(axis=0)
        print(f"{name:32s} SSIM {ssim_mean:.4f} +- {ssim_std:.4f}   PSNR {psnr_mean:5.2f} +- {psnr_std:.2f} dB")


if __name__ == "__main__":
    main()
