"""Turn an exception from a training run into one line for the dock, with a hint on what to do."""

from __future__ import annotations

from pathlib import Path

from napari_temdeblur.core import DataError, out_of_memory

_FOLDER_HINT = "a dataset folder holds <Sample>/<Split>/GT/<name>.tif and Low/<name>/<name>_<k>.tif"
_RUN_HINT = "to continue that run, tick resume"
_MEMORY_HINT = "try a smaller batch or patch, fewer frames, or width tiny"


def describe_error(exc: BaseException, run_folder: Path | None = None) -> str:
    """One line naming what went wrong and, where it helps, what to try.

    Parameters
    ----------
    exc : BaseException
        Raised while preparing or running the training.
    run_folder : Path, optional
        The output folder of the run, to tell its problems from those of the training data.

    Returns
    -------
    str
    """
    if isinstance(exc, DataError):
        about_run = run_folder is not None and exc.path is not None and run_folder in (exc.path, exc.path.parent)
        return f"{exc} ({_RUN_HINT if about_run else _FOLDER_HINT})"
    if isinstance(exc, ValueError):  # the core's messages name the value and what to change
        return str(exc)
    if out_of_memory(exc):
        return f"out of memory ({exc}): {_MEMORY_HINT}"
    return f"{type(exc).__name__}: {exc} (the best weights so far stay in the output folder's best.pt)"
