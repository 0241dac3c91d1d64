"""Stream geometry: where every stream frame (and every registered HQ image) lies in one mosaic, and the
``positions.json`` file (docs/data_formats.md, "Stream positions").

Each frame is matched to the frames one to `neighbours` before it (:mod:`._pairs`), so that a pair's
error does not accumulate along the scan; HQ images registered in ``registration.json`` tie frames far
apart to one sharp image each. Least squares (:mod:`._solve`) turns the shifts into positions. A frame
is flagged and left out when it is unusable (blank, saturated, NaN), when no neighbour matches it
(corrupt, or the stage jumped away and back), or when every match it had disagreed with the rest; the
chain goes on after it through the frames around it.

Positions ``yx`` are the (row, col) of a frame's top-left corner (or of an HQ image's, at stream
pixels) in mosaic coordinates, stream px, with the smallest at 0.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, Progress, write_json
from napari_temdeblur.core.io import read_json

from ._file import load_registrations
from ._pairs import MIN_CORRELATION, match_pair, prepare_frame
from ._solve import OUTLIER_PX, Edge, components, residuals, solve_positions

POSITIONS_FILE = "positions.json"
POSITIONS_FORMAT = "temdeblur-positions/1"
#: Consecutive shifts the along-scan prior is the median of.
PRIOR_STEPS = 5


@dataclass(frozen=True)
class FramePosition:
    """One stream frame in the mosaic.

    Attributes
    ----------
    index : int
    yx : (float, float)
        Top-left corner in mosaic coordinates, stream px. A flagged frame's is interpolated from the
        frames around it (for orientation only).
    residual_px : float
        r.m.s. disagreement (stream px) of the frame's matches with the solved positions; NaN when flagged.
    flag : str or None
        Why the frame is left out; None when placed.
    """

    index: int
    yx: tuple[float, float]
    residual_px: float
    flag: str | None = None


@dataclass(frozen=True)
class StreamPositions:
    """Positions of a stream's frames and of its registered HQ images (mosaic coordinates, stream px).

    Attributes
    ----------
    pixel_size_nm : float or None
        The stream pixel (session.json's ``stream_pixel_size_nm``).
    frames : tuple of FramePosition
        Every frame, in stream order.
    hq : dict of str -> (float, float)
        Top-left corner of each HQ image registered to placed frames, at stream pixels.
    messages : tuple of str
        What was left out and why, parts placed by the mean step only.
    """

    pixel_size_nm: float | None
    frames: tuple[FramePosition, ...]
    hq: dict
    messages: tuple[str, ...] = ()

    @property
    def placed(self) -> tuple[FramePosition, ...]:
        """Frames not flagged."""
        return tuple(f for f in self.frames if f.flag is None)

    def shifted(self, yx: tuple[float, float]) -> StreamPositions:
        """These positions with the origin moved to `yx` (row, col, stream px): `yx` subtracted from
        every frame's and HQ image's position."""
        frames = tuple(replace(f, yx=(f.yx[0] - yx[0], f.yx[1] - yx[1])) for f in self.frames)
        hq = {name: (at[0] - yx[0], at[1] - yx[1]) for name, at in self.hq.items()}
        return replace(self, frames=frames, hq=hq)

    def to_dict(self) -> dict:
        """The ``positions.json`` content (strict JSON: a flagged frame's residual is null)."""
        return {
            "format": POSITIONS_FORMAT,
            "pixel_size_nm": self.pixel_size_nm,
            "frames": [
                {
                    "index": f.index,
                    "yx": [round(float(v), 4) for v in f.yx],
                    "residual_px": round(float(f.residual_px), 4) if np.isfinite(f.residual_px) else None,
                    "flag": f.flag,
                }
                for f in self.frames
            ],
            "hq": [{"name": name, "yx": [round(float(v), 4) for v in yx]} for name, yx in self.hq.items()],
        }

    @classmethod
    def from_dict(cls, data: dict) -> StreamPositions:
        """Inverse of :meth:`to_dict`; ValueError (KeyError, TypeError) on malformed content."""
        frames = tuple(
            FramePosition(
                int(f["index"]),
                (float(f["yx"][0]), float(f["yx"][1])),
                float("nan") if f.get("residual_px") is None else float(f["residual_px"]),
                f.get("flag"),
            )
            for f in data["frames"]
        )
        hq = {str(h["name"]): (float(h["yx"][0]), float(h["yx"][1])) for h in data.get("hq", [])}
        size = data.get("pixel_size_nm")
        return cls(None if size is None else float(size), frames, hq)


def save_positions(path: str | Path, positions: StreamPositions) -> Path:
    """Write ``positions.json`` atomically; `path` is the file or a folder to write it into."""
    path = Path(path)
    path = path / POSITIONS_FILE if path.is_dir() or not path.suffix else path
    return write_json(path, positions.to_dict(), allow_nan=False)


def load_positions(path: str | Path) -> StreamPositions:
    """Read ``positions.json`` (the file, or a folder holding it).

    Raises
    ------
    DataError
        Missing or unreadable file, another format, malformed frames.
    """
    path = Path(path)
    path = path / POSITIONS_FILE if path.is_dir() else path
    if not path.is_file():
        raise DataError(path, "not found")
    data = read_json(path)
    if data.get("format") != POSITIONS_FORMAT:
        raise DataError(path, f"format is {data.get('format')!r}, expected {POSITIONS_FORMAT!r}")
    try:
        return StreamPositions.from_dict(data)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(path, f"malformed frame or HQ entry ({exc})") from None


def _hq_edges(session, usable: set[int]) -> list[Edge]:
    """HQ image -> frame equations from ``registration.json``'s accepted frames: frame t's translation
    (ty, tx) is where the HQ origin lies in frame t, so p_hq - p_t = (ty, tx)."""
    edges = []
    for name, pair in load_registrations(session).items():
        edges += [Edge(f.index, f"hq:{name}", f.translation_yx) for f in pair.accepted if f.index in usable]
    return edges


def _prior(steps: deque, k: int):
    if not steps:
        return None
    step = np.median(np.array(steps), axis=0)
    return (float(step[0] * k), float(step[1] * k))


class PositionChain:
    """The stream geometry built one frame at a time: each frame added is matched to the frames one to
    `neighbours` before it (kept prepared in a deque of that length, so memory stays at a few
    thumbnails), and :meth:`solve` turns the matches so far into positions. :func:`stream_positions`
    adds a whole stream; live restoration adds frames as they arrive.

    Parameters
    ----------
    neighbours : int
        Each frame is matched to the 1 ... `neighbours` frames before it (1-5).
    """

    def __init__(self, neighbours: int = 3):
        if not (isinstance(neighbours, int) and 1 <= neighbours <= 5):
            raise ValueError(f"neighbours must be an integer from 1 to 5, got {neighbours!r}")
        self.recent: deque = deque(maxlen=neighbours)
        self.steps: deque = deque(maxlen=PRIOR_STEPS)
        self.problems: dict[int, str] = {}
        self.best: dict[int, float] = {}
        self.measured: list[Edge] = []
        #: frames added (the next frame's index)
        self.count = 0

    def add(self, frame: np.ndarray | None, problem: str | None = None) -> None:
        """Match the next frame (uint16 or float (h, w) counts) to those before it; None (with the
        `problem`, e.g. an unreadable file) adds it flagged."""
        t = self.count
        self.count += 1
        if frame is None:
            self.problems[t] = problem or f"frame {t} could not be read"
            return
        prepared = prepare_frame(t, frame)
        if prepared.problem:
            self.problems[t] = prepared.problem
        for earlier in reversed(self.recent):
            k = t - earlier.index
            pair = match_pair(earlier, prepared, _prior(self.steps, k))
            if pair is None:
                continue
            for i in (pair.first, pair.second):
                self.best[i] = max(self.best.get(i, -1.0), pair.correlation)
            if pair.correlation >= MIN_CORRELATION:
                self.measured.append(Edge(pair.first, pair.second, pair.shift_yx))
                if k == 1:
                    self.steps.append(pair.shift_yx)
        self.recent.append(prepared)

    def solve(self, session, use_registration: bool = True) -> StreamPositions:
        """The positions of the frames added so far (least squares over every match).

        Parameters
        ----------
        session : Session or object with ``path`` and ``meta``
            Its ``registration.json`` anchors the solution when `use_registration`; its
            ``stream_pixel_size_nm`` is recorded.

        Raises
        ------
        DataError
            Unreadable registration.json, or no two frames match yet.
        """
        return _solve(session, self.count, self.measured, self.problems, self.best, self.steps, use_registration)


def stream_positions(
    session, *, neighbours: int = 3, use_registration: bool = True
) -> Generator[Progress, None, StreamPositions]:
    """Solve the position of every stream frame (and registered HQ image) in one mosaic.

    Parameters
    ----------
    session : Session
        An opened session; frames are read one at a time.
    neighbours : int
        Each frame is matched to the 1 ... `neighbours` frames before it (1-5).
    use_registration : bool
        Anchor the solution on the HQ images ``registration.json`` registered (when there is one).

    Yields
    ------
    Progress
        ``Progress("positions", t + 1, T)`` after frame t is matched, then one for the solution.

    Returns
    -------
    StreamPositions

    Raises
    ------
    ValueError
        `neighbours` outside 1-5.
    DataError
        Unreadable registration.json, or no two frames of the stream match.
    """
    chain = PositionChain(neighbours)
    stream = session.stream
    n_frames = int(stream.shape[0])
    for t in range(n_frames):
        chain.add(stream[t])
        yield Progress("positions", t + 1, n_frames, f"frame {t}")
    return chain.solve(session, use_registration)


def _solve(session, n_frames, measured, problems, best, steps, use_registration) -> StreamPositions:
    if not measured:
        raise DataError(session.path, "no two stream frames match: the stream holds no usable sequence")
    usable = [t for t in range(n_frames) if t not in problems]
    hq_edges = _hq_edges(session, set(usable)) if use_registration else []
    step = _prior(steps, 1) or (0.0, 0.0)
    positions, kept, dropped = solve_positions(usable, measured + hq_edges, step)
    messages = []
    flags = dict(problems)
    for t in usable:
        if t not in positions:
            if t in best:
                why = f"matches none of its neighbours (best correlation {best[t]:.2f}, below {MIN_CORRELATION})"
                why += " or only disagreeing ones" if any(t in (e.first, e.second) for e in dropped) else ""
            else:
                why = "has no usable neighbour to match"
            flags[t] = f"frame {t} {why}"
    errors = residuals(positions, kept)
    per_node: dict = {}
    for e, r in zip(kept, errors):
        for n in (e.first, e.second):
            per_node.setdefault(n, []).append(r)
    placed = sorted(t for t in positions if not isinstance(t, str))
    groups = components(placed, [e for e in kept if not isinstance(e.first, str) and not isinstance(e.second, str)])
    anchored = {n for e in kept for n in (e.first, e.second) if isinstance(e.second, str)}
    for group in groups[1:]:
        if not anchored.intersection(group):
            messages.append(
                f"frames {group[0]}-{group[-1]} match no frame before them: joined to those by the stage's "
                "mean step only"
            )
    origin = np.min([positions[n] for n in positions], axis=0)
    at = {n: tuple(float(v) for v in np.subtract(p, origin)) for n, p in positions.items()}
    ys = np.interp(range(n_frames), placed, [at[t][0] for t in placed])
    xs = np.interp(range(n_frames), placed, [at[t][1] for t in placed])
    frames = tuple(
        FramePosition(
            t,
            at.get(t, (float(ys[t]), float(xs[t]))),
            float(np.sqrt(np.mean(np.square(per_node.get(t, [0.0]))))) if t in at else float("nan"),
            flags.get(t),
        )
        for t in range(n_frames)
    )
    messages = [flags[t] for t in sorted(flags)] + messages
    if dropped:
        messages.append(f"{len(dropped)} match(es) disagreeing with the others by over {OUTLIER_PX:g} px left out")
    hq = {n[3:]: at[n] for n in sorted(at, key=str) if isinstance(n, str)}
    return StreamPositions(session.meta.get("stream_pixel_size_nm"), frames, hq, tuple(messages))
