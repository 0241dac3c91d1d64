"""Semi-automatic registration of stream frames to HQ images (the paper's Data section, automated).

For each HQ image: the frame matcher (:mod:`.matching`) proposes the best frame, the burst around it
and rough translations; ECC (:mod:`.ecc`) refines each frame, seeded from the user's translation when
given (for the neighbouring frames: the previous frame's result moved by the matcher's frame-to-frame
step), else from the matcher. Quality control leaves out, with the reason, frames that correlate
poorly, did not converge, or disagree with the matcher or with the rest of the burst - on a grating
that is what a start one period off looks like - and the next frames outside the burst are tried in
their place, so that a burst keeps its length where the stream allows. A session's images are matched together first, so
an image whose best frame breaks the scan order (a repeating specimen matched one grid pitch away) is
re-matched where the others put it. Every pair is saved to ``registration.json`` as soon as it is made.

Conventions are those of :mod:`.registration_io` (DESIGN.md): ``stream_frame(A @ [x, y, 1]) ~=
hq_down(x, y)``; translations ``_yx`` are (ty, tx) in stream px.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, Progress

from ._ecc import EccFailed, cross_correlation, prepare_hq, refine_ecc
from ._export import export_dataset, extract_burst
from ._file import (
    FrameRegistration,
    PairRegistration,
    load_registrations,
    save_registration,
)
from ._matching import (
    FrameMatch,
    hq_at_stream_pixels,
    match_frames,
    stream_frame,
    stream_thumbnails,
)
from ._settings import InitialGuess, RegistrationSettings, read_init_file

__all__ = [
    "FrameDone",
    "FrameMatch",
    "FrameRegistration",
    "InitialGuess",
    "PairDone",
    "PairFailed",
    "PairRegistration",
    "RegistrationSettings",
    "export_dataset",
    "extract_burst",
    "load_registrations",
    "match_frames",
    "read_init_file",
    "refine_frame",
    "refinement_flag",
    "register_pair",
    "register_session",
    "save_registration",
    "scan_order_outliers",
    "translation_matrix",
]


@dataclass(frozen=True)
class FrameDone(Progress):
    """One frame of a pair registered (flagged or not)."""

    frame: FrameRegistration | None = None


@dataclass(frozen=True)
class PairDone(Progress):
    """One HQ image registered and saved (`saved` is the registration.json written, if any)."""

    pair: PairRegistration | None = None
    saved: Path | None = None


@dataclass(frozen=True)
class PairFailed(Progress):
    """One HQ image could not be registered; the reason is the message. The session goes on."""

    hq: str = ""


def translation_matrix(translation_yx) -> np.ndarray:
    """float64 (2, 3) ``[[1, 0, tx], [0, 1, ty]]`` from napari-order (ty, tx)."""
    ty, tx = translation_yx
    return np.array([[1.0, 0.0, float(tx)], [0.0, 1.0, float(ty)]])


def refine_frame(frame, hq, seed, settings, index) -> tuple[FrameRegistration, str | None]:
    """ECC, or the cross-correlation fallback when ECC fails or does not converge.

    Parameters
    ----------
    frame : numpy.ndarray
        float32 (h, w) stream frame.
    hq : PreparedHQ
        The reference (an HQ image at stream pixels, or a stream frame), see :func:`.ecc.prepare_hq`.
    seed : numpy.ndarray
        float64 (2, 3) starting matrix, DESIGN.md convention.
    settings : RegistrationSettings
    index : int
        The frame's stream index, recorded in the result.

    Returns
    -------
    (FrameRegistration, str or None)
        The registration (unflagged) and a note when the fallback was used.
    """
    why = None
    try:
        result = refine_ecc(frame, hq, seed, settings)
        if result.converged:
            return FrameRegistration(index, result.matrix, result.correlation, True, "ecc"), None
        why = f"ECC did not converge in {settings.iterations} iterations"
    except EccFailed as exc:
        why = f"ECC failed ({exc})"
    result = cross_correlation(frame, hq, seed)
    note = f"frame {index}: {why}; used cross-correlation instead (correlation {result.correlation:.2f})"
    reg = FrameRegistration(index, result.matrix, result.correlation, result.converged, "cross-correlation")
    return reg, note


def _order(frames: list[int], anchor: int) -> list[int]:
    """Anchor first, then outward alternately, so each frame is seeded from a registered neighbour."""
    return sorted(frames, key=lambda t: (abs(t - anchor), t))


def refinement_flag(reg: FrameRegistration, settings: RegistrationSettings) -> str | None:
    """Why a refined frame cannot be trusted on its own terms (no convergence, low correlation), or None."""
    if not reg.converged:
        return f"{reg.method} did not converge"
    if not reg.correlation >= settings.min_correlation:
        return f"correlation {reg.correlation:.2f} is below {settings.min_correlation:.2f}"
    return None


def _quality_control(
    regs: dict, match: FrameMatch, settings: RegistrationSettings, user_start: bool
) -> tuple[dict, list[str]]:
    """Flag frames with low correlation, no convergence, or a registration that disagrees with the
    stage motion the matcher and the other frames show; return the updated frames and messages.

    The whole burst sitting far from the matcher's estimate is a flag only after a user's start:
    from the matcher's own start, ECC moving away means the matcher was imprecise, not that ECC
    locked onto a neighbouring grating period.
    """
    expected = dict(zip(match.frames, match.translations_yx))
    tol = settings.max_disagreement_px
    offsets = {
        t: np.subtract(r.translation_yx, expected[t])
        for t, r in regs.items()
        if r.flag is None and np.all(np.isfinite(expected[t]))
    }
    messages = []
    common = np.median(np.array(list(offsets.values())), axis=0) if offsets else np.zeros(2)
    burst_off = np.hypot(*common) > tol
    if burst_off:
        where = (
            f"{np.hypot(*common):.1f} px (dy {common[0]:+.1f}, dx {common[1]:+.1f}) from where frame matching puts it"
        )
        messages.append(
            f"the burst sits {where}: on a grating, a start one period off; check the start and register again"
            if user_start
            else f"ECC moved the burst {where}"
        )
    out = {}
    for t, r in regs.items():
        flag = r.flag or refinement_flag(r, settings)
        if flag is None and t in offsets and np.hypot(*(offsets[t] - common)) > tol:
            d = offsets[t] - common
            flag = (
                f"disagrees by {np.hypot(*d):.1f} px with the stage motion the other frames and frame matching "
                "show (locked onto the wrong grating period?)"
            )
        if flag is None and burst_off and user_start:
            flag = f"burst {np.hypot(*common):.1f} px from frame matching (wrong grating period?)"
        if flag is not None and flag != r.flag:
            messages.append(f"frame {t} left out: {flag}")
        out[t] = FrameRegistration(r.index, r.matrix, r.correlation, r.converged, r.method, flag)
    return out, messages


def _stand_ins(session, hq, regs: dict, missing: int, anchor: int, thumbnails, settings, progress: Progress):
    """Register frames just outside the burst in place of `missing` flagged ones (generator).

    The burst should hold `settings.frames` good frames, as the paper's always did: a dataset whose
    bursts are shorter cannot be trained with the usual frame count. The stage moves steadily
    between frames, so the translations of the burst's good frames, fitted linearly in the frame
    index, seed ECC on the next frame out (alternately after and before the burst, nearest to the
    anchor first). A stand-in is kept only when ECC converges above the correlation threshold
    within `settings.max_disagreement_px` of that line; at most ``missing + 2`` frames are tried.

    Returns
    -------
    (dict of int -> FrameRegistration, list of str)
        The accepted stand-ins by frame index, and messages saying what was tried.
    """
    good = sorted(t for t, r in regs.items() if r.flag is None)
    if len(good) < 2:
        return {}, []
    slope, intercept = np.polyfit(good, np.array([regs[t].translation_yx for t in good]), 1)
    n_frames = session.stream.shape[0]
    before, after = min(regs) - 1, max(regs) + 1
    found, notes = {}, []
    for _ in range(missing + 2):
        if len(found) == missing or (before < 0 and after >= n_frames):
            break
        take_after = after < n_frames and (before < 0 or after - anchor <= anchor - before)
        t = after if take_after else before
        after, before = (after + 1, before) if take_after else (after, before - 1)
        yield dataclasses.replace(progress, message=f"frame {t} in place of a flagged frame")
        if t in thumbnails.problems:
            notes.append(f"frame {t} not used in place of a flagged frame: {thumbnails.problems[t]}")
            continue
        line = slope * t + intercept
        reg, _ = refine_frame(stream_frame(session, t), hq, translation_matrix(line), settings, t)
        off = float(np.hypot(*np.subtract(reg.translation_yx, line)))
        if reg.method == "ecc" and reg.correlation >= settings.min_correlation and off <= settings.max_disagreement_px:
            found[t] = reg
            notes.append(f"frame {t} registered in place of a flagged frame (correlation {reg.correlation:.2f})")
        else:
            notes.append(
                f"frame {t} not used in place of a flagged frame: {reg.method}, correlation "
                f"{reg.correlation:.2f}, {off:.1f} px from the stage motion of the burst"
            )
    return found, notes


def register_pair(
    session,
    hq_index: int,
    init: InitialGuess | None = None,
    settings: RegistrationSettings | None = None,
    *,
    thumbnails=None,
    match: FrameMatch | None = None,
) -> Generator[Progress, None, PairRegistration]:
    """Register a burst of stream frames to HQ image `hq_index`.

    Parameters
    ----------
    session : Session
    hq_index : int
    init : InitialGuess, optional
        The user's frame and (ty, tx) there (stream px); the burst is centred on that frame. Without
        it, the matcher's best frame and translation are used.
    settings : RegistrationSettings, optional
    thumbnails : StreamThumbnails, optional
        Reused across the HQ images of one session (see :func:`.matching.stream_thumbnails`).
    match : FrameMatch, optional
        The matcher's result when already known (see :func:`register_session`).

    Yields
    ------
    Progress, then one FrameDone per frame.

    Returns
    -------
    PairRegistration
        Frames in stream order; flagged frames say why, and frames just outside the burst registered
        in their place are included (see :func:`_stand_ins`). Not saved here (see
        :func:`register_session`).

    Raises
    ------
    DataError
        Unusable HQ image, or no frame matches it.
    ValueError
        Stream shorter than the burst, or `init` names a frame outside the stream.
    """
    settings = settings or RegistrationSettings()
    name = session.hq_names[hq_index]
    stage = f"register {name}"
    total = settings.frames + 1
    yield Progress(stage, 0, total, "matching frames")
    n_frames = session.stream.shape[0]
    if init is not None and not 0 <= init.frame < n_frames:
        raise ValueError(f"{name}: initial frame {init.frame} is outside the stream (frames 0-{n_frames - 1})")
    thumbnails = thumbnails or stream_thumbnails(session, settings)
    if match is None:
        around, near = (None, None) if init is None else (init.frame, init.translation_yx)
        match = match_frames(session, hq_index, settings, thumbnails, around=around, near_yx=near)
    messages = list(match.messages)
    anchor = match.best_frame if init is None else init.frame
    anchor_t = match.translation_yx if init is None else init.translation_yx
    hq = prepare_hq(hq_at_stream_pixels(session, hq_index), match.streak_yx)
    yield Progress(stage, 1, total, f"best frame {match.best_frame} (score {match.score:.2f}); burst {match.frames}")
    expected = dict(zip(match.frames, match.translations_yx))
    regs: dict[int, FrameRegistration] = {}
    for done, t in enumerate(_order(match.frames, anchor), start=2):
        if t in thumbnails.problems or not np.all(np.isfinite(expected[t])):
            reason = thumbnails.problems.get(t, f"frame {t} could not be matched")
            regs[t] = FrameRegistration(t, translation_matrix(expected[anchor]), float("nan"), False, "ecc", reason)
        else:
            # seed: the nearest registered frame moved by the matcher's step from it to this frame
            good = [k for k in regs if regs[k].flag is None]
            if t == anchor or not good:
                seed_t = np.add(anchor_t, np.subtract(expected[t], expected[anchor]))
            else:
                k = min(good, key=lambda k: abs(k - t))
                seed_t = np.add(regs[k].translation_yx, np.subtract(expected[t], expected[k]))
            regs[t], note = refine_frame(stream_frame(session, t), hq, translation_matrix(seed_t), settings, t)
            messages += [note] if note else []
        yield FrameDone(stage, done, total, f"frame {t}", frame=regs[t])
    regs, notes = _quality_control(regs, match, settings, init is not None)
    messages += notes
    missing = settings.frames - sum(r.flag is None for r in regs.values())
    if missing > 0:
        stand_ins, notes = yield from _stand_ins(
            session, hq, regs, missing, anchor, thumbnails, settings, Progress(stage, total, total)
        )
        regs.update(stand_ins)
        messages += notes
    return PairRegistration(
        hq=name,
        init_translation_yx=tuple(float(v) for v in anchor_t),
        frames=tuple(regs[t] for t in sorted(regs)),
        messages=tuple(messages),
        init_frame=anchor,
        init_source="matcher" if init is None else "user",
        settings=settings.to_dict(),
    )


def register_session(
    session,
    settings: RegistrationSettings | None = None,
    inits: dict[str, InitialGuess] | None = None,
    names: list[str] | None = None,
) -> Generator[Progress, None, list[PairRegistration]]:
    """Register HQ images of a session, saving ``registration.json`` after each one.

    Pairs already in the file are kept (merged by HQ name), so a cancelled run (GeneratorExit at a
    yield) loses only the pair in progress.

    Parameters
    ----------
    session : Session
    settings : RegistrationSettings, optional
    inits : dict of str -> InitialGuess, optional
        Users' starting points by HQ name; the other images start from the matcher.
    names : list of str, optional
        HQ images to register (default: all, in scan order).

    Yields
    ------
    Progress
        The pairs' events, one PairDone per saved pair, one PairFailed per HQ image that could not
        be registered (its reason in the message; the others go on).

    Returns
    -------
    list of PairRegistration
        The pairs registered in this run.

    Raises
    ------
    ValueError
        Unknown names in `names` or `inits`.
    DataError
        Unusable stream, or a registration.json that cannot be merged into.
    """
    settings = settings or RegistrationSettings()
    inits = inits or {}
    names = list(session.hq_names) if names is None else list(names)
    unknown = sorted((set(names) | set(inits)) - set(session.hq_names))
    if unknown:
        raise ValueError(f"{session.path}: no HQ image named {', '.join(unknown)} (has {', '.join(session.hq_names)})")
    thumbnails = stream_thumbnails(session, settings)
    indices = [session.hq_names.index(name) for name in names]
    matches, failed = {}, {}
    for done, i in enumerate(indices):
        name = session.hq_names[i]
        yield Progress(f"{session.name}: matching frames", done, len(indices), name)
        try:
            init = inits.get(name)
            around, near = (None, None) if init is None else (init.frame, init.translation_yx)
            matches[i] = match_frames(session, i, settings, thumbnails, around=around, near_yx=near)
        except (DataError, ValueError) as exc:
            failed[i] = str(exc)
    yield from _enforce_scan_order(session, settings, thumbnails, matches, inits, failed)
    pairs = []
    for done, i in enumerate(indices, start=1):
        name = session.hq_names[i]
        stage = f"{session.name}: {name}"
        try:
            if i in failed:
                raise ValueError(failed[i])
            pair = yield from register_pair(
                session, i, inits.get(name), settings, thumbnails=thumbnails, match=matches[i]
            )
        except (DataError, ValueError) as exc:
            yield PairFailed(stage, done, len(indices), str(exc), hq=name)
            continue
        saved = save_registration(session.path, [pair])
        pairs.append(pair)
        summary = f"{len(pair.accepted)}/{len(pair.frames)} frames accepted"
        yield PairDone(stage, done, len(indices), summary, pair=pair, saved=saved)
    return pairs


def scan_order_outliers(best: dict[int, int]) -> dict[int, int]:
    """Images whose best frame is off the robust line through all (frame ~ a + b * image index).

    Parameters
    ----------
    best : dict of int -> int
        HQ image index -> best frame.

    Returns
    -------
    dict of int -> int
        HQ image index -> the frame the line expects, for images more than max(2, |b| / 4) frames
        off it (Theil-Sen line: the median of pairwise slopes, robust to a minority of outliers).
        Empty for fewer than three images.
    """
    if len(best) < 3:
        return {}
    idx = sorted(best)
    slope = float(np.median([(best[j] - best[i]) / (j - i) for k, i in enumerate(idx) for j in idx[k + 1 :]]))
    offset = float(np.median([best[i] - slope * i for i in idx]))
    expected = {i: int(round(offset + slope * i)) for i in idx}
    return {i: expected[i] for i in idx if abs(best[i] - expected[i]) > max(2.0, 0.25 * abs(slope))}


def _enforce_scan_order(session, settings, thumbnails, matches: dict, inits: dict, failed: dict):
    """Re-match images whose best frame breaks the scan order of the others.

    HQ images are taken in scan order and the stream runs along the same scan, so best frames grow
    about linearly with the image index. A periodic specimen (the support grid, a grating) looks
    alike one grid pitch away, where the matcher may prefer another frame; such an image's best
    frame is then sought only near where the robust line through the others puts it. A user's frame
    is taken as given. Needs three or more images matched together. An image with no good match
    near its expected frame moves from `matches` to `failed`, rather than keep a doubtful match.
    """
    best = {
        i: (inits[session.hq_names[i]].frame if session.hq_names[i] in inits else m.best_frame)
        for i, m in matches.items()
    }
    for i, expected in scan_order_outliers(best).items():
        name = session.hq_names[i]
        if name in inits:
            continue
        yield Progress(f"{session.name}: matching frames", 0, 1, f"{name}: checking frames near {expected}")
        near = range(expected - 2, expected + 3)
        try:
            match = match_frames(session, i, settings, thumbnails, candidates=near)
        except (DataError, ValueError) as exc:
            del matches[i]
            failed[i] = f"best-matching frame {best[i]} breaks the scan order (expected near {expected}), and {exc}"
            continue
        note = (
            f"best-matching frame {best[i]} breaks the scan order of the other images (expected near frame "
            f"{expected}; a repeating specimen looks alike a grid pitch away): used frame {match.best_frame}"
        )
        matches[i] = dataclasses.replace(match, messages=(*match.messages, note))
