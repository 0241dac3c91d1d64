"""The exceptions every front end shows as they are: bad input data, and a disk that is full."""

from __future__ import annotations

import errno
from pathlib import Path

#: The errors of a write refused for lack of space: the disk (ENOSPC) or the user's quota (EDQUOT).
DISK_FULL_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}


class DataError(ValueError):
    """Input data that cannot be used, with a message naming the file and what is wrong.

    Parameters
    ----------
    path : str or Path or None
        The file or folder at fault; prefixed to the message so the user knows where to look.
    problem : str
        What is wrong, in words a microscopist understands.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")

    @classmethod
    def no_permission(cls, path: str | Path) -> DataError:
        """The error for access denied: the message reads "no permission to read <path>", since the
        refusal says nothing about the file's content (never "corrupt or truncated?")."""
        error = cls(None, f"no permission to read {path}")
        error.path = Path(path)
        return error


class DiskFull(OSError):
    """A file could not be written because the disk (or the user's quota) is full.

    The message names the file, says that it was left as it was (writes are atomic) and that the
    files written before it are intact.

    Parameters
    ----------
    path : str or Path
        The file that could not be written.
    code : int
        ``errno.ENOSPC`` or ``errno.EDQUOT``.
    """

    def __init__(self, path: str | Path, code: int):
        self.path = Path(path)
        message = (
            f"could not write {path}: {DISK_FULL_ERRNOS[code]}. It was left as it was before (no partial "
            "file) and the files written before it are intact: free some space and run again"
        )
        super().__init__(code, message, str(path))
        self.message = message

    def __str__(self) -> str:
        return self.message
