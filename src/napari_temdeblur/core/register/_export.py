"""Registered bursts as images: the GT crop and its frames on the GT grid, and the dataset export.

The GT is the HQ image area-averaged to stream pixels (as the published GT); each accepted frame is
resampled onto that grid with ``cv2.warpAffine(frame, A, WARP_INVERSE_MAP)``, i.e.
``low(x, y) = frame(A @ [x, y, 1])``. Both are cropped to the bounding box of the region every accepted
frame covers; pixels of that box that some frame does not cover are 0 in the GT and in every frame
(with a translation-only registration the box is exactly that region, so there is no padding).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from napari_temdeblur.core import DataError, write_json
from napari_temdeblur.core.io import (
    SPLITS,
    BurstPair,
    check_overwrite,
    folder_lock,
    path_component,
    read_json,
    session_of,
    write_pair,
    write_pixel_size,
)

from ._file import PairRegistration
from ._matching import hq_at_stream_pixels, stream_frame

#: Where a warped frame is valid: the bilinear weight of in-frame pixels is (almost) 1.
_VALID = 1 - 1e-4
#: The record an export keeps in the dataset root: what it wrote there (docs/safety.md).
EXPORT_RECORD = "export.json"
EXPORT_FORMAT = "temdeblur-export/1"


def _warp(image: np.ndarray, matrix: np.ndarray, shape: tuple[int, int], interpolation: int) -> np.ndarray:
    h, w = shape
    return cv2.warpAffine(
        image, matrix, (w, h), flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )


def _to_uint16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 65535).astype(np.uint16)


def warp_frames(
    frames: Iterable[np.ndarray], matrices: Iterable[np.ndarray], shape: tuple[int, int]
) -> tuple[list[np.ndarray], np.ndarray, tuple[slice, slice] | None]:
    """Resample frames onto a reference grid and find the region they all cover.

    Parameters
    ----------
    frames : iterable of numpy.ndarray
        float32 (h, w) stream frames.
    matrices : iterable of numpy.ndarray
        float64 (2, 3) each, docs/design.md's matrix convention: ``frame(A @ [x, y, 1])`` is the reference's
        (x, y).
    shape : (int, int)
        (H, W) of the reference grid.

    Returns
    -------
    warped : list of numpy.ndarray
        float32 (H, W) per frame (bicubic; the edge replicated outside the frame).
    valid : numpy.ndarray
        bool (H, W), where every frame is valid.
    box : (slice, slice) or None
        The bounding box of `valid` (None when no pixel is valid in all frames).
    """
    ones = np.ones(0)
    valid = np.ones(shape, bool)
    warped = []
    for frame, matrix in zip(frames, matrices):
        if ones.shape != frame.shape:
            ones = np.ones(frame.shape, np.float32)
        valid &= _warp(ones, matrix, shape, cv2.INTER_LINEAR) >= _VALID
        # cubic interpolation reads one pixel beyond; replicate the edge there, the mask cuts it off
        warped.append(
            cv2.warpAffine(
                frame,
                matrix,
                (shape[1], shape[0]),
                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
        )
    if not valid.any():
        return warped, valid, None
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    return warped, valid, (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))


def cropped_uint16(images: Iterable[np.ndarray], valid: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    """uint16 (F, h, w): `images` cut to `box`, rounded, 0 where `valid` is False (as in the dataset)."""
    keep = valid[box]
    return np.stack([np.where(keep, _to_uint16(image[box]), 0).astype(np.uint16) for image in images])


def extract_burst(session, pair: PairRegistration, name: str | None = None) -> BurstPair:
    """The registered burst of one pair, on the GT's grid.

    Parameters
    ----------
    session : Session
        The session `pair` was registered in.
    pair : PairRegistration
        Only its accepted frames are used.
    name : str, optional
        Name of the result (default: the HQ name).

    Returns
    -------
    BurstPair
        gt uint16 (H, W), low uint16 (F, H, W) with F the accepted frames in stream order; 0 where
        not every frame is valid.

    Raises
    ------
    ValueError
        When no frame is accepted, the HQ image is unknown, or the accepted frames share no pixel.
    """
    if pair.hq not in session.hq_names:
        raise ValueError(f"{session.path}: no HQ image {pair.hq!r} for the registration")
    frames = pair.accepted
    if not frames:
        raise ValueError(f"{pair.hq}: no accepted frame to extract ({len(pair.frames)} frames, all flagged)")
    gt = hq_at_stream_pixels(session, session.hq_names.index(pair.hq))
    low, valid, box = warp_frames(
        (stream_frame(session, f.index) for f in frames), (f.matrix for f in frames), gt.shape
    )
    if box is None:
        raise ValueError(f"{pair.hq}: the accepted frames {[f.index for f in frames]} share no pixel with it")
    return BurstPair(name or pair.hq, cropped_uint16([gt], valid, box)[0], cropped_uint16(low, valid, box))


def pair_name(session, hq: str) -> str:
    """Dataset name of an HQ image: the HQ name when it carries a session number (``sess2_im5``),
    else prefixed with the session folder's name so images of two sessions cannot collide."""
    return hq if session_of(hq) is not None else f"{session.path.name}_{hq}"


def sample_name(session) -> str:
    """The dataset's sample: session.json's ``sample``, else the session's parent folder (checked
    before it names a folder: :func:`export_dataset`)."""
    return str(session.meta.get("sample") or session.path.parent.name)


def _pair_folder(session, hq: str, split: str) -> PurePosixPath:
    """``<Sample>/<Split>`` of one image, its names checked: they come from the session's files."""
    if split not in SPLITS:
        raise ValueError(f"split of {hq} must be Train, Val or Test, got {split!r}")
    source = session.path / "session.json" if session.meta.get("sample") else session.path
    return PurePosixPath(path_component(sample_name(session), source, "sample"), split)


def _pair_files(session, hq: str, split: str, frames: int) -> tuple[str, list[str]]:
    """The record key (``<Sample>/<name>``) and the files, relative to the dataset root, of one pair."""
    name = path_component(pair_name(session, hq), session.path / "hq", "image name")
    folder = _pair_folder(session, hq, split)
    files = [folder / "GT" / f"{name}.tif", *(folder / "Low" / name / f"{name}_{k}.tif" for k in range(frames))]
    return f"{folder.parent}/{name}", [f.as_posix() for f in files]


def _recorded(out: Path) -> tuple[dict, bool]:
    """The pairs ``<out>/export.json`` lists (key -> entry), and whether the file is an export's."""
    path = out / EXPORT_RECORD
    try:
        record = read_json(path) if path.is_file() else {}
    except DataError:
        return {}, False
    pairs = record.get("pairs")
    if record.get("format") != EXPORT_FORMAT or not isinstance(pairs, dict):
        return {}, False
    return {k: v for k, v in pairs.items() if isinstance(v, dict)}, True


def _files_of(entry: dict) -> list[str]:
    """An entry's files that are plain relative paths (a damaged record never points outside the root)."""
    files = entry.get("files")
    return [f for f in files if isinstance(f, str) and _plain(f)] if isinstance(files, list) else []


def _plain(relative: str) -> bool:
    try:
        return all(path_component(part, relative, "path part") for part in relative.split("/"))
    except DataError:
        return False


def _owned(out: Path, recorded: tuple[dict, bool] | None = None) -> list[Path]:
    """The files an earlier export into `out` wrote (from `recorded`, :func:`_recorded` of `out`, when
    the caller has read it)."""
    pairs, ours = recorded or _recorded(out)
    return [out / f for entry in pairs.values() for f in _files_of(entry)] + ([out / EXPORT_RECORD] if ours else [])


def check_export(
    sessions: Iterable[object], out: str | Path, split_for: Callable[[object, str], str | None], *, overwrite=False
) -> None:
    """Before registering: the names an export of `sessions` makes paths of are plain names, and its GT
    files replace none that an earlier export into `out` did not write (:func:`export_dataset`).

    Raises
    ------
    DataError
        A sample or image name that is not one plain name (naming the file it comes from), or
        (OverwriteRefused) GT files in `out` not written by an export, unless `overwrite`.
    ValueError
        A split other than Train, Val or Test.
    """
    out = Path(out)
    planned = [
        out / _pair_files(session, hq, split, 0)[1][0]
        for session in sessions
        for hq in session.hq_names
        if (split := split_for(session, hq)) is not None
    ]
    check_overwrite(out, planned, _owned(out), overwrite=overwrite)


@dataclass
class DatasetExport:
    """What :func:`export_dataset` did.

    Attributes
    ----------
    written : list of Path
        Files written.
    dropped : dict of str to str
        HQ name -> why that image is not in the dataset.
    """

    written: list[Path] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)


def _why_no_frames(pair: PairRegistration) -> str:
    reasons = sorted({f.flag for f in pair.frames if f.flag})
    flagged = f"all {len(pair.frames)} registered frames flagged" if pair.frames else "no registered frame"
    return f"no accepted frame ({flagged}{': ' + '; '.join(reasons) if reasons else ''})"


def export_dataset(
    sessions_and_pairs: Iterable[tuple[object, Iterable[PairRegistration]]],
    out: str | Path,
    split_for: Callable[[object, str], str | None],
    *,
    overwrite: bool = False,
) -> DatasetExport:
    """Write registered bursts in the published layout ``<out>/<Sample>/<Split>/GT|Low``.

    ``<out>/export.json`` records the files each export wrote (by ``<Sample>/<name>``: split, session,
    HQ image, frames, files). An export replaces only files that record lists, unless `overwrite`;
    exporting a pair again removes its own files the new export does not write (frames left out
    since, another split), so a burst never mixes two exports. `out` is locked while it writes. Each
    sample folder records the stream pixel size (``sample.json``), so the dataset opens in nm. An
    image that cannot be exported (no split, no accepted frame, frames that share no pixel) is left
    out and named with the reason; the others are written.

    Parameters
    ----------
    sessions_and_pairs : iterable of (Session, iterable of PairRegistration)
    out : str or Path
        Dataset root.
    split_for : callable (session, hq name) -> "Train" | "Val" | "Test" | None
        The split of each image; None leaves the image out.
    overwrite : bool
        Replace files in `out` that no export wrote.

    Returns
    -------
    DatasetExport
        The files written and the images left out, with the reason.

    Raises
    ------
    ValueError
        A split name other than Train, Val or Test; a sample folder that records another pixel size.
    DataError
        A sample or image name that is not one plain name; (OverwriteRefused) files in `out` that
        no export wrote, before anything is written; (FolderInUse) another process writing in `out`.
    """
    out = Path(out)
    result = DatasetExport()
    plan = []
    for session, pairs in sessions_and_pairs:
        for pair in pairs:
            split = split_for(session, pair.hq)
            if split is None:
                result.dropped[pair.hq] = "no split: the split rule leaves it out"
            elif not pair.accepted:
                result.dropped[pair.hq] = _why_no_frames(pair)
            else:
                plan.append((session, pair, split, *_pair_files(session, pair.hq, split, len(pair.accepted))))
    if not plan:
        return result
    with folder_lock(out, "exporting a dataset"):
        planned = [out / f for *_, files in plan for f in files] + [out / EXPORT_RECORD]
        before = _recorded(out)
        check_overwrite(out, planned, _owned(out, before), overwrite=overwrite)
        recorded = before[0]
        # the viewer's scale bar, once per sample folder (a second size for one folder is refused)
        samples = [(_pair_folder(s, p.hq, split).parent, s.meta["stream_pixel_size_nm"]) for s, p, split, *_ in plan]
        for sample, pixel_size_nm in dict.fromkeys(samples):
            result.written.append(write_pixel_size(out / sample, pixel_size_nm))
        for session, pair, split, key, files in plan:
            folder = _pair_folder(session, pair.hq, split)
            stale = [f for f in _files_of(recorded.get(key, {})) if f not in files]
            entry = {"split": split, "session": str(session.path), "hq": pair.hq}
            entry["frames"] = [f.index for f in pair.accepted]
            # claimed before written, released after: a kill leaves no file the record does not list
            recorded[key] = {**entry, "files": [*files, *stale]}
            write_json(out / EXPORT_RECORD, {"format": EXPORT_FORMAT, "pairs": recorded})
            for file in stale:
                (out / file).unlink(missing_ok=True)
                if (out / file).parent.parent.name == "Low":
                    with contextlib.suppress(OSError):  # the burst folder goes once empty
                        (out / file).parent.rmdir()
            try:
                burst = extract_burst(session, pair, PurePosixPath(files[0]).stem)
            except ValueError as exc:  # the accepted frames share no pixel with the HQ image
                result.dropped[pair.hq] = str(exc).removeprefix(f"{pair.hq}: ")
                del recorded[key]
            else:
                result.written += write_pair(out / folder, burst)
                recorded[key] = {**entry, "files": files}
            write_json(out / EXPORT_RECORD, {"format": EXPORT_FORMAT, "pairs": recorded})
    return result
