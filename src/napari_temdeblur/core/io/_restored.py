"""The folder ``temdeblur restore`` writes, read back (docs/restoration.md, Outputs).

``OUT/restore.json`` (format ``temdeblur-restore/1``) records the run, model, windows and tiling, the
input and, under ``images``, one entry per restored image keyed by its path below OUT without suffix
(``sess4_im1``, or ``Kidney/Test/sess4_im1`` for a dataset of several splits); each image is
``<key>.tif`` (float32 in [0, 1]) and ``<key>_counts.tif`` (uint16 counts in the run's GT window),
with ``--trust`` also ``<key>_trust.tif`` (float32 interval widths) and with ``--flags``
``<key>_flags.tif`` (uint8, 1 = flagged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from napari_temdeblur.core import DataError

from ._files import read_json
from ._tiff import read_image

#: The ``format`` of restore.json.
RESTORE_FORMAT = "temdeblur-restore/1"
#: The record ``temdeblur restore`` keeps in its output folder.
RESTORE_RECORD = "restore.json"
#: What restore writes beside an image with ``--trust`` and ``--flags`` (``<name>_<kind>.tif``), and its pixel type.
EXTRAS = {"trust": np.dtype(np.float32), "flags": np.dtype(np.uint8)}


@dataclass(frozen=True)
class RestoredFolder:
    """A ``temdeblur restore`` output folder.

    Attributes
    ----------
    path : Path
        The folder (OUT).
    record : dict
        restore.json: ``run``, ``model``, ``windows`` (``gt``, ``low``: {"low", "high"} counts),
        ``input``, ``images``, ...
    groups : dict
        Sub-folder (``""`` or ``"Kidney/Test"``) -> list of (image name, uint16 (H, W) counts), in the
        order restore.json lists them.
    skipped : list of str
        Images restore.json lists whose counts file is missing or unreadable, with the reason.
    extras : dict
        Sub-folder -> {"trust": [(image name, float32 (H, W) interval widths)], "flags": [(image name,
        uint8 (H, W) flags)]}, for the images restored with ``--trust`` / ``--flags`` (in the order of
        `groups`; an unreadable one is named in `skipped`).
    """

    path: Path
    record: dict
    groups: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    extras: dict[str, dict[str, list[tuple[str, np.ndarray]]]] = field(default_factory=dict)


def is_restored_folder(path: str | Path) -> bool:
    """Whether `path` is a folder holding a restore.json of ``temdeblur restore`` (cheap: reads only it)."""
    record = Path(path) / RESTORE_RECORD
    try:
        return record.is_file() and read_json(record).get("format") == RESTORE_FORMAT
    except (DataError, OSError):
        return False


def read_restored_folder(path: str | Path) -> RestoredFolder:
    """Read a ``temdeblur restore`` output folder: its record and every image's counts.

    Raises
    ------
    DataError
        restore.json unreadable, of another format, or without images; images whose files are
        missing or damaged are listed in ``skipped`` instead, naming the file.
    """
    path = Path(path).resolve()
    record = read_json(path / RESTORE_RECORD)
    if record.get("format") != RESTORE_FORMAT:
        raise DataError(path / RESTORE_RECORD, f"is not a record of temdeblur restore (format {RESTORE_FORMAT})")
    images = record.get("images")
    if not isinstance(images, dict) or not images:
        raise DataError(path / RESTORE_RECORD, "lists no restored images")
    gt_window = record.get("windows", {}).get("gt") if isinstance(record.get("windows"), dict) else None
    if not (isinstance(gt_window, dict) and {"low", "high"} <= set(gt_window)):
        raise DataError(path / RESTORE_RECORD, "has no GT intensity window (windows.gt with low and high)")
    groups: dict[str, list[tuple[str, np.ndarray]]] = {}
    extras: dict[str, dict[str, list[tuple[str, np.ndarray]]]] = {}
    skipped = []
    for key in images:
        relative = PurePosixPath(key)
        counts = path.joinpath(*relative.parent.parts, f"{relative.name}_counts.tif")
        try:
            image = read_image(counts)
        except DataError as exc:
            skipped.append(str(exc))
            continue
        group = "" if str(relative.parent) == "." else str(relative.parent)
        groups.setdefault(group, []).append((relative.name, image))
        for kind in EXTRAS:  # written beside the image by restore --trust / --flags
            extra = counts.with_name(f"{relative.name}_{kind}.tif")
            if extra.is_file():
                try:
                    pixels = read_image(extra, dtypes=(EXTRAS[kind],))
                    extras.setdefault(group, {}).setdefault(kind, []).append((relative.name, pixels))
                except DataError as exc:
                    skipped.append(str(exc))
    if not groups:
        raise DataError(path, "none of the restored images could be read: " + "; ".join(skipped))
    return RestoredFolder(path, record, groups, skipped, extras)
