"""Registration results as data: settings, initial guesses, per-frame results and ``registration.json``.

Conventions (DESIGN.md). A frame's ``matrix`` is the 2 x 3 affine A in OpenCV's (x = column, y = row)
order with ``stream_frame(A @ [x, y, 1]) ~= hq_down(x, y)``, where ``hq_down`` is the HQ image resampled
to stream pixels. For a translation, ``A = [[1, 0, tx], [0, 1, ty]]`` and (ty, tx) is where the HQ
image's origin lies in the stream frame. Translations written ``_yx`` are napari's (row, col) order in
stream pixels and mean the same (ty, tx).

``registration.json`` is only ever replaced atomically (temporary file + ``os.replace``) and pairs are
merged by HQ name, so what was registered before is never dropped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_json
from .config import reject_unknown_keys
from .errors import DataError
from .session import REGISTRATION_FORMAT, _read_json, read_registration

MOTIONS = ("translation", "euclidean", "affine")
#: How a frame's matrix was found: ECC, or the cross-correlation fallback when ECC failed.
METHODS = ("ecc", "cross-correlation")
REGISTRATION_FILE = "registration.json"


@dataclass(frozen=True)
class RegistrationSettings:
    """Parameters of frame matching, ECC refinement and quality control.

    Attributes
    ----------
    frames : int
        Stream frames registered per HQ image (3-8), centred on the best-matching frame.
    motion : {"translation", "euclidean", "affine"}
        ECC motion model.
    gauss_filt_size : int or None
        Odd size (full-resolution px) of the Gaussian pre-filter ECC applies to both images (OpenCV's
        ``gaussFiltSize``; scaled down on coarse pyramid levels). None: the frame's shorter side / 48,
        within 5-31 (21 for 1024 px frames, OpenCV's default 5 for 256 px ones). Fine detail is where
        the true, uneven streaks differ most from the uniform streak model, so on large frames
        smoothing it away lowers the error against the streak centre (full-size sessions, 5 -> 21,
        mean error: kidney 0.10 -> 0.07 px, calibration grid 0.19-0.35 -> 0.16-0.20 px); small frames
        have too little detail to spare.
    iterations : int
        Maximum ECC iterations per pyramid level.
    epsilon : float
        ECC stops when the correlation coefficient changes by less than this between iterations.
    min_correlation : float
        Frames whose final correlation coefficient (sample pixels only) is below this are left out.
    match_downsample : int
        The frame matcher compares images downsampled by this factor.
    pyramid_levels : int
        Coarser ECC levels (each halving the images) run before full resolution, so that a start a
        few pixels off (a hand drag) still converges.
    max_disagreement_px : float
        Stream px. A frame whose registration disagrees by more than this with the stage motion that
        frame matching and the rest of its burst show is left out, and so is a burst started by the
        user that sits this far from frame matching's estimate (on a grating: locked one period off).
        Keep it well below the grating period (14.8 px for the 463 nm calibration grating) and above
        the matcher's error (a few px).
    streak : bool
        Blur the HQ image along the scan by the exposure's motion streak before ECC, so the
        registration lands on the centre of the streak (timing read from session.json).
    """

    frames: int = 5
    motion: str = "translation"
    gauss_filt_size: int | None = None
    iterations: int = 100
    epsilon: float = 1e-5
    min_correlation: float = 0.5
    match_downsample: int = 4
    pyramid_levels: int = 2
    max_disagreement_px: float = 8.0
    streak: bool = True

    def __post_init__(self):
        if not (isinstance(self.frames, int) and 3 <= self.frames <= 8):
            raise ValueError(f"frames must be an integer from 3 to 8, got {self.frames!r}")
        if self.motion not in MOTIONS:
            raise ValueError(f"motion must be one of {', '.join(MOTIONS)}, got {self.motion!r}")
        size = self.gauss_filt_size
        if size is not None and not (isinstance(size, int) and size >= 1 and size % 2):
            raise ValueError(f"gauss_filt_size must be a positive odd integer or None (auto), got {size!r}")
        for name in ("iterations", "match_downsample"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.pyramid_levels, int) and 0 <= self.pyramid_levels <= 5):
            raise ValueError(f"pyramid_levels must be an integer from 0 to 5, got {self.pyramid_levels!r}")
        if not 0 < self.epsilon < 1:
            raise ValueError(f"epsilon must be in (0, 1), got {self.epsilon!r}")
        if not -1 <= self.min_correlation < 1:
            raise ValueError(f"min_correlation must be in [-1, 1), got {self.min_correlation!r}")
        if not self.max_disagreement_px > 0:
            raise ValueError(f"max_disagreement_px must be positive, got {self.max_disagreement_px!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RegistrationSettings:
        """Build from a dict, rejecting unknown keys by name."""
        reject_unknown_keys(cls, data, "registration setting")
        return cls(**data)


@dataclass(frozen=True)
class InitialGuess:
    """A user's starting point for one HQ image: a stream frame and where the HQ origin lies in it.

    Attributes
    ----------
    frame : int
        Stream frame index.
    translation_yx : (float, float)
        (ty, tx), stream px, napari (row, col) order.
    """

    frame: int
    translation_yx: tuple[float, float]


def read_init_file(path: str | Path) -> dict[str, InitialGuess]:
    """Read ``{"<hq name>": {"frame": t, "translation_yx": [dy, dx]}, ...}`` (the CLI's ``--init``).

    Raises
    ------
    DataError
        Unreadable file, not JSON, or an entry without an integer frame and two finite numbers.
    """
    path = Path(path)
    data = _read_json(path)
    guesses = {}
    for name, entry in data.items():
        frame = entry.get("frame") if isinstance(entry, dict) else None
        t = entry.get("translation_yx") if isinstance(entry, dict) else None
        ok_t = isinstance(t, list) and len(t) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in t
        )
        if not (isinstance(frame, int) and not isinstance(frame, bool) and frame >= 0 and ok_t):
            raise DataError(
                path, f"entry {name!r} must be {{\"frame\": <index >= 0>, \"translation_yx\": [dy, dx]}}, got {entry!r}"
            )
        guesses[name] = InitialGuess(frame, (float(t[0]), float(t[1])))
    return guesses


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
        The :class:`RegistrationSettings` used.
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
    """Merge `pairs` into ``<session>/registration.json`` atomically.

    Pairs already in the file are kept; a pair of the same HQ name is replaced by the new one. Other
    top-level keys of the file are preserved.

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
        overwritten, so nothing registered earlier is lost.
    """
    folder = _session_path(session_path)
    path = folder / REGISTRATION_FILE
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
        merged[pair.hq] = pair.to_dict()
    data = {**existing, "format": REGISTRATION_FORMAT, "pairs": list(merged.values())}
    write_json(path, data)
    return path
