"""The forward model of a stream frame, applied to a restored image: motion blur, then gain and offset.

A stream frame is the specimen averaged along the stage path during its exposure (the simulator's
physics, :mod:`napari_temdeblur.core.simulate`, docs/simulator.md), in stream detector counts. A
restored image is the sharp specimen in the run's GT window. So a restored image ``R`` predicts frame
``k`` as ``gain_k * (R blurred by a line of length L_k along the scan) + offset_k``. When the motion
is not given, its length and direction are fitted by least squares: the restored image is blurred
with line kernels of candidate lengths and directions, and the one whose best linear intensity map
leaves the smallest residual against the frame wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import optimize
from skimage.registration import phase_cross_correlation

from napari_temdeblur.core.simulate import motion_kernel

#: Candidate streak directions, degrees from the image's x axis (90 = along the columns, the paper's
#: vertical scan); a line is the same at angle and angle + 180.
ANGLES_DEG = tuple(range(0, 180, 15))
#: Candidate streak lengths of the coarse search, stream px (the MiniTEM's 25 um/s over 15 ms is 12).
COARSE_LENGTHS_PX = tuple(float(v) for v in range(0, 33, 2))
#: Refinement around the coarse (or given) length: steps and reach, stream px.
FINE_STEP_PX = 0.5
FINE_RANGE_PX = 2.0
#: Step of the direction's refinement, degrees.
FINE_ANGLE_DEG = 2.5
#: Pixels the fits are made on at most (a random subset of a central crop of at most this side), so a
#: 1024 px frame fits as fast as a 256 px one.
FIT_PIXELS = 60_000
FIT_SIDE_PX = 320
#: Scale of the Cauchy loss of the gain and offset fit, in robust standard deviations of the residual.
ROBUST_SCALE = 2.0
#: Larger shifts than this are not registration residue but a misregistered frame: left alone, px.
MAX_SHIFT_PX = 2.0


@dataclass(frozen=True)
class FrameModel:
    """How one frame is predicted from the restored image.

    Attributes
    ----------
    length_px : float
        Streak length (stage travel during the exposure), stream px.
    angle_deg : float
        Streak direction, degrees counter-clockwise from the x axis (90: along the columns).
    gain, offset : float
        Frame counts = gain * blurred restored image + offset.
    shift_yx : tuple of float
        What is left of the frame's registration: the blurred image shifted by this (rows, cols), px,
        lies on the frame.
    """

    length_px: float
    angle_deg: float
    gain: float = 1.0
    offset: float = 0.0
    shift_yx: tuple[float, float] = (0.0, 0.0)

    def to_dict(self) -> dict:
        return {
            "length_px": self.length_px,
            "angle_deg": self.angle_deg,
            "gain": self.gain,
            "offset": self.offset,
            "shift_yx": list(self.shift_yx),
        }

    def predict(self, restored: np.ndarray) -> np.ndarray:
        """The frame `restored` (H, W) predicts: blurred, shifted, gain and offset applied; float32 counts."""
        blurred = blur(restored, self.length_px, self.angle_deg)
        if any(self.shift_yx):  # cv2's cubic warp: as scipy's shift, ten times faster on a 1024 px frame
            dy, dx = self.shift_yx
            matrix = np.float32([[1, 0, dx], [0, 1, dy]])
            blurred = cv2.warpAffine(
                blurred, matrix, blurred.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
            )
        return self.gain * blurred + self.offset


def _central(shape: tuple[int, ...], side: int) -> tuple[slice, ...]:
    """The central side x side part of an image of `shape` (all of it along a shorter axis)."""
    return tuple(slice(max((n - side) // 2, 0), max((n - side) // 2, 0) + side) for n in shape)


def line_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """A motion-blur kernel: a straight stage path of `length_px` centred on the pixel, splatted
    bilinearly on the grid (:func:`napari_temdeblur.core.simulate.motion_kernel`).

    Returns
    -------
    numpy.ndarray
        float32 (2h + 1, 2h + 1), sums to 1, centred (a registered frame is centred on its path).
    """
    samples = max(2, int(np.ceil(4 * length_px)) + 2)
    t = np.linspace(-length_px / 2, length_px / 2, samples)
    angle = np.deg2rad(angle_deg)
    path = np.stack([-t * np.sin(angle), t * np.cos(angle)], axis=1)  # rows grow downwards
    kernel, corner = motion_kernel(path)
    half = int(max(-corner.min(), (corner + kernel.shape - 1).max()))
    centred = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    top, left = corner + half
    centred[top : top + kernel.shape[0], left : left + kernel.shape[1]] = kernel
    return centred


def blur(image: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """`image` (H, W) blurred by a line of `length_px` at `angle_deg` (mirrored at the borders), float32."""
    return cv2.filter2D(
        np.asarray(image, np.float32), -1, line_kernel(length_px, angle_deg), borderType=cv2.BORDER_REFLECT
    )


def linear_fit(model: np.ndarray, frame: np.ndarray) -> tuple[float, float, float]:
    """(gain, offset, sum of squares) of the least-squares line frame ~ gain * model + offset."""
    design = np.stack([model, np.ones_like(model)], axis=1).astype(np.float64)
    coef, residual, *_ = np.linalg.lstsq(design, frame.astype(np.float64), rcond=None)
    sse = float(residual[0]) if residual.size else float(np.sum((design @ coef - frame) ** 2))
    return float(coef[0]), float(coef[1]), sse


def robust_gain_offset(model: np.ndarray, frame: np.ndarray) -> tuple[float, float]:
    """Gain and offset of frame ~ gain * model + offset (1-D samples), least squares with a Cauchy
    loss so that the pixels where the two disagree (what the flags look for) weigh little."""
    if model.size > FIT_PIXELS:  # a random subset is as good and keeps the robust fit fast
        pick = np.random.default_rng(0).choice(model.size, FIT_PIXELS, replace=False)
        model, frame = model[pick], frame[pick]
    gain, offset, sse = linear_fit(model, frame)
    spread = 1.4826 * np.median(np.abs(frame - (gain * model + offset))) or np.sqrt(sse / max(frame.size, 1)) or 1.0
    fit = optimize.least_squares(
        lambda p: (p[0] * model + p[1] - frame) / spread, [gain, offset], loss="cauchy", f_scale=ROBUST_SCALE
    )
    return float(fit.x[0]), float(fit.x[1])


def fit_motion(
    restored: np.ndarray,
    frames: np.ndarray,
    valid: np.ndarray,
    rng: np.random.Generator | None = None,
    length_px: float | None = None,
) -> list[FrameModel]:
    """Fit each frame's streak (length and direction) and intensity map to the restored image.

    The direction is shared by the burst (one scan) and found first on the mean frame over
    :data:`ANGLES_DEG` x :data:`COARSE_LENGTHS_PX`; then each frame's length is refined in
    :data:`FINE_STEP_PX` steps around the coarse best (stage speed and vibration differ between
    exposures); gain and offset are those of the least-squares fit (:func:`hallucination_flags`
    fits them again robustly).

    Parameters
    ----------
    restored : numpy.ndarray
        float (H, W), any linear intensity scale (e.g. [0, 1] in the run's GT window).
    frames : numpy.ndarray
        (F, H, W) counts, registered onto `restored`'s grid.
    valid : numpy.ndarray
        bool (H, W): pixels to fit on (no registration padding, away from the borders).
    rng : numpy.random.Generator, optional
        Source of the pixel subset (default seed 0, so the fit is reproducible).
    length_px : float, optional
        The streak length when known (stage speed x exposure / pixel size): the direction is fitted,
        and each frame's length only within :data:`FINE_RANGE_PX` of it. A restoration that is itself
        blurred would otherwise be matched by a shorter streak.

    Returns
    -------
    list of FrameModel
        One per frame.
    """
    rng = rng or np.random.default_rng(0)
    # the streak is the same everywhere: a central crop is enough, and blurring it is what costs
    crop = _central(valid.shape, FIT_SIDE_PX)
    if valid[crop].sum() >= min(valid.sum(), FIT_PIXELS // 4):
        restored, frames, valid = restored[crop], frames[(slice(None), *crop)], valid[crop]
    where = np.flatnonzero(valid)
    if where.size > FIT_PIXELS:
        where = np.sort(rng.choice(where, FIT_PIXELS, replace=False))
    samples = frames.reshape(len(frames), -1)[:, where].astype(np.float64)

    def sse(frame_values, length, angle):
        return linear_fit(blur(restored, length, angle).reshape(-1)[where], frame_values)[2]

    mean = samples.mean(axis=0)
    lengths = COARSE_LENGTHS_PX if length_px is None else (float(length_px),)
    scores = {(a, n): sse(mean, n, a) for a in ANGLES_DEG for n in lengths if n > 0 or a == ANGLES_DEG[0]}
    angle, coarse = min(scores, key=scores.get)
    # the direction finer, between the coarse candidates (drift tilts the streak a few degrees)
    step = (ANGLES_DEG[1] - ANGLES_DEG[0]) / 2
    finer = {a: sse(mean, coarse, a) for a in np.arange(angle - step, angle + step + 0.1, FINE_ANGLE_DEG)}
    angle = float(min(finer, key=finer.get)) % 180 if coarse > 0 else angle
    # each frame's own length near it (stage speed and vibration differ between exposures)
    fine = np.arange(max(coarse - FINE_RANGE_PX, 0), coarse + FINE_RANGE_PX + FINE_STEP_PX / 2, FINE_STEP_PX)
    models = []
    blurred = {n: blur(restored, n, angle).reshape(-1)[where] for n in fine}
    for values in samples:
        length = float(min(fine, key=lambda n: linear_fit(blurred[n], values)[2]))
        gain, offset, _ = linear_fit(blurred[length], values)
        models.append(FrameModel(length, float(angle), gain, offset))
    return models


def fit_shift(model: FrameModel, restored: np.ndarray, frame: np.ndarray) -> FrameModel:
    """`model` with the sub-pixel shift (to 1/20 px, at most :data:`MAX_SHIFT_PX`) that best lays the
    blurred restored image on `frame` (phase correlation): what registration left, so that an edge a
    tenth of a pixel off is not taken for a disagreement."""
    crop = _central(restored.shape, 2 * FIT_SIDE_PX)
    blurred = blur(restored, model.length_px, model.angle_deg)[crop].astype(np.float64)
    target = frame[crop].astype(np.float64)
    shift, _, _ = phase_cross_correlation(target, blurred, upsample_factor=20, normalization=None)
    if np.abs(shift).max() > MAX_SHIFT_PX:
        return model
    return FrameModel(model.length_px, model.angle_deg, model.gain, model.offset, (float(shift[0]), float(shift[1])))
