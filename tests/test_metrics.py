"""The one SSIM / PSNR implementation against scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_temdeblur.core.imaging import (
    evaluation_tiles,
    psnr,
    ssim,
    ssim_map,
    ssim_torch,
    tile_scores,
)


def skimage_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)


def _pairs():
    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[0:48, 0:80]
    ramp = (rows + cols) / (47 + 79)
    checker = ((rows // 4 + cols // 4) % 2).astype(float)
    sine = 0.5 + 0.5 * np.sin(cols / 3.0) * np.cos(rows / 5.0)
    noisy = lambda x, s: np.clip(x + s * rng.standard_normal(x.shape), 0, 1)  # noqa: E731
    return {
        "random": (rng.random((64, 64)), rng.random((64, 64))),
        "random-non-square": (rng.random((23, 71)), rng.random((23, 71))),
        "ramp-vs-noisy": (ramp, noisy(ramp, 0.1)),
        "checker-vs-blurred": (checker, 0.25 + 0.5 * checker),
        "sine-vs-noisy": (sine, noisy(sine, 0.3)),
        "constant-vs-constant": (np.full((30, 40), 0.2), np.full((30, 40), 0.7)),
        "constant-vs-itself": (np.full((12, 11), 0.5), np.full((12, 11), 0.5)),
        "window-sized": (rng.random((11, 11)), rng.random((11, 11))),
        "float32": (rng.random((40, 33)).astype(np.float32), rng.random((40, 33)).astype(np.float32)),
    }


@pytest.mark.parametrize("case", list(_pairs()))
def test_ssim_and_psnr_match_skimage(case):
    a, b = _pairs()[case]
    assert ssim(a, b) == pytest.approx(skimage_ssim(a.astype(float), b.astype(float)), abs=1e-4)
    if not np.array_equal(a, b):
        assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1), abs=1e-4)


def test_ssim_map_is_the_valid_region_of_skimage_full_map():
    a, b = _pairs()["sine-vs-noisy"]
    _, full = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, full=True
    )
    ours = ssim_map(a, b)
    assert ours.shape == (a.shape[0] - 10, a.shape[1] - 10) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, full[5:-5, 5:-5], atol=1e-6)
    assert ours.mean() == pytest.approx(ssim(a, b))


def test_identical_images_score_one_and_infinite_psnr():
    a = _pairs()["random"][0]
    assert ssim(a, a) == pytest.approx(1.0) and psnr(a, a) == float("inf")


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.zeros((20, 20)), np.zeros((20, 21)), "same shape"),
        (np.zeros((10, 30)), np.zeros((10, 30)), "smaller than the 11 x 11"),
        (np.full((20, 20), np.nan), np.zeros((20, 20)), "NaN"),
        (np.zeros((2, 20, 20)), np.zeros((2, 20, 20)), r"\(H, W\)"),
    ],
)
def test_bad_inputs_raise_clear_errors(a, b, message):
    with pytest.raises(ValueError, match=message):
        ssim(a, b)
    if "smaller" not in message:
        with pytest.raises(ValueError, match=message):
            psnr(a, b)


def test_ssim_torch_gives_per_image_means_and_gradients():
    pairs = _pairs()
    a = np.stack(pairs["random"])
    b = np.clip(a + 0.1, 0, 1)
    pred = torch.tensor(a[:, None], dtype=torch.float32, requires_grad=True)
    scores = ssim_torch(pred, torch.tensor(b[:, None], dtype=torch.float32))
    assert scores.shape == (2,) and scores.dtype == torch.float32
    for score, x, y in zip(scores.detach().numpy(), a, b):
        assert score == pytest.approx(skimage_ssim(x, y), abs=1e-4)
    scores.sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        ssim_torch(pred[:, 0], pred[:, 0])


def test_tile_scores_score_each_evaluation_tile():
    rng = np.random.default_rng(3)
    gt = rng.random((70, 100))
    restored = np.clip(gt + 0.2 * rng.standard_normal(gt.shape), 0, 1)
    mask = np.ones_like(gt, dtype=bool)
    mask[:, 70:] = False  # a grid bar: tiles touching it are left out
    origins = evaluation_tiles(mask, size=32)
    assert len(origins) == 2 * 2  # rows 0, 32; columns 0, 32 (64 touches the bar)
    scores, psnrs = tile_scores(restored, gt, origins, size=32)
    assert scores.shape == psnrs.shape == (len(origins),)
    for (row, col), score, value in zip(origins, scores, psnrs):
        tile_r, tile_g = restored[row : row + 32, col : col + 32], gt[row : row + 32, col : col + 32]
        assert score == pytest.approx(skimage_ssim(tile_r, tile_g), abs=1e-6)
        assert value == pytest.approx(peak_signal_noise_ratio(tile_g, tile_r, data_range=1), abs=1e-6)
    empty = tile_scores(restored, gt, np.empty((0, 2), dtype=int), size=32)
    assert empty[0].shape == empty[1].shape == (0,)
    with pytest.raises(ValueError, match="outside the 70 x 100 image"):
        tile_scores(restored, gt, np.array([[50, 0]]), size=32)
