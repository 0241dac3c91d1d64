"""Hallucination flags: where a restored image holds detail that its measured frames contradict.

Each registered frame is predicted from the restored image by the forward model (:mod:`._forward`:
the frame's motion blur, then its gain and offset). Where the restoration is faithful, what is left,
frame minus prediction, is detector noise; where the network drew something the specimen does not
have (or left out something it has), every frame disagrees with the prediction the same way. So:

1. residual ``r_k = frame_k - prediction_k`` (counts), and its mean over the F frames, ``m``;
2. the noise of one frame, as a function of the predicted counts (Poisson-Gaussian: variance
   ``a * counts + b``), fitted to the scatter of the residuals *between* frames (which a consistent
   disagreement does not inflate) with a robust, binned fit;
3. ``m`` averaged over a Gaussian window (:data:`WINDOW_SIGMA_PX`) and divided by its own standard
   deviation (from the noise model): z, standard normal where the restoration is faithful; the flag
   score is ``z^2`` (a chi-square with one degree of freedom there), so that an invented bright and an
   invented dark structure count alike, and evidence accumulates over the window's pixels;
4. flagged where the score exceeds :data:`THRESHOLD`, chosen on simulated data where the truth is
   known (docs/flags.md): the GT itself, checked against its own frames, is flagged on well under 1 %.

What the frames cannot see cannot be flagged: detail along the scan shorter than the streak is
averaged away in every frame, so a network may invent it without contradicting them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage, stats

from ._forward import FrameModel, blur, fit_motion

#: Sigma of the Gaussian window the squared residual is averaged over, px.
WINDOW_SIGMA_PX = 2.0
#: Flag where the windowed mean of z^2 (1 where the restoration is faithful) exceeds this
#: (calibrated on simulated kidney, grid and the synthetic images: docs/flags.md).
THRESHOLD = 25.0
#: The most the score is deflated for a forward model that misses the frames everywhere a little.
MAX_DISPERSION = 4.0
#: Intensity bins of the noise fit.
NOISE_BINS = 24
#: Flagged regions smaller than this many pixels are dropped (a window's worth of noise).
MIN_AREA_PX = 12


@dataclass
class Flags:
    """The hallucination flags of one restored image.

    Attributes
    ----------
    mask : numpy.ndarray
        bool (H, W): True where the frames contradict the restored image.
    score : numpy.ndarray
        float32 (H, W): z^2 of the windowed mean residual (mean 1 where the restoration is faithful); NaN where
        not checked (registration padding, the borders a streak reaches beyond).
    fraction : float
        Share of the checked pixels that are flagged, in [0, 1].
    frames : list of FrameModel
        Each frame's fitted (or given) streak and intensity map.
    noise : tuple of float
        (a, b): one frame's noise variance = a * counts + b (counts^2).
    dispersion : float
        How much z^2 was deflated for a forward model that misses everywhere a little (1: not at all).
    threshold : float
        The score above which pixels are flagged.
    """

    mask: np.ndarray
    score: np.ndarray
    fraction: float
    frames: list[FrameModel] = field(default_factory=list)
    noise: tuple[float, float] = (0.0, 0.0)
    dispersion: float = 1.0
    threshold: float = THRESHOLD

    def to_dict(self) -> dict:
        """JSON-ready summary (no arrays): fraction, threshold, per-frame models, noise."""
        return {
            "flagged_fraction": self.fraction,
            "threshold": self.threshold,
            "window_sigma_px": WINDOW_SIGMA_PX,
            "frames": [f.to_dict() for f in self.frames],
            "noise_variance": {"per_count": self.noise[0], "constant": self.noise[1]},
            "dispersion": self.dispersion,
        }


def _check(restored, frames) -> tuple[np.ndarray, np.ndarray]:
    restored, frames = np.asarray(restored), np.asarray(frames)
    if restored.ndim != 2:
        raise ValueError(f"the restored image must be (rows, cols), got shape {restored.shape}")
    if frames.ndim != 3:
        raise ValueError(f"the frames must be (frames, rows, cols), got shape {frames.shape}")
    if frames.shape[1:] != restored.shape:
        raise ValueError(
            f"the frames are {frames.shape[1]} x {frames.shape[2]} px but the restored image is "
            f"{restored.shape[0]} x {restored.shape[1]} px: flags need frames registered onto the restored image"
        )
    if len(frames) < 2:
        raise ValueError(f"flags need at least 2 frames to tell noise from disagreement, got {len(frames)}")
    for name, a in (("restored image", restored), ("frames", frames)):
        if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and not np.isfinite(a).all()):
            raise ValueError(f"the {name} must hold finite real numbers (dtype {a.dtype})")
    if min(restored.shape) < 16:
        raise ValueError(f"the image is {restored.shape[0]} x {restored.shape[1]} px; flags need at least 16 x 16")
    return restored.astype(np.float32), frames.astype(np.float32)


def _checked(frames: np.ndarray, margin: int) -> np.ndarray:
    """Pixels every frame measured (exact zeros are registration padding), `margin` px from any edge."""
    measured = (frames != 0).all(axis=0)
    inside = ndimage.binary_erosion(measured, np.ones((2 * margin + 1,) * 2, bool), border_value=0)
    return inside if inside.any() else measured


def _noise_model(predicted: np.ndarray, scatter: np.ndarray, frames: int) -> tuple[float, float]:
    """(a, b) of variance = a * counts + b, from per-pixel sample variances between frames.

    Per intensity bin (quantiles of the predicted counts) the median sample variance, divided by the
    median of chi^2_{F-1} / (F - 1), estimates the variance robustly (misregistered edges are the
    few large ones); a non-negative least-squares line through the bins gives a and b."""
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, NOISE_BINS + 1)))
    which = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, len(edges) - 2)
    correction = stats.chi2.median(frames - 1) / (frames - 1)
    centres, variances = [], []
    for k in range(len(edges) - 1):
        inside = which == k
        if inside.sum() >= 20:
            centres.append(np.median(predicted[inside]))
            variances.append(np.median(scatter[inside]) / correction)
    if len(centres) < 2:
        return 0.0, float(np.median(scatter) / correction)
    from scipy.optimize import nnls

    coef, _ = nnls(np.stack([np.maximum(centres, 0), np.ones(len(centres))], axis=1), np.asarray(variances))
    return float(coef[0]), float(coef[1])


def hallucination_flags(
    restored: np.ndarray,
    frames: np.ndarray,
    *,
    motion: Sequence[FrameModel] | None = None,
    threshold: float = THRESHOLD,
) -> Flags:
    """Flag where a restored image disagrees with the frames it was restored from beyond their noise.

    Parameters
    ----------
    restored : numpy.ndarray
        (H, W) restored image, any linear intensity scale (e.g. float32 [0, 1] in the run's GT window,
        or uint16 GT counts).
    frames : numpy.ndarray
        (F, H, W), F >= 2, the burst's frames in detector counts, registered onto `restored`'s grid
        (the registered burst the image was restored from); exact zeros are registration padding.
    motion : sequence of FrameModel, optional
        Each frame's streak (``length_px``, ``angle_deg``) when known (e.g. from the session's scan
        speed and exposure); gain and offset are fitted either way. Default: fitted by least squares
        (:func:`fit_motion`).
    threshold : float
        Flag where z^2 of the windowed mean residual exceeds this (default :data:`THRESHOLD`).

    Returns
    -------
    Flags

    Raises
    ------
    ValueError
        Shapes that do not fit (named), fewer than 2 frames, NaN or infinite values, `motion` of
        another length than the frames.
    """
    restored, frames = _check(restored, frames)
    count = len(frames)
    if motion is not None and len(motion) != count:
        raise ValueError(f"motion gives {len(motion)} frame models for {count} frames")
    valid = _checked(frames, 2)
    if motion is None:
        models = fit_motion(restored, frames, valid)
    else:
        from ._forward import robust_gain_offset

        models = []
        for m, frame in zip(motion, frames):
            model = blur(restored, m.length_px, m.angle_deg)
            models.append(FrameModel(m.length_px, m.angle_deg, *robust_gain_offset(model[valid], frame[valid])))
    # the borders a streak reaches beyond were measured from specimen outside the restored image
    margin = int(np.ceil(max(m.length_px for m in models) / 2)) + 2
    checked = _checked(frames, margin)
    residuals = np.empty_like(frames)
    predicted = np.zeros_like(restored)
    for k, m in enumerate(models):
        prediction = m.gain * blur(restored, m.length_px, m.angle_deg) + m.offset
        residuals[k] = frames[k] - prediction
        predicted += prediction / count
    mean = residuals.mean(axis=0)
    scatter = residuals.var(axis=0, ddof=1)
    a, b = _noise_model(predicted[checked], scatter[checked], count)
    variance = np.maximum(a * np.maximum(predicted, 0) + b, 1e-6 * max(b, 1.0) + 1e-12)
    # the mean residual averaged over a Gaussian window (checked pixels only: a normalised convolution),
    # standardised by its own noise: sum(w m) / sqrt(sum(w^2 variance / F)) is N(0, 1) where faithful
    weights = cv2.GaussianBlur(checked.astype(np.float32), (0, 0), WINDOW_SIGMA_PX)
    summed = cv2.GaussianBlur(np.where(checked, mean, 0).astype(np.float32), (0, 0), WINDOW_SIGMA_PX)
    kernel = cv2.getGaussianKernel(int(2 * np.ceil(4 * WINDOW_SIGMA_PX) + 1), WINDOW_SIGMA_PX)
    spread = cv2.sepFilter2D(np.where(checked, variance / count, 0).astype(np.float32), -1, kernel**2, kernel**2)
    # cv2.GaussianBlur normalises its window to sum 1 in the same way, so both use the same weights
    score = summed**2 / np.maximum(spread, 1e-12)
    score[~checked | (weights <= 0)] = np.nan
    # Where the straight-line streak misses the real stage path (vibration, jitter) every edge leaves a
    # little residual, the same in every frame: z^2 is then over-dispersed everywhere. Its median,
    # over that of chi^2_1, measures this (most of an image is faithful) and is divided out, up to
    # MAX_DISPERSION so that a restoration wrong everywhere is not explained away.
    dispersion = float(np.clip(np.nanmedian(score) / stats.chi2.median(1), 1.0, MAX_DISPERSION))
    score /= dispersion
    mask = np.nan_to_num(score, nan=0.0) > threshold
    mask = _drop_small(mask)
    fraction = float(mask.sum() / checked.sum()) if checked.any() else 0.0
    return Flags(mask, score.astype(np.float32), fraction, models, (a, b), dispersion, float(threshold))


def _drop_small(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if not n:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= MIN_AREA_PX
    keep[0] = False
    return keep[labels]
