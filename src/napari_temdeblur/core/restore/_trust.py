"""Per-pixel intervals with a coverage guarantee (docs/trust.md).

A run's restoration ``yhat`` of a burst gets, per pixel, a heuristic spread ``u``: how much the
network's answer changes when each tile of the burst is mirrored left-right (one extra pass, undone on
the output),
smoothed over a few pixels, plus a small floor so that no pixel has a zero-width interval, divided by
the square root of the fine detail the restoration holds in the image, and widened near the edge of
the sample (a grid bar, the registration padding), where the restoration errs most (:func:`spread_of`). Split
conformal prediction (Angelopoulos et al. 2022, "Image-to-image regression with distribution-free
uncertainty quantification") turns it into an interval: on held-out pixels with truth ``y`` (the
Val split), the scores ``|y - yhat| / u`` have the conformal quantile ``lam``; then
``[yhat - lam u, yhat + lam u]`` holds the truth with probability at least the nominal coverage for
a pixel drawn at random from images like the calibration images (a marginal guarantee over pixels,
not one for every pixel). The run keeps ``lam`` in its folder's ``calibration.json``.

Images are (row, col); bursts (frame, row, col). Intensities are the run's GT window, [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from napari_temdeblur.core import DataError, Progress, write_json
from napari_temdeblur.core.imaging import IntensityWindow, sample_mask
from napari_temdeblur.core.io import read_json

from ._options import RestoreOptions
from ._tiling import restore_passes

#: The calibration record in a run folder (beside the checkpoint it calibrates).
CALIBRATION = "calibration.json"
CALIBRATION_FORMAT = "temdeblur-calibration/1"
#: The spread this version computes; a calibration of another method does not apply to it.
METHOD = "flip-image-detail-edge/1"
#: Gaussian sigma (px) smoothing the flip difference: one pixel's difference is a noisy estimate.
SPREAD_SIGMA = 2.0
#: Added to the flip difference ([0, 1] units): where both passes agree exactly there is still error.
SPREAD_FLOOR = 0.005
#: Gaussian sigma (px) of the restored image's fine detail (what a 1 px blur removes), whose median
#: over the image's sample ...
DETAIL_SIGMA = 1.0
#: ... plus this floor ([0, 1] units) divides the spread, so that a blank image does not divide by zero.
DETAIL_FLOOR = 0.002
#: Pixels the median is taken over at most (evenly spaced through the sample).
MEDIAN_PIXELS = 100_000
#: The spread's factor by distance (px) to the nearest non-sample pixel of the burst (grid bar,
#: registration padding; the image border is no edge), linear between these points, 1 beyond: the
#: motion blur mixes the dark bar into the frames' first 10 px of sample, where the restoration's
#: errors (relative to the spread) are two to three times those far from an edge. Measured with the
#: shipped fast-burst on simulated kidney and grid data it never saw (seeds 12-16, Train and Val, 3.3 M
#: pixels): the 90 % quantile of |error| / spread (without the factor) at each distance over the one
#: far from edges (docs/trust.md, Near the edge of the sample). It is the same for every run: for
#: another network, or a stage speed that streaks other than the paper's 12 px, it may lie elsewhere.
EDGE_DISTANCE_PX = (0.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 16.0)
EDGE_FACTOR = (1.8, 2.0, 2.3, 3.3, 2.8, 2.0, 1.4, 1.22, 1.11, 1.0)


class Uncalibrated(DataError):
    """A run asked for intervals has no calibration (or one for other weights): the message says how
    to calibrate it."""


@dataclass(frozen=True)
class Calibration:
    """A run's conformal calibration (``calibration.json``).

    Attributes
    ----------
    scale : float
        The conformal quantile ``lam`` of ``|y - yhat| / u`` on the calibration pixels: the interval
        is ``yhat +- scale * u``.
    nominal_coverage : float
        The coverage asked for, e.g. 0.9.
    pixels : int
        Calibration pixels (sampled from the sample mask of the images).
    checkpoint : str
        File name of the checkpoint calibrated (``best.pt``); with `epoch`, it must match the weights.
    epoch : int
        The checkpoint's epoch.
    method : str
        :data:`METHOD`.
    empirical_coverage : float
        Share of the calibration pixels inside their interval (at least the nominal by construction).
    data : list of str
        The dataset folders calibrated on.
    split : str
        Their split used (Val).
    images : list of str
        The images calibrated on.
    """

    scale: float
    nominal_coverage: float
    pixels: int
    checkpoint: str
    epoch: int
    method: str = METHOD
    empirical_coverage: float = math.nan
    data: list[str] = field(default_factory=list)
    split: str = "Val"
    images: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"format": CALIBRATION_FORMAT, **asdict(self)}


def spread_of(image: np.ndarray, mirrored: np.ndarray, sample: np.ndarray | None = None) -> np.ndarray:
    """The heuristic spread ``u`` of a restoration: float32 (H, W), > 0, in the image's units.

    ``u = e(d) (G2(|image - mirrored|) + 0.005) / sqrt(median(|image - G1(image)|) + 0.002)`` (Gk: a
    Gaussian filter of sigma k px; the median over the sample's pixels): the two passes' disagreement,
    which says where in the image the network is unsure, scaled by how much fine detail the image's
    restoration holds, which sets how large its errors are (a textured specimen that no pass restores,
    like kidney, errs more per unit of disagreement than one restored with sharp detail, like the
    grid's replica lines), and by :func:`edge_factor` ``e(d)`` of the pixel's distance ``d`` to the
    edge of the sample (docs/trust.md, The spread).

    Parameters
    ----------
    image, mirrored : ndarray
        (H, W) the restoration of a burst, and of its tiles mirrored left-right, mirrored back.
    sample : ndarray, optional
        bool (H, W): the burst's sample (:func:`burst_sample`); without it (or an empty one), the
        detail is the median over the whole image and there is no edge factor.
    """
    image = np.ascontiguousarray(image, np.float32)
    disagreement = _blur(np.abs(image - np.asarray(mirrored, np.float32)), SPREAD_SIGMA)
    fine = np.abs(image - _blur(image, DETAIL_SIGMA))
    sample = None if sample is None or not np.any(sample) else np.asarray(sample, bool)
    values = fine.ravel() if sample is None else fine[sample]
    if values.size > MEDIAN_PIXELS:  # every k-th pixel: the same median to 1e-3, a tenth of the time
        values = values[:: values.size // MEDIAN_PIXELS]
    detail = float(np.median(values)) + DETAIL_FLOOR
    spread = (disagreement + np.float32(SPREAD_FLOOR)) / np.float32(math.sqrt(detail))
    if sample is not None:
        spread *= edge_factor(sample)
    return spread.astype(np.float32)


def burst_sample(burst: np.ndarray, window: IntensityWindow | None = None) -> np.ndarray:
    """bool (H, W): where every frame of `burst` ((F, H, W) counts through `window`, else in [0, 1]) is
    above the window minimum, cleaned as :func:`~napari_temdeblur.core.imaging.sample_mask` cleans it:
    the sample without grid bars and registration padding, from the frames alone (the same rule that
    scores and calibrates against the GT)."""
    floor = 0.0 if window is None else window.low
    above = np.ones(burst.shape[1:], bool)
    for frame in burst:  # frame by frame: a large burst is never held whole (nor as booleans)
        above &= np.asarray(frame) > floor
    return sample_mask(above.astype(np.float32))


def edge_factor(sample: np.ndarray) -> np.ndarray:
    """float32 (H, W) >= 1: the spread's factor :data:`EDGE_FACTOR` at each pixel's distance to the
    nearest non-sample pixel of bool (H, W) `sample` (Euclidean, px; the image border is no edge, so a
    sample that fills the image has factor 1 everywhere, as has an empty one: no sample, no edge)."""
    inside = np.pad(np.asarray(sample, bool).astype(np.uint8), 1, constant_values=1)
    if inside.all() or not inside[1:-1, 1:-1].any():
        return np.ones(np.shape(sample), np.float32)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    return np.interp(distance, EDGE_DISTANCE_PX, EDGE_FACTOR).astype(np.float32)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter of `sigma` px, mirrored at the border (OpenCV's: a fraction of scipy's time on a
    4096 px image, which would add a tenth to the restoring)."""
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def restore_with_spread(
    model,
    burst: np.ndarray,
    options: RestoreOptions,
    *,
    stage: str = "restore",
    window: IntensityWindow | None = None,
    spread: bool = True,
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray | None]]:
    """:func:`~napari_temdeblur.core.restore.restore_burst` plus the spread (:func:`spread_of`) of the result.

    Two passes of the network on each tile (as it is, and mirrored left-right, mirrored back:
    :func:`~napari_temdeblur.core.restore._tiling.restore_passes`); the restoration returned is the
    first pass's, identical to ``restore_burst``'s. The edge factor's sample is the burst's own
    (:func:`burst_sample`). Without `spread`, one pass.

    Returns
    -------
    (image, spread) : (ndarray, ndarray or None)
        float32 (H, W) each, the image in [0, 1]; the spread None without `spread`.
    """
    images = yield from restore_passes(model, burst, options, stage=stage, window=window, mirrored=spread)
    if not spread:
        return images[0], None
    return images[0], spread_of(images[0], images[1], burst_sample(burst, window))


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile of `scores` for `coverage`: the ``ceil((n + 1) coverage)``-th
    smallest of the n scores (so a new exchangeable score is at most it with probability >= coverage).

    Raises
    ------
    ValueError
        `coverage` not in (0, 1), or too few scores for it (``ceil((n + 1) coverage) > n``).
    """
    scores = np.asarray(scores, np.float64).ravel()
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be between 0 and 1, got {coverage}")
    n = scores.size
    rank = math.ceil((n + 1) * coverage)
    if rank > n:
        raise ValueError(f"{n} calibration pixels are too few for a coverage of {coverage}: need at least {rank}")
    return float(np.partition(scores, rank - 1)[rank - 1])


def calibration_path(checkpoint_path: str | Path) -> Path:
    """Where the calibration of a checkpoint file lives: ``calibration.json`` beside it."""
    return Path(checkpoint_path).parent / CALIBRATION


def write_calibration(checkpoint_path: str | Path, calibration: Calibration) -> Path:
    """Write `calibration` beside its checkpoint, atomically; returns the file."""
    return write_json(calibration_path(checkpoint_path), calibration.to_dict(), allow_nan=False)


def read_calibration(checkpoint) -> Calibration:
    """The calibration of a loaded checkpoint (:class:`~napari_temdeblur.core.models.Checkpoint`).

    Raises
    ------
    Uncalibrated
        No calibration.json beside it, one for other weights (another checkpoint file or epoch) or
        another method; the message says how to calibrate.
    DataError
        An unreadable or foreign calibration.json.
    """
    path = calibration_path(checkpoint.path)
    run = checkpoint.path.parent
    how = f"calibrate it on data like yours with: temdeblur calibrate {run} DATA (DATA's Val split)"
    if not path.is_file():
        raise Uncalibrated(run, f"the run is not calibrated, so it has no trust intervals; {how}")
    data = read_json(path)
    if data.get("format") != CALIBRATION_FORMAT:
        raise DataError(path, f"not a calibration (format {data.get('format')!r}, expected {CALIBRATION_FORMAT!r})")
    data.pop("format")
    try:
        calibration = Calibration(**data)
        scale, coverage = float(calibration.scale), float(calibration.nominal_coverage)
    except (TypeError, ValueError) as exc:
        raise DataError(path, f"unreadable calibration ({exc}); {how}") from None
    if not (math.isfinite(scale) and scale > 0 and 0 < coverage < 1):
        raise DataError(path, f"holds an invalid scale {scale!r} or coverage {coverage!r}; {how}")
    if calibration.checkpoint != checkpoint.path.name or calibration.epoch != checkpoint.epoch:
        raise Uncalibrated(
            run,
            f"the calibration is of {calibration.checkpoint} at epoch {calibration.epoch}, not of "
            f"{checkpoint.path.name} at epoch {checkpoint.epoch}; {how}",
        )
    if calibration.method != METHOD:
        found = f"the calibration is of method {calibration.method}, this version computes {METHOD}"
        raise Uncalibrated(run, f"{found}; {how}")
    return calibration
