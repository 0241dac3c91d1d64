"""Frame-to-frame shifts of a stream: consecutive frames (and neighbours a few frames apart) matched to
each other, coarse to fine, with the stage's step along the scan as the prior.

Consecutive stream frames carry the same exposure streak, so they can be compared directly (no streak
model, unlike against a sharp HQ image). A pair is matched in three steps:

* *prior*: the stage moves steadily, so the shift between frames k apart is about k steps; the first
  steps (and any pair the prior does not fit, e.g. after a stage jump) are found by a search over every
  translation of smoothed thumbnails (masked normalised cross-correlation, :mod:`._correlation`, as
  frame matching searches);
* *coarse*: OpenCV's phase correlation of the thumbnails' overlap at the prior (Hann window);
* *fine*: OpenCV's normalised cross-correlation (``matchTemplate``) of the overlap at half resolution,
  smoothed, a few px around the coarse shift, its peak refined by parabolas. Plain correlation of
  smoothed frames, not phase correlation: each exposure's streak is uneven (vibration), and the
  streaks differ in their fine detail, so a whitened or sharp peak strays from the streak centre the
  positions refer to (full-size kidney: 0.6 px mean pair error at full resolution unsmoothed).

Shifts ``_yx`` are (dy, dx) in stream px: the position of the second frame minus that of the first,
in mosaic coordinates (where a frame's top-left corner lies).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ._correlation import content_mask, fft_size, masked_ncc, peak_lag, spectra, thumbnail
from ._matching import BAR_BAND, image_problem, smoothed

#: Thumbnail downsampling for the coarse steps (1024 px frames -> 128 px).
COARSE_FACTOR = 8
#: Thumbnails keep at least this many px a side.
MIN_COARSE = 64
#: The fine step compares frames downsampled by this (for frames of at least 256 px) ...
FINE_FACTOR = 2
#: ... and smoothed by this Gaussian sigma (px of that level): enough to wash out what the uneven
#: streaks make differ, a calibration grating's 15 px lines included (full-size sessions, mean
#: position error: kidney 0.08 / 0.07 / 0.08 px and grid 0.39 / 0.08 / 0.05 px at sigma 2 / 3 / 4).
FINE_SIGMA = 3.0
#: The overlap compared in the fine step is cut to at most this side (px of the fine level): more
#: adds time and little precision.
FINE_SIDE = 512
#: The fine step searches this far (px of the fine level) around the coarse shift.
FINE_MARGIN = 3
#: A pair whose smoothed overlaps correlate (normalised) less than this at the shift found is no match
#: (neighbouring frames correlate above 0.9; a frame of noise, below 0.2).
MIN_CORRELATION = 0.5
#: The coarse shift may lie this far from the prior (as a fraction of the frame's side) ...
PRIOR_RADIUS = 0.15
#: ... and the pair must overlap by at least this fraction of a frame.
MIN_OVERLAP = 0.25


@dataclass(frozen=True)
class PreparedFrame:
    """A stream frame ready for matching, made once per frame.

    Attributes
    ----------
    index : int
    shape : (int, int)
        The frame's (h, w), stream px.
    fine : numpy.ndarray or None
        float32 (h // fine_factor, w // fine_factor): mean-free counts, downsampled and smoothed for the
        fine step (FINE_SIGMA).
    small : numpy.ndarray or None
        float32 (h // factor, w // factor) thumbnail for the coarse steps.
    factor, fine_factor : int
    problem : str or None
        Why the frame is unusable (blank, saturated, NaN), None when usable.
    """

    index: int
    shape: tuple[int, int]
    fine: np.ndarray | None
    small: np.ndarray | None
    factor: int
    fine_factor: int
    problem: str | None = None


@dataclass(frozen=True)
class PairShift:
    """Two frames matched: ``shift_yx`` = position of `second` - position of `first` (stream px).

    ``correlation`` is the normalised correlation of their smoothed overlaps at the shift; ``searched``
    says whether the shift came from a search over every translation rather than from the prior.
    """

    first: int
    second: int
    shift_yx: tuple[float, float]
    correlation: float
    searched: bool = False


def coarse_factor(shape: tuple[int, int]) -> int:
    """COARSE_FACTOR, reduced so that thumbnails keep at least MIN_COARSE px a side."""
    return int(max(1, min(COARSE_FACTOR, min(shape) // MIN_COARSE)))


def prepare_frame(index: int, frame: np.ndarray) -> PreparedFrame:
    """Check and downsample one stream frame (uint16 or float (h, w) counts)."""
    frame = np.asarray(frame)
    factor = coarse_factor(frame.shape)
    fine_factor = FINE_FACTOR if min(frame.shape) >= 256 else 1
    problem = image_problem(frame)
    if problem:
        return PreparedFrame(index, frame.shape, None, None, factor, fine_factor, f"frame {index} {problem}")
    image = frame.astype(np.float32)
    image -= image.mean()
    fine = cv2.GaussianBlur(thumbnail(image, fine_factor), (0, 0), FINE_SIGMA)
    return PreparedFrame(index, frame.shape, fine, thumbnail(image, factor), factor, fine_factor)


def overlap_slices(shape: tuple[int, int], shift: tuple[int, int]) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices of the first and second frame that show the same place when the second lies at integer
    `shift` (dy, dx) from the first."""
    first, second = [], []
    for n, s in zip(shape, shift):
        first.append(slice(max(0, s), min(n, n + s)))
        second.append(slice(max(0, -s), min(n, n - s)))
    return tuple(first), tuple(second)


def _central(regions, side: int):
    """The central at most `side` x `side` part of equally sized regions (one per image)."""
    out = [[], []]
    for sa, sb in zip(*regions):
        n = sa.stop - sa.start
        start = max(0, n - side) // 2
        out[0].append(slice(sa.start + start, sa.start + start + min(side, n)))
        out[1].append(slice(sb.start + start, sb.start + start + min(side, n)))
    return tuple(out[0]), tuple(out[1])


def _overlap_fraction(shape: tuple[int, int], shift_yx) -> float:
    return float(np.prod([max(0.0, n - abs(s)) / n for n, s in zip(shape, shift_yx)]))


def search_shift(a: PreparedFrame, b: PreparedFrame) -> tuple[tuple[float, float], float] | None:
    """The shift of `b` from `a` (stream px) over every translation of smoothed thumbnails (masked NCC,
    as frame matching searches), and its correlation; None when they do not overlap."""
    size = fft_size(a.small.shape)
    sa, sb = (spectra(smoothed(f.small, f.factor), content_mask(f.small, BAR_BAND), size) for f in (a, b))
    value, ly, lx = peak_lag(masked_ncc(sa, sb, size)[0])
    if value <= -1:
        return None
    # the lag is where a's origin lies in b: b lies at minus it from a
    return (-ly * a.factor, -lx * a.factor), value


def match_pair(a: PreparedFrame, b: PreparedFrame, prior_yx: tuple[float, float] | None) -> PairShift | None:
    """Match frame `b` to frame `a`, starting from the prior shift (or a full search when None or when
    the prior does not fit).

    Returns
    -------
    PairShift or None
        None when either frame is unusable or they overlap too little at any shift found.
    """
    if a.problem or b.problem:
        return None
    shape = a.shape
    searched = prior_yx is None
    shift = _coarse(a, b, prior_yx) if prior_yx is not None else None
    if shift is None:
        found = search_shift(a, b)
        if found is None:
            return None
        shift, searched = found[0], True
        shift = _coarse(a, b, shift) or shift
    if _overlap_fraction(shape, shift) < MIN_OVERLAP:
        return None
    fine, correlation = _fine(a.fine, b.fine, shift, a.fine_factor)
    return PairShift(a.index, b.index, fine, correlation, searched)


def _coarse(a: PreparedFrame, b: PreparedFrame, prior_yx) -> tuple[float, float] | None:
    """Phase correlation of the thumbnails' overlap at the prior; None when the result leaves the prior's
    reach (PRIOR_RADIUS of the frame) or the overlap is too small."""
    f, shape = a.factor, a.small.shape
    at = (int(round(prior_yx[0] / f)), int(round(prior_yx[1] / f)))
    ra, rb = overlap_slices(shape, at)
    ca, cb = a.small[ra], b.small[rb]
    if min(ca.shape) < 8 or ca.size < MIN_OVERLAP * a.small.size:
        return None
    window = cv2.createHanningWindow(ca.shape[::-1], cv2.CV_32F)
    # phaseCorrelate(src1, src2) gives d with src2(x) ~ src1(x - d): here b's overlap against a's
    (dx, dy), _ = cv2.phaseCorrelate(cb, ca, window)
    shift = ((at[0] + dy) * f, (at[1] + dx) * f)
    if np.hypot(shift[0] - prior_yx[0], shift[1] - prior_yx[1]) > PRIOR_RADIUS * max(a.shape):
        return None
    return shift


def _parabola(values: np.ndarray, i: int) -> float:
    """Sub-pixel offset of a peak at `i` from the parabola through it and its neighbours."""
    if i == 0 or i == len(values) - 1:
        return 0.0
    curvature = values[i - 1] - 2 * values[i] + values[i + 1]
    return 0.0 if curvature >= 0 else float(np.clip(0.5 * (values[i - 1] - values[i + 1]) / curvature, -0.5, 0.5))


def _fine(a: np.ndarray, b: np.ndarray, shift: tuple[float, float], factor: int) -> tuple[tuple[float, float], float]:
    """Sub-pixel shift (stream px) and its normalised correlation, from OpenCV's normalised
    cross-correlation (``matchTemplate``) of the central FINE_SIDE px of the overlap of two fine levels
    (downsampled by `factor`, smoothed) within FINE_MARGIN px of the coarse `shift`; the peak refined by
    parabolas. A peak on the search's edge is searched again around it (once). Both levels' pixel
    centres sit alike, so a shift between them times `factor` is the shift in stream px."""
    m = FINE_MARGIN
    for _ in range(2):
        at = (int(round(shift[0] / factor)), int(round(shift[1] / factor)))
        ra, rb = _central(overlap_slices(a.shape, at), FINE_SIDE)
        # a's overlap, less the margin, is the template slid over b's overlap
        template = a[tuple(slice(s.start + m, s.stop - m) for s in ra)]
        scores = cv2.matchTemplate(b[rb], template, cv2.TM_CCOEFF_NORMED)
        r, c = np.unravel_index(np.argmax(scores), scores.shape)
        # the template's pixel y (a's m + y) lies on b's pixel r + y: b lies m - r further on
        shift = ((at[0] + m - r) * factor, (at[1] + m - c) * factor)
        if 0 < r < scores.shape[0] - 1 and 0 < c < scores.shape[1] - 1:
            break
    dy, dx = _parabola(scores[:, c], r), _parabola(scores[r], c)
    return (shift[0] - dy * factor, shift[1] - dx * factor), float(scores[r, c])
