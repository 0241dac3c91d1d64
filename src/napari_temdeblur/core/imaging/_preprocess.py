"""Sample masks, training crops and evaluation tiles.

Implements the rest of the *Data* section of Wieslander et al. (PLOS ONE 2021), after the intensity
window (:class:`~napari_temdeblur.core.imaging.IntensityWindow`): the sample mask is the windowed image
thresholded at 0; training crops are drawn where the (eroded) mask allows a whole crop, and
validation/test images are tiled regularly, dropping tiles that touch the grid.

Images are indexed (row, col) = (y, x); bursts are (frame, row, col). Intensities are detector counts.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import integral_image

__all__ = [
    "sample_mask",
    "valid_crop_origins",
    "random_crops",
    "evaluation_tiles",
]


#: Share of an image's rows whose tiles are scored (validation, evaluation, the Restore dock): the top
#: half, as the paper, because consecutive HQ images overlap by half along the scan.
TOP_HALF_ROWS = 0.5


def sample_mask(
    windowed: np.ndarray,
    *,
    erosion_radius: int = 0,
    iterations: int = 1,
    min_hole_px: int = 64,
    min_island_px: int = 64,
) -> np.ndarray:
    """Boolean mask of the sample (grid-cell content) in a windowed image.

    A pixel is sample where it is above the window minimum (> 0 after
    :func:`napari_temdeblur.core.imaging.apply_window`), as in the paper. Then, so that read noise
    does not change the mask's shape:

    1. non-sample components smaller than `min_hole_px` pixels are filled (dark noise inside the
       sample must not punch holes; bars, padding and large dark structures stay non-sample). As for
       the erosion, the image border does not count as non-sample, so a small dark spot on the edge
       of the image is filled too;
    2. sample islands smaller than `min_island_px` are removed (bright noise pixels in the bars);
    3. the mask is eroded `iterations` times by a disk of radius `erosion_radius` (the paper used
       radius 128, 2 iterations at full resolution for training). The image border does not erode:
       only non-sample pixels inside the image do.

    Connectivity is 4-neighbour for both holes and islands.

    Parameters
    ----------
    windowed : ndarray
        (H, W), or (F, H, W) for a burst, values in [0, 1]. For a burst a pixel is sample only where
        every frame is above 0, so the registration padding of any frame is excluded.
    erosion_radius : int
        Disk radius in pixels; 0 disables erosion.
    iterations : int
        Number of erosions (>= 1).
    min_hole_px, min_island_px : int
        Components with fewer pixels than this are filled / removed; 0 disables.

    Returns
    -------
    ndarray
        bool, (H, W).
    """
    windowed = np.asarray(windowed)
    if windowed.ndim not in (2, 3):
        raise ValueError(f"windowed must be (H, W) or (F, H, W), got shape {windowed.shape} (ndim {windowed.ndim})")
    if windowed.dtype.kind == "f" and np.isnan(windowed).any():
        raise ValueError("windowed image contains NaN")
    for name, value in (
        ("erosion_radius", erosion_radius),
        ("min_hole_px", min_hole_px),
        ("min_island_px", min_island_px),
    ):
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value}")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations}")

    mask = windowed > 0
    if mask.ndim == 3:
        mask = mask.all(axis=0)
    if min_hole_px > 0:
        mask = mask | _components_smaller_than(~mask, min_hole_px)
    if min_island_px > 0:
        mask = mask & ~_components_smaller_than(mask, min_island_px)
    if erosion_radius > 0:
        for _ in range(int(iterations)):
            if mask.all():
                break
            # A pixel survives erosion by disk(r) iff no non-sample pixel lies within distance r:
            # the Euclidean distance transform gives that exactly, in O(H W) instead of O(H W r^2).
            mask = ndi.distance_transform_edt(mask) > erosion_radius
    return mask


def _components_smaller_than(binary: np.ndarray, min_px: int) -> np.ndarray:
    labels, _ = ndi.label(binary)
    sizes = np.bincount(labels.ravel())
    small = sizes < min_px
    small[0] = False
    return small[labels]


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape} (ndim {mask.ndim})")
    return mask.astype(bool, copy=False)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return int(size)


def valid_crop_origins(mask: np.ndarray, size: int = 128) -> np.ndarray:
    """Top-left corners of every `size` x `size` window lying entirely inside `mask`.

    Counts non-mask pixels per window with a summed-area table, so the result is exact: a crop at a
    returned origin never contains a non-mask pixel.

    Parameters
    ----------
    mask : ndarray
        bool (H, W); True marks sample.
    size : int
        Crop side in pixels.

    Returns
    -------
    ndarray
        int64 (K, 2) of (row, col), in row-major order; (0, 2) when no window fits.
    """
    mask = _check_mask(mask)
    size = _check_size(size)
    height, width = mask.shape
    if size > height or size > width:
        return np.empty((0, 2), dtype=np.int64)
    table = np.zeros((height + 1, width + 1), dtype=np.int64)
    table[1:, 1:] = integral_image((~mask).astype(np.int64))
    outside = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    return np.argwhere(outside == 0).astype(np.int64)


def random_crops(
    rng: np.random.Generator | int | None,
    gt: np.ndarray,
    low: np.ndarray,
    mask: np.ndarray,
    *,
    size: int = 128,
    count: int = 1,
    augment: bool = True,
    origins: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw training crops of a registered pair where the whole crop is sample.

    Origins are drawn uniformly, with replacement, from :func:`valid_crop_origins`. With `augment`,
    each crop gets one of the 8 dihedral transforms (0-3 quarter turns, then optionally a left-right
    flip), the same for the GT crop and every frame of its burst.

    Parameters
    ----------
    rng : numpy.random.Generator, int or None
        Random source (an int seeds a new Generator).
    gt : ndarray
        (H, W) sharp image.
    low : ndarray
        (F, H, W) registered burst.
    mask : ndarray
        bool (H, W); True where crops may go (usually the eroded sample mask).
    size : int
        Crop side in pixels.
    count : int
        Number of crops (>= 1).
    augment : bool
        Apply random dihedral transforms.
    origins : ndarray, optional
        ``valid_crop_origins(mask, size)`` when the caller already has them (a training sampler
        draws from the same image many times); computed here otherwise.

    Returns
    -------
    gt_crops : ndarray
        (count, size, size), dtype of `gt`.
    low_crops : ndarray
        (count, F, size, size), dtype of `low`.

    Raises
    ------
    ValueError
        On shape mismatches, or when no `size` x `size` crop fits inside the mask.
    """
    gt, low = np.asarray(gt), np.asarray(low)
    mask = _check_mask(mask)
    size = _check_size(size)
    if gt.ndim != 2:
        raise ValueError(f"gt must be (H, W), got shape {gt.shape}")
    if low.ndim != 3:
        raise ValueError(f"low must be (F, H, W), got shape {low.shape}")
    if low.shape[1:] != gt.shape or mask.shape != gt.shape:
        raise ValueError(
            "gt (H, W), low (F, H, W) and mask (H, W) must share H, W; got gt "
            f"{gt.shape}, low {low.shape}, mask {mask.shape}"
        )
    if isinstance(count, bool) or int(count) != count or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    if origins is None:
        origins = valid_crop_origins(mask, size)
    if len(origins) == 0:
        raise ValueError(
            f"no {size} x {size} crop fits inside the sample mask of this {gt.shape[0]} x "
            f"{gt.shape[1]} image (mask covers {mask.mean():.1%}); use a smaller crop size or "
            "less erosion"
        )
    rng = np.random.default_rng(rng)
    picks = origins[rng.integers(0, len(origins), size=int(count))]
    gt_crops = np.empty((int(count), size, size), dtype=gt.dtype)
    low_crops = np.empty((int(count), low.shape[0], size, size), dtype=low.dtype)
    for i, (row, col) in enumerate(picks):
        g = gt[row : row + size, col : col + size]
        b = low[:, row : row + size, col : col + size]
        if augment:
            turns, flip = int(rng.integers(4)), bool(rng.integers(2))
            g, b = np.rot90(g, turns, axes=(-2, -1)), np.rot90(b, turns, axes=(-2, -1))
            if flip:
                g, b = g[..., ::-1], b[..., ::-1]
        gt_crops[i] = g
        low_crops[i] = b
    return gt_crops, low_crops


def evaluation_tiles(mask: np.ndarray, *, size: int = 128, keep_rows_fraction: float | None = None) -> np.ndarray:
    """Origins of the regular evaluation tiles of a validation/test image that are all sample.

    The image is tiled with stride `size` from (0, 0); partial tiles at the right and bottom edges are
    not used, and tiles touching any non-mask pixel are discarded, as in the paper.

    Parameters
    ----------
    mask : ndarray
        bool (H, W); True marks sample (not eroded).
    size : int
        Tile side in pixels.
    keep_rows_fraction : float or None
        In (0, 1]. The paper discarded the bottom half of each test/validation image because the
        high-quality fields of view overlap by 50 %; 0.5 keeps only tiles whose top row is
        < ceil(H * keep_rows_fraction). None keeps all rows.

    Returns
    -------
    ndarray
        int64 (K, 2) of (row, col), in row-major order; (0, 2) when no tile qualifies.
    """
    mask = _check_mask(mask)
    size = _check_size(size)
    if keep_rows_fraction is not None and not 0 < keep_rows_fraction <= 1:
        raise ValueError(f"keep_rows_fraction must be in (0, 1] or None, got {keep_rows_fraction}")
    height, width = mask.shape
    n_rows, n_cols = height // size, width // size
    full = mask[: n_rows * size, : n_cols * size].reshape(n_rows, size, n_cols, size).all(axis=(1, 3))
    origins = np.argwhere(full).astype(np.int64) * size
    if keep_rows_fraction is not None:
        # Round first so that e.g. 100 * 0.3 = 30.000000000000004 does not become 31.
        row_limit = math.ceil(round(height * keep_rows_fraction, 9))
        origins = origins[origins[:, 0] < row_limit]
    return origins


def largest_fitting_tile(
    masks: list[np.ndarray], *, below: int, step: int = 16, keep_rows_fraction: float | None = None
) -> int | None:
    """The largest evaluation tile side under `below` (a multiple of `step`) for which at least one of
    `masks` has a tile wholly on the sample (:func:`evaluation_tiles`), or None when not even `step`
    fits. For images too small or too barred for the tile asked for.

    Parameters
    ----------
    masks : list of ndarray
        bool (H, W) sample masks, one per image.
    below : int
        Tile side that found no tile, px; only smaller sides are tried.
    step : int
        Sides tried: the multiples of `step` below `below`, largest first.
    keep_rows_fraction : float or None
        As :func:`evaluation_tiles`.
    """
    for size in range((below - 1) // step * step, step - 1, -step):
        if any(len(evaluation_tiles(m, size=size, keep_rows_fraction=keep_rows_fraction)) for m in masks):
            return size
    return None
