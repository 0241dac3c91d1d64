"""Atomic file writes: a file is either its old complete self or its new complete self, never half.

The temporary file is ``.<name>.<host>.<pid>.<random>.tmp`` beside its target: hidden, so it is never
read as data, and named by the process writing it, so that the first write into a folder removes what a
killed process of this machine left there while another process's write in progress is left alone.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from ._errors import DISK_FULL_ERRNOS, DiskFull

# mkstemp creates files readable by the owner only; give written files the usual permissions instead.
_UMASK = os.umask(0)
os.umask(_UMASK)

#: This machine in temporary file names: on a shared folder, only its own processes can be checked.
_HOST = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname().split(".")[0]) or "host"
_TEMPORARY = re.compile(r"\..+\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp")
#: Folders whose leftovers this process has removed: once per folder keeps a restore of thousands of
#: images into one folder from listing it thousands of times.
_CLEANED: set[Path] = set()
#: Bytes written to find out why a writer failed without saying (see :func:`_disk_full`).
_PROBE_BYTES = 1 << 16


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # Windows' os.kill would end the process: keep its files
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_leftovers(folder: Path) -> None:
    """Remove the temporary files that writers killed mid-write left in `folder`: those named for a
    process of this machine that no longer runs."""
    _CLEANED.add(folder.absolute())
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match and match["host"] == _HOST and not _alive(int(match["pid"])):
            try:
                os.unlink(entry.path)
            except OSError:
                continue


def _disk_full(exc: BaseException, tmp: str | None) -> int | None:
    """``errno.ENOSPC`` or ``errno.EDQUOT`` when a write failed for lack of space, else None."""
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and cause.errno in DISK_FULL_ERRNOS:
            return cause.errno
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    if tmp is None or not isinstance(exc, (OSError, RuntimeError)):
        return None
    # numpy's tofile (under tifffile) reports a short write as "N requested and M written" and torch's
    # own file writer as "unexpected pos": neither says why. One more write to the temporary file does.
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND)
    except OSError:
        return None
    try:
        os.write(fd, bytes(_PROBE_BYTES))
        os.fsync(fd)
    except OSError as probe:
        return probe.errno if probe.errno in DISK_FULL_ERRNOS else None
    finally:
        os.close(fd)
    return None


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write `path` through a temporary file in the same folder, renamed over `path` once complete.

    Killing the process, an exception in `write` or a full disk leave `path` as it was; the temporary
    file is removed on any error (and, after a kill, by the next write into the folder).

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

    Raises
    ------
    DiskFull
        The disk or the user's quota is full (the message names `path`).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.absolute() not in _CLEANED:
            _remove_leftovers(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)
        # Flush to disk before the rename, so a power cut cannot leave a renamed but empty file.
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # RuntimeError: torch's file writer on a full disk
        code = _disk_full(exc, tmp)
        if code is not None:
            raise DiskFull(path, code) from exc
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, data, *, allow_nan: bool = True) -> Path:
    """Write `data` as indented JSON, atomically (see :func:`atomic_write`).

    With ``allow_nan=False`` a NaN or infinity raises ValueError before anything is written (the
    JSON standard has no such values; strict readers reject ``NaN`` and ``Infinity``).
    """
    text = json.dumps(data, indent=2, allow_nan=allow_nan)
    return atomic_write(path, lambda tmp: tmp.write_text(text))
