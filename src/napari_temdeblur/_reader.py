"""npe2 reader: the published dataset layout, acquisition session folders and the folders that
``temdeblur restore`` and ``temdeblur mosaic`` write (a mosaic folder, or its ``mosaic.ome.zarr``).

Only folders in those layouts are claimed: the manifest offers this reader for folders only (no file
pattern, so napari never proposes it for a plain TIFF), and an unrelated or unreadable folder gets
None, without raising, so napari's other readers can take it. Reading a claimed folder opens what it
can and warns about the rest; when nothing at all can be opened it raises one DataError naming why
(napari shows it), never a traceback of the file system's.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path

from napari_temdeblur.core import DataError
from napari_temdeblur.core.io import (
    MOSAIC_IMAGE,
    MOSAIC_RECORD,
    RAW_IMAGE,
    find_sessions,
    find_splits,
    is_restored_folder,
    mosaic_folder,
    open_session,
    read_dataset,
    read_json,
    read_pyramid,
    read_restored_folder,
)
from napari_temdeblur.core.register import load_positions, load_registrations
from napari_temdeblur.layers import LayerKind, dataset_layers, mosaic_layers, restored_layers, session_layers


def get_reader(path):
    """npe2 reader hook: a reader function for a dataset or session folder, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    try:
        if not path.is_dir():
            return None
        if is_restored_folder(path):
            return read_restored
        if mosaic_folder(path):
            return read_mosaic
        if not find_splits(path) and not find_sessions(path):
            return None
    except OSError:  # a folder that cannot be listed is not one we can claim
        return None
    return read_folder


def _without_os_errors(read: Callable[[Path], list[tuple]]) -> Callable[[object], list[tuple]]:
    """`read` with the file system's errors turned into one DataError naming the path."""

    @functools.wraps(read)
    def reader(path) -> list[tuple]:
        path = Path(path[0] if isinstance(path, list) else path)
        try:
            return read(path)
        except PermissionError as exc:
            raise DataError.no_permission(exc.filename or path) from None
        except OSError as exc:
            raise DataError(exc.filename or path, f"cannot be read: {exc.strerror or exc}") from None

    return reader


@_without_os_errors
def read_restored(path: Path) -> list[tuple]:
    """Open a ``temdeblur restore`` output folder as restored layers (the run's GT window, restore.json
    in the metadata), after the dataset they were restored from when it is still where restore.json
    says, so restored and input images can be compared at once."""
    folder = read_restored_folder(path)
    layers, problems = [], list(folder.skipped)
    source = Path(str(folder.record.get("input", "")))
    try:
        if source.is_absolute() and source.is_dir() and find_splits(source):
            splits = read_dataset(source)
            problems += [msg for s in splits for msg in s.skipped]
            layers += dataset_layers(splits)
    except (DataError, OSError) as exc:
        problems.append(f"the restored images' input {source} could not be opened: {exc}")
    # where each split of the input lies on the image slider, so restored images sit beside theirs
    placed = {}
    for _, kwargs, _ in layers:
        info = kwargs["metadata"]["temdeblur"]
        if info["kind"] == LayerKind.GT.value:
            placed[f"{info['sample']}/{info['split']}"] = (kwargs["translate"][0], info["names"], info["pixel_size_nm"])
    layers += restored_layers(folder, placed)
    if problems:
        warnings.warn("napari-temdeblur skipped: " + "; ".join(problems), stacklevel=3)
    return layers


@_without_os_errors
def read_mosaic(path: Path) -> list[tuple]:
    """Open a ``temdeblur mosaic`` folder (or its mosaic.ome.zarr / raw.ome.zarr) lazily: the restored
    and raw mosaics as multiscale layers in nm, and the registered HQ images of its session placed on
    them where the session is still where mosaic.json says (hidden at first)."""
    folder = mosaic_folder(path)
    if folder is None:
        raise DataError(path, f"not a temdeblur mosaic folder (no {MOSAIC_RECORD} beside {MOSAIC_IMAGE})")
    record = read_json(folder / MOSAIC_RECORD)
    names = [path.name] if path != folder else [n for n in (MOSAIC_IMAGE, RAW_IMAGE) if (folder / n).is_dir()]
    pyramids = [read_pyramid(folder / name) for name in names]
    problems, session, hq = [], None, {}
    try:
        if not record.get("session"):
            raise DataError(folder / MOSAIC_RECORD, "names no session")
        session = open_session(record["session"])
        hq = load_positions(folder).hq
    except (DataError, OSError) as exc:
        problems.append(f"the HQ images are not placed: {exc}")
    if problems:
        warnings.warn("napari-temdeblur: " + "; ".join(problems), stacklevel=3)
    return mosaic_layers(record, pyramids, hq, session)


@_without_os_errors
def read_folder(path: Path) -> list[tuple]:
    """Open every dataset split and acquisition session in a folder as napari layer data.

    Broken pairs or sessions are skipped, and reported as one warning (a napari notification) that
    names each file and the problem; the rest opens. A truncated stream opens with its complete
    frames, with a warning that says so.
    """
    layers, problems, notes = [], [], []
    if find_splits(path):
        splits = read_dataset(path)
        problems += [msg for s in splits for msg in s.skipped]
        layers += dataset_layers(splits)
    unreadable: list[Path] = []
    for folder in find_sessions(path, unreadable):
        try:
            session = open_session(folder, allow_truncated=True)
            layers += session_layers(session)
            notes += session.notes
        except DataError as exc:
            problems.append(str(exc))
            continue
        except ValueError as exc:  # e.g. a blank stream leaves no intensities to window
            problems.append(f"{folder}: {exc}")
            continue
        try:
            load_registrations(session)
        except DataError as exc:  # the registration dock and the CLI refuse to overwrite it
            problems.append(f"{exc} — the file was left untouched")
    said = "; ".join(problems)
    problems += [str(DataError.no_permission(f)) for f in unreadable if f"no permission to read {f}" not in said]
    if not layers:
        raise DataError(path, "nothing could be opened: " + "; ".join(problems))
    if notes:
        warnings.warn("napari-temdeblur: " + "; ".join(notes), stacklevel=3)
    if problems:
        warnings.warn("napari-temdeblur skipped: " + "; ".join(problems), stacklevel=3)
    return layers
