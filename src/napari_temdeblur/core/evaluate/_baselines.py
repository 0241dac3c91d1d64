"""Classical restoration baselines: the frame mean and its deconvolution by a motion PSF.

These give the paper's learned methods classical context in ``temdeblur evaluate --baselines``:

* ``frame-mean``: the mean of the registered frames (averages the detector noise, keeps the blur);
* ``wiener``: :func:`skimage.restoration.wiener` of the frame mean (Wiener-Hunt, Laplacian prior);
* ``richardson-lucy``: :func:`skimage.restoration.richardson_lucy` of the frame mean.

Both deconvolutions use a vertical line-segment PSF: the stage scans along the image rows' axis
(session ``scan_direction`` "up"/"down"), so during one exposure a specimen point smears into a
vertical streak of constant speed. :func:`estimate_motion_psf` fits the streak length to the data.

Images are (row, col) = (y, x), bursts (frame, row, col); intensities are windowed to [0, 1]
(:func:`napari_temdeblur.core.imaging.apply_window`, the Low window for frames). Lengths are in
pixels of the registered images (stream pixels).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.restoration import richardson_lucy, wiener

__all__ = ["BASELINES", "DEFAULTS", "baseline", "estimate_motion_psf", "motion_psf"]

BASELINES = ("frame-mean", "wiener", "richardson-lucy")

#: Default parameters per method, chosen on the simulator (see docs/baselines.md for the sweep).
DEFAULTS: dict[str, dict[str, float]] = {
    "frame-mean": {},
    "wiener": {"balance": 2.0},
    "richardson-lucy": {"iterations": 2},
}

# Candidate streak lengths are fitted on this grid (px); half a pixel is well below what the
# SSIM of a deconvolution can tell apart.
_LENGTH_STEP = 0.5
#: Longest motion blur searched by default, stream px: a 15 ms exposure smears ~12 px at the paper's
#: stage speed; without a cap the search grows with the image height (minutes on a 4096 px image).
MAX_PSF_LENGTH_PX = 64.0


def motion_psf(length: float) -> np.ndarray:
    """Vertical line-segment PSF of a continuous `length`, centred, summing to 1.

    Pixel ``i`` (offset from the centre) gets the overlap of ``[i - 1/2, i + 1/2]`` with
    ``[-length/2, length/2]``, so an odd integer `length` is a plain box and fractional lengths
    weight the two end pixels partially.

    Parameters
    ----------
    length : float
        Streak length along the scan (rows), px; >= 1.

    Returns
    -------
    ndarray
        float64 (n, 1) with n odd, the smallest that holds the segment.
    """
    if not (np.isfinite(length) and length >= 1):
        raise ValueError(f"PSF length must be a finite number >= 1 px, got {length}")
    half = int(np.ceil((length - 1) / 2))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    overlap = np.minimum(offsets + 0.5, length / 2) - np.maximum(offsets - 0.5, -length / 2)
    weights = np.clip(overlap, 0.0, None)
    return (weights / weights.sum())[:, None]


def _check_burst(burst: np.ndarray, what: str = "burst") -> np.ndarray:
    burst = np.asarray(burst)
    if burst.ndim != 3 or burst.shape[0] < 1:
        raise ValueError(f"{what} must be (F, H, W) with F >= 1 frames, got shape {burst.shape}")
    if burst.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be real-valued, got dtype {burst.dtype}")
    burst = burst.astype(np.float64)
    if not np.isfinite(burst).all():
        raise ValueError(f"{what} contains NaN or infinite values; window the data to [0, 1] first")
    return burst


def estimate_motion_psf(gt: np.ndarray, frames: np.ndarray, *, max_length: float | None = None) -> np.ndarray:
    """Fit the vertical motion PSF that maps the registered GT to the frame mean.

    For each candidate length L (steps of 0.5 px) the GT is blurred along the columns by
    :func:`motion_psf` (L) and the frame mean is fitted as ``a * blurred + b`` by least squares (the
    gain and offset absorb the different GT and Low windows); the L with the smallest residual wins.
    Only pixels where every frame lies strictly inside (0, 1) are fitted, so registration padding,
    grid bars and clipped intensities (where the linear model does not hold) do not bias the length.

    The GT is used because it is there in every registered pair (the dataset's test split included)
    and makes the fit a well-posed 1-D least-squares problem; a blind estimate from the frames alone
    would have to assume an isotropic specimen. Fitting on the pair under evaluation makes these
    baselines an upper bound on what a motion-PSF deconvolution achieves.

    Parameters
    ----------
    gt : ndarray
        (H, W) registered sharp image, windowed to [0, 1].
    frames : ndarray
        (F, H, W) registered frames, windowed to [0, 1].
    max_length : float or None
        Longest candidate, px; None uses a quarter of H, at most ``MAX_PSF_LENGTH_PX``.

    Returns
    -------
    ndarray
        float64 (n, 1) PSF from :func:`motion_psf`.

    Raises
    ------
    ValueError
        Shapes that disagree, NaN/inf, an image too short for the candidates, or too few usable pixels.
    """
    gt = np.asarray(gt)
    if gt.ndim != 2:
        raise ValueError(f"gt must be (H, W), got shape {gt.shape}")
    frames = _check_burst(frames, "frames")
    gt = _check_burst(gt[None], "gt")[0]
    if frames.shape[1:] != gt.shape:
        raise ValueError(f"frames {frames.shape} and gt {gt.shape} must share (H, W)")
    height = gt.shape[0]
    max_length = min(height / 4, MAX_PSF_LENGTH_PX) if max_length is None else float(max_length)
    if not max_length >= 1:
        raise ValueError(f"max_length must be >= 1 px, got {max_length} (gt height {height})")
    lengths = np.arange(1.0, max_length + _LENGTH_STEP / 2, _LENGTH_STEP)
    # Rows within half the longest kernel of the top/bottom see the 'nearest' border extension.
    margin = motion_psf(lengths[-1]).shape[0] // 2
    usable = ((frames > 0) & (frames < 1)).all(axis=0)
    usable[:margin] = usable[height - margin :] = False
    if usable.sum() < 100:
        raise ValueError(
            f"only {int(usable.sum())} pixels are usable for the PSF fit (need 100): the frames are "
            "mostly padding or clipped, or the image is too short for max_length"
        )
    target = frames.mean(axis=0)[usable]
    residuals = []
    for length in lengths:
        blurred = ndi.convolve1d(gt, motion_psf(length)[:, 0], axis=0, mode="nearest")[usable]
        design = np.stack([blurred, np.ones_like(blurred)], axis=1)
        coef = np.linalg.lstsq(design, target, rcond=None)[0]
        # computed, not taken from lstsq, which reports no residual for a rank-deficient (flat) GT
        residuals.append(float(np.sum((design @ coef - target) ** 2)))
    return motion_psf(lengths[int(np.argmin(residuals))])


def baseline(method: str, burst: np.ndarray, psf: np.ndarray | None = None, **params) -> np.ndarray:
    """Restore a registered burst with a classical baseline.

    Parameters
    ----------
    method : str
        One of :data:`BASELINES`.
    burst : ndarray
        (F, H, W) registered frames windowed to [0, 1].
    psf : ndarray or None
        2-D PSF (e.g. :func:`estimate_motion_psf`) for ``wiener`` and ``richardson-lucy``.
    **params
        ``balance`` (wiener: weight of the Laplacian prior, larger = smoother) or ``iterations``
        (richardson-lucy; more = sharper and noisier). Defaults in :data:`DEFAULTS`.

    Returns
    -------
    ndarray
        float32 (H, W) in [0, 1], the scale of the input frames.

    Raises
    ------
    ValueError
        Unknown method or parameter, bad shapes, NaN/inf, a missing or invalid PSF.
    """
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINES)}")
    unknown = sorted(set(params) - set(DEFAULTS[method]))
    if unknown:
        raise ValueError(
            f"baseline {method!r} has no parameter {', '.join(unknown)}; "
            f"it takes {', '.join(DEFAULTS[method]) or 'none'}"
        )
    mean = _check_burst(burst).mean(axis=0)
    if method == "frame-mean":
        return mean.astype(np.float32)
    if psf is None:
        raise ValueError(f"baseline {method!r} needs a PSF (see estimate_motion_psf)")
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 2 or not np.isfinite(psf).all() or (psf < 0).any() or psf.sum() <= 0:
        raise ValueError(f"psf must be finite, non-negative, (h, w) and with a positive sum; got shape {psf.shape}")
    psf = psf / psf.sum()
    settings = {**DEFAULTS[method], **params}
    # Both deconvolutions treat the image as periodic (wiener) or zero outside (richardson-lucy);
    # mirroring by the PSF size keeps the image edges from ringing into the result.
    pad = [(s, s) for s in psf.shape]
    padded = np.pad(mean, pad, mode="symmetric")
    if method == "wiener":
        if not settings["balance"] > 0:
            raise ValueError(f"wiener balance must be > 0, got {settings['balance']}")
        out = wiener(padded, psf, settings["balance"], clip=False)
    else:
        iterations = settings["iterations"]
        if int(iterations) != iterations or iterations < 1:
            raise ValueError(f"richardson-lucy iterations must be a positive integer, got {iterations}")
        out = richardson_lucy(padded, psf, num_iter=int(iterations), clip=False)
    out = out[pad[0][0] : pad[0][0] + mean.shape[0], pad[1][0] : pad[1][0] + mean.shape[1]]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
