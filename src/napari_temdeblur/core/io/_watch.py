"""A session's ``stream/`` folder watched while the acquisition writes it: frames handed over in index
order as their files become complete (docs/live.md, "Frames arriving").

A file still being written fails to read (tifffile's error, or the truncated page chain
:func:`read_image` detects) or changes size while it is read: it is tried again at the next poll. A
file that stays unreadable for ``grace`` seconds is skipped with the reason, and so is a frame whose
file never appears while later frames do.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError

from ._session import stream_frame_files
from ._tiff import read_image


@dataclass(frozen=True)
class ArrivedFrame:
    """One frame of a watched stream, complete or skipped.

    Attributes
    ----------
    index : int
    frame : numpy.ndarray or None
        uint16 (h, w) counts; None when skipped.
    problem : str or None
        Why the frame is skipped (unreadable after the grace period, missing, of another shape).
    time : float
        ``time.monotonic()`` when it was found complete (or skipped).
    """

    index: int
    frame: np.ndarray | None
    problem: str | None
    time: float


class FrameFolder:
    """The frames of `folder` (``<session>/stream``), read as they arrive.

    Parameters
    ----------
    folder : Path
    grace : float
        Seconds a frame file may stay unreadable (or missing while later frames exist) before it is skipped.
    cache : int
        Frames kept in memory after reading (the newest bursts); older ones are read again on access.
    """

    def __init__(self, folder: str | Path, grace: float = 10.0, cache: int = 16):
        self.folder, self.grace, self.cache = Path(folder), float(grace), int(cache)
        self.files: dict[int, Path] = {}
        self.count = 0  # frames handed over (the next frame's index)
        self.shape: tuple[int, int] | None = None
        self._failing: dict[int, float] = {}  # index -> when it was first found incomplete or missing
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the frames in memory are read by a restoring thread too

    def poll(self, limit: int | None = None) -> list[ArrivedFrame]:
        """The frames that are complete now, next in index order (empty when the next is not); at most
        `limit` of them."""
        found = stream_frame_files(self.folder)
        arrived = []
        while limit is None or len(arrived) < limit:
            t, now = self.count, time.monotonic()
            path = found.get(t)
            if path is None:
                if not any(i > t for i in found) or now - self._failing.setdefault(t, now) < self.grace:
                    break
                problem = f"frame {t}: no file while later frames arrived (skipped after {self.grace:g} s)"
                arrived.append(self._hand_over(t, None, problem, now))
                continue
            frame, problem = self._read(t, path, now)
            if frame is None and problem is None:
                break
            self.files[t] = path
            arrived.append(self._hand_over(t, frame, problem, now))
        return arrived

    def _hand_over(self, t: int, frame, problem, now: float) -> ArrivedFrame:
        self._failing.pop(t, None)
        self.count = t + 1
        if frame is not None:
            self._keep(t, frame)
        return ArrivedFrame(t, frame, problem, now)

    def _read(self, t: int, path: Path, now: float) -> tuple[np.ndarray | None, str | None]:
        """(frame, None) when complete; (None, None) to try again; (None, why) to skip."""
        try:
            size = path.stat().st_size
            frame = read_image(path)
            complete = path.stat().st_size == size
        except (DataError, OSError) as exc:
            frame, complete, error = None, False, exc
        else:
            error = None
        if not complete:
            if now - self._failing.setdefault(t, now) < self.grace:
                return None, None
            why = str(error) if error is not None else f"{path}: still changing size"
            return None, f"frame {t} skipped, unreadable for {self.grace:g} s: {why}"
        if frame.dtype != np.uint16 and frame.dtype.kind not in "ui":
            return None, f"frame {t} skipped: {path} holds {frame.dtype} values, not detector counts"
        if self.shape is None:
            self.shape = frame.shape
        elif frame.shape != self.shape:
            return None, f"frame {t} skipped: {path} is {frame.shape[0]} x {frame.shape[1]} px, frame 0 is {self.shape}"
        return frame, None

    def _keep(self, t: int, frame: np.ndarray) -> None:
        with self._lock:
            self._frames[t] = frame
            while len(self._frames) > self.cache:
                self._frames.popitem(last=False)

    def __getitem__(self, t: int) -> np.ndarray:
        """Frame `t` (handed over before): from memory, else read again (any thread)."""
        with self._lock:
            frame = self._frames.get(int(t))
        if frame is None:
            frame = read_image(self.files[int(t)])
            self._keep(int(t), frame)
        return frame


class StreamView:
    """The first `count` frames of a :class:`FrameFolder` (default: all handed over, as they grow) as a
    (T, h, w) array-like (``shape``, ``len``, ``[t]``), as
    :func:`~napari_temdeblur.core.register.positioned_burst` reads a stream; safe to read from another
    thread while the folder is polled."""

    def __init__(self, frames: FrameFolder, count: int | None = None):
        self.frames, self.count = frames, count

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), *(self.frames.shape or (0, 0)))

    def __len__(self) -> int:
        return self.frames.count if self.count is None else self.count

    def __getitem__(self, t: int) -> np.ndarray:
        return self.frames[t]
