"""Masked normalised cross-correlation by FFT, and the masks it uses (sample plus bar edges).

Plain correlation, not phase correlation: whitening the spectrum leaves too little signal in the long
motion streaks of the stream frames for a peak. Lags follow one rule everywhere: ``ncc[s]`` compares
``a(x)`` with ``b(x + s)``, so the peak lag is where `a`'s origin lies in `b`; lags wrap, so a lag past
half the FFT size is negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import fft

from napari_temdeblur.core.imaging import apply_window, sample_mask, suggest_window

#: Overlaps smaller than this fraction of the HQ image are not considered (too few pixels to trust).
MIN_OVERLAP = 0.2
#: Overlaps whose variance per pixel is below this fraction of the image's are not compared.
MIN_VARIANCE = 0.05
#: Pixels drawn to find the bars' intensity (plenty for a population that covers a good part of the image).
WINDOW_PIXELS = 200_000


def content_mask(image: np.ndarray, band: int) -> np.ndarray:
    """bool (h, w): the sample plus the `band` px of support-grid bar along its edges.

    Bar interiors are flat black in every image, so they only inflate a correlation and, where the
    grid pitch is a multiple of the HQ step, make distant images look alike; bar edges, though, are
    real features (on a grating they are what tells one period from the next), so a band is kept.
    Without bars in view every pixel counts.
    """
    sample = sample_mask(apply_window(image, suggest_window(image, max_pixels=WINDOW_PIXELS)))
    if sample.all() or not sample.any():
        return np.ones(image.shape, bool)
    distance = cv2.distanceTransform((~sample).astype(np.uint8), cv2.DIST_L2, 3)
    return distance <= band


@dataclass(frozen=True)
class Spectra:
    """Padded FFTs of a mask, of the masked mean-free image and of its square (masked correlation)."""

    mask: np.ndarray
    value: np.ndarray
    square: np.ndarray
    pixels: int
    variance: float


def spectra(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> Spectra:
    """Spectra of `image` (float, (h, w)) restricted to `mask` (bool), zero-padded to `size`."""
    # single precision halves the FFT work; the images are mean-free, so the sums lose nothing that matters
    m = mask.astype(np.float32)
    values = image.astype(np.float32)
    values = (values - values[mask].mean()) * m
    return Spectra(
        fft.rfft2(m, size, workers=-1),
        fft.rfft2(values, size, workers=-1),
        fft.rfft2(values**2, size, workers=-1),
        int(mask.sum()),
        float((values.astype(np.float64) ** 2).sum() / max(mask.sum(), 1)),
    )


def masked_ncc(a: Spectra, b: Spectra, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised cross-correlation of two masked images at every lag (Padfield's masked NCC).

    ``ncc[s] = corr(a(x), b(x + s))`` over the pixels x valid in both, so the peak lag s is where
    `a`'s origin lies in `b`. Lags wrap: a lag past half of `size` is negative.

    Returns
    -------
    ncc : numpy.ndarray
        float64 `size`; -1 where the overlap is under MIN_OVERLAP of `a`'s pixels or nearly flat.
    overlap : numpy.ndarray
        float64 `size`, overlapping pixels as a fraction of `a`'s.
    """

    def corr(x, y):
        return fft.irfft2(np.conj(x) * y, size, workers=-1)

    n = np.round(corr(a.mask, b.mask))
    safe = np.maximum(n, 1)
    sum_a, sum_b = corr(a.value, b.mask), corr(a.mask, b.value)
    var_a = np.maximum(corr(a.square, b.mask) - sum_a**2 / safe, 0)
    var_b = np.maximum(corr(a.mask, b.square) - sum_b**2 / safe, 0)
    cov = corr(a.value, b.value) - sum_a * sum_b / safe
    ncc = cov / np.sqrt(np.maximum(var_a * var_b, 1e-12))
    # overlaps of nearly flat image parts have no trustworthy correlation
    flat = (var_a < MIN_VARIANCE * n * a.variance) | (var_b < MIN_VARIANCE * n * b.variance)
    ncc[(n < MIN_OVERLAP * a.pixels) | flat] = -1.0
    return ncc, n / max(a.pixels, 1)


def peak_lag(ncc: np.ndarray, window: np.ndarray | None = None) -> tuple[float, float, float]:
    """Highest correlation (within the bool `window` of lags, if given) as (value, lag_y, lag_x),
    the lag refined to sub-pixel by a parabola and unwrapped to negative values past half the size."""
    values = ncc if window is None else np.where(window, ncc, -np.inf)
    r, c = np.unravel_index(np.argmax(values), values.shape)
    ry, rx = _subpixel(ncc, r, c)
    h, w = ncc.shape
    return float(ncc[r, c]), ry - h if ry > h / 2 else ry, rx - w if rx > w / 2 else rx


def fft_size(shape: tuple[int, int]) -> tuple[int, int]:
    """A fast FFT size holding every lag between two images of `shape` without wrap-around."""
    return tuple(cv2.getOptimalDFTSize(2 * n - 1) for n in shape)


def _subpixel(values: np.ndarray, r: int, c: int) -> tuple[float, float]:
    """Parabolic peak interpolation along rows and columns (values wrap, as FFT lags do)."""
    h, w = values.shape

    def offset(m, p0, p):
        denom = m - 2 * p0 + p
        return 0.0 if denom >= 0 else 0.5 * (m - p) / denom

    dy = offset(values[(r - 1) % h, c], values[r, c], values[(r + 1) % h, c])
    dx = offset(values[r, (c - 1) % w], values[r, c], values[r, (c + 1) % w])
    return r + float(np.clip(dy, -0.5, 0.5)), c + float(np.clip(dx, -0.5, 0.5))


def lags_near(shape: tuple[int, int], y: float, x: float, radius: float) -> np.ndarray:
    """bool `shape`: wrapped FFT lags within `radius` of (y, x)."""
    ly = np.arange(shape[0])
    lx = np.arange(shape[1])
    ly = np.where(ly > shape[0] / 2, ly - shape[0], ly)
    lx = np.where(lx > shape[1] / 2, lx - shape[1], lx)
    return (ly[:, None] - y) ** 2 + (lx[None, :] - x) ** 2 <= radius**2


def streak_kernel(streak_yx: tuple[float, float]) -> np.ndarray:
    """A line segment of the given (dy, dx) extent, centred, as a float32 kernel summing to 1.

    The kernel has odd sides so that filtering does not shift the image.
    """
    dy, dx = streak_yx
    half = int(np.ceil(max(abs(dy), abs(dx)) / 2)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float64)
    samples = max(int(np.hypot(dy, dx) * 8), 2)
    s = np.linspace(-0.5, 0.5, samples)
    ys, xs = half + s * dy, half + s * dx
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    for oy, wy in ((0, 1 - fy), (1, fy)):
        for ox, wx in ((0, 1 - fx), (1, fx)):
            np.add.at(kernel, (y0 + oy, x0 + ox), wy * wx)
    return (kernel / kernel.sum()).astype(np.float32)


def blur_along(image: np.ndarray, streak_yx: tuple[float, float] | None) -> tuple[np.ndarray, int]:
    """float32 `image` blurred by the motion streak (dy, dx) px (unchanged for None or under a pixel),
    and how far (px) the blur reaches, so callers can leave out the border it invents."""
    image = image.astype(np.float32)
    if streak_yx is None or np.hypot(*streak_yx) < 1:
        return image, 0
    kernel = streak_kernel(streak_yx)
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE), kernel.shape[0] // 2


def thumbnail(image: np.ndarray, factor: int) -> np.ndarray:
    """float32 mean over `factor` x `factor` blocks (a partial last block is dropped, so the scale is
    exactly `factor`): the thumbnails of frame matching and the pyramid levels of ECC."""
    h, w = image.shape
    small = image[: h - h % factor, : w - w % factor].astype(np.float32)
    if factor > 1:
        small = cv2.resize(small, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return small
