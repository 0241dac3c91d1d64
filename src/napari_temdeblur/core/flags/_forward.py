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

from napari_temdeblur.core.simulate import motion_kernel

#: Candidate streak directions, degrees from the image's x axis (90 = along the columns, the paper's
#: vertical scan); a line is the same at angle and angle + 180.
ANGLES_DEG = tuple(range(0, 180, 15))
#: Candidate streak lengths of the coarse search, stream px (the MiniTEM's 25 um/s over 15 ms is 12).
COARSE_LENGTHS_PX = tuple(float(v) for v in range(0, 33, 2))
#: Refinement around the coarse length, stream px.
FINE_STEP_PX = 0.5
#: Pixels the fits are made on at most (a random subset), so a 1024 px frame fits as fast as 256 px.
FIT_PIXELS = 60_000
#: Scale of the robust (Huber) loss of the gain/offset fit, in robust standard deviations of the
#: residual: pixels further off (the very detail under test) weigh less.
HUBER_SCALE = 2.0


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
    """

    length_px: float
    angle_deg: float
    gain: float = 1.0
    offset: float = 0.0

    def to_dict(self) -> dict:
        return {"length_px": self.length_px, "angle_deg": self.angle_deg, "gain": self.gain, "offset": self.offset}


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


def _linear_fit(model: np.ndarray, frame: np.ndarray) -> tuple[float, float, float]:
    """(gain, offset, sum of squares) of the least-squares line frame ~ gain * model + offset."""
    design = np.stack([model, np.ones_like(model)], axis=1).astype(np.float64)
    coef, residual, *_ = np.linalg.lstsq(design, frame.astype(np.float64), rcond=None)
    sse = float(residual[0]) if residual.size else float(np.sum((design @ coef - frame) ** 2))
    return float(coef[0]), float(coef[1]), sse


def robust_gain_offset(model: np.ndarray, frame: np.ndarray) -> tuple[float, float]:
    """Gain and offset of frame ~ gain * model + offset, with a Huber loss so that the pixels where the
    two disagree (what the flags look for) do not pull the fit. `model`, `frame`: 1-D samples."""
    gain, offset, sse = _linear_fit(model, frame)
    spread = 1.4826 * np.median(np.abs(frame - (gain * model + offset))) or np.sqrt(sse / max(frame.size, 1)) or 1.0
    fit = optimize.least_squares(
        lambda p: (p[0] * model + p[1] - frame) / spread, [gain, offset], loss="huber", f_scale=HUBER_SCALE
    )
    return float(fit.x[0]), float(fit.x[1])


def fit_motion(
    restored: np.ndarray, frames: np.ndarray, valid: np.ndarray, rng: np.random.Generator | None = None
) -> list[FrameModel]:
    """Fit each frame's streak (length and direction) and intensity map to the restored image.

    The direction is shared by the burst (one scan) and found first on the mean frame over
    :data:`ANGLES_DEG` x :data:`COARSE_LENGTHS_PX`; then each frame's length is refined in
    :data:`FINE_STEP_PX` steps around the coarse best (stage speed and vibration differ between
    exposures), and its gain and offset fitted robustly.

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

    Returns
    -------
    list of FrameModel
        One per frame.
    """
    rng = rng or np.random.default_rng(0)
    where = np.flatnonzero(valid)
    if where.size > FIT_PIXELS:
        where = np.sort(rng.choice(where, FIT_PIXELS, replace=False))
    samples = frames.reshape(len(frames), -1)[:, where].astype(np.float64)

    def sse(frame_values, length, angle):
        return _linear_fit(blur(restored, length, angle).reshape(-1)[where], frame_values)[2]

    mean = samples.mean(axis=0)
    scores = {(a, n): sse(mean, n, a) for a in ANGLES_DEG for n in COARSE_LENGTHS_PX if n > 0 or a == ANGLES_DEG[0]}
    angle, coarse = min(scores, key=scores.get)
    fine = np.arange(max(coarse - 2, 0), coarse + 2 + FINE_STEP_PX / 2, FINE_STEP_PX)
    models = []
    blurred = {n: blur(restored, n, angle).reshape(-1)[where] for n in fine}
    for values in samples:
        length = float(min(fine, key=lambda n: _linear_fit(blurred[n], values)[2]))
        gain, offset = robust_gain_offset(blurred[length], values)
        models.append(FrameModel(length, float(angle), gain, offset))
    return models
