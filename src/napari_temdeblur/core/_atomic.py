"""Atomic file writes: a file is either its old complete self or its new complete self, never half."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

# mkstemp creates files readable by the owner only; give written files the usual permissions instead.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write `path` through a temporary file in the same folder, renamed over `path` once complete.

    Killing the process, an exception in `write` or a full disk leave `path` as it was; the temporary
    file (hidden, ``.<name>.<random>.tmp``) is removed on any error.

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created.
    write : callable
        ``write(tmp_path)`` writes the complete content to `tmp_path`.

    Returns
    -------
    Path
        `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)
        # Flush to disk before the rename, so a power cut cannot leave a renamed but empty file.
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, data, *, allow_nan: bool = True) -> Path:
    """Write `data` as indented JSON, atomically (see :func:`atomic_write`).

    With ``allow_nan=False`` a NaN or infinity raises ValueError before anything is written (the
    JSON standard has no such values; strict readers reject ``NaN`` and ``Infinity``).
    """
    text = json.dumps(data, indent=2, allow_nan=allow_nan)
    return atomic_write(path, lambda tmp: tmp.write_text(text))
