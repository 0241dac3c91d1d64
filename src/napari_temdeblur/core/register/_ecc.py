"""ECC refinement of one stream frame onto an HQ image (Evangelidis & Psarakis 2008, OpenCV).

The stream frame is the *template* and the HQ image (resampled to stream pixels) the image OpenCV
warps, because OpenCV's mask applies to the warped image: the HQ image is sharp, so the support-grid
bars are found reliably there. OpenCV's warp ``W`` maps frame coordinates to HQ coordinates; the
registration matrix (HQ -> frame; docs/design.md, Matrix convention) is its inverse.

Two things make the result land where the simulation's truth (the centre of the stage path during
the exposure) is:

* the HQ image is blurred along the scan by the exposure's motion streak before comparison, so
  both images carry the same blur and ECC matches streak centre to image content instead of
  following the streak's uneven brightness;
* a coarse-to-fine pyramid (each level halves the images) lets a start a few pixels off, such as a
  hand drag, converge.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ._correlation import (
    blur_along,
    content_mask,
    fft_size,
    lags_near,
    masked_ncc,
    peak_lag,
    spectra,
    thumbnail,
)
from ._settings import RegistrationSettings

MOTION_TYPES = {
    "translation": cv2.MOTION_TRANSLATION,
    "euclidean": cv2.MOTION_EUCLIDEAN,
    "affine": cv2.MOTION_AFFINE,
}
#: Converged: one more iteration moves the warp less than this (stream px, at the image corners), or
#: two come back to within this ...
CONVERGENCE_PX = 0.05
#: ... after a first step of at most this (a 2-cycle).
MAX_CYCLE_PX = 0.5
#: Stream px around the seed where the cross-correlation fallback looks for its peak.
FALLBACK_RADIUS = 24.0
#: Stream px of frame kept around the seed's overlap with the HQ image, for ECC to move in.
CROP_MARGIN = 24
#: Iteration cap on the coarse pyramid levels.
COARSE_ITERATIONS = 20
#: Pyramid levels stop before an image gets smaller than this (px).
MIN_LEVEL_SIZE = 32


class EccFailed(RuntimeError):
    """OpenCV's ECC raised (no convergence, images uncorrelated or not overlapping)."""


@dataclass(frozen=True)
class Refined:
    """One frame's refinement: the matrix (HQ -> frame; docs/design.md, Matrix convention), correlation
    and convergence."""

    matrix: np.ndarray
    correlation: float
    converged: bool


@dataclass(frozen=True)
class PreparedHQ:
    """The HQ image as ECC sees it: streak-blurred, with the mask of pixels worth comparing."""

    image: np.ndarray  # float32 (h, w)
    mask: np.ndarray  # uint8 (h, w), 1 = compare


def prepare_hq(hq_down: np.ndarray, streak_yx: tuple[float, float] | None) -> PreparedHQ:
    """Blur the HQ image by the streak and mask bar interiors and the streak-wide outer border.

    Parameters
    ----------
    hq_down : numpy.ndarray
        float32 (h, w), HQ image at stream pixels.
    streak_yx : (float, float) or None
        Motion during one exposure, stream px; None for no streak model.
    """
    image, reach = blur_along(hq_down, streak_yx)
    border = 2 + reach
    band = border + 2  # bar edges, smeared by the streak, are kept as features
    mask = content_mask(hq_down, band)
    mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = False, False, False, False
    return PreparedHQ(image, mask.astype(np.uint8))


def _to_level(warp: np.ndarray, f: float) -> np.ndarray:
    """A 2x3 warp in full-resolution pixels expressed at a level downsampled by f (area average:
    level pixel centres sit at (x + 0.5) / f - 0.5)."""
    m, t = warp[:, :2], warp[:, 2]
    c = 0.5 * f - 0.5
    return np.hstack([m, ((t + (m - np.eye(2)) @ np.array([c, c])) / f)[:, None]]).astype(np.float32)


def _from_level(warp: np.ndarray, f: float) -> np.ndarray:
    m, t = warp[:, :2].astype(np.float64), warp[:, 2].astype(np.float64)
    c = 0.5 * f - 0.5
    return np.hstack([m, (t * f - (m - np.eye(2)) @ np.array([c, c]))[:, None]])


def _corner_motion(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> float:
    h, w = shape
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float).T
    return float(np.abs((a - b) @ corners).max())


def gauss_size(shape: tuple[int, int]) -> int:
    """The automatic ECC pre-filter size for frames of `shape`: shorter side / 48, odd, within 5-31."""
    return int(np.clip(min(shape) // 48, 5, 31)) | 1


def refine_ecc(frame: np.ndarray, hq: PreparedHQ, seed: np.ndarray, settings: RegistrationSettings) -> Refined:
    """Refine the HQ -> frame matrix `seed` by ECC, coarse to fine.

    Parameters
    ----------
    frame : numpy.ndarray
        float32 (h, w) stream frame.
    hq : PreparedHQ
    seed : numpy.ndarray
        float64 (2, 3), docs/design.md's matrix convention (``frame(seed @ [x, y, 1]) ~= hq(x, y)``).
    settings : RegistrationSettings

    Raises
    ------
    EccFailed
        When OpenCV's ECC gives up at any level.
    """
    motion = MOTION_TYPES[settings.motion]
    blur = settings.gauss_filt_size or gauss_size(frame.shape)
    fine = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, settings.iterations, settings.epsilon)
    # coarse levels only need to bring the start into the fine level's reach (and OpenCV's ECC can
    # keep oscillating there by less than epsilon without stopping)
    coarse = (
        cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS,
        min(settings.iterations, COARSE_ITERATIONS),
        settings.epsilon,
    )
    frame, origin = _overlap(frame, hq.image.shape, seed)
    warp = cv2.invertAffineTransform(seed)  # frame -> HQ, OpenCV's direction
    warp[:, 2] += warp[:, :2] @ origin  # ... from the cropped frame's coordinates
    levels = settings.pyramid_levels
    while levels and min(frame.shape) >> levels < MIN_LEVEL_SIZE:
        levels -= 1
    rho = float("nan")
    try:
        for level in range(levels, -1, -1):
            f = 2**level
            mask = (thumbnail(hq.mask.astype(np.float32), f) > 0.999).astype(np.uint8)
            rho, w = cv2.findTransformECC(
                thumbnail(frame, f),
                thumbnail(hq.image, f),
                _to_level(warp, f),
                motion,
                coarse if level else fine,
                mask,
                (blur // f) | 1,  # the same blur in full-resolution pixels
            )
            warp = _from_level(w, f)
        # Near the optimum OpenCV's update can alternate between two warps a tenth of a pixel apart
        # instead of settling. One more iteration shows a fixed point; if it moved, a second tells
        # such a 2-cycle (converged: the mean of the pair is the estimate) from a result still on its way.
        steps = [warp]
        while len(steps) < 3:
            _, w = cv2.findTransformECC(
                frame,
                hq.image,
                steps[-1].astype(np.float32),
                motion,
                (cv2.TERM_CRITERIA_COUNT, 1, 0.0),
                hq.mask,
                blur,
            )
            steps.append(w.astype(np.float64))
            if _corner_motion(steps[0], steps[-1], frame.shape) <= CONVERGENCE_PX:
                break
    except cv2.error as exc:
        raise EccFailed(str(exc).strip().splitlines()[-1]) from None
    converged = _corner_motion(steps[0], steps[-1], frame.shape) <= CONVERGENCE_PX and (
        _corner_motion(steps[0], steps[1], frame.shape) <= MAX_CYCLE_PX
    )
    warp = (steps[-2] + steps[-1]) / 2 if len(steps) == 3 else steps[-1]
    warp[:, 2] -= warp[:, :2] @ origin
    return Refined(cv2.invertAffineTransform(warp), float(rho), converged)


def _overlap(frame: np.ndarray, hq_shape: tuple[int, int], seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part of `frame` the HQ image covers at `seed` (plus a margin for the refinement to move
    in), and its top-left (x, y); ECC's cost grows with the frame's area."""
    h, w = hq_shape
    corners = seed @ np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float).T
    (x0, y0), (x1, y1) = corners.min(axis=1) - CROP_MARGIN, corners.max(axis=1) + CROP_MARGIN
    x0, y0 = int(max(np.floor(x0), 0)), int(max(np.floor(y0), 0))
    x1, y1 = int(min(np.ceil(x1), frame.shape[1])), int(min(np.ceil(y1), frame.shape[0]))
    if x1 - x0 < MIN_LEVEL_SIZE or y1 - y0 < MIN_LEVEL_SIZE:
        return frame, np.zeros(2)
    return frame[y0:y1, x0:x1], np.array([x0, y0], float)


def cross_correlation(frame: np.ndarray, hq: PreparedHQ, seed: np.ndarray) -> Refined:
    """Fallback: the translation maximising masked normalised cross-correlation within
    FALLBACK_RADIUS px of the seed's (plain correlation: phase correlation fails on streaks).

    `converged` is False when the peak lies on the edge of the search window or nowhere valid.
    """
    size = fft_size(frame.shape)
    a = spectra(hq.image, hq.mask.astype(bool), size)
    b = spectra(frame, np.ones(frame.shape, bool), size)
    ncc, _ = masked_ncc(a, b, size)
    ty0, tx0 = seed[1, 2], seed[0, 2]
    value, ty, tx = peak_lag(ncc, lags_near(size, ty0, tx0, FALLBACK_RADIUS))
    inside = np.hypot(ty - ty0, tx - tx0) < FALLBACK_RADIUS - 1 and value > -1
    matrix = np.array([[1.0, 0.0, tx], [0.0, 1.0, ty]])
    return Refined(matrix, float(value), bool(inside))
