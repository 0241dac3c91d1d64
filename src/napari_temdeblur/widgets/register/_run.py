"""What the registration dock runs in its thread worker, and how it words the results (no Qt)."""

from __future__ import annotations

from collections.abc import Generator

from napari_temdeblur.core import Progress
from napari_temdeblur.core.io import BurstPair, Session
from napari_temdeblur.core.register import (
    InitialGuess,
    PairRegistration,
    RegistrationSettings,
    extract_burst,
    register_session,
)


def register_and_extract(
    session: Session,
    settings: RegistrationSettings,
    inits: dict[str, InitialGuess],
    names: list[str] | None,
    restored: list[PairRegistration],
) -> Generator[Progress, None, tuple[list[PairRegistration], dict[str, BurstPair]]]:
    """Register HQ images (each saved into ``registration.json`` by the core), then cut their bursts.

    Parameters
    ----------
    session : Session
    settings : RegistrationSettings
    inits : dict of str to InitialGuess
        The user's alignments by HQ name; images without one start from the frame matcher.
    names : list of str or None
        HQ images to register; None for all.
    restored : list of PairRegistration
        Earlier registrations whose bursts are to be shown too.

    Returns
    -------
    (pairs, bursts)
        The new registrations, and the bursts (GT uint16 (H, W), low uint16 (F, H, W)) of the new
        and the restored registrations by HQ name.
    """
    pairs = yield from register_session(session, settings, inits=inits, names=names)
    todo = [*pairs, *restored]
    bursts = {}
    for done, pair in enumerate(todo, 1):
        if pair.accepted:
            bursts[pair.hq] = extract_burst(session, pair)
        yield Progress("extract bursts", done, len(todo), pair.hq)
    return pairs, bursts


def init_frame(pair: PairRegistration) -> int:
    """The stream frame a registration's initial translation refers to (the burst centre if not recorded)."""
    if pair.init_frame is not None:
        return int(pair.init_frame)
    return pair.frames[len(pair.frames) // 2].index


def refined_translation_yx(pair: PairRegistration) -> tuple[float, float]:
    """(ty, tx), stream px: where registration placed the HQ origin in the frame its start refers to
    (:func:`init_frame`), so the viewer shows the refined alignment; the start when that frame was left
    out. Only the translation: the overlay moves the stream layer, it does not rotate it."""
    start = init_frame(pair) if pair.init_frame is not None or pair.frames else None
    frame = next((f for f in pair.accepted if f.index == start), None)
    return frame.translation_yx if frame is not None else tuple(pair.init_translation_yx)


def describe_pair(pair: PairRegistration) -> str:
    """The start (frame, translation, who gave it), then one line per frame: its correlation, the
    method when not ECC, and why it was left out."""
    ty, tx = pair.init_translation_yx
    who = "yours" if pair.init_source == "user" else "the matcher's"
    frame = init_frame(pair) if pair.init_frame is not None or pair.frames else "?"
    lines = [f"start: frame {frame} at y {ty:.2f}, x {tx:.2f} px ({who})"]
    for frame in pair.frames:
        line = f"frame {frame.index}: r = {frame.correlation:.3f}"
        if frame.method != "ecc":
            line += f" ({frame.method})"
        if frame.flag is not None:
            line += f", left out: {frame.flag}"
        lines.append(line)
    return "\n".join(lines)
