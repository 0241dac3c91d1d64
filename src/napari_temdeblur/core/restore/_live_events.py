"""The events and the result of live restoration (:mod:`._live`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_temdeblur.core import Progress

from ._parts import PositionRestored

#: Rates are measured over this many seconds of the recent past.
RATE_WINDOW = 10.0


@dataclass(frozen=True)
class FrameArrived(Progress):
    """Frame `index` read (``frame``: uint16 (h, w) counts) or skipped (``frame`` None, ``problem`` why)."""

    index: int = 0
    frame: np.ndarray | None = None
    problem: str | None = None


@dataclass(frozen=True)
class LiveRestored(PositionRestored):
    """Position `position` restored and saved as a part.

    Attributes
    ----------
    image : numpy.ndarray
        uint16 (H, W) restored GT counts.
    yx : (float, float)
        Its top-left in mosaic coordinates (positions.json's as solved now), stream px.
    latency_s : float
        Seconds from the arrival of the newest frame of its burst (when it became restorable) to its part saved.
    gap : bool
        Restored to fill a gap behind the front of the scan (spare time or at the end).
    """

    image: np.ndarray | None = None
    yx: tuple[float, float] = (0.0, 0.0)
    latency_s: float = math.nan
    gap: bool = False


@dataclass(frozen=True)
class LiveRate(Progress):
    """Rates over the last RATE_WINDOW s: frames arrived per s, positions restored per s, the median
    latency (s) of the positions restored at the front, and how many frames the newest restored
    position lies behind the newest restorable one."""

    frames_per_s: float = 0.0
    positions_per_s: float = 0.0
    latency_s: float = math.nan
    behind: int = 0


@dataclass(frozen=True)
class MosaicWritten(Progress):
    """OUT/mosaic.ome.zarr rebuilt from `parts` parts, (rows, cols) `shape`."""

    path: Path | None = None
    parts: int = 0
    shape: tuple[int, int] = (0, 0)


@dataclass
class LiveResult:
    """What :func:`live` wrote.

    Attributes
    ----------
    out : Path
    frames : int
        Stream frames read (skipped ones included).
    skipped : list of int
        Frames skipped (unreadable, missing, of another shape) or flagged by the geometry.
    positions : list of int
        The positions in the mosaic.
    resumed : int
        Of them, restored before a restart.
    shape : (int, int) or None
        Mosaic (rows, cols), stream px; None when nothing was restored.
    stopped : str
        ``"idle"`` (idle timeout), ``"stopped"`` (STOP sent), ``"interrupted"`` (Ctrl-C), ``"closed"``.
    messages : list of str
    """

    out: Path
    frames: int
    skipped: list[int]
    positions: list[int]
    resumed: int
    shape: tuple[int, int] | None
    stopped: str
    messages: list[str] = field(default_factory=list)
