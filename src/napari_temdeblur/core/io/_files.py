"""Finding the plugin's folders and TIFF files on disk (one rule for what counts), and reading its JSON files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from napari_temdeblur.core import DataError


def tiff_files(folder: Path) -> list[Path]:
    """The ``.tif``/``.tiff`` files directly in `folder`, sorted by name.

    Hidden files are left out: macOS ``._name.tif`` resource forks and the temporary files of an
    interrupted write would otherwise be read as images.
    """
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in (".tif", ".tiff") and not p.name.startswith(".") and p.is_file()
    )


def find_folders(path: Path, is_match: Callable[[Path], bool], unreadable: list[Path] | None = None) -> list[Path]:
    """`path` itself when it matches, else its matching children and grandchildren, sorted.

    That covers the three levels users open: one item (a split, a session), a group of them (a
    sample), or the root above the groups. A folder that may not be looked into (no permission) is
    passed over and appended to `unreadable` when given, for the caller to name where it matters.
    """
    unreadable = [] if unreadable is None else unreadable

    def matches(folder: Path) -> bool:
        try:
            return is_match(folder)
        except PermissionError:
            if folder not in unreadable:
                unreadable.append(folder)
            return False

    def subfolders(folder: Path) -> list[Path]:
        try:
            return sorted(p for p in folder.iterdir() if p.is_dir())
        except PermissionError:
            if folder not in unreadable:
                unreadable.append(folder)
            return []

    if matches(path):
        return [path]
    found = []
    for child in subfolders(path):
        if matches(child):
            found.append(child)
        else:
            found += [g for g in subfolders(child) if matches(g)]
    return found


def read_json(path: Path) -> dict:
    """The JSON object in `path`; a DataError naming the file when it is unreadable, not JSON or not an object."""
    try:
        data = json.loads(path.read_text())
    except PermissionError:
        raise DataError.no_permission(path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(path, "must hold a JSON object")
    return data
