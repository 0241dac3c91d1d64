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

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError

from ._files import find_folders, read_json, tiff_files
from ._tiff import open_stack_lazily, stack_files_lazily, write_image

SESSION_FORMAT = "temdeblur-session/1"
#: Relative tolerance when checking that HQ images and stream frames cover the same field of view.
FOV_TOLERANCE = 0.01


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
    """

    path: Path
    meta: dict
    hq_names: list[str]
    hq: object
    stream: object

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


def find_sessions(path: str | Path) -> list[Path]:
    """Session folders at `path`, or among its children and grandchildren (e.g. ``OUT/Kidney/sess1``)."""
    return find_folders(Path(path), is_session_folder)


def _read_meta(path: Path) -> dict:
    meta_path = path / "session.json"
    if not meta_path.is_file():
        raise DataError(path, "not an acquisition session: session.json is missing")
    meta = read_json(meta_path)
    if meta.get("format") != SESSION_FORMAT:
        raise DataError(meta_path, f"format is {meta.get('format')!r}, expected {SESSION_FORMAT!r}")
    for key in ("hq_pixel_size_nm", "stream_pixel_size_nm"):
        value = meta.get(key)
        if not isinstance(value, (int, float)) or not value > 0:
            raise DataError(meta_path, f"{key} must be a positive number of nanometres, found {value!r}")
    return meta


def _stream(path: Path):
    if (path / "stream.tif").is_file():
        return open_stack_lazily(path / "stream.tif")
    folder = path / "stream"
    if folder.is_dir():
        numbered = sorted(
            (int(m.group(1)), p)
            for p in tiff_files(folder)
            if (m := re.fullmatch(r"\D*(\d+)\.tiff?", p.name, re.IGNORECASE)) is not None
        )
        if numbered:
            return stack_files_lazily([p for _, p in numbered])
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


def open_session(path: str | Path) -> Session:
    """Open an acquisition session folder lazily.

    Parameters
    ----------
    path : str or Path
        Folder holding ``session.json``, ``hq/`` and ``stream.tif`` (or ``stream/``).

    Returns
    -------
    Session

    Raises
    ------
    DataError
        Missing ``session.json``, HQ images or stream; unreadable files; HQ images of different
        sizes; HQ and stream fields of view that differ.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, "not a folder")
    meta = _read_meta(path)
    hq_names, hq = _hq(path)
    stream = _stream(path)
    _check_field_of_view(path, meta, hq.shape, stream.shape)
    return Session(path, meta, hq_names, hq, stream)


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
    meta_path = path / "session.json"
    meta_path.write_text(json.dumps({"format": SESSION_FORMAT, **meta}, indent=2))
    written.append(meta_path)
    return written
