"""The published registered-dataset layout (Wieslander et al., Zenodo 10.5281/zenodo.4113244).

::

    <root>/<Sample>/<Split>/GT/<name>.tif               uint16 (H, W) sharp image at stream pixels
    <root>/<Sample>/<Split>/Low/<name>/<name>_<k>.tif   uint16 (H, W) registered stream frames, k = 0..F-1
    <root>/<Sample>/<Split>/GT_hr/...                   optional full-resolution ground truth (not read)
    <root>/<Sample>/sample.json                         optional, ours: {"format": "temdeblur-sample/1",
                                                        "pixel_size_nm": <stream pixel>}

Reading accepts the root, a sample folder or a split folder. A broken pair never stops the rest of a
dataset from opening: it is skipped and reported in :attr:`DatasetSplit.skipped`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, write_json

from ._files import find_folders, read_json, tiff_files
from ._tiff import read_image, write_image

SPLITS = ("Train", "Val", "Test")
#: The optional record of a sample folder (the published dataset has none) and its format.
SAMPLE_RECORD, SAMPLE_FORMAT = "sample.json", "temdeblur-sample/1"
_SESSION = re.compile(r"sess(?:ion)?[_-]?(\d+)", re.IGNORECASE)


@dataclass
class BurstPair:
    """One registered pair: a sharp GT image and the burst of stream frames registered onto it.

    Attributes
    ----------
    name : str
        Image name, e.g. ``sess2_im5``.
    gt : numpy.ndarray
        uint16 (H, W).
    low : numpy.ndarray
        uint16 (F, H, W), frames in acquisition order.
    """

    name: str
    gt: np.ndarray
    low: np.ndarray

    @property
    def session(self) -> int | None:
        """Acquisition session number parsed from the name (``sess2_im5`` -> 2), or None."""
        return session_of(self.name)


@dataclass
class DatasetSplit:
    """All readable pairs of one ``<Sample>/<Split>`` folder, and what had to be skipped."""

    sample: str
    split: str
    path: Path
    pairs: list[BurstPair] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: Size of one pixel (the stream's) in nm, from the sample folder's sample.json; None when unknown.
    pixel_size_nm: float | None = None


def session_of(name: str) -> int | None:
    """Session number in an image name such as ``sess2_im5``; None when the name has none."""
    match = _SESSION.search(name)
    return int(match.group(1)) if match else None


def is_split_folder(path: Path) -> bool:
    """True when `path` holds the ``GT/`` folder of one dataset split.

    ``Low/`` is not required here, so a split missing it is still read and each GT is reported as
    lacking its frames, rather than the folder being passed over in silence.
    """
    return (path / "GT").is_dir()


def _locate(path: Path) -> tuple[list[tuple[str, str, Path]], list[Path]]:
    """The split folders under `path` (see :func:`find_splits`), and the other folders that may not be
    looked into (which may hold splits)."""
    unreadable: list[Path] = []
    found = [(split.parent.name, split.name, split) for split in find_folders(path, is_split_folder, unreadable)]
    # an unreadable folder named as a split is taken for one: reading it (only when that split is
    # wanted) says that it cannot be read
    found += [(folder.parent.name, folder.name, folder) for folder in unreadable if folder.name in SPLITS]
    order = {name: i for i, name in enumerate(SPLITS)}
    found.sort(key=lambda s: (s[0], order.get(s[1], len(order)), s[1]))
    return found, [folder for folder in unreadable if folder.name not in SPLITS]


def find_splits(path: str | Path) -> list[tuple[str, str, Path]]:
    """Locate the split folders under a dataset root, a sample folder or a split folder.

    Parameters
    ----------
    path : str or Path
        Any of the three levels of the published layout.

    Returns
    -------
    list of (sample, split, folder)
        Sorted by sample, then Train/Val/Test order. Empty when `path` is not a dataset. A folder
        named as a split that may not be looked into is listed too.
    """
    path = Path(path)
    if not path.is_dir():
        return []
    return _locate(path)[0]


def frame_files(low_dir: Path, name: str) -> list[Path]:
    """The frame files ``<name>_<k>.tif`` of a burst folder, in frame order (k = 0, 1, ..., 10; a
    plain name sort would put _10 before _2).

    Raises
    ------
    DataError
        When the frame numbers have gaps or do not start at 0.
    """
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)\.tiff?$", re.IGNORECASE)
    numbered = sorted((int(m.group(1)), p) for p in low_dir.iterdir() if (m := pattern.match(p.name)) is not None)
    indices = [k for k, _ in numbered]
    if indices != list(range(len(indices))):
        raise DataError(low_dir, f"frames must be numbered {name}_0 .. {name}_N without gaps; found {indices}")
    return [p for _, p in numbered]


def read_pair(gt_path: str | Path) -> BurstPair:
    """Read one GT image ``<split>/GT/<name>.tif`` and its frames ``<split>/Low/<name>/<name>_<k>.tif``.

    Raises
    ------
    DataError
        Missing or unreadable frames, or frames whose shape differs from the GT's.
    """
    gt_path = Path(gt_path)
    name = gt_path.stem
    gt = read_image(gt_path)
    low_dir = gt_path.parent.parent / "Low" / name
    if not low_dir.is_dir():
        raise DataError(low_dir, f"missing Low frames for GT {gt_path.name} (no folder Low/{name}/)")
    files = frame_files(low_dir, name)
    if not files:
        raise DataError(low_dir, f"missing Low frames for GT {gt_path.name} (no {name}_<k>.tif files)")
    frames = []
    for path in files:
        frame = read_image(path)
        if frame.shape != gt.shape:
            raise DataError(path, f"frame shape {frame.shape} does not match GT {gt_path.name} shape {gt.shape}")
        frames.append(frame)
    return BurstPair(name=name, gt=gt, low=np.stack(frames))


def read_pixel_size(sample_dir: str | Path) -> float | None:
    """The pixel size (nm) a sample folder's ``sample.json`` gives, or None when it has none.

    Raises
    ------
    DataError
        When sample.json is unreadable, of another format, or its pixel size is not a finite
        positive number.
    """
    path = Path(sample_dir) / SAMPLE_RECORD
    if not path.is_file():
        return None
    record = read_json(path)
    if record.get("format") != SAMPLE_FORMAT:
        raise DataError(path, f"format is {record.get('format')!r}, expected {SAMPLE_FORMAT!r}")
    size = record.get("pixel_size_nm")
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not (math.isfinite(size) and size > 0):
        raise DataError(path, f"pixel_size_nm must be a finite positive number of nanometres, found {size!r}")
    return float(size)


def write_pixel_size(sample_dir: str | Path, pixel_size_nm: float) -> Path:
    """Record the stream pixel size (nm) of the images of a sample folder in its ``sample.json``.

    Raises
    ------
    ValueError
        When the folder already records another pixel size: its images would be shown at two scales.
    """
    known = read_pixel_size(sample_dir)
    if known is not None and not math.isclose(known, pixel_size_nm, rel_tol=1e-6):
        raise ValueError(
            f"{Path(sample_dir) / SAMPLE_RECORD} records {known} nm pixels, not {pixel_size_nm} nm: "
            "write images of another pixel size to another sample folder"
        )
    record = {"format": SAMPLE_FORMAT, "pixel_size_nm": float(pixel_size_nm)}
    return write_json(Path(sample_dir) / SAMPLE_RECORD, record)


def read_split(split_dir: str | Path, sample: str | None = None, split: str | None = None) -> DatasetSplit:
    """Read every pair of one split folder; broken pairs are skipped and listed, not fatal.

    Pairs whose frame count differs from the split's most common count are skipped too, so the
    result stacks into one (frames, images, H, W) array.
    """
    split_dir = Path(split_dir)
    result = DatasetSplit(sample or split_dir.parent.name, split or split_dir.name, split_dir)
    try:
        gt_paths = tiff_files(split_dir / "GT")
    except PermissionError as exc:
        result.skipped.append(str(DataError.no_permission(exc.filename or split_dir)))
        return result
    try:
        result.pixel_size_nm = read_pixel_size(split_dir.parent)
    except DataError as exc:  # the images are still good: they open in pixels
        result.skipped.append(f"{exc}; the images are shown in pixels")
    for gt_path in gt_paths:
        try:
            result.pairs.append(read_pair(gt_path))
        except DataError as exc:
            result.skipped.append(str(exc))
        except PermissionError as exc:  # a burst folder that may not be read
            result.skipped.append(str(DataError.no_permission(exc.filename or gt_path)))
    counts = Counter(len(p.low) for p in result.pairs)
    if len(counts) > 1:
        # On a tie keep the longer bursts: registration makes short ones when it leaves frames out.
        keep = max(counts, key=lambda frames: (counts[frames], frames))
        for pair in [p for p in result.pairs if len(p.low) != keep]:
            result.skipped.append(
                f"{split_dir / 'Low' / pair.name}: {len(pair.low)} frames, but the split's other images have {keep}"
            )
        result.pairs = [p for p in result.pairs if len(p.low) == keep]
    return result


def read_dataset(path: str | Path, splits: Collection[str] | None = None) -> list[DatasetSplit]:
    """Read a dataset root, sample folder or split folder.

    Parameters
    ----------
    path : str or Path
        Folder in the published layout (any level).
    splits : collection of str, optional
        Read only the split folders of these names (e.g. Train and Val for training): the others
        are not read. None reads every split.

    Returns
    -------
    list of DatasetSplit
        One per split folder found (and asked for), each with its readable pairs and skip messages;
        with `splits`, empty when the dataset has none of them (the caller says what it missed). A
        folder that may hold splits but may not be looked into is one more, without pairs, whose
        skip message says so.

    Raises
    ------
    DataError
        When `path` is not a folder, is empty or unreadable, holds no split folders, or (all splits
        read) no pair at all is readable.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, "not a folder")
    try:
        if not any(path.iterdir()):
            raise DataError(path, "the folder is empty")
    except PermissionError:
        raise DataError.no_permission(path) from None
    found, unreadable = _locate(path)
    if not found and not unreadable:
        raise DataError(path, "no dataset here: expected <Sample>/<Split>/GT/ and Low/ folders (published layout)")
    wanted = found if splits is None else [f for f in found if f[1] in splits]
    read = [read_split(folder, sample, split) for sample, split, folder in wanted]
    read += [DatasetSplit(f.name, "", f, skipped=[str(DataError.no_permission(f))]) for f in unreadable]
    if splits is None and not any(s.pairs for s in read):
        reasons = "; ".join(msg for s in read for msg in s.skipped) or "the GT folders hold no .tif images"
        raise DataError(path, f"no readable GT/Low pair: {reasons}")
    return read


def write_pair(split_dir: str | Path, pair: BurstPair) -> list[Path]:
    """Write one pair in the published layout; returns the files written (GT first)."""
    split_dir = Path(split_dir)
    if pair.low.ndim != 3 or pair.low.shape[1:] != pair.gt.shape:
        raise ValueError(f"{pair.name}: Low frames {pair.low.shape} do not match GT {pair.gt.shape}")
    written = [write_image(split_dir / "GT" / f"{pair.name}.tif", pair.gt)]
    for k, frame in enumerate(pair.low):
        written.append(write_image(split_dir / "Low" / pair.name / f"{pair.name}_{k}.tif", frame))
    return written
