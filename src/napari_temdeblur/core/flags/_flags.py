"""Hallucination flags: where a restored image holds detail that its measured frames contradict.

Each registered frame is predicted from the restored image by the forward model (:mod:`._forward`:
the frame's motion blur, a residual sub-pixel shift, then its gain and offset, fitted twice, the
second time without the pixels that disagree). Where the restoration is faithful, what is left, frame
minus prediction, is detector noise; where the network drew something the specimen does not have (or
left out something it has), every frame disagrees with the prediction the same way. So:

1. residual ``r_k = frame_k - prediction_k`` (counts), and its mean over the F frames, ``m``;
2. the noise of one frame as a function of the predicted counts, per intensity bin, from the scatter
   of the residuals *between* frames (which a consistent disagreement does not inflate), robustly;
   the straight streak's own error at strong edges is added as a bias (:data:`MODEL_ERROR_PX`);
3. two scores (:func:`_scores`): *structure*, ``m`` averaged over a Gaussian window and squared over
   its variance (chi^2_1 where faithful), and *texture*, the windowed mean of each pixel's squared
   z, standardised (about N(0, 1) where faithful), for invented fine patterns;
4. flagged where either exceeds its threshold (:data:`THRESHOLD`, :data:`TEXTURE_THRESHOLD`, chosen
   on simulated data where the truth is known, docs/flags.md: the GT itself, checked against its own
   frames, is hardly flagged) and the disagreement is visible (:data:`MIN_EFFECT`).

What the frames cannot see cannot be flagged: detail along the scan shorter than the streak is
averaged away in every frame, so a network may invent it without contradicting them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage, stats

from ._forward import FrameModel, fit_motion, fit_shift, robust_gain_offset

#: Sigma of the Gaussian window the mean residual is averaged over (structure score), px.
WINDOW_SIGMA_PX = 2.0
#: Flag where the structure score (chi^2_1 where the restoration is faithful) exceeds this
#: (calibrated on simulated kidney, grid and the synthetic images: docs/flags.md).
THRESHOLD = 25.0
#: The forward model's error at an edge, as a shift of the edge, px (calibrated: docs/flags.md).
MODEL_ERROR_PX = 0.2
#: Pixels whose smoothed mean residual lies further than this many robust standard deviations from
#: its median are left out of the second fit of the forward model.
AGREE_SIGMAS = 3.0
#: Sigma of the wider window the texture score averages z^2 over, px.
TEXTURE_SIGMA_PX = 4.0
#: Flag where the texture score (about N(0, 1) where the restoration is faithful) exceeds this.
TEXTURE_THRESHOLD = 20.0
#: Smallest disagreement flagged, as a share of the restored image's range (0.5 to 99.5th percentile).
MIN_EFFECT = 0.03
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
        float32 (H, W): the structure score, z^2 of the windowed mean residual (chi^2_1 where the
        restoration is faithful); NaN where not checked (registration padding, the borders a streak
        reaches beyond).
    fraction : float
        Share of the checked pixels that are flagged, in [0, 1].
    frames : list of FrameModel
        Each frame's fitted (or given) streak and intensity map.
    noise : tuple of numpy.ndarray
        (counts, variances): one frame's noise variance (counts^2) at these predicted counts,
        interpolated between them.
    texture : numpy.ndarray
        float32 (H, W): the texture score (about N(0, 1) where faithful), NaN where not checked.
    threshold : float
        The structure score above which pixels are flagged.
    """

    mask: np.ndarray
    score: np.ndarray
    fraction: float
    frames: list[FrameModel] = field(default_factory=list)
    noise: tuple[np.ndarray, np.ndarray] = (np.zeros(1), np.ones(1))
    texture: np.ndarray | None = None
    threshold: float = THRESHOLD

    def to_dict(self) -> dict:
        """JSON-ready summary (no arrays): fraction, threshold, per-frame models, noise."""
        return {
            "flagged_fraction": self.fraction,
            "threshold": self.threshold,
            "window_sigma_px": WINDOW_SIGMA_PX,
            "frames": [f.to_dict() for f in self.frames],
            "noise_variance": {"counts": self.noise[0].tolist(), "variance": self.noise[1].tolist()},
            "texture_threshold": TEXTURE_THRESHOLD,
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


def _noise_model(predicted: np.ndarray, scatter: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """One frame's noise variance as a function of the predicted counts: (counts, variances) of
    :data:`NOISE_BINS` intensity bins, to interpolate between.

    Per bin (quantiles of the predicted counts) the median sample variance between frames, divided
    by the median of chi^2_{F-1} / (F - 1), estimates the variance robustly (misregistered edges are
    the few large ones). No formula is imposed: a Poisson-Gaussian detector gives a line with an
    offset (gain * (counts - offset) + read noise^2), a clipped or binned one something else."""
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, NOISE_BINS + 1)))
    which = np.clip(np.searchsorted(edges, predicted, side="right") - 1, 0, len(edges) - 2)
    correction = stats.chi2.median(frames - 1) / (frames - 1)
    centres, variances = [], []
    for k in range(len(edges) - 1):
        inside = which == k
        if inside.sum() >= 20:
            centres.append(np.median(predicted[inside]))
            variances.append(np.median(scatter[inside]) / correction)
    if not centres:
        centres, variances = [float(np.median(predicted))], [float(np.median(scatter) / correction)]
    centres, variances = np.asarray(centres), np.maximum(np.asarray(variances), 1e-12)
    # bins of equal centre (a flat black region filling several quantiles) are merged by np.interp's
    # need for increasing x: keep the first of each
    centres, first = np.unique(centres, return_index=True)
    return centres, variances[first]


def hallucination_flags(
    restored: np.ndarray,
    frames: np.ndarray,
    *,
    motion: Sequence[FrameModel] | None = None,
    streak_px: float | None = None,
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
    streak_px : float, optional
        Without `motion`: the streak length when known (stage speed x exposure / stream pixel size,
        e.g. 25 um/s x 15 ms / 31.25 nm = 12 px); the direction is still fitted. Recommended: a
        restoration that is itself blurred is otherwise matched by a shorter fitted streak, and its
        missing detail goes unflagged.
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
    models = _frame_models(restored, frames, valid, motion, streak_px)
    # Again without the pixels that disagree: an invented structure would otherwise pull the fit (a
    # longer streak thins it out; in an image of little contrast it sets the gain) and every pixel of
    # another brightness would then disagree a little. They show in the mean residual, where the
    # noise is sqrt(F) lower than in any one frame.
    disagreement = cv2.GaussianBlur(
        np.mean([f - m.predict(restored) for m, f in zip(models, frames)], axis=0), (0, 0), WINDOW_SIGMA_PX
    )
    centre = np.median(disagreement[valid])
    spread = 1.4826 * np.median(np.abs(disagreement[valid] - centre))
    agree = valid & (np.abs(disagreement - centre) <= AGREE_SIGMAS * max(spread, 1e-12))
    if agree.sum() >= 0.5 * valid.sum():
        models = _frame_models(restored, frames, agree, motion, streak_px)
    # the borders a streak reaches beyond were measured from specimen outside the restored image
    margin = int(np.ceil(max(m.length_px for m in models) / 2)) + 2
    checked = _checked(frames, margin)
    residuals = np.empty_like(frames)
    predicted = np.zeros_like(restored)
    for k, m in enumerate(models):
        prediction = m.predict(restored)
        residuals[k] = frames[k] - prediction
        predicted += prediction / count
    mean = residuals.mean(axis=0)
    scatter = residuals.var(axis=0, ddof=1)
    levels, variances = _noise_model(predicted[checked], scatter[checked], count)
    variance = np.interp(predicted, levels, variances).astype(np.float32)
    slope = np.hypot(*np.gradient(predicted))
    score, texture, amplitude = _scores(mean, variance / count, MODEL_ERROR_PX * slope, checked)
    # in the restored image's units: a disagreement the eye would miss is not flagged, however certain
    gain = float(np.mean([abs(m.gain) for m in models])) or 1.0
    low, high = np.percentile(restored[checked], [0.5, 99.5]) if checked.any() else (0.0, 1.0)
    visible = amplitude / gain >= MIN_EFFECT * max(float(high - low), 1e-12)
    mask = visible & ((np.nan_to_num(score) > threshold) | (np.nan_to_num(texture) > TEXTURE_THRESHOLD))
    mask = _drop_small(mask)
    fraction = float(mask.sum() / checked.sum()) if checked.any() else 0.0
    return Flags(mask, score, fraction, models, (levels, variances), texture, float(threshold))


def _scores(mean: np.ndarray, noise: np.ndarray, bias: np.ndarray, checked: np.ndarray):
    """(structure, texture, amplitude) of the mean residual `mean` (counts), NaN where not `checked`.

    `noise` is its variance from the detector (one frame's over F), `bias` the forward model's own
    error at edges (:data:`MODEL_ERROR_PX` times the slope of the prediction): the straight streak
    is a model, the real stage path wanders (vibration, jitter), so at a strong edge every frame
    differs from the prediction a little, alike - a bias, the same over a window, not noise.

    * structure: the mean residual averaged over a Gaussian window (:data:`WINDOW_SIGMA_PX`), squared
      over its own variance, ``(sum w m)^2 / (sum w^2 noise + (sum w bias)^2)``: chi^2_1 where the
      restoration is faithful; evidence of a same-sign disagreement (a structure too many or too few)
      adds up over the window's pixels;
    * texture: the windowed mean (:data:`TEXTURE_SIGMA_PX`) of each pixel's ``m^2 / (noise + bias^2)``,
      less its mean 1, over its standard deviation ``sqrt(2 sum w^2)``: about N(0, 1) where faithful;
      it sees an invented fine pattern, whose residual changes sign within the structure window.

    * amplitude: the disagreement's size in counts, the larger of the windowed mean residual's and
      the windowed r.m.s. residual beyond the noise.

    Windows are normalised convolutions over the checked pixels (cv2.GaussianBlur's weights sum to 1).
    """
    inside = checked.astype(np.float32)
    weights = cv2.GaussianBlur(inside, (0, 0), WINDOW_SIGMA_PX)
    summed = cv2.GaussianBlur(np.where(checked, mean, 0).astype(np.float32), (0, 0), WINDOW_SIGMA_PX)
    kernel = cv2.getGaussianKernel(int(2 * np.ceil(4 * WINDOW_SIGMA_PX) + 1), WINDOW_SIGMA_PX)
    spread = cv2.sepFilter2D(np.where(checked, noise, 0).astype(np.float32), -1, kernel**2, kernel**2)
    biased = cv2.GaussianBlur(np.where(checked, bias, 0).astype(np.float32), (0, 0), WINDOW_SIGMA_PX)
    structure = summed**2 / np.maximum(spread + biased**2, 1e-12)
    structure[~checked | (weights <= 0)] = np.nan
    z2 = np.where(checked, mean**2 / np.maximum(noise + bias**2, 1e-12), 0).astype(np.float32)
    near = cv2.GaussianBlur(inside, (0, 0), TEXTURE_SIGMA_PX)
    averaged = cv2.GaussianBlur(z2, (0, 0), TEXTURE_SIGMA_PX) / np.maximum(near, 1e-6)
    texture = (averaged - 1) / np.sqrt(2 / (4 * np.pi * TEXTURE_SIGMA_PX**2))
    texture[~checked | (near <= 0)] = np.nan
    safe = np.maximum(near, 1e-6)
    power = (
        cv2.GaussianBlur(np.where(checked, mean**2 - noise, 0).astype(np.float32), (0, 0), TEXTURE_SIGMA_PX)
    ) / safe
    amplitude = np.maximum(np.abs(summed) / np.maximum(weights, 1e-6), np.sqrt(np.maximum(power, 0)))
    return structure.astype(np.float32), texture.astype(np.float32), amplitude


def _frame_models(restored, frames, valid, motion, streak_px) -> list[FrameModel]:
    """Each frame's streak (given in `motion`, else fitted), residual shift, gain and offset, fitted
    on the `valid` pixels."""
    if motion is None:
        models = fit_motion(restored, frames, valid, length_px=streak_px)
    else:
        models = [FrameModel(m.length_px, m.angle_deg) for m in motion]
    return [_laid_on(fit_shift(m, restored, frame), restored, frame, valid) for m, frame in zip(models, frames)]


def _laid_on(model: FrameModel, restored: np.ndarray, frame: np.ndarray, valid: np.ndarray) -> FrameModel:
    """`model` with the gain and offset that map the blurred, shifted restored image onto `frame`
    (:func:`robust_gain_offset` over the `valid` pixels)."""
    blurred = dataclasses.replace(model, gain=1.0, offset=0.0).predict(restored)
    gain, offset = robust_gain_offset(blurred[valid], frame[valid])
    return dataclasses.replace(model, gain=gain, offset=offset)


def _drop_small(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if not n:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= MIN_AREA_PX
    keep[0] = False
    return keep[labels]
