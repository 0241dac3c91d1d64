"""What a command may write, and where (docs/safety.md): names taken from data files become path
components only once checked, and a file is replaced only when the command wrote it itself.

Every command that writes plans its output paths first, then asks :func:`check_overwrite` which of
them exist and whether it may replace them: files its own record in the folder lists (restore.json,
export.json, ...) or that are recognisably its own output (an evaluation JSON, a figure it drew) are
replaced; anything else is refused, naming the files, unless the user asked to overwrite.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Collection, Iterable
from pathlib import Path, PurePosixPath, PureWindowsPath

from napari_temdeblur.core import DataError

#: How many refused files a message names before it says "and N more".
NAMED = 3


class OverwriteRefused(DataError):
    """Planned outputs that exist and that the command did not write; nothing has been written.

    Attributes
    ----------
    files : list of Path
        Every refused file, in the order planned.
    """

    def __init__(self, folder: Path | None, files: list[Path]):
        self.files = files
        shown = [_shown(file, folder) for file in files[:NAMED]]
        more = f" and {len(files) - NAMED} more" if len(files) > NAMED else ""
        count = f"{len(files)} file" + ("s" if len(files) > 1 else "")
        where = " there" if folder is not None else ""
        super().__init__(
            folder,
            f"would replace {count} not written{where} by napari-temdeblur: {', '.join(shown)}{more}; "
            "choose another output or move them away",
        )


def _shown(file: Path, folder: Path | None) -> str:
    if folder is not None:
        try:
            return file.relative_to(folder).as_posix()
        except ValueError:
            pass
    return str(file)


def path_component(name, source: str | Path, what: str) -> str:
    """`name` checked for use as one file or folder name under an output folder.

    Names taken from data files (session.json's ``sample``, HQ image names, ...) must not lead a
    write out of the folder the user gave, nor make names other systems cannot hold.

    Parameters
    ----------
    name : str
        The value found.
    source : str or Path
        The file it was read from, named in the error.
    what : str
        What the value is, e.g. ``"sample"``, named in the error.

    Returns
    -------
    str
        `name`, unchanged.

    Raises
    ------
    DataError
        `name` is not a string, is empty, ``.`` or ``..``, holds a path separator (``/`` or ``\\``),
        a drive (``C:``) or a control character.
    """
    problem = None
    if not isinstance(name, str):
        problem = "must be text"
    elif name in ("", ".", ".."):
        problem = "is not a name"
    elif "/" in name or "\\" in name:
        problem = "holds a path separator"
    elif PureWindowsPath(name).drive or PurePosixPath(name).is_absolute():
        problem = "is a drive or an absolute path"
    elif any(unicodedata.category(c) == "Cc" for c in name):
        problem = "holds a control character"
    if problem is not None:
        raise DataError(
            source,
            f"{what} {name!r} cannot be a file or folder name: it {problem}; it must be one plain name, "
            "as outputs are written only inside the folder you chose",
        )
    return name


def check_overwrite(
    folder: str | Path | None,
    planned: Iterable[str | Path],
    owned: Collection[str | Path] | Callable[[Path], bool] = (),
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Refuse, before anything is written, to replace a file the command did not write.

    Parameters
    ----------
    folder : str or Path or None
        The output folder the user gave (files are named relative to it); None when the outputs are
        files named one by one.
    planned : iterable of str or Path
        Every file the command is about to write.
    owned : collection of paths, or callable (Path) -> bool
        The files the command wrote there earlier, as its own record lists them, or a test of a file
        that tells whether the command wrote it.
    overwrite : bool
        The user asked to replace existing files whatever wrote them.

    Returns
    -------
    list of Path
        The planned files that exist and will be replaced, in the order planned.

    Raises
    ------
    OverwriteRefused
        Existing planned files not owned (links and folders included), unless `overwrite`.
    """
    if callable(owned):
        is_owned = owned
    else:
        mine = {_key(path) for path in owned}
        is_owned = lambda path: _key(path) in mine  # noqa: E731
    existing = [Path(path) for path in planned if os.path.lexists(path)]
    foreign = [path for path in existing if not (path.is_file() and not path.is_symlink() and is_owned(path))]
    if foreign and not overwrite:
        raise OverwriteRefused(None if folder is None else Path(folder), foreign)
    return existing


def _key(path: str | Path) -> str:
    """One spelling per path (``out/./a`` and ``out/a`` alike), without following links."""
    return os.path.normcase(os.path.abspath(path))
