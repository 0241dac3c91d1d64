"""The scan as one restored overview: stream positions solved, restored from their neighbours, blended
into an OME-Zarr multiscale mosaic (docs/mosaic.md).

Output folder ``OUT``::

    OUT/mosaic.json          what was asked (session, run, every) and, once done, what was made
    OUT/positions.json       the stream geometry (docs/data_formats.md, "Stream positions")
    OUT/parts/frame_0123.npz one restored position, saved atomically as soon as it is restored
    OUT/mosaic.ome.zarr      the blended restored mosaic, uint16 GT counts, pyramid, pixel size in nm
    OUT/raw.ome.zarr         (raw) the same blend of the positions' own raw frames, stream counts

A run that is stopped keeps its positions.json and parts; started again with the same OUT (and the same
session, run and `every`) it restores only the positions that have no part yet, then blends every
part in stream order, so its mosaic is bit for bit that of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, Progress, resolve_device, write_json
from napari_temdeblur.core.io import (
    MOSAIC_IMAGE,
    MOSAIC_RECORD,
    RAW_IMAGE,
    Session,
    check_overwrite,
    folder_lock,
    open_session,
    read_json,
    write_pyramid,
)
from napari_temdeblur.core.models import load_model
from napari_temdeblur.core.register import POSITIONS_FILE, load_positions, save_positions, stream_positions

from ._apply import to_counts
from ._blend import CHUNK_ROWS, blend_rows, cover_positions, mosaic_shape
from ._distributed import restore_distributed
from ._options import RestoreOptions
from ._parts import Part, PositionRestored, read_part, restore_parts
from ._stream import frame_name

MOSAIC_FORMAT = "temdeblur-mosaic/1"
PARTS = "parts"
#: What a restart must share with the run that began the folder.
_SAME = ("session", "run", "every", "frames")


@dataclass
class MosaicResult:
    """What :func:`mosaic` wrote.

    Attributes
    ----------
    out : Path
    positions : list of int
        The stream positions in the mosaic (restored now or before a restart).
    resumed : int
        How many of them were restored before (found as parts).
    shape : (int, int)
        Mosaic (rows, cols), stream px.
    files : list of Path
        The OME-Zarr images written.
    messages : list of str
    """

    out: Path
    positions: list[int]
    resumed: int
    shape: tuple[int, int]
    files: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def mosaic_request(checkpoint, session: Path, every: int | None, mode: str | None = None) -> dict:
    """What a mosaic folder's mosaic.json records of the work asked (and :func:`check_record` holds a
    begun folder to): the session, the run, the choice of positions, the burst frames, and the mode
    (``"live"``; none for ``temdeblur mosaic``)."""
    asked = {"format": MOSAIC_FORMAT, "session": str(session.resolve()), "run": str(checkpoint.path)}
    return {**asked, **({"mode": mode} if mode else {}), "every": every, "frames": checkpoint.burst_frames}


def claim_folder(out: Path, asked: dict, files: tuple[str, ...]) -> dict:
    """With `out` locked: the record to write, from :func:`check_record` and `asked`; a new folder must
    not hold `files` (names in it) of another program (:func:`~napari_temdeblur.core.io.check_overwrite`)."""
    if not (out / MOSAIC_RECORD).is_file():  # a new OUT: nothing of another program is replaced
        check_overwrite(out, [out / name for name in files])
    return {**check_record(out, asked), **asked}


def check_record(out: Path, asked: dict) -> dict:
    """The folder's mosaic.json; refuses a folder begun for another session, run or choice of positions,
    or by the other mode (``temdeblur mosaic`` or ``temdeblur live``, whose parts lie in other coordinates)."""
    path = out / MOSAIC_RECORD
    if not path.is_file():
        return {}
    record = read_json(path)
    if record.get("format") != MOSAIC_FORMAT:
        raise DataError(path, f"format is {record.get('format')!r}, expected {MOSAIC_FORMAT!r}")
    for key in (*_SAME, "mode"):
        # "mode" came with live mosaics: a record without one is a temdeblur mosaic's
        if record.get(key, "mosaic" if key == "mode" else None) != asked.get(key, "mosaic"):
            raise DataError(
                path,
                f"this folder holds a mosaic with {key} {record.get(key)!r}, not {asked.get(key, 'mosaic')!r}: "
                "choose another output folder (or remove this one) to start anew",
            )
    return record


def mosaic_positions(out: str | Path, session: str | Path, n_frames: int):
    """The stream positions a mosaic folder solved for a session, so that restoring single positions of
    its stream needs no registration (the Restore dock's preview); None when `out` holds none for it.

    Parameters
    ----------
    out : str or Path
        A ``temdeblur mosaic`` folder (mosaic.json and positions.json), begun or done.
    session : str or Path
        The session folder whose stream is restored.
    n_frames : int
        Frames of its stream.

    Returns
    -------
    StreamPositions or None
        None when `out` is no mosaic folder, was made for another session, its positions are
        unreadable or of a stream of another length.
    """
    out = Path(out)
    try:
        record = read_json(out / MOSAIC_RECORD)
        if record.get("session") != str(Path(session).resolve()):
            return None
        positions = load_positions(out / POSITIONS_FILE)
    except (DataError, OSError, ValueError):
        return None
    return positions if len(positions.frames) == n_frames else None


def _positions(session: Session, out: Path) -> Generator[Progress, None, object]:
    """The stream positions: OUT/positions.json when a run began it, else solved now and saved."""
    path = out / POSITIONS_FILE
    if path.is_file():
        positions = load_positions(path)
        if len(positions.frames) != session.stream.shape[0]:
            raise DataError(path, f"holds {len(positions.frames)} frames; the stream has {session.stream.shape[0]}")
        return positions
    positions = yield from stream_positions(session)
    save_positions(path, positions)
    # as the file holds them (rounded), so that a restart places its parts exactly as this run does
    return load_positions(path)


def mosaic(
    run: str | Path,
    session: Session | str | Path,
    out: str | Path,
    *,
    every: int | None = None,
    raw: bool = False,
    options: RestoreOptions | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> Generator[Progress, None, MosaicResult]:
    """Restore the stream positions that cover a scan and blend them into one OME-Zarr mosaic.

    Parameters
    ----------
    run : str or Path
        Run folder, checkpoint file or ``"pretrained"``.
    session : Session, str or Path
        An acquisition session (its stream; registration.json's HQ images anchor the positions).
    out : str or Path
        Output folder (module docstring); an existing one of the same session, run and `every` is
        continued.
    every : int, optional
        Restore every `every`-th frame (the placed ones) instead of the fewest covering the scan.
    raw : bool
        Also write OUT/raw.ome.zarr, the positions' own raw frames blended alike.
    options : RestoreOptions, optional
        Device and tiling as for :func:`restore`; batch-norm adaptation is refused (it would adapt
        to a different set of positions after a restart).
    scheduler : str, optional
        Restore the positions on dask.distributed workers: ``"local"`` starts a LocalCluster of
        `workers` processes, an address (``tcp://host:8786``) uses a running cluster; the mosaic is
        the same as in process (:mod:`._distributed`). None: in this process.
    workers : int, optional
        Workers of the LocalCluster (default 1).

    Yields
    ------
    Progress
        ``positions`` per frame while the geometry is solved; the restoration's events (tiles,
        :class:`ImageRestored`, :class:`InputSkipped`); a :class:`PositionRestored` per part saved;
        ``blend`` per band of mosaic rows.

    Returns
    -------
    MosaicResult

    Raises
    ------
    ValueError
        `every` below 1, batch-norm adaptation asked for, `workers` without ``scheduler="local"``.
    DataError
        Unreadable session or run; an OUT begun for another session, run or `every`; nothing restored.
    """
    options = options or RestoreOptions()
    if every is not None and (not isinstance(every, int) or every < 1):
        raise ValueError(f"every must be a whole number of at least 1, got {every!r}")
    if options.adapt_bn:
        raise ValueError("a mosaic is restored without batch-norm adaptation (a restart would adapt differently)")
    if workers is not None and scheduler != "local":
        raise ValueError(f"workers ({workers}) is for scheduler 'local', a LocalCluster; got scheduler {scheduler!r}")
    session = session if isinstance(session, Session) else open_session(session)
    out = Path(out)
    model, checkpoint = load_model(run, resolve_device(options.device))
    asked = mosaic_request(checkpoint, session.path, every)
    with folder_lock(out, "making a mosaic"):  # two mosaics into one OUT would mix their parts
        record = claim_folder(out, asked, (POSITIONS_FILE, PARTS, MOSAIC_IMAGE, RAW_IMAGE))
        return (yield from _make(run, model, checkpoint, session, out, record, every, raw, options, scheduler, workers))


def _make(run, model, checkpoint, session, out, record, every, raw, options, scheduler, workers):
    """:func:`mosaic` once OUT is locked and checked (`record`: its mosaic.json to be)."""
    count = record["frames"]
    write_json(out / MOSAIC_RECORD, record)
    positions = yield from _positions(session, out)
    stream = session.stream
    n_frames, frame_shape = int(stream.shape[0]), tuple(int(n) for n in stream.shape[1:])
    chosen = cover_positions(positions, count, frame_shape, every)
    if not chosen:
        raise DataError(out / POSITIONS_FILE, "no stream position can be restored: every frame is flagged")
    folder = out / PARTS
    names = {t: frame_name(t, n_frames) for t in chosen}
    parts = {t: read_part(folder / f"{names[t]}.npz", t) for t in chosen if (folder / f"{names[t]}.npz").is_file()}
    parts = {t: p for t, p in parts.items() if p is not None}
    resumed = len(parts)
    todo = [t for t in chosen if t not in parts]
    messages = list(positions.messages)
    if todo:
        if scheduler is None:
            work = restore_parts(model, checkpoint, session, positions, todo, folder, options)
        else:
            work = restore_distributed(run, session, out, todo, options, scheduler, workers)
        done, notes = yield from _renumbered(work, resumed, len(chosen))
        parts.update(done)
        messages += notes
    if not parts:
        raise DataError(session.path, "no stream position could be restored (see the messages)")
    ordered = [parts[t] for t in sorted(parts)]
    shape, files = yield from write_mosaic(out, ordered, positions.pixel_size_nm, checkpoint.gt_window, raw)
    record.update(
        state="done",
        shape=list(shape),
        pixel_size_nm=positions.pixel_size_nm,
        positions=sorted(parts),
        windows={"gt": checkpoint.gt_window.to_dict(), "low": checkpoint.low_window.to_dict()},
        images=[f.name for f in files],
        messages=messages,
    )
    write_json(out / MOSAIC_RECORD, record)
    return MosaicResult(out, sorted(parts), resumed, shape, files, messages)


def write_mosaic(
    out: Path, parts: list[Part], pixel_size_nm: float | None, window, raw: bool = False
) -> Generator[Progress, None, tuple[tuple[int, int], list[Path]]]:
    """Blend `parts` (in this order) into OUT/mosaic.ome.zarr (and with `raw` OUT/raw.ome.zarr), each
    replaced only once complete; `window` is the run's GT window. Returns the mosaic's (rows, cols)
    and the files written; yields ``blend`` per band of rows."""
    files = [out / MOSAIC_IMAGE] + ([out / RAW_IMAGE] if raw else [])
    shape = mosaic_shape(parts)
    for file, key in zip(files, ("image", "raw")):
        store = out / f".{key}.blend.zarr"
        image = yield from _blend(parts, shape, key, window, store)
        write_pyramid(file, image, pixel_size_nm, "mosaic" if key == "image" else "raw")
        shutil.rmtree(store)
    return shape, files


def _blend(parts: list[Part], shape, key: str, window, store: Path) -> Generator[Progress, None, object]:
    """The blended mosaic as uint16 counts (0 where no part lies), band by band of CHUNK_ROWS rows into
    the temporary Zarr array `store` (so memory stays at a band), returned as a dask array over it."""
    import dask.array as da
    import zarr

    array = zarr.open_array(str(store), mode="w", shape=shape, chunks=(CHUNK_ROWS, shape[1]), dtype=np.uint16)
    bands = range(0, shape[0], CHUNK_ROWS)
    for k, r0 in enumerate(bands):
        rows = (r0, min(r0 + CHUNK_ROWS, shape[0]))
        values, covered = blend_rows(parts, rows, shape[1], key)
        # the restored image is in the run's GT window; raw frames are counts already
        counts = to_counts(values, window) if key == "image" else np.clip(np.rint(values), 0, 65535)
        array[rows[0] : rows[1]] = np.where(covered, counts, 0)
        yield Progress("blend", k + 1, len(bands), f"{key} rows {rows[0]}-{rows[1] - 1}")
    return da.from_zarr(array)


def _renumbered(work, before: int, total: int) -> Generator[Progress, None, object]:
    """Pass `work`'s events on, its PositionRestored counted among all `total` positions (`before`
    of them restored before), and return its result; closing this closes `work`."""
    try:
        while True:
            event = next(work)
            if isinstance(event, PositionRestored):
                event = dataclasses.replace(event, done=before + event.done, total=total)
            yield event
    except StopIteration as done:
        return done.value
    finally:
        work.close()
