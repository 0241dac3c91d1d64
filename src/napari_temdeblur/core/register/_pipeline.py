"""Semi-automatic registration of stream frames to HQ images (the paper's Data section, automated).

For each HQ image: the frame matcher (:mod:`._matching`) proposes the best frame, the burst around it
and rough translations; ECC (:mod:`._ecc`) refines each frame, seeded from the user's translation when
given (for the neighbouring frames: the previous frame's result moved by the matcher's frame-to-frame
step), else from the matcher. Quality control leaves out, with the reason, frames that correlate
poorly, did not converge, or disagree with the matcher or with the rest of the burst - on a grating
that is what a start one period off looks like - and the next frames outside the burst are tried in
their place, so that a burst keeps its length where the stream allows. A session's images are
matched together first, so an image whose best frame breaks the scan order (a repeating specimen
matched one grid pitch away) is re-matched where the others put it (:mod:`._quality`). Every pair is
saved to ``registration.json`` as soon as it is made.

Conventions are those of :mod:`._file` (docs/design.md, Matrix convention): ``stream_frame(A @ [x, y, 1])
~= hq_down(x, y)``; translations ``_yx`` are (ty, tx) in stream px.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, Progress

from ._ecc import prepare_hq
from ._file import FrameRegistration, PairRegistration, load_registrations, save_registration, user_starts
from ._matching import FrameMatch, hq_at_stream_pixels, match_frames, stream_frame, stream_thumbnails
from ._quality import enforce_scan_order, quality_control, stand_ins
from ._refine import refine_frame, translation_matrix
from ._settings import InitialGuess, RegistrationSettings


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


def _order(frames: list[int], anchor: int) -> list[int]:
    """Anchor first, then outward alternately, so each frame is seeded from a registered neighbour."""
    return sorted(frames, key=lambda t: (abs(t - anchor), t))


def _check_start(session, name: str, init: InitialGuess) -> None:
    """Refuse a start that cannot be right: a frame outside the stream, or a translation that puts the
    HQ image beyond the frame's size (where the two no longer overlap), such as a typo of 1e9 px.

    Raises
    ------
    ValueError
        Naming the HQ image, the start and the range allowed.
    """
    n_frames, height, width = session.stream.shape[:3]
    if not 0 <= init.frame < n_frames:
        raise ValueError(f"{name}: initial frame {init.frame} is outside the stream (frames 0-{n_frames - 1})")
    ty, tx = init.translation_yx
    if not (abs(ty) < height and abs(tx) < width):  # NaN fails too
        raise ValueError(
            f"{name}: the start (ty, tx) = ({ty:g}, {tx:g}) px puts the HQ image outside stream frame "
            f"{init.frame}: a start lies within ±{height} px in y and ±{width} px in x, where the two overlap"
        )


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
        Reused across the HQ images of one session (see :func:`._matching.stream_thumbnails`).
    match : FrameMatch, optional
        The matcher's result when already known (see :func:`register_session`).

    Yields
    ------
    Progress, then one FrameDone per frame.

    Returns
    -------
    PairRegistration
        Frames in stream order; flagged frames say why, and frames just outside the burst registered
        in their place are included (see :func:`._quality.stand_ins`). Not saved here (see
        :func:`register_session`).

    Raises
    ------
    DataError
        Unusable HQ image, or no frame matches it.
    ValueError
        Stream shorter than the burst, or an `init` that cannot be right (a frame outside the stream, a
        translation beyond the frame size).
    """
    settings = settings or RegistrationSettings()
    name = session.hq_names[hq_index]
    stage = f"register {name}"
    total = settings.frames + 1
    yield Progress(stage, 0, total, "matching frames")
    if init is not None:
        _check_start(session, name, init)
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
    regs, notes = quality_control(regs, match, settings, init is not None)
    messages += notes
    missing = settings.frames - sum(r.flag is None for r in regs.values())
    if missing > 0:
        found, notes = yield from stand_ins(
            session, hq, regs, missing, anchor, thumbnails, settings, Progress(stage, total, total)
        )
        regs.update(found)
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
        be registered (its reason in the message; the others go on) or whose registration from the
        frame matcher was not saved because a hand-aligned one was saved meanwhile (kept).

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
            if init is not None:
                _check_start(session, name, init)
            around, near = (None, None) if init is None else (init.frame, init.translation_yx)
            matches[i] = match_frames(session, i, settings, thumbnails, around=around, near_yx=near)
        except (DataError, ValueError) as exc:
            failed[i] = str(exc)
    yield from enforce_scan_order(session, settings, thumbnails, matches, inits, failed)
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
        if pair.init_source != "user" and name in user_starts(load_registrations(session)):
            message = (
                "not saved: a registration from a hand alignment was saved meanwhile (by another process); kept it"
            )
            yield PairFailed(stage, done, len(indices), message, hq=name)
            continue
        pairs.append(pair)
        summary = f"{len(pair.accepted)}/{len(pair.frames)} frames accepted"
        yield PairDone(stage, done, len(indices), summary, pair=pair, saved=saved)
    return pairs
