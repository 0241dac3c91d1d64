"""Acquisition sessions: the raw data of one scan before registration.

::

    <session>/session.json        {"format": "temdeblur-session/1", "hq_pixel_size_nm", "stream_pixel_size_nm",
                                   "exposure_ms", "scan_direction", "hq_overlap", ...}
    <session>/hq/<name>.tif       uint16 sharp images (e.g. 2048 x 2048), 50 % overlap along the scan
    <session>/stream.tif          uint16 (T, h, w) stream frames   (or <session>/stream/<index>.tif)
    <session>/registration.json   written and read by registration (core.register), never here

Opening a session reads headers only: the HQ images and the stream are memory-mapped or dask arrays,
so a multi-GB stream opens without being loaded into memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, write_json

from ._files import find_folders, read_json, tiff_files
from ._tiff import open_stack_lazily, stack_files_lazily, write_image

SESSION_FORMAT = "temdeblur-session/1"
#: Relative tolerance when checking that HQ images and stream frames cover the same field of view.
FOV_TOLERANCE = 0.01
#: Pixel sizes accepted in session.json, nm: from 1 pm (beyond atomic resolution) to 0.1 mm (beyond the
#: lowest magnification of a TEM), so that a typo or an exported NaN or infinity is named, not computed with.
PIXEL_SIZE_RANGE_NM = (1e-3, 1e5)


@dataclass
class Session:
    """An opened acquisition session; pixel data stay on disk until used.

    Attributes
    ----------
    path : Path
        The session folder.
    meta : dict
        Contents of ``session.json``.
    hq_names : list of str
        HQ image names in scan order.
    hq : dask.array.Array
        (N, H, W) uint16 HQ images, read lazily.
    stream : numpy.memmap or dask.array.Array
        (T, h, w) uint16 stream frames, read lazily.
    notes : list of str
        What opening found wrong and worked around (a truncated stream opened with its complete
        frames), for the user to read.
    """

    path: Path
    meta: dict
    hq_names: list[str]
    hq: object
    stream: object
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """Display name: the sample (when session.json gives one) and the folder, e.g. ``Kidney sess2``."""
        sample = self.meta.get("sample")
        return f"{sample} {self.path.name}" if sample else self.path.name

    @property
    def binning(self) -> float:
        """Stream pixel size over HQ pixel size (2 for the MiniTEM set-up)."""
        return self.meta["stream_pixel_size_nm"] / self.meta["hq_pixel_size_nm"]


def is_session_folder(path: str | Path) -> bool:
    """True when `path` looks like an acquisition session: a ``session.json``, or HQ images and a stream.

    The second case is claimed too so that a session missing its ``session.json`` gets a message
    saying so rather than being silently passed over.
    """
    path = Path(path)
    if (path / "session.json").is_file():
        return True
    return (path / "hq").is_dir() and ((path / "stream.tif").is_file() or (path / "stream").is_dir())


def find_sessions(path: str | Path, unreadable: list[Path] | None = None) -> list[Path]:
    """Session folders at `path`, or among its children and grandchildren (e.g. ``OUT/Kidney/sess1``).

    Folders that may not be looked into are passed over and appended to `unreadable` when given.
    """
    return find_folders(Path(path), is_session_folder, unreadable)


def read_session_meta(path: str | Path) -> dict:
    """A session folder's ``session.json``, checked (format, pixel sizes), without opening its images
    (a live session may have no HQ image and no frame yet).

    Raises
    ------
    DataError
        Missing or unreadable session.json, another format, pixel sizes missing or out of range.
    """
    path = Path(path)
    meta_path = path / "session.json"
    if not meta_path.is_file():
        raise DataError(path, "not an acquisition session: session.json is missing")
    meta = read_json(meta_path)
    if meta.get("format") != SESSION_FORMAT:
        raise DataError(meta_path, f"format is {meta.get('format')!r}, expected {SESSION_FORMAT!r}")
    low, high = PIXEL_SIZE_RANGE_NM
    for key in ("hq_pixel_size_nm", "stream_pixel_size_nm"):
        value = meta.get(key)
        # NaN fails every comparison, so the range is checked as "inside" (bool is an int: excluded)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise DataError(
                meta_path, f"{key} must be a positive number of nanometres from {low:g} to {high:g}, found {value!r}"
            )
    return meta


def stream_frame_files(folder: str | Path) -> dict[int, Path]:
    """The numbered frame files of a session's ``stream/`` folder (``<index>.tif``, any non-digit prefix,
    e.g. ``frame_0012.tif``), index -> path, in index order; empty when the folder is absent."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    numbered = sorted(
        (int(m.group(1)), p)
        for p in tiff_files(folder)
        if (m := re.fullmatch(r"\D*(\d+)\.tiff?", p.name, re.IGNORECASE)) is not None
    )
    return dict(numbered)


def _stream(path: Path, on_truncated=None):
    if (path / "stream.tif").is_file():
        return open_stack_lazily(path / "stream.tif", on_truncated)
    folder = path / "stream"
    if folder.is_dir():
        numbered = stream_frame_files(folder)
        if numbered:
            return stack_files_lazily(list(numbered.values()))
        raise DataError(folder, "holds no numbered frame files (<index>.tif)")
    raise DataError(path, "no stream found: expected stream.tif or a stream/ folder of frames")


def _hq(path: Path) -> tuple[list[str], object]:
    folder = path / "hq"
    files = tiff_files(folder) if folder.is_dir() else []
    if not files:
        raise DataError(path, "no HQ images found: expected hq/<name>.tif")
    # scan order: natural sort so im10 follows im9
    files.sort(key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)])
    return [p.stem for p in files], stack_files_lazily(files, what="HQ image")


def _check_field_of_view(path: Path, meta: dict, hq_shape: tuple, stream_shape: tuple) -> None:
    hq_fov = np.array(hq_shape[-2:]) * meta["hq_pixel_size_nm"]
    stream_fov = np.array(stream_shape[-2:]) * meta["stream_pixel_size_nm"]
    if np.any(np.abs(hq_fov - stream_fov) > FOV_TOLERANCE * hq_fov):
        raise DataError(
            path,
            f"HQ images {hq_shape[-2]} x {hq_shape[-1]} px at {meta['hq_pixel_size_nm']} nm and stream frames "
            f"{stream_shape[-2]} x {stream_shape[-1]} px at {meta['stream_pixel_size_nm']} nm do not cover the "
            f"same field of view ({hq_fov[0] / 1000:.2f} vs {stream_fov[0] / 1000:.2f} um): a stream frame must "
            "be half the HQ size when its pixel is twice the HQ pixel",
        )


def open_session(path: str | Path, *, allow_truncated: bool = False) -> Session:
    """Open an acquisition session folder lazily.

    Parameters
    ----------
    path : str or Path
        Folder holding ``session.json``, ``hq/`` and ``stream.tif`` (or ``stream/``).
    allow_truncated : bool
        Open a truncated ``stream.tif`` with its complete frames and say so in :attr:`Session.notes`
        (to look at what is left) instead of raising.

    Returns
    -------
    Session

    Raises
    ------
    DataError
        Missing ``session.json``, HQ images or stream; unreadable files (``TruncatedStack`` for a
        truncated stream, naming its complete frames); HQ images of different sizes; HQ and stream
        fields of view that differ.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, "not a folder")
    notes: list[str] = []

    def truncated(cut) -> None:
        notes.append(f"{cut}; the session opened with its {cut.complete} complete frames")

    try:
        meta = read_session_meta(path)
        hq_names, hq = _hq(path)
        stream = _stream(path, truncated if allow_truncated else None)
    except PermissionError as exc:  # a folder of the session that cannot be listed
        raise DataError.no_permission(exc.filename or path) from None
    _check_field_of_view(path, meta, hq.shape, stream.shape)
    return Session(path, meta, hq_names, hq, stream, notes)


def write_session(
    path: str | Path, meta: dict, hq_names: list[str], hq: list[np.ndarray], stream: np.ndarray
) -> list[Path]:
    """Write an acquisition session (HQ images, multipage stream, ``session.json``).

    Parameters
    ----------
    path : str or Path
        Session folder to create.
    meta : dict
        ``session.json`` fields; ``format`` is added.
    hq_names : list of str
        Names for the HQ images, scan order.
    hq : list of numpy.ndarray
        uint16 (H, W) each.
    stream : numpy.ndarray
        uint16 (T, h, w).

    Returns
    -------
    list of Path
        Files written.
    """
    path = Path(path)
    if len(hq_names) != len(hq):
        raise ValueError(f"{len(hq_names)} HQ names for {len(hq)} HQ images")
    written = [write_image(path / "hq" / f"{name}.tif", image) for name, image in zip(hq_names, hq)]
    written.append(write_image(path / "stream.tif", stream))
    written.append(write_json(path / "session.json", {"format": SESSION_FORMAT, **meta}))
    return written
