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


def find_folders(path: Path, is_match: Callable[[Path], bool]) -> list[Path]:
    """`path` itself when it matches, else its matching children and grandchildren, sorted.

    That covers the three levels users open: one item (a split, a session), a group of them (a
    sample), or the root above the groups.
    """
    if is_match(path):
        return [path]
    found = []
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        if is_match(child):
            found.append(child)
        else:
            found += [g for g in sorted(child.iterdir()) if g.is_dir() and is_match(g)]
    return found


def read_json(path: Path) -> dict:
    """The JSON object in `path`; a DataError naming the file when it is unreadable, not JSON or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(path, f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(path, "must hold a JSON object")
    return data
