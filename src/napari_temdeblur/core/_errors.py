"""The one exception type for bad input data, so every front end can show its message as is."""

from __future__ import annotations

from pathlib import Path


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
