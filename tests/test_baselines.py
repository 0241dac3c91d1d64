"""Classical baselines: frame mean, motion-PSF estimation, Wiener and Richardson-Lucy deconvolution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_temdeblur.core.evaluate import (
    BASELINES,
    baseline,
    estimate_motion_psf,
    motion_psf,
)
from napari_temdeblur.core.imaging import (
    apply_window,
    evaluation_tiles,
    sample_mask,
    ssim,
    suggest_window,
    tile_scores,
)
from napari_temdeblur.core.io import read_dataset

BOX = 9  # px, the known streak length of the synthetic blur


def _sharp(shape=(96, 96), seed=0) -> np.ndarray:
    """Smooth random texture in [0.2, 0.8]: structure at a few px, like cell membranes."""
    texture = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 1.5)
    return 0.2 + 0.6 * (texture - texture.min()) / np.ptp(texture)


def _burst(sharp: np.ndarray, noise: float, frames: int = 5, seed=1) -> np.ndarray:
    blurred = ndi.uniform_filter1d(sharp, BOX, axis=0, mode="nearest")
    rng = np.random.default_rng(seed)
    return np.clip(blurred + noise * rng.standard_normal((frames, *sharp.shape)), 0, 1)


def test_frame_mean_is_the_numpy_mean():
    burst = np.random.default_rng(2).random((5, 20, 30))
    out = baseline("frame-mean", burst)
    assert out.dtype == np.float32 and out.shape == (20, 30)
    np.testing.assert_allclose(out, burst.mean(axis=0), rtol=1e-6)


def test_motion_psf_is_a_vertical_box():
    np.testing.assert_allclose(motion_psf(BOX), np.full((BOX, 1), 1 / BOX))
    half = motion_psf(4.0)  # even length: full centre pixels, half-weight ends
    np.testing.assert_allclose(half[:, 0], [0.125, 0.25, 0.25, 0.25, 0.125])


def test_estimate_recovers_a_known_box_length():
    sharp = _sharp()
    psf = estimate_motion_psf(sharp, _burst(sharp, noise=0.02))
    np.testing.assert_allclose(psf, motion_psf(BOX))
    # independent check: the fitted PSF blurs exactly as scipy's box filter does
    np.testing.assert_allclose(
        ndi.convolve1d(sharp, psf[:, 0], axis=0, mode="nearest"),
        ndi.uniform_filter1d(sharp, BOX, axis=0, mode="nearest"),
        atol=1e-12,
    )


# The defaults suit the simulator's much noisier frames; this mild noise allows a sharper setting.
@pytest.mark.parametrize(("method", "params"), [("wiener", {"balance": 0.05}), ("richardson-lucy", {"iterations": 10})])
def test_deconvolution_beats_the_frame_mean(method, params):
    sharp = _sharp()
    burst = _burst(sharp, noise=0.02)
    psf = estimate_motion_psf(sharp, burst)
    mean_score = ssim(baseline("frame-mean", burst), sharp)
    restored = baseline(method, burst, psf, **params)
    assert restored.dtype == np.float32 and restored.shape == sharp.shape
    assert restored.min() >= 0 and restored.max() <= 1
    assert ssim(restored, sharp) > mean_score + 0.1


def test_baselines_beat_the_centre_frame_on_simulated_kidney(simulated_dataset):
    pairs = [p for s in read_dataset(simulated_dataset.folders["Kidney"][0].parent) for p in s.pairs]
    gt_window = suggest_window([p.gt for p in pairs])
    low_window = suggest_window([p.low for p in pairs])
    scores = {name: [] for name in ("input", *BASELINES)}
    lengths = []
    for pair in pairs:
        gt, low = apply_window(pair.gt, gt_window), apply_window(pair.low, low_window)
        origins = evaluation_tiles(sample_mask(np.concatenate([gt[None], low])), size=64)
        psf = estimate_motion_psf(gt, low)
        lengths.append(1 / psf.max())
        scores["input"].append(tile_scores(low[len(low) // 2], gt, origins, size=64)[0])
        for name in BASELINES:
            scores[name].append(tile_scores(baseline(name, low, psf), gt, origins, size=64)[0])
    # the simulated stage moves 25 um/s x 15 ms = 375 nm = 12 stream px during an exposure
    assert 10 <= np.median(lengths) <= 15
    means = {name: np.concatenate(s).mean() for name, s in scores.items()}
    assert all(means[name] > means["input"] + 0.1 for name in BASELINES), means


def test_unknown_method_names_the_valid_keys():
    with pytest.raises(ValueError, match="frame-mean, wiener, richardson-lucy"):
        baseline("median", np.zeros((3, 8, 8)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: baseline("frame-mean", np.zeros((8, 8))), r"\(F, H, W\)"),
        (lambda: baseline("frame-mean", np.full((2, 8, 8), np.nan)), "NaN"),
        (lambda: baseline("wiener", np.zeros((2, 8, 8))), "needs a PSF"),
        (lambda: baseline("wiener", np.zeros((2, 8, 8)), motion_psf(3), iterations=3), "no parameter iterations"),
        (lambda: baseline("wiener", np.zeros((2, 8, 8)), motion_psf(3), balance=0), "balance must be > 0"),
        (lambda: baseline("richardson-lucy", np.zeros((2, 8, 8)), motion_psf(3), iterations=0.5), "positive integer"),
        (lambda: baseline("wiener", np.zeros((2, 8, 8)), np.full((3, 1), np.nan)), "psf must be finite"),
        (lambda: estimate_motion_psf(np.zeros((8, 8)), np.zeros((2, 8, 9))), "must share"),
        (lambda: estimate_motion_psf(np.full((40, 40), np.nan), np.zeros((2, 40, 40))), "gt contains NaN"),
        (lambda: estimate_motion_psf(np.zeros((40, 40)), np.zeros((2, 40, 40))), "usable for the PSF fit"),
        (lambda: motion_psf(0.5), ">= 1 px"),
    ],
)
def test_bad_input_is_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call()
