"""Frame matching: which stream frames show an HQ image, and roughly where.

The HQ image, resampled to stream pixels, and every stream frame are downsampled by
``RegistrationSettings.match_downsample`` and compared by masked normalised cross-correlation at every
translation (:mod:`._correlation`). A frame's score is its best correlation times the fraction of the
HQ field it shows, so the frame showing most of the HQ image wins; the burst is centred on it.
Translations are then measured on smoothed thumbnails with the HQ image blurred by the exposure's
streak like the frames (see :func:`smoothed`), walking out from the best frame.

Images are (row, col); translations are (ty, tx) in stream px (where the HQ origin lies in the frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from napari_temdeblur.core import DataError

from ._correlation import (
    Spectra,
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

#: A best score below this means the HQ image is not in the stream at all.
MIN_MATCH_SCORE = 0.2
#: Downsampled px of grid bar kept along bar edges when matching (bar edges are features).
BAR_BAND = 3
#: Stream px around the frame-to-frame prediction where a burst frame's HQ correlation peak is sought.
SEARCH_RADIUS = 16.0
#: Stream px around a user's start where the matcher looks for that frame's translation (a hand drag
#: is within a few px; a support-grid pitch is hundreds).
USER_RADIUS = 24.0
#: Gaussian sigma (stream px) of the matcher's smoothing.
MATCH_SMOOTH = 8.0
#: Thumbnails smaller than this (px) lose the detail that tells neighbouring frames apart.
MIN_THUMBNAIL = 128


@dataclass(frozen=True)
class FrameMatch:
    """The matcher's proposal for one HQ image.

    Attributes
    ----------
    hq : str
        HQ image name.
    best_frame : int
        Stream frame overlapping the HQ image most, with good correlation.
    frames : list of int
        The burst: `settings.frames` consecutive frames centred on `best_frame` (or on the frame
        asked for), shifted to fit at the stream's ends.
    translation_yx : (float, float)
        (ty, tx) of `best_frame`, stream px.
    score : float
        Normalised correlation times overlap fraction of `best_frame` (0-1).
    translations_yx : tuple of (float, float)
        (ty, tx) of each frame in `frames`.
    correlations : tuple of float
        Normalised correlation of each frame in `frames` at its translation.
    messages : tuple of str
        Notes for the user (burst clipped at a stream end, unusable frames, no streak model).
    streak_yx : (float, float) or None
        The stage motion during one exposure (dy, dx), stream px, when the session's timing gives it.
    """

    hq: str
    best_frame: int
    frames: list[int]
    translation_yx: tuple[float, float]
    score: float
    translations_yx: tuple[tuple[float, float], ...] = ()
    correlations: tuple[float, ...] = ()
    messages: tuple[str, ...] = ()
    streak_yx: tuple[float, float] | None = None


def image_problem(image: np.ndarray) -> str | None:
    """Why an image cannot be registered (NaN, all zero, saturated, constant), or None when usable."""
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        return "holds NaN or infinite values"
    low, high = image.min(), image.max()
    if high == 0:
        return "is all zero (blank)"
    if image.dtype.kind == "u" and low == np.iinfo(image.dtype).max:
        return f"is saturated (every pixel at {low})"
    if low == high:
        return f"is constant ({low})"
    if image.dtype.kind == "u" and np.mean(image == np.iinfo(image.dtype).max) > 0.5:
        return "is saturated (over half the pixels at the detector maximum)"
    return None


def hq_at_stream_pixels(session, index: int) -> np.ndarray:
    """HQ image `index` area-averaged to the stream's pixel grid (as the published GT).

    Returns
    -------
    numpy.ndarray
        float32 (h, w), the stream frame shape, in HQ counts.

    Raises
    ------
    DataError
        When the HQ image is blank, saturated or holds NaN.
    """
    hq = np.asarray(session.hq[index])
    problem = image_problem(hq)
    if problem:
        raise DataError(session.path / "hq" / f"{session.hq_names[index]}.tif", f"HQ image {problem}")
    h, w = session.stream.shape[1:]
    return cv2.resize(hq.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)


def stream_frame(session, index: int) -> np.ndarray:
    """Stream frame `index` as float32 (h, w)."""
    return np.asarray(session.stream[index]).astype(np.float32)


def smoothed(small: np.ndarray, factor: int) -> np.ndarray:
    """A thumbnail smoothed by MATCH_SMOOTH stream px, for translations. The smoothing removes fine
    periodic detail (a calibration grating's 15 px period), whose many equally good peaks would make
    a coarse translation ambiguous; bars, blobs and tissue remain. (Choosing the best frame keeps the
    detail: smoothed, a grid one support pitch away looks even more alike.)"""
    return cv2.GaussianBlur(small, (0, 0), MATCH_SMOOTH / factor)


@dataclass
class StreamThumbnails:
    """Every stream frame downsampled for matching, made once per session.

    Attributes
    ----------
    factor : int
        Downsampling factor.
    spectra : list of Spectra or None
        Per frame; None for unusable frames.
    smooth : list of Spectra or None
        The same for the :func:`smoothed` thumbnails.
    problems : dict of int -> str
        Unusable frames and why.
    size : (int, int)
        Padded FFT size.
    """

    factor: int
    spectra: list
    smooth: list
    problems: dict
    size: tuple[int, int]


def match_factor(shape: tuple[int, int], settings: RegistrationSettings) -> int:
    """`settings.match_downsample`, reduced so that thumbnails keep at least MIN_THUMBNAIL px a side."""
    return int(max(1, min(settings.match_downsample, min(shape) // MIN_THUMBNAIL)))


def stream_thumbnails(session, settings: RegistrationSettings) -> StreamThumbnails:
    """Read and downsample every stream frame once (frames stay lazy on disk until here).

    Raises
    ------
    DataError
        When no frame is usable.
    """
    factor = match_factor(session.stream.shape[1:], settings)
    size = fft_size(thumbnail(np.zeros(session.stream.shape[1:], np.float32), factor).shape)
    found, smooth, problems = [], [], {}
    for t in range(session.stream.shape[0]):
        frame = np.asarray(session.stream[t])
        problem = image_problem(frame)
        if problem:
            problems[t] = f"frame {t} {problem}"
            found.append(None)
            smooth.append(None)
            continue
        small = thumbnail(frame, factor)
        mask = content_mask(small, BAR_BAND)
        found.append(spectra(small, mask, size))
        smooth.append(spectra(smoothed(small, factor), mask, size))
    if len(problems) == len(found):
        raise DataError(session.path, "no usable stream frame: " + "; ".join(problems.values()))
    return StreamThumbnails(factor, found, smooth, problems, size)


def burst_frames(best: int, n_frames: int, count: int) -> tuple[list[int], str | None]:
    """`count` (<= `n_frames`) consecutive frames centred on `best`, shifted to fit in the stream,
    and a note when they had to be shifted."""
    first = int(np.clip(best - count // 2, 0, n_frames - count))
    frames = list(range(first, first + count))
    note = None
    if first != best - count // 2:
        end = "first" if first == 0 else "last"
        note = f"burst frames {frames[0]}-{frames[-1]} are not centred on best frame {best}: it is near the {end} frame"
    return frames, note


def match_frames(
    session,
    hq_index: int,
    settings: RegistrationSettings,
    thumbnails: StreamThumbnails | None = None,
    around: int | None = None,
    near_yx: tuple[float, float] | None = None,
    candidates: range | None = None,
) -> FrameMatch:
    """Find the stream frames that show HQ image `hq_index` and propose their translations.

    Parameters
    ----------
    session : Session
    hq_index : int
        Index into ``session.hq_names``.
    settings : RegistrationSettings
        ``frames`` and ``match_downsample`` are used.
    thumbnails : StreamThumbnails, optional
        From :func:`stream_thumbnails`; pass it when matching several HQ images of one session.
    around : int, optional
        Centre the burst on this frame (e.g. the one a user picked) instead of the best match.
    near_yx : (float, float), optional
        A start (ty, tx) for frame `around` (e.g. a user's drag): its translation is then the
        correlation peak within USER_RADIUS px of it rather than the best over the whole frame, which on
        a periodic specimen may be a grid pitch away.
    candidates : range, optional
        Look for the best frame among these frames only (e.g. where the scan order puts it).

    Returns
    -------
    FrameMatch

    Raises
    ------
    DataError
        The HQ image is unusable, or no frame matches it (not in this stream, or a different
        magnification or field of view than session.json says).
    ValueError
        The stream is shorter than the burst.
    """
    name = session.hq_names[hq_index]
    thumbnails = thumbnails or stream_thumbnails(session, settings)
    n_frames = len(thumbnails.spectra)
    if n_frames < settings.frames:
        raise ValueError(
            f"{session.path}: the stream has {n_frames} frames, fewer than the {settings.frames} frames of a burst"
        )
    small = thumbnail(hq_at_stream_pixels(session, hq_index), thumbnails.factor)
    ref = spectra(small, content_mask(small, BAR_BAND), thumbnails.size)
    d = thumbnails.factor
    h, w = small.shape
    results = {}
    for t, frame in enumerate(thumbnails.spectra):
        if frame is not None:
            ncc, overlap = masked_ncc(ref, frame, thumbnails.size)
            _, ty, tx = peak_lag(ncc * overlap)
            r, c = int(round(ty)) % ncc.shape[0], int(round(tx)) % ncc.shape[1]
            # the score prefers the frame showing most of the HQ field, bars included
            field = max(h - abs(ty), 0) * max(w - abs(tx), 0) / (h * w)
            results[t] = (float(ncc[r, c]) * field, float(ncc[r, c]), field, (ty * d, tx * d))
    if not results:
        raise DataError(session.path, f"HQ image {name}: no usable stream frame")
    allowed = [t for t in results if candidates is None or t in candidates]
    if not allowed:
        raise DataError(session.path, f"HQ image {name}: no usable stream frame among frames {candidates}")
    best = max(allowed, key=lambda t: results[t][0])
    score, best_ncc, best_overlap, best_t = results[best]
    if score < MIN_MATCH_SCORE:
        raise DataError(
            session.path,
            f"HQ image {name} matches no stream frame (best: frame {best}, correlation {best_ncc:.2f} over "
            f"{best_overlap:.0%} of the image): it is not in this stream, or HQ and stream differ in "
            "magnification or field of view from what session.json says",
        )
    anchor = best if around is None else around
    if anchor not in results:
        why = thumbnails.problems.get(anchor, f"frame {anchor} is not in the stream (0-{n_frames - 1})")
        raise ValueError(f"{session.path}: cannot centre the burst of {name} there: {why}")
    frames, note = burst_frames(anchor, n_frames, settings.frames)
    messages = [note] if note else []
    messages += [thumbnails.problems[t] for t in frames if t in thumbnails.problems]
    streak, note = motion_streak(session, thumbnails, anchor) if settings.streak else (None, None)
    messages += [note] if note else []
    # the frames are streaked along the scan: so is the reference for translations
    blurred = blur_along(smoothed(small, d), None if streak is None else np.divide(streak, d))[0]
    ref = spectra(blurred, content_mask(small, BAR_BAND), thumbnails.size)
    ncc, overlap = masked_ncc(ref, thumbnails.smooth[anchor], thumbnails.size)
    if near_yx is None:
        # over the whole frame: a support-grid pitch is wider than a frame, so no repeat of the
        # smoothed image fits in it, while the sharp peak may sit on another bar edge or grating line
        _, ty, tx = peak_lag(ncc * overlap)
        # weighting by overlap keeps small, fluky overlaps out but tilts the peak towards full
        # overlap: the correlation's own peak nearby is the translation
        value, ty, tx = peak_lag(ncc, lags_near(ncc.shape, ty, tx, SEARCH_RADIUS / d))
        hint = results[anchor][3]
    else:
        value, ty, tx = peak_lag(ncc, lags_near(ncc.shape, near_yx[0] / d, near_yx[1] / d, USER_RADIUS / d))
        hint = near_yx
    translations = _chain(thumbnails, ref, frames, anchor, (ty * d, tx * d) if value > -1 else tuple(hint))
    return FrameMatch(
        hq=name,
        best_frame=best,
        frames=frames,
        translation_yx=translations.get(best, best_t),
        score=score,
        translations_yx=tuple(translations[t] for t in frames),
        correlations=tuple(results[t][1] if t in results else float("nan") for t in frames),
        messages=tuple(messages),
        streak_yx=streak,
    )


def motion_streak(session, thumbnails: StreamThumbnails, anchor: int) -> tuple[tuple[float, float] | None, str | None]:
    """The motion during one exposure, (dy, dx) stream px: the frame-to-frame step at `anchor` times
    exposure_ms / frame_interval_ms from session.json; (None, why) when it cannot be known."""
    exposure, interval = session.meta.get("exposure_ms"), session.meta.get("frame_interval_ms")
    consequence = "no streak model, so frames may sit up to about a pixel from the streak centre along the scan"
    missing = [k for k, v in (("exposure_ms", exposure), ("frame_interval_ms", interval)) if v is None]
    if missing:
        return None, f"session.json lacks {' and '.join(missing)}: {consequence}"
    if not (isinstance(exposure, (int, float)) and isinstance(interval, (int, float)) and 0 < exposure <= interval):
        return None, (
            f"session.json's exposure_ms ({exposure!r}) must be a number > 0 and at most frame_interval_ms "
            f"({interval!r}): {consequence}"
        )
    frames = thumbnails.smooth
    usable = [t for t in (anchor + 1, anchor - 1) if 0 <= t < len(frames) and frames[t] is not None]
    if frames[anchor] is None or not usable:
        return None, f"frame {anchor} has no usable neighbour to measure the stage motion: no streak model"
    value, sy, sx = peak_lag(masked_ncc(frames[anchor], frames[usable[0]], thumbnails.size)[0])
    if value <= -1:
        return None, f"frames {anchor} and {usable[0]} do not overlap: no streak model"
    scale = thumbnails.factor * exposure / interval
    return (sy * scale, sx * scale), None


def _chain(thumbnails: StreamThumbnails, ref: Spectra, frames: list[int], best: int, best_t) -> dict:
    """Translations of the burst's frames, walking out from frame `best`: frame-to-frame
    correlation (consecutive frames share their streak direction) predicts the next frame's
    translation, and the HQ correlation's peak within SEARCH_RADIUS of it refines the prediction.
    An unusable frame gets NaN and the walk steps over it."""
    nan = (float("nan"), float("nan"))
    found = {best: best_t}
    d = thumbnails.factor
    radius = SEARCH_RADIUS / d
    for step in (1, -1):
        last = best
        for t in range(best + 1, frames[-1] + 1) if step > 0 else range(best - 1, frames[0] - 1, -1):
            a, b = thumbnails.smooth[last], thumbnails.smooth[t]
            if a is None or b is None:
                found[t] = nan
                continue
            value, sy, sx = peak_lag(masked_ncc(a, b, thumbnails.size)[0])
            if value <= -1:
                found[t] = nan
                continue
            py, px = found[last][0] / d + sy, found[last][1] / d + sx
            ncc, _ = masked_ncc(ref, b, thumbnails.size)
            value, ty, tx = peak_lag(ncc, lags_near(ncc.shape, py, px, radius))
            found[t] = (ty * d, tx * d) if value > -1 else (py * d, px * d)
            last = t
    return found
