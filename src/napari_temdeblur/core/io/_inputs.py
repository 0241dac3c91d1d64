"""The bursts of a dataset, a burst folder or a burst TIFF, listed at once and read one at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError

from ._dataset import BurstPair, find_splits, frame_files, read_pair, read_pixel_size
from ._files import tiff_files
from ._tiff import read_image, tiff_info


class BurstInputs(Sequence):
    """The bursts of a dataset, burst folder or burst TIFF, read on access (``[k]`` -> BurstPair).

    Attributes
    ----------
    names : list of str
        Output name of each burst (known without reading pixels).
    folders : list of Path
        Output subfolder of each burst (``<Sample>/<Split>`` for a dataset of several splits).
    pixel_sizes_nm : list of float or None
        Stream pixel size (nm) of each burst as its sample folder's sample.json records it; None
        when it records none (or is unreadable: the pixels are restored all the same).
    """

    def __init__(
        self,
        names: list[str],
        folders: list[Path],
        loaders: list[Callable[[], BurstPair]],
        pixel_sizes_nm: list[float | None] | None = None,
    ):
        self.names, self.folders, self._loaders = names, folders, loaders
        self.pixel_sizes_nm = pixel_sizes_nm or [None] * len(names)

    def __len__(self) -> int:
        return len(self._loaders)

    def __getitem__(self, k: int) -> BurstPair:
        return self._loaders[k]()


def _pixel_size(sample_dir: Path) -> float | None:
    """sample.json's pixel size; None when there is none or it is unreadable (the reader names the
    bad file when the dataset is opened; restoring does not need it)."""
    try:
        return read_pixel_size(sample_dir)
    except DataError:
        return None


def read_inputs(path: str | Path) -> BurstInputs:
    """The bursts of a dataset (every split), a burst folder or a burst TIFF, listed now, read on access.

    Raises
    ------
    DataError
        When `path` is none of these, a dataset holds no GT image, or a burst folder's frames are not
        numbered without gaps or differ in shape.
    """
    path = Path(path)
    if path.is_file():
        return BurstInputs([path.stem], [Path()], [lambda: BurstPair(path.stem, None, read_image(path, ndim=3))])
    if not path.is_dir():
        raise DataError(path, "no such file or folder")
    splits = find_splits(path)
    if splits:
        sizes = {folder: _pixel_size(folder.parent) for _, _, folder in splits}  # once per split, not per image
        try:
            found = [
                (Path(sample, split), gt, sizes[folder])
                for sample, split, folder in splits
                for gt in tiff_files(folder / "GT")
            ]
        except PermissionError as exc:  # every split is restored: an unreadable one is not passed over
            raise DataError.no_permission(exc.filename or path) from None
        if not found:
            raise DataError(path, "the dataset's GT folders hold no .tif images")
        many = len({folder for folder, _, _ in found}) > 1
        return BurstInputs(
            [gt.stem for _, gt, _ in found],
            [folder if many else Path() for folder, _, _ in found],
            [lambda gt=gt: read_pair(gt) for _, gt, _ in found],
            [size for _, _, size in found],
        )
    files = frame_files(path, path.name)  # in frame order: a plain name sort puts _10 before _2
    if not files:
        raise DataError(
            path,
            f"neither a dataset (<Sample>/<Split>/GT, Low), a session nor a burst folder of frame "
            f"TIFFs {path.name}_0.tif, {path.name}_1.tif, ...",
        )
    shapes = {tiff_info(f)[0] for f in files}
    if len(shapes) > 1:
        raise DataError(path, f"the frames of a burst must share one shape, found {sorted(shapes)}")
    return BurstInputs(
        [path.name], [Path()], [lambda: BurstPair(path.name, None, np.stack([read_image(f) for f in files]))]
    )
