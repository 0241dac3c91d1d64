"""Reading and writing single images and image stacks as TIFF, with clear errors for bad files.

Every TIFF the plugin reads goes through here, so a corrupt, truncated, RGB or floating-point file
always gives the same precise message instead of a raw tifffile traceback.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import tifffile

from napari_temdeblur.core import DataError, atomic_write

#: Detector counts: the MiniTEM writes 16-bit images; 8-bit exports are accepted too.
ACCEPTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def _check_page_kind(path: Path, dtype: np.dtype, shape: tuple[int, ...], samples: int, dtypes=ACCEPTED_DTYPES):
    if samples > 1 or (len(shape) >= 3 and shape[-1] in (3, 4)):
        raise DataError(path, f"RGB/multi-channel image (shape {shape}); expected a grey-scale TEM image")
    if np.dtype(dtype) not in dtypes:
        raise DataError(
            path,
            f"pixel type {np.dtype(dtype)} is not supported; expected unsigned 16-bit (or 8-bit) "
            "detector counts — export the image as uint16",
        )


class TruncatedStack(DataError):
    """A TIFF that ends before its pages or its pixel data do (a copy or a download cut short).

    Attributes
    ----------
    complete : int
        How many frames, from the first, lie wholly in the file.
    declared : int or None
        How many frames the file says it holds (tifffile's shape, ImageJ's image count), when it says.
    """

    def __init__(self, path: Path, problem: str, complete: int, declared: int | None, opener):
        super().__init__(path, problem)
        self.complete, self.declared, self._opener = complete, declared, opener

    def open_complete(self):
        """The complete frames, (complete, rows, cols), memory-mapped or read page by page."""
        return self._opener()


def _stored_offset(tif: tifffile.TiffFile, position: int) -> int | None:
    """The IFD offset stored at `position` of the file; None when the file ends before it."""
    handle, size = tif.filehandle, tif.tiff.offsetsize
    if position + size > handle.size:
        return None
    handle.seek(position)
    return struct.unpack(tif.tiff.offsetformat, handle.read(size))[0]


def _data_end(page) -> int:
    return max((o + n for o, n in zip(page.dataoffsets, page.databytecounts)), default=0)


def _declared_frames(tif: tifffile.TiffFile, first) -> int | None:
    """Frames the file declares: tifffile's JSON shape (what :func:`write_image` writes) or ImageJ's count."""
    if first.shaped_description is not None:
        try:
            shape = json.loads(first.shaped_description)["shape"]
            return int(np.prod(shape)) // max(1, int(np.prod(first.shape)))
        except (ValueError, TypeError, KeyError):  # the old "shape=(...)" form or a damaged one: not declared
            return None
    if tif.is_imagej and tif.imagej_metadata is not None:
        return int(tif.imagej_metadata.get("images", 1))
    return None


def _check_truncation(path: Path, tif: tifffile.TiffFile) -> None:
    """Raise TruncatedStack when the file ends before its pages or pixel data: tifffile then quietly
    returns the pages it could reach (a stream cut anywhere would open as one frame).

    The page chain (each page's header gives the offset of the next) must end inside the file with a
    zero offset. A stack that declares its frame count and whose pixel data lie back to back after the
    first page's, with the other pages' headers behind them or absent (tifffile's and ImageJ's
    layouts), is complete up to the last whole frame of that block; any other stack up to the last
    page whose header and data are in the file.
    """
    size, pages = tif.filehandle.size, tif.pages
    found = len(pages)  # tifffile follows the chain as far as the file holds it
    first = pages.first
    after_last = _stored_offset(tif, pages.next_page_offset)
    chain_cut = after_last != 0
    declared = _declared_frames(tif, first)
    start = first.dataoffsets[0] if first.dataoffsets else None
    try:
        second = pages[1].offset if found > 1 else after_last
    except (tifffile.TiffFileError, ValueError, IndexError, struct.error):
        second = None
    if (
        first.is_contiguous
        and declared
        and start is not None
        and second is not None
        and (second == 0 or second >= start + declared * first.nbytes)
    ):
        complete = min(declared, max(0, size - start) // first.nbytes)
        if complete == declared and not chain_cut:
            return
        dtype = first.dtype.newbyteorder(tif.byteorder)
        opener = partial(np.memmap, path, dtype=dtype, mode="r", offset=start, shape=(complete, *first.shape))
        reach = "its pixel data run" if complete < declared else "its page chain runs"
    else:
        complete = 0
        for index in range(found - 1, -1, -1):
            try:
                if _data_end(pages[index]) <= size:
                    complete = index + 1
                    break
            except (tifffile.TiffFileError, ValueError, struct.error):
                continue
        if complete == found and not chain_cut:
            return
        opener = partial(_dask_pages, path, (complete, *first.shape), first.dtype)
        reach = "its page chain runs" if chain_cut else "its pixel data run"
    problem = f"the file is truncated ({size:,} bytes; {reach} past its end)"
    if declared == 1 or (declared is None and found == 1 and not chain_cut):
        problem += ": the image is incomplete"
    elif declared is not None:
        problem += f": {complete} of {declared} frames are complete"
    else:
        problem += f": its first {complete} frame{'' if complete == 1 else 's'} {'is' if complete == 1 else 'are'} "
        problem += "complete (the file does not say how many it held)"
    raise TruncatedStack(path, problem, complete, declared, opener)


def _check_declared_shape(path: Path, tif: tifffile.TiffFile, shape: tuple[int, ...]) -> None:
    declared = tif.shaped_metadata[0].get("shape") if tif.shaped_metadata else None
    if tif.is_imagej:
        declared = None if tif.imagej_metadata is None else tif.imagej_metadata.get("images")
        declared = None if declared is None else [declared, *shape[-2:]]
    if declared is not None and tuple(declared) != shape and int(np.prod(declared)) != int(np.prod(shape)):
        raise DataError(path, f"header declares shape {tuple(declared)} but the file holds {shape} (truncated?)")


def _read_header(path: Path, dtypes=ACCEPTED_DTYPES) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the first series, after the checks of :func:`tiff_info` (the truncation last,
    so that an RGB or float file is named as such even when cut short)."""
    try:
        with tifffile.TiffFile(path) as tif:
            first = tif.pages.first
            _check_page_kind(path, first.dtype, first.shape, first.samplesperpixel, dtypes)
            _check_truncation(path, tif)
            series = tif.series[0]
            shape, dtype = tuple(series.shape), series.dtype
            _check_declared_shape(path, tif, shape)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except PermissionError:
        raise DataError.no_permission(path) from None
    except DataError:
        raise
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError, struct.error) as exc:
        raise DataError(path, f"not a readable TIFF file (corrupt or truncated?): {exc}") from None
    _check_page_kind(path, dtype, shape, 1, dtypes)
    return shape, np.dtype(dtype)


def tiff_info(path: str | Path, dtypes=ACCEPTED_DTYPES) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the first image series of a TIFF file, read from its header only.

    Parameters
    ----------
    path : str or Path
        TIFF file.
    dtypes : tuple of numpy.dtype
        The pixel types accepted (detector counts: uint8, uint16).

    Returns
    -------
    shape : tuple of int
        (rows, cols) for a single image, (frames, rows, cols) for a multipage stack.
    dtype : numpy.dtype
        One of `dtypes`.

    Raises
    ------
    TruncatedStack
        When the file ends before its pages or pixel data (a DataError saying how many frames are
        complete).
    DataError
        When the file is missing, unreadable, not a TIFF, corrupt, RGB or not of `dtypes`.
    """
    return _read_header(Path(path), dtypes)


def read_image(path: str | Path, *, ndim: int = 2, dtypes=ACCEPTED_DTYPES) -> np.ndarray:
    """Read a grey-scale TIFF fully into memory.

    Parameters
    ----------
    path : str or Path
        TIFF file.
    ndim : int
        Expected number of dimensions: 2 for one image (rows, cols), 3 for a stack (frames, rows, cols).
    dtypes : tuple of numpy.dtype
        The pixel types accepted: detector counts (uint8, uint16) unless a caller reads its own float
        output (restore's interval widths).

    Returns
    -------
    numpy.ndarray
        Array of one of `dtypes` with `ndim` dimensions.

    Raises
    ------
    DataError
        For any unreadable, truncated, RGB or wrongly shaped file, or pixels not of `dtypes`.
    """
    path = Path(path)
    shape, _ = tiff_info(path, dtypes)
    if len(shape) != ndim:
        what = "a single 2-D image" if ndim == 2 else f"a {ndim}-D stack"
        raise DataError(path, f"expected {what}, found an array of shape {shape}")
    try:
        data = tifffile.imread(path)
    except PermissionError:
        raise DataError.no_permission(path) from None
    except Exception as exc:  # tifffile raises many types for damaged files; all mean the same here
        raise DataError(path, f"could not read the pixel data (truncated or corrupt?): {exc}") from None
    if data.shape != shape:
        raise DataError(path, f"pixel data has shape {data.shape}, header says {shape} (truncated file?)")
    return data


def open_stack_lazily(path: str | Path, on_truncated: Callable[[TruncatedStack], None] | None = None):
    """Open a multipage TIFF stack without loading its pixels.

    A contiguous, uncompressed stack (what the simulator and most cameras write) is memory-mapped;
    any other stack becomes a dask array that reads one page when it is needed.

    Parameters
    ----------
    path : str or Path
        Multipage TIFF of shape (frames, rows, cols).
    on_truncated : callable, optional
        Open a truncated stack with its complete frames, after calling ``on_truncated(error)`` with
        the :class:`TruncatedStack` that says so. Without it, a truncated stack raises.

    Returns
    -------
    numpy.memmap or dask.array.Array
        uint8/uint16 array (frames, rows, cols).

    Raises
    ------
    TruncatedStack
        A truncated stack (without `on_truncated`, or with no complete frame).
    DataError
        An unreadable file or one that is not a stack of grey-scale frames.
    """
    path = Path(path)
    try:
        shape, dtype = tiff_info(path)
    except TruncatedStack as cut:
        if on_truncated is None or cut.complete == 0:
            raise
        on_truncated(cut)
        return cut.open_complete()
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
        except PermissionError:
            raise DataError.no_permission(path) from None
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
        Stored as tifffile's JSON image description, with the array's ``shape`` (always written: it is
        what tells a truncated stack from a shorter one when the file is read).
    """
    path = Path(path)
    data = np.asarray(data)
    if data.dtype not in ACCEPTED_DTYPES:
        raise ValueError(f"refusing to write {path}: dtype {data.dtype}, expected uint8 or uint16")
    metadata = {} if metadata is None else metadata  # tifffile adds the shape to a dict, None writes none
    # minisblack: tifffile would otherwise store a 3- or 4-frame stack as one planar RGB(A) image
    return atomic_write(
        path,
        lambda tmp: tifffile.imwrite(tmp, data, metadata=metadata, contiguous=True, photometric="minisblack"),
    )
