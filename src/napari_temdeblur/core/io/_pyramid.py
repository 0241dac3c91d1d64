"""OME-Zarr multiscale images (the mosaic of a scan): written with ``ome-zarr``, read lazily.

A pyramid is one 2-D (y, x) image at full resolution (``s0``) and copies averaged over 2 x 2, 4 x 4, ...
pixels (``s1``, ``s2``, ...) down to about MIN_SIDE px, in chunks of CHUNK x CHUNK, with the pixel
size in nm in the OME-Zarr metadata (``coordinateTransformations`` scale, axes unit ``nanometer``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from napari_temdeblur.core import DataError

#: A ``temdeblur mosaic`` folder: its record, and its restored and raw pyramids.
MOSAIC_RECORD, MOSAIC_IMAGE, RAW_IMAGE = "mosaic.json", "mosaic.ome.zarr", "raw.ome.zarr"


def mosaic_folder(path: str | Path) -> Path | None:
    """The ``temdeblur mosaic`` folder `path` is (or whose OME-Zarr image it is), else None."""
    path = Path(path)
    if (path / MOSAIC_RECORD).is_file() and (path / MOSAIC_IMAGE).is_dir():
        return path
    if path.name in (MOSAIC_IMAGE, RAW_IMAGE) and (path.parent / MOSAIC_RECORD).is_file():
        return path.parent
    return None


#: Levels are added while the coarsest stays at least this many px on its shorter side.
MIN_SIDE = 64
#: Chunk side (px) of every level.
CHUNK = 1024


@dataclass(frozen=True)
class Pyramid:
    """An opened OME-Zarr multiscale image.

    Attributes
    ----------
    path : Path
    name : str
    levels : list of dask.array.Array
        (y, x) arrays, full resolution first, each read lazily chunk by chunk.
    pixel_size_nm : float or None
        The full-resolution pixel, when the metadata gives it in nm.
    """

    path: Path
    name: str
    levels: list
    pixel_size_nm: float | None


def pyramid_factors(shape: tuple[int, int]) -> list[int]:
    """Downsampling factors 2, 4, ... while the coarsest level keeps MIN_SIDE px on its shorter side."""
    factors, f = [], 2
    while min(shape) // f >= MIN_SIDE:
        factors.append(f)
        f *= 2
    return factors


def write_pyramid(path: str | Path, image, pixel_size_nm: float | None, name: str) -> Path:
    """Write a (y, x) image as an OME-Zarr multiscale pyramid, replacing `path` only once complete.

    Parameters
    ----------
    path : str or Path
        The ``.ome.zarr`` folder to write.
    image : numpy.ndarray or dask.array.Array
        (H, W); dask arrays are computed chunk by chunk (the pyramid levels from it, each by local
        means of the one before).
    pixel_size_nm : float or None
        Full-resolution pixel size, recorded as the scale of ``s0`` in nm (pixels when None).
    name : str
        The multiscale's name in the metadata.

    Returns
    -------
    Path
        `path`.
    """
    import dask.array as da
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    image = image if isinstance(image, da.Array) else da.from_array(image, chunks=CHUNK)
    physical = {}
    if pixel_size_nm:
        physical = {
            "scale": {"y": pixel_size_nm, "x": pixel_size_nm},
            "axes_units": {"y": "nanometer", "x": "nanometer"},
        }
    write_image(
        image,
        str(tmp),
        scale_factors=tuple(pyramid_factors(image.shape)),
        method=Methods.LOCAL_MEAN,
        axes="yx",
        storage_options={"chunks": (CHUNK, CHUNK)},
        name=name,
        **physical,
    )
    # a folder cannot be renamed over another: the old one goes first (a kill between the two leaves
    # none, and the complete new one in `tmp`)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path


def read_pyramid(path: str | Path) -> Pyramid:
    """Open an OME-Zarr multiscale image lazily.

    Raises
    ------
    DataError
        Not a Zarr group, or no ``multiscales`` in its metadata.
    """
    import dask.array as da
    import zarr

    path = Path(path)
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = group.attrs.asdict()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(path, f"is not a readable Zarr group ({exc})") from None
    multiscales = attrs.get("ome", attrs).get("multiscales")
    if not multiscales or not multiscales[0].get("datasets"):
        raise DataError(path, "has no OME-Zarr multiscales metadata")
    first = multiscales[0]
    try:
        levels = [da.from_zarr(group[d["path"]]) for d in first["datasets"]]
    except KeyError as exc:
        raise DataError(path, f"lacks the level {exc} its metadata lists") from None
    units = [a.get("unit") for a in first.get("axes", []) if isinstance(a, dict)]
    transforms = first["datasets"][0].get("coordinateTransformations", [])
    scale = next((t["scale"] for t in transforms if t.get("type") == "scale"), [1.0, 1.0])
    size = float(scale[-1]) if units and all(u == "nanometer" for u in units[-2:]) else None
    return Pyramid(path, str(first.get("name", path.name)), levels, size)
