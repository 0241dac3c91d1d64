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


def describe_pair(pair: PairRegistration) -> str:
    """One line per frame: its correlation, the method when not ECC, and why it was left out."""
    lines = []
    for frame in pair.frames:
        line = f"frame {frame.index}: r = {frame.correlation:.3f}"
        if frame.method != "ecc":
            line += f" ({frame.method})"
        if frame.flag is not None:
            line += f", left out: {frame.flag}"
        lines.append(line)
    return "\n".join(lines)
