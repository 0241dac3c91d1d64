"""Registration results as data (per-frame and per-pair records) and the ``registration.json`` file.

Conventions (docs/design.md, Matrix convention). A frame's ``matrix`` is the 2 x 3 affine A in OpenCV's
(x = column, y = row) order with ``stream_frame(A @ [x, y, 1]) ~= hq_down(x, y)``, where ``hq_down`` is
the HQ image resampled to stream pixels. For a translation, ``A = [[1, 0, tx], [0, 1, ty]]`` and
(ty, tx) is where the HQ image's origin lies in the stream frame. Translations written ``_yx`` are
napari's (row, col) order in stream pixels and mean the same (ty, tx).

``registration.json`` is only ever replaced atomically (temporary file + ``os.replace``), under the
session folder's lock, and pairs are merged by HQ name, so what was registered before is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, write_json
from napari_temdeblur.core.io import folder_lock, read_json

from ._settings import InitialGuess

#: How a frame's matrix was found: ECC, or the cross-correlation fallback when ECC failed.
METHODS = ("ecc", "cross-correlation")
REGISTRATION_FILE = "registration.json"
REGISTRATION_FORMAT = "temdeblur-registration/1"
#: How long a save waits for another process saving into the same session (each save takes milliseconds).
SAVE_WAIT_S = 60.0


@dataclass(frozen=True)
class FrameRegistration:
    """One stream frame registered to an HQ image.

    Attributes
    ----------
    index : int
        Stream frame index.
    matrix : numpy.ndarray
        float64 (2, 3), ``stream_frame(matrix @ [x, y, 1]) ~= hq_down(x, y)`` (x = column, y = row).
    correlation : float
        ECC correlation coefficient (or normalised cross-correlation for the fallback) on sample pixels.
    converged : bool
        Whether the method converged.
    method : {"ecc", "cross-correlation"}
    flag : str or None
        Why the frame is left out of the burst; None when accepted.
    """

    index: int
    matrix: np.ndarray
    correlation: float
    converged: bool = True
    method: str = "ecc"
    flag: str | None = None

    @property
    def translation_yx(self) -> tuple[float, float]:
        """(ty, tx) in stream px: where the HQ origin lies in this frame."""
        return float(self.matrix[1, 2]), float(self.matrix[0, 2])

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "matrix": np.asarray(self.matrix, float).round(6).tolist(),
            "correlation": round(float(self.correlation), 6) if np.isfinite(self.correlation) else None,
            "converged": self.converged,
            "method": self.method,
            "flag": self.flag,
        }

    @classmethod
    def from_dict(cls, d: dict) -> FrameRegistration:
        matrix = np.asarray(d["matrix"], dtype=np.float64)
        if matrix.shape != (2, 3) or not np.all(np.isfinite(matrix)):
            raise ValueError(f"frame {d.get('index')}: matrix must be 2 x 3 finite numbers, got {d['matrix']!r}")
        return cls(
            index=int(d["index"]),
            matrix=matrix,
            correlation=float("nan") if d.get("correlation") is None else float(d["correlation"]),
            converged=bool(d.get("converged", True)),
            method=str(d.get("method", "ecc")),
            flag=d.get("flag"),
        )


@dataclass(frozen=True)
class PairRegistration:
    """All frames registered to one HQ image.

    Attributes
    ----------
    hq : str
        HQ image name.
    init_translation_yx : (float, float)
        The starting (ty, tx) in stream px: the user's drag, or the frame matcher's proposal.
    frames : tuple of FrameRegistration
        In stream order, flagged ones included.
    messages : tuple of str
        What happened, for the user (fallbacks, clipping, flags).
    init_frame : int or None
        The stream frame `init_translation_yx` refers to.
    init_source : {"user", "matcher"}
    settings : dict
        The :class:`~napari_temdeblur.core.register.RegistrationSettings` used (its ``to_dict``).
    """

    hq: str
    init_translation_yx: tuple[float, float]
    frames: tuple[FrameRegistration, ...]
    messages: tuple[str, ...] = ()
    init_frame: int | None = None
    init_source: str = "matcher"
    settings: dict = field(default_factory=dict)

    @property
    def accepted(self) -> tuple[FrameRegistration, ...]:
        """Frames not flagged: the registered burst."""
        return tuple(f for f in self.frames if f.flag is None)

    def to_dict(self) -> dict:
        """One ``pairs`` entry of ``registration.json``."""
        return {
            "hq": self.hq,
            "init_translation_yx": [round(float(v), 4) for v in self.init_translation_yx],
            "init_frame": self.init_frame,
            "init_source": self.init_source,
            "frames": [f.to_dict() for f in self.frames],
            "messages": list(self.messages),
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, d: dict) -> PairRegistration:
        """Inverse of :meth:`to_dict`; raises ValueError (KeyError, TypeError) on malformed entries."""
        t = d.get("init_translation_yx") or [float("nan"), float("nan")]
        return cls(
            hq=str(d["hq"]),
            init_translation_yx=(float(t[0]), float(t[1])),
            frames=tuple(FrameRegistration.from_dict(f) for f in d["frames"]),
            messages=tuple(str(m) for m in d.get("messages", ())),
            init_frame=d.get("init_frame"),
            init_source=str(d.get("init_source", "user")),
            settings=dict(d.get("settings") or {}),
        )


def read_registration(path: str | Path) -> dict:
    """Read and check a ``registration.json``.

    Raises
    ------
    DataError
        Unreadable file, wrong format tag, or pairs missing their fields.
    """
    path = Path(path)
    reg = read_json(path)
    if reg.get("format") != REGISTRATION_FORMAT:
        raise DataError(path, f"format is {reg.get('format')!r}, expected {REGISTRATION_FORMAT!r}")
    pairs = reg.get("pairs")
    if not isinstance(pairs, list) or not all(isinstance(p, dict) and "hq" in p and "frames" in p for p in pairs):
        raise DataError(path, "'pairs' must be a list of objects with 'hq' and 'frames'")
    return reg


def _session_path(session) -> Path:
    return Path(getattr(session, "path", session))


def load_registrations(session) -> dict[str, PairRegistration]:
    """Registrations saved in a session's ``registration.json``, read from disk now.

    Parameters
    ----------
    session : Session or str or Path
        An opened session or its folder.

    Returns
    -------
    dict
        HQ name -> PairRegistration; empty when the session has no registration file yet.

    Raises
    ------
    DataError
        The file exists but is unreadable, of another format, or holds a malformed pair.
    """
    path = _session_path(session) / REGISTRATION_FILE
    if not path.is_file():
        return {}
    raw = read_registration(path)
    pairs = {}
    for entry in raw["pairs"]:
        try:
            pair = PairRegistration.from_dict(entry)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(path, f"pair {entry.get('hq')!r} is malformed ({exc})") from None
        pairs[pair.hq] = pair
    return pairs


def user_starts(pairs: dict[str, PairRegistration]) -> dict[str, InitialGuess]:
    """The hand alignments that saved registrations started from, by HQ name.

    A later registration of those images (the dock's "Register all", the CLI) starts from them again
    rather than from the frame matcher, so a user's alignment is never silently replaced.

    Parameters
    ----------
    pairs : dict of str -> PairRegistration
        As :func:`load_registrations` returns them.
    """
    return {
        name: InitialGuess(int(pair.init_frame), pair.init_translation_yx)
        for name, pair in pairs.items()
        if pair.init_source == "user" and pair.init_frame is not None
    }


def save_registration(session_path, pairs) -> Path:
    """Merge `pairs` into ``<session>/registration.json`` atomically, one process at a time.

    Pairs already in the file are kept; a pair of the same HQ name is replaced by the new one, except
    that a registration started from the frame matcher never replaces one started from a hand
    alignment (saved meanwhile by another process: the dock, ``--init``). Other top-level keys of the
    file are preserved. The session folder is locked around the read-merge-write, so processes saving
    at once all keep their pairs.

    Parameters
    ----------
    session_path : Session or str or Path
        The session (or its folder).
    pairs : iterable of PairRegistration

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    DataError
        When an existing ``registration.json`` cannot be read: it is left untouched rather than
        overwritten, so nothing registered earlier is lost. FolderInUse when another process holds
        the session folder for longer than :data:`SAVE_WAIT_S`.
    """
    folder = _session_path(session_path)
    path = folder / REGISTRATION_FILE
    with folder_lock(folder, "saving registration.json", wait_s=SAVE_WAIT_S):
        if path.is_file():
            try:
                existing = read_registration(path)
            except DataError as exc:
                raise DataError(
                    path, f"{exc.problem}; not overwritten, so earlier registrations are kept: move it aside to save"
                ) from None
        else:
            existing = {"format": REGISTRATION_FORMAT, "pairs": []}
        merged = {p["hq"]: p for p in existing["pairs"]}
        for pair in pairs:
            if not _replaces_a_hand_alignment(pair, merged.get(pair.hq)):
                merged[pair.hq] = pair.to_dict()
        data = {**existing, "format": REGISTRATION_FORMAT, "pairs": list(merged.values())}
        write_json(path, data)
    return path


def _replaces_a_hand_alignment(pair: PairRegistration, saved: dict | None) -> bool:
    """Whether `pair`, from the matcher, would replace a saved pair that :func:`user_starts` starts from."""
    return (
        pair.init_source != "user"
        and saved is not None
        and saved.get("init_source", "user") == "user"
        and saved.get("init_frame") is not None
    )
