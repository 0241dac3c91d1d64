"""Reading and writing single images and image stacks as TIFF, with clear errors for bad files.

Every TIFF the plugin reads goes through here, so a corrupt, truncated, RGB or floating-point file
always gives the same precise message instead of a raw tifffile traceback.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import tifffile

from napari_temdeblur.core import DataError, atomic_write

#: Detector counts: the MiniTEM writes 16-bit images; 8-bit exports are accepted too.
ACCEPTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def _check_page_kind(path: Path, dtype: np.dtype, shape: tuple[int, ...], samples: int) -> None:
    if samples > 1 or (len(shape) >= 3 and shape[-1] in (3, 4)):
        raise DataError(path, f"RGB/multi-channel image (shape {shape}); expected a grey-scale TEM image")
    if np.dtype(dtype) not in ACCEPTED_DTYPES:
        raise DataError(
            path,
            f"pixel type {np.dtype(dtype)} is not supported; expected unsigned 16-bit (or 8-bit) "
            "detector counts — export the image as uint16",
        )


def _check_complete(path: Path, tif: tifffile.TiffFile, shape: tuple[int, ...]) -> None:
    """Catch a file cut short: tifffile then quietly returns the pages it could reach."""
    declared = tif.shaped_metadata[0].get("shape") if tif.shaped_metadata else None
    if tif.is_imagej:
        declared = None if tif.imagej_metadata is None else tif.imagej_metadata.get("images")
        declared = None if declared is None else [declared, *shape[-2:]]
    if declared is not None and tuple(declared) != shape and int(np.prod(declared)) != int(np.prod(shape)):
        raise DataError(path, f"header declares shape {tuple(declared)} but the file holds {shape} (truncated?)")
    last = tif.pages[len(tif.pages) - 1]
    end = max((o + n for o, n in zip(last.dataoffsets, last.databytecounts)), default=0)
    series = tif.series[0]
    if series.dataoffset is not None:  # contiguous data: one block, described by the first page only
        end = max(end, series.dataoffset + series.nbytes)
    if end > tif.filehandle.size:
        raise DataError(path, f"file is {tif.filehandle.size} bytes but its pixel data end at byte {end} (truncated?)")


def tiff_info(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the first image series of a TIFF file, read from its header only.

    Parameters
    ----------
    path : str or Path
        TIFF file.

    Returns
    -------
    shape : tuple of int
        (rows, cols) for a single image, (frames, rows, cols) for a multipage stack.
    dtype : numpy.dtype
        uint8 or uint16.

    Raises
    ------
    DataError
        When the file is missing, not a TIFF, corrupt, RGB or not unsigned-integer data.
    """
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            page = tif.pages.first
            shape, dtype, samples = tuple(series.shape), series.dtype, page.samplesperpixel
            _check_complete(path, tif, shape)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except DataError:
        raise
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError, struct.error) as exc:
        raise DataError(path, f"not a readable TIFF file (corrupt or truncated?): {exc}") from None
    _check_page_kind(path, dtype, shape, samples)
    return shape, np.dtype(dtype)


def read_image(path: str | Path, *, ndim: int = 2) -> np.ndarray:
    """Read a grey-scale TIFF fully into memory.

    Parameters
    ----------
    path : str or Path
        TIFF file.
    ndim : int
        Expected number of dimensions: 2 for one image (rows, cols), 3 for a stack (frames, rows, cols).

    Returns
    -------
    numpy.ndarray
        uint8 or uint16 array with `ndim` dimensions.

    Raises
    ------
    DataError
        For any unreadable, truncated, RGB, float or wrongly shaped file.
    """
    path = Path(path)
    shape, _ = tiff_info(path)
    if len(shape) != ndim:
        what = "a single 2-D image" if ndim == 2 else f"a {ndim}-D stack"
        raise DataError(path, f"expected {what}, found an array of shape {shape}")
    try:
        data = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for damaged files; all mean the same here
        raise DataError(path, f"could not read the pixel data (truncated or corrupt?): {exc}") from None
    if data.shape != shape:
        raise DataError(path, f"pixel data has shape {data.shape}, header says {shape} (truncated file?)")
    return data


def open_stack_lazily(path: str | Path):
    """Open a multipage TIFF stack without loading its pixels.

    A contiguous, uncompressed stack (what the simulator and most cameras write) is memory-mapped;
    any other stack becomes a dask array that reads one page when it is needed.

    Parameters
    ----------
    path : str or Path
        Multipage TIFF of shape (frames, rows, cols).

    Returns
    -------
    numpy.memmap or dask.array.Array
        uint8/uint16 array (frames, rows, cols).
    """
    path = Path(path)
    shape, dtype = tiff_info(path)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise DataError(path, f"expected a stack of frames (frames, rows, cols), found shape {shape}")
    try:
        mapped = tifffile.memmap(path, mode="r")
    except ValueError:
        mapped = None  # compressed or scattered pages cannot be mapped; read page by page instead
    except OSError as exc:
        raise DataError(path, f"file is shorter than its header says (truncated?): {exc}") from None
    if mapped is not None:
        return mapped.reshape(shape)
    return _dask_pages(path, shape, dtype)


def _dask_pages(path: Path, shape: tuple[int, int, int], dtype: np.dtype):
    import dask
    import dask.array as da

    def read_page(index: int) -> np.ndarray:
        try:
            with tifffile.TiffFile(path) as tif:
                return tif.pages[index].asarray()
        except Exception as exc:  # surfaced when napari first shows the frame
            raise DataError(path, f"frame {index} could not be read: {exc}") from None

    frames = [da.from_delayed(dask.delayed(read_page)(i), shape=shape[1:], dtype=dtype) for i in range(shape[0])]
    return da.stack(frames)


def stack_files_lazily(paths: list[Path], what: str = "frame"):
    """A dask array (frames, rows, cols) over single-frame TIFF files, read on demand.

    Every header is checked up front, so a bad file is reported at open time, not while browsing.
    """
    import dask
    import dask.array as da

    if not paths:
        raise DataError(None, "no frame files given")
    shape, dtype = tiff_info(paths[0])
    for path in paths[1:]:
        other_shape, other_dtype = tiff_info(path)
        if (other_shape, other_dtype) != (shape, dtype):
            raise DataError(path, f"{what} is {other_shape} {other_dtype}, but {paths[0].name} is {shape} {dtype}")
    if len(shape) != 2:
        raise DataError(paths[0], f"expected a single 2-D {what}, found shape {shape}")
    frames = [da.from_delayed(dask.delayed(read_image)(p), shape=shape, dtype=dtype) for p in paths]
    return da.stack(frames)


def write_image(path: str | Path, data: np.ndarray, *, metadata: dict | None = None) -> Path:
    """Write an image or stack as an uncompressed, memory-mappable TIFF, atomically.

    The data go to a temporary file in the same folder that is renamed over `path` only once complete,
    so an interrupted write never leaves a half-written image behind.

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created.
    data : numpy.ndarray
        (rows, cols) or (frames, rows, cols), uint8 or uint16.
    metadata : dict, optional
        Stored as tifffile's JSON image description.
    """
    path = Path(path)
    data = np.asarray(data)
    if data.dtype not in ACCEPTED_DTYPES:
        raise ValueError(f"refusing to write {path}: dtype {data.dtype}, expected uint8 or uint16")
    # minisblack: tifffile would otherwise store a 3- or 4-frame stack as one planar RGB(A) image
    return atomic_write(
        path,
        lambda tmp: tifffile.imwrite(tmp, data, metadata=metadata, contiguous=True, photometric="minisblack"),
    )
