"""One writer at a time: an exclusive lock on a folder the plugin writes (docs/safety.md, Concurrent use).

Training holds its run folder for the whole run, ``temdeblur restore`` its output folder, an export its
dataset folder, and saving ``registration.json`` holds the session folder around its read-merge-write,
so two processes never interleave their files.

The lock is the operating system's (``flock`` on Unix, ``msvcrt.locking`` on Windows) on a hidden file
``.temdeblur.lock`` in the folder, which also holds a note of who holds it (process, host, start time,
what it does) for the message a second writer gets. The system ends the lock with the process however
that ends (kill -9, a crash), so a lock left by a killed process is taken over at once by the next
writer, with no guessing from process ids; the file is removed when the lock is given back. (The
``filelock`` package was not used: it keeps its lock files for good, and tells nothing of the holder.)
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from napari_temdeblur.core import DataError

LOCK_FILE = ".temdeblur.lock"
#: The note starts after the first byte, the one locked on Windows (where a locked byte cannot be read).
_NOTE_AT = 1
_POLL_S = 0.05
#: The longest command line quoted in a message.
COMMAND_CHARS = 80

if os.name == "nt":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return False
            raise
        return True


class FolderInUse(DataError):
    """Another process (or another run in this one) holds the folder's lock; nothing was written."""


@contextmanager
def folder_lock(folder: str | Path, what: str, *, wait_s: float = 0.0) -> Iterator[Path]:
    """Hold the exclusive lock of `folder` while the block runs.

    Parameters
    ----------
    folder : str or Path
        The folder to write in; created (with its parents) when missing.
    what : str
        What the holder does there, e.g. ``"training"``: told to a second writer.
    wait_s : float
        How long to wait for another holder to finish (0: refuse at once).

    Yields
    ------
    Path
        `folder`.

    Raises
    ------
    FolderInUse
        Another holder kept the lock longer than `wait_s`; the message names its process, host,
        start time and what it does.
    DataError
        `folder` is a file, or no file can be made in it.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(folder, "is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    deadline = time.monotonic() + wait_s
    while (fd := _take(path)) is None:
        if time.monotonic() >= deadline:
            raise FolderInUse(folder, _in_use(path, wait_s))
        time.sleep(_POLL_S)
    try:
        note = b"\n" + json.dumps(_owner(what)).encode()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        # the note only tells a second writer who holds the lock: on a full disk the lock holds
        # without it, and the write that matters reports the full disk itself
        with contextlib.suppress(OSError):
            os.write(fd, note)
        yield folder
    finally:
        _give_back(path, fd)


def _take(path: Path) -> int | None:
    """A descriptor of `path` holding its lock, or None while another holds it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:
            raise DataError(path.parent, "no permission to write in this folder") from None
        try:
            if not _try_lock(fd):
                os.close(fd)
                return None
            # The holder before may have removed the file between our open and our lock: that lock
            # guards a file nobody else sees, so take the one at `path` again.
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)


def _give_back(path: Path, fd: int) -> None:
    """Remove the lock file and end the lock. On Unix the file goes first, while still held, so a
    waiter that opened it finds it gone and takes the next one; Windows refuses to remove a file
    another process has open, so there the lock ends first and a file still in use stays."""
    if os.name != "nt":
        path.unlink(missing_ok=True)
        os.close(fd)
        return
    os.close(fd)  # closing ends msvcrt's lock
    with contextlib.suppress(PermissionError):
        path.unlink(missing_ok=True)


def _owner(what: str) -> dict:
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "what": what,
        "command": command,
    }


def _in_use(path: Path, wait_s: float) -> str:
    """Who holds the lock at `path`, as far as its note tells."""
    waited = f" (still after waiting {wait_s:g} s)" if wait_s > 0 else ""
    advice = "wait for it to end, or choose another folder"
    try:
        with open(path, "rb") as handle:
            handle.seek(_NOTE_AT)
            owner = json.loads(handle.read())
        pid, host, since = int(owner["pid"]), str(owner["host"]), str(owner["since"])
    except (OSError, ValueError, KeyError, TypeError):
        # the holder has just taken the lock and not yet written its note
        return f"in use by another process{waited}; {advice}"
    doing, command = str(owner.get("what", "writing")), str(owner.get("command", ""))
    if len(command) > COMMAND_CHARS:
        command = command[: COMMAND_CHARS - 3] + "..."
    return (
        f"in use by process {pid} on {host} since {since.replace('T', ' ')} ({doing}"
        + (f": {command}" if command else "")
        + f"){waited}; {advice}"
    )
