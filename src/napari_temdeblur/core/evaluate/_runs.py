"""The runs an evaluation compares: their method keys and, for cross-validation, the sessions they saw."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from napari_temdeblur.core import DataError
from napari_temdeblur.core.io import session_of
from napari_temdeblur.core.models import BEST, resolve_run
from napari_temdeblur.core.train import CONFIG

from ._baselines import BASELINES
from ._results import INPUT


def run_keys(runs: Sequence[str | Path]) -> dict[str, Path]:
    """Method key (the run folder's name) -> checkpoint, in the order given.

    Parameters
    ----------
    runs : sequence of str or Path
        Run folders (their ``best.pt`` is used), checkpoint files inside run folders, or ``"pretrained"``
        (the shipped weights; key ``pretrained``).

    Raises
    ------
    DataError
        A folder without ``best.pt``, or a path that is neither a folder nor a ``.pt`` file.
    ValueError
        Two runs with the same folder name (the table could not tell them apart), or a run named like
        a built-in method ("input", a baseline).
    """
    keys: dict[str, Path] = {}
    for run in runs:
        path = resolve_run(run)
        if path != Path(run):  # the shipped weights, named by the word the user typed
            folder = Path(str(run).strip().lower())
        elif path.is_file() and path.suffix == ".pt":
            folder = path.resolve().parent
        elif path.is_dir():
            folder = path.resolve()
            if not (path / BEST).is_file():
                raise DataError(path, f"no {BEST} in this folder: not a trained run (did training finish an epoch?)")
        else:
            raise DataError(path, "not a run folder (with best.pt, written by temdeblur train) or a .pt checkpoint")
        key = folder.name
        if key in keys:
            raise ValueError(
                f"two runs share the name {key!r}: {keys[key]} and {path}; a run's method key is its folder "
                "name, so rename one folder"
            )
        if key in (INPUT, *BASELINES):
            raise ValueError(f"run folder {path} is named like the built-in method {key!r}; rename the folder")
        keys[key] = path
    return keys


def _run_data(run: Path) -> tuple[Path, dict]:
    """(config.json path, its ``data`` record) of a run folder or a checkpoint in one."""
    path = (Path(run) if Path(run).is_dir() else Path(run).parent) / CONFIG
    try:
        data = json.loads(path.read_text())["data"]
        if not isinstance(data, dict):
            raise TypeError(f"data is a {type(data).__name__}, not an object")
    except FileNotFoundError:
        raise DataError(path, "missing; cross-validation reads from it which images the run was trained on") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            path,
            f"unreadable run configuration ({type(exc).__name__}: {exc}); "
            "cross-validation needs its data.train and data.val image names",
        ) from None
    return path, data


def held_out_sessions(run: Path) -> list[int] | None:
    """The sessions a run was trained without (``temdeblur train --hold-out``), from its config.json
    ``data.held_out_sessions``; None when the run records none (an older run, or one trained on all sessions).

    Raises
    ------
    DataError
        A missing or unreadable config.json, or a held_out_sessions that is not a list of whole numbers.
    """
    path, data = _run_data(run)
    held = data.get("held_out_sessions")
    if not held:
        return None
    if not (isinstance(held, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in held)):
        raise DataError(path, f"data.held_out_sessions must be a list of session numbers, got {held!r}")
    return held


def seen_sessions(run: Path) -> set[int | None]:
    """Sessions of the images a run (folder or checkpoint in it) was trained and validated on, from
    the run folder's config.json ``data``.

    Raises
    ------
    DataError
        A missing or unreadable config.json, or one without the image names.
    """
    path, data = _run_data(run)
    try:
        names = list(data["train"]) + list(data["val"])
    except (KeyError, TypeError) as exc:
        raise DataError(
            path,
            f"unreadable run configuration ({type(exc).__name__}: {exc}); "
            "cross-validation needs its data.train and data.val image names",
        ) from None
    return {session_of(str(name)) for name in names}
