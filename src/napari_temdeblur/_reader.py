"""npe2 reader: the published dataset layout and acquisition session folders.

Only folders in those layouts are claimed; anything else (a plain .tif, an unrelated folder) gets
None so napari's other readers can take it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from napari_temdeblur.core import DataError
from napari_temdeblur.core.io import (
    find_sessions,
    find_splits,
    open_session,
    read_dataset,
)
from napari_temdeblur.core.register import load_registrations
from napari_temdeblur.layers import dataset_layers, session_layers


def get_reader(path):
    """npe2 reader hook: a reader function for a dataset or session folder, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if not path.is_dir():
        return None
    if not find_splits(path) and not find_sessions(path):
        return None
    return read_folder


def read_folder(path) -> list[tuple]:
    """Open every dataset split and acquisition session in a folder as napari layer data.

    Broken pairs or sessions are skipped, and reported as one warning (a napari notification) that
    names each file and the problem; the rest opens.
    """
    path = Path(path[0] if isinstance(path, list) else path)
    layers, problems = [], []
    if find_splits(path):
        splits = read_dataset(path)
        problems += [msg for s in splits for msg in s.skipped]
        layers += dataset_layers(splits)
    for folder in find_sessions(path):
        try:
            session = open_session(folder)
            layers += session_layers(session)
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
    if not layers:
        raise DataError(path, "nothing could be opened: " + "; ".join(problems))
    if problems:
        warnings.warn("napari-temdeblur skipped: " + "; ".join(problems), stacklevel=2)
    return layers
