"""Bursts cut from a raw stream: N consecutive frames registered on the fly to their centre frame.

Restoring a stream position t needs no HQ image: the frames around t are registered to frame t as
registration registers frames to an HQ image. Coarse translations come from masked cross-correlation
of smoothed thumbnails of consecutive frames (:mod:`._correlation`, as the frame matcher chains them),
walking outwards from t; ECC (:mod:`._ecc`, with its cross-correlation fallback) refines each frame
against frame t at full resolution. Frame t and its neighbours carry the same exposure streak, so,
unlike against a sharp HQ image, no streak model is needed. The frames are then resampled onto frame
t's grid and cut to the region all of them cover, exactly as a registered dataset burst is made
(:func:`._export.warp_frames`).

Images are (row, col); translations ``_yx`` are (ty, tx) in stream px: where frame t's origin lies
in the other frame (docs/design.md's matrix convention with frame t in place of the HQ image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError

from ._correlation import (
    content_mask,
    fft_size,
    masked_ncc,
    peak_lag,
    spectra,
    thumbnail,
)
from ._ecc import prepare_hq
from ._export import cropped_uint16, warp_frames
from ._file import FrameRegistration
from ._matching import BAR_BAND, burst_frames, image_problem, match_factor, smoothed
from ._refine import refine_frame, refinement_flag, translation_matrix
from ._settings import RegistrationSettings


@dataclass(frozen=True)
class StreamBurst:
    """The registered burst of one stream position.

    Attributes
    ----------
    position : int
        The reference frame t.
    low : numpy.ndarray
        uint16 (F, H, W): the accepted frames on frame t's grid, in stream order, cut to the region
        they all cover (0 where one of them does not, as in a registered dataset).
    frames : list of int
        Stream indices of the F frames of `low` (t among them).
    origin_yx : (int, int)
        Where ``low[:, 0, 0]`` lies in frame t (row, col).
    registrations : tuple of FrameRegistration
        Every frame tried, frame t (identity) included; left-out frames carry their reason in ``flag``.
    messages : tuple of str
        Frames left out and why, a burst shifted at a stream end, fallbacks used.
    """

    position: int
    low: np.ndarray
    frames: list[int]
    origin_yx: tuple[int, int]
    registrations: tuple[FrameRegistration, ...]
    messages: tuple[str, ...]


def _flag(reg: FrameRegistration, coarse, settings: RegistrationSettings) -> str | None:
    """Why a refined frame is left out (poor correlation, no convergence, far from the coarse step)."""
    flag = refinement_flag(reg, settings)
    if flag:
        return flag
    off = float(np.hypot(*np.subtract(reg.translation_yx, coarse)))
    if off > settings.max_disagreement_px:
        return (
            f"ECC moved {off:.1f} px from the frame-to-frame correlation (more than {settings.max_disagreement_px:g})"
        )
    return None


def register_stream_burst(
    stream,
    position: int,
    count: int,
    settings: RegistrationSettings | None = None,
    *,
    source: str | Path | None = None,
) -> StreamBurst:
    """Register the `count` consecutive frames around `position` onto frame `position`.

    Parameters
    ----------
    stream : array-like
        (T, h, w) stream frames in counts (numpy array, memmap or dask array; read frame by frame).
    position : int
        The reference frame, 0 <= position < T.
    count : int
        Frames in the burst, centred on `position` (shifted to fit at the stream's ends; all T when
        the stream is shorter).
    settings : RegistrationSettings, optional
        ECC and quality-control parameters (``motion``, ``iterations``, ``epsilon``,
        ``gauss_filt_size``, ``pyramid_levels``, ``min_correlation``, ``max_disagreement_px``,
        ``match_downsample``); ``frames`` is not used (`count` is).
    source : str or Path, optional
        The stream's file, named in errors.

    Returns
    -------
    StreamBurst

    Raises
    ------
    ValueError
        `position` outside the stream, or `count` < 1.
    DataError
        Frame `position` is unusable (NaN, blank, saturated, constant), or the accepted frames share
        no region. Unusable or poorly registered neighbours are left out instead (see `messages`).
    """
    settings = settings or RegistrationSettings()
    n_frames = int(stream.shape[0])
    if not (isinstance(position, (int, np.integer)) and 0 <= position < n_frames):
        raise ValueError(f"position {position} is outside the stream (frames 0-{n_frames - 1})")
    if count < 1:
        raise ValueError(f"a burst needs at least 1 frame, got {count}")
    frames, _ = burst_frames(int(position), n_frames, min(count, n_frames))
    messages = []
    if frames[0] != position - len(frames) // 2:
        messages.append(
            f"frames {frames[0]}-{frames[-1]} are not centred on frame {position}: it is near the "
            f"{'first' if frames[0] == 0 else 'last'} frame of the stream"
        )
    if count > n_frames:
        messages.append(f"the stream has only {n_frames} frames, fewer than the {count} of a burst")
    raw = {t: np.asarray(stream[t]) for t in frames}
    problem = image_problem(raw[position])
    if problem:
        raise DataError(source, f"frame {position} {problem}: position {position} cannot be restored")
    ref = raw[position].astype(np.float32)
    prepared = prepare_hq(ref, None)  # masks the bar interiors; no streak blur: both sides are streaked
    factor = match_factor(ref.shape, settings)
    size = fft_size(thumbnail(ref, factor).shape)

    def thumb(t: int):
        small = thumbnail(raw[t], factor)
        return spectra(smoothed(small, factor), content_mask(small, BAR_BAND), size)

    regs = {position: FrameRegistration(position, translation_matrix((0.0, 0.0)), 1.0, True, "ecc")}
    ref_spectra = thumb(position)
    for step in (1, -1):
        last, last_spectra = position, ref_spectra
        for t in range(position + 1, frames[-1] + 1) if step > 0 else range(position - 1, frames[0] - 1, -1):
            problem = image_problem(raw[t])
            if problem:
                regs[t] = FrameRegistration(
                    t, translation_matrix((0.0, 0.0)), float("nan"), False, "ecc", f"frame {t} {problem}"
                )
                continue
            spec = thumb(t)
            value, sy, sx = peak_lag(masked_ncc(last_spectra, spec, size)[0])
            if value <= -1:
                regs[t] = FrameRegistration(
                    t,
                    translation_matrix((0.0, 0.0)),
                    float("nan"),
                    False,
                    "cross-correlation",
                    f"frame {t} does not overlap frame {last}",
                )
                continue
            # where frame `position`'s origin lies in frame t, chained through the last frame accepted
            coarse = np.add(regs[last].translation_yx, (sy * factor, sx * factor))
            reg, fallback = refine_frame(raw[t].astype(np.float32), prepared, translation_matrix(coarse), settings, t)
            messages += [fallback] if fallback else []
            flag = _flag(reg, coarse, settings)
            regs[t] = FrameRegistration(t, reg.matrix, reg.correlation, reg.converged, reg.method, flag)
            if flag is None:
                last, last_spectra = t, spec
    order = sorted(regs)
    messages += [f"frame {t} left out: {regs[t].flag}" for t in order if regs[t].flag]
    accepted = [t for t in order if regs[t].flag is None]
    warped, valid, box = warp_frames(
        (raw[t].astype(np.float32) for t in accepted), (regs[t].matrix for t in accepted), ref.shape
    )
    if box is None:
        raise DataError(
            source,
            f"position {position}: frames {accepted} share no region (the stage moved more "
            "than a frame's height within the burst); restore with fewer frames",
        )
    return StreamBurst(
        position=int(position),
        low=cropped_uint16(warped, valid, box),
        frames=accepted,
        origin_yx=(int(box[0].start), int(box[1].start)),
        registrations=tuple(regs[t] for t in order),
        messages=tuple(messages),
    )


def positioned_burst(stream, position: int, count: int, positions, *, source: str | Path | None = None) -> StreamBurst:
    """The burst of `position` from solved stream positions: the placed frames among the `count`
    consecutive frames around it (shifted to fit at the stream's ends), resampled onto its grid.

    Unlike :func:`register_stream_burst` nothing is registered again: frame j lies at
    ``positions[j] - positions[position]`` from frame `position` (stream px), so its matrix (frame
    `position` in place of the HQ image, docs/design.md's matrix convention) is that translation
    negated.

    Parameters
    ----------
    stream : array-like
        (T, h, w) stream frames in counts.
    position : int
        The reference frame; must be placed (not flagged) in `positions`.
    count : int
        Frames in the burst, >= 1.
    positions : StreamPositions
        Solved positions of this stream (:func:`~napari_temdeblur.core.register.stream_positions`).
    source : str or Path, optional
        The stream's file, named in errors.

    Returns
    -------
    StreamBurst
        ``registrations`` hold every frame tried; flagged frames keep their flag and are left out.

    Raises
    ------
    ValueError
        `position` outside the stream or flagged, `positions` of another stream, `count` < 1.
    DataError
        The placed frames share no region.
    """
    n_frames = int(stream.shape[0])
    if len(positions.frames) != n_frames:
        raise ValueError(f"the positions are of a stream of {len(positions.frames)} frames, this one has {n_frames}")
    if not (isinstance(position, (int, np.integer)) and 0 <= position < n_frames):
        raise ValueError(f"position {position} is outside the stream (frames 0-{n_frames - 1})")
    if count < 1:
        raise ValueError(f"a burst needs at least 1 frame, got {count}")
    here = positions.frames[position]
    if here.flag:
        raise ValueError(f"position {position} cannot be restored: {here.flag}")
    frames, _ = burst_frames(int(position), n_frames, min(count, n_frames))
    messages = []
    if frames[0] != position - len(frames) // 2:
        end = "first" if frames[0] == 0 else "last"
        messages.append(f"frames {frames[0]}-{frames[-1]} are not centred on frame {position}, near the {end} frame")
    regs = []
    for t in frames:
        at = positions.frames[t]
        offset = (here.yx[0] - at.yx[0], here.yx[1] - at.yx[1])  # where frame `position`'s origin lies in t
        regs.append(FrameRegistration(t, translation_matrix(offset), 1.0, True, "positions", at.flag))
    messages += [f"frame {r.index} left out: {r.flag}" for r in regs if r.flag]
    accepted = [r for r in regs if r.flag is None]
    warped, valid, box = warp_frames(
        (np.asarray(stream[r.index]).astype(np.float32) for r in accepted),
        (r.matrix for r in accepted),
        tuple(stream.shape[1:]),
    )
    if box is None:
        raise DataError(source, f"position {position}: frames {[r.index for r in accepted]} share no region")
    return StreamBurst(
        position=int(position),
        low=cropped_uint16(warped, valid, box),
        frames=[r.index for r in accepted],
        origin_yx=(int(box[0].start), int(box[1].start)),
        registrations=tuple(regs),
        messages=tuple(messages),
    )
