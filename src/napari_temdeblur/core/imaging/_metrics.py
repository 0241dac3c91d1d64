"""The one SSIM / PSNR implementation, shared by the SSIM loss, validation and evaluation.

SSIM follows Wang et al. (2004) as docs/design.md (SSIM and PSNR) fixes it: a Gaussian window of 11
taps with sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, population (not sample) covariances. The local
statistics are computed only where the whole window lies inside the image (a *valid* convolution),
which is exactly the region scikit-image keeps when it crops ``(win_size - 1) // 2`` pixels from each
side before averaging; so :func:`ssim` equals ``skimage.metrics.structural_similarity(a, b,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.

Torch functions (:func:`ssim_torch`) are differentiable and keep the input dtype/device; the numpy
functions (:func:`ssim`, :func:`ssim_map`, :func:`psnr`, :func:`tile_scores`) compute in float64.
Images are (H, W) = (row, col), intensities already windowed to [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["WINDOW", "SIGMA", "ssim_torch", "ssim_map_torch", "ssim", "ssim_map", "psnr", "tile_scores"]

WINDOW = 11  #: Gaussian window side, px (skimage: 2 * int(3.5 * sigma + 0.5) + 1)
SIGMA = 1.5  #: Gaussian window standard deviation, px
K1, K2 = 0.01, 0.03
DATA_RANGE = 1.0
C1, C2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2


def _gaussian_taps(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian, (WINDOW,), as scipy.ndimage.gaussian_filter truncates it."""
    radius = WINDOW // 2
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (x / SIGMA) ** 2)
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def _check_pair_torch(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim != 4 or a.shape[1] != 1:
        raise ValueError(f"expected (B, 1, H, W) tensors, got shape {tuple(a.shape)}")
    if min(a.shape[-2:]) < WINDOW:
        raise ValueError(
            f"images of {a.shape[-2]} x {a.shape[-1]} px are smaller than the {WINDOW} x {WINDOW} SSIM window"
        )


def _blur_valid(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter keeping only full-window positions: (B, C, H, W) -> (B, C, H-10, W-10)."""
    channels = x.shape[1]
    row = taps.view(1, 1, 1, -1).expand(channels, 1, 1, WINDOW)
    col = taps.view(1, 1, -1, 1).expand(channels, 1, WINDOW, 1)
    return F.conv2d(F.conv2d(x, row, groups=channels), col, groups=channels)


def ssim_map_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM map over the valid region.

    Parameters
    ----------
    a, b : Tensor
        (B, 1, H, W) float images in [0, 1]; H, W >= 11.

    Returns
    -------
    Tensor
        (B, 1, H - 10, W - 10), same dtype and device as `a`; differentiable.
    """
    _check_pair_torch(a, b)
    taps = _gaussian_taps(a.dtype, a.device)
    # One filter pass over the five channels a, b, a^2, b^2, ab.
    stats = _blur_valid(torch.cat([a, b, a * a, b * b, a * b], dim=1), taps)
    mu_a, mu_b, e_aa, e_bb, e_ab = stats.unbind(dim=1)
    var_a = e_aa - mu_a * mu_a
    var_b = e_bb - mu_b * mu_b
    cov = e_ab - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + C1) * (2 * cov + C2)
    denominator = (mu_a * mu_a + mu_b * mu_b + C1) * (var_a + var_b + C2)
    return (numerator / denominator).unsqueeze(1)


def ssim_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each image pair, (B, 1, H, W) -> (B,), differentiable (the SSIM loss uses it).

    Inputs as :func:`ssim_map_torch`; the mean is over the valid region, in the dtype of `a`.
    """
    return ssim_map_torch(a, b).mean(dim=(1, 2, 3))


def _as_float64_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim != 2:
        raise ValueError(f"expected (H, W) images, got shape {a.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("images contain NaN")
    return a, b


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map of two (H, W) images in [0, 1] over the valid region.

    Returns
    -------
    ndarray
        float64 (H - 10, W - 10); entry (i, j) is the SSIM of the window centred on pixel
        (i + 5, j + 5) of the inputs. Its mean is :func:`ssim`.
    """
    a, b = _as_float64_pair(a, b)
    with torch.no_grad():
        out = ssim_map_torch(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])
    return out[0, 0].numpy()


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two (H, W) images in [0, 1] (scikit-image's value, see the module docstring)."""
    return float(ssim_map(a, b).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB with MAX = 1 for (H, W) images in [0, 1]; inf when equal."""
    a, b = _as_float64_pair(a, b)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(DATA_RANGE**2 / mse)


def tile_scores(
    restored: np.ndarray, gt: np.ndarray, origins: np.ndarray, size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """SSIM and PSNR of each evaluation tile.

    Parameters
    ----------
    restored, gt : ndarray
        (H, W) images in [0, 1].
    origins : ndarray
        (K, 2) int (row, col) top-left corners, e.g. from
        :func:`napari_temdeblur.core.imaging.evaluation_tiles`.
    size : int
        Tile side, px (>= 11).

    Returns
    -------
    ssim : ndarray
        float64 (K,).
    psnr : ndarray
        float64 (K,), dB.
    """
    restored, gt = _as_float64_pair(restored, gt)
    origins = np.asarray(origins, dtype=np.int64).reshape(-1, 2)
    height, width = gt.shape
    outside = (origins < 0).any(axis=1) | (origins[:, 0] + size > height) | (origins[:, 1] + size > width)
    if outside.any():
        raise ValueError(
            f"tile origin {tuple(origins[outside][0])} with size {size} lies outside the {height} x {width} image"
        )
    if len(origins) == 0:
        return np.empty(0), np.empty(0)
    rows = origins[:, 0, None] + np.arange(size)
    cols = origins[:, 1, None] + np.arange(size)
    tiles_r = restored[rows[:, :, None], cols[:, None, :]]  # (K, size, size)
    tiles_g = gt[rows[:, :, None], cols[:, None, :]]
    with torch.no_grad():
        scores = ssim_torch(torch.from_numpy(tiles_r)[:, None], torch.from_numpy(tiles_g)[:, None]).numpy()
    mse = ((tiles_r - tiles_g) ** 2).mean(axis=(1, 2))
    with np.errstate(divide="ignore"):
        psnrs = 10.0 * np.log10(DATA_RANGE**2 / mse)
    return scores, psnrs
