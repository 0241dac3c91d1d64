"""Intensity windows, sample masks, training crops and evaluation tiles.

Implements the *Data* section of Wieslander et al. (PLOS ONE 2021): raw uint16 counts are mapped to
[0, 1] by a per-dataset window whose minimum sends the black support-grid bars to 0 while dark sample
keeps some contrast and whose maximum sits slightly above the brightest sample; the sample mask is the
windowed image thresholded at 0; training crops are drawn where the (eroded) mask allows a whole crop,
and validation/test images are tiled regularly, dropping tiles that touch the grid.

Images are indexed (row, col) = (y, x); bursts are (frame, row, col). Intensities are detector counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.transform import integral_image

__all__ = [
    "IntensityWindow",
    "suggest_window",
    "apply_window",
    "sample_mask",
    "valid_crop_origins",
    "random_crops",
    "evaluation_tiles",
]

# Grid-bar detection. The bars are metal, so they read the detector offset plus read noise: a narrow
# population far below all sample intensities. A dark class of an Otsu split counts as bars only if
#  - it is sizeable (a few stray dark pixels are better handled by the low percentile),
_BAR_MIN_FRACTION = 0.005
_BAR_MIN_COUNT = 50
#  - its upper flank is empty: pixels in (m + 3s, m + 6s] are few compared with the core [m - 3s, m + 3s]
#    (m, s = robust centre and spread). A slice of a continuous sample distribution fails this, while
#    motion-blurred bar edges, which spread thinly over the whole gap, do not break it,
_BAR_MAX_FLANK_RATIO = 0.05
#  - and it is dark relative to the sample, so that a dark, well separated sample phase (stained
#    nuclei, shadowed replica squares) is never mistaken for grid and flattened to 0.
_BAR_MAX_RELATIVE_LEVEL = 0.1
# While no bars are found, Otsu splits the lower class again, so a small bar population that the first
# split lumped with dark sample is still isolated. The size checks normally end this well before the cap.
_BAR_MAX_SPLITS = 12
# Share of the bar population that must map to exactly 0.
_BAR_PERCENTILE = 99.99
# 1.4826 * MAD estimates the standard deviation of Gaussian read noise.
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class IntensityWindow:
    """Linear map from detector counts to [0, 1].

    Parameters
    ----------
    low : float
        Counts mapped to 0 (and everything below, after clipping).
    high : float
        Counts mapped to 1 (and everything above). Must be finite and greater than `low`.
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        try:
            low, high = float(self.low), float(self.high)
        except (TypeError, ValueError):
            raise ValueError(
                f"IntensityWindow needs numbers, got low={self.low!r}, high={self.high!r}"
            ) from None
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"IntensityWindow bounds must be finite, got low={low}, high={high}")
        if not high > low:
            raise ValueError(f"IntensityWindow needs high > low, got low={low}, high={high}")
        # Store plain floats so that equality, hashing and JSON do not depend on numpy scalar types.
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def to_dict(self) -> dict:
        """Return ``{"low": float, "high": float}``, ready for JSON."""
        return {"low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, d: dict) -> IntensityWindow:
        """Build a window from the mapping written by :meth:`to_dict`.

        Raises
        ------
        ValueError
            If keys are missing or unexpected, or the values are not a valid window.
        """
        keys = set(d)
        if keys != {"low", "high"}:
            raise ValueError(
                f"IntensityWindow dict needs exactly the keys 'high' and 'low', got {sorted(keys)}"
            )
        return cls(low=d["low"], high=d["high"])


def _sample_values(
    images: Iterable[np.ndarray], max_pixels: int, rng: np.random.Generator
) -> np.ndarray:
    """Nonzero values of `images`, at most `max_pixels` drawn uniformly over all pixels."""
    if isinstance(images, np.ndarray):
        images = [images]
    arrays = [np.asarray(a) for a in images]
    if not arrays:
        raise ValueError("suggest_window needs at least one image, got an empty iterable")
    for i, a in enumerate(arrays):
        if a.ndim not in (2, 3):
            raise ValueError(
                f"image {i} must be (H, W) or (F, H, W), got shape {a.shape} (ndim {a.ndim})"
            )
    total = sum(a.size for a in arrays)
    parts = []
    for a in arrays:
        if total <= max_pixels:
            values = a.ravel()
        else:
            # Random (not strided) positions, so periodic specimens such as gratings do not alias;
            # drawn with replacement so a huge stream never needs an index permutation in memory.
            n = int(max_pixels * a.size // total)
            flat = rng.integers(0, a.size, size=n)
            values = a[np.unravel_index(flat, a.shape)]
        parts.append(values.astype(np.float64))
    values = np.concatenate(parts)
    if not np.all(np.isfinite(values)):
        raise ValueError("suggest_window got NaN or infinite intensities")
    # Exact zeros are the padding where registered frames did not overlap, not image content.
    values = values[values != 0]
    if values.size == 0:
        raise ValueError("suggest_window found no nonzero pixels (all padding?)")
    return values


def _robust_centre_spread(values: np.ndarray) -> tuple[float, float]:
    centre = float(np.median(values))
    spread = _MAD_TO_SIGMA * float(np.median(np.abs(values - centre)))
    return centre, spread


def _bar_population(values: np.ndarray) -> np.ndarray | None:
    """The grid-bar intensities among `values`, or None when no clear bar population exists."""
    candidate = values
    for _ in range(_BAR_MAX_SPLITS):
        if candidate.min() == candidate.max():
            return None
        threshold = threshold_otsu(candidate)
        dark = candidate[candidate <= threshold]
        if dark.size < max(_BAR_MIN_COUNT, _BAR_MIN_FRACTION * values.size):
            return None
        centre, spread = _robust_centre_spread(dark)
        # Noise-free bars have zero spread; a floor far below one count keeps the windows well defined.
        spread = max(spread, 1e-6 * max(abs(centre), 1.0))
        core = np.count_nonzero(np.abs(values - centre) <= 3 * spread)
        flank = np.count_nonzero((values > centre + 3 * spread) & (values <= centre + 6 * spread))
        above = values[values > centre + 6 * spread]
        if (
            above.size
            and flank <= _BAR_MAX_FLANK_RATIO * core
            and centre <= _BAR_MAX_RELATIVE_LEVEL * float(np.median(above))
        ):
            return dark[dark <= centre + 6 * spread]
        candidate = dark
    return None


def suggest_window(
    images: Iterable[np.ndarray],
    *,
    high_percentile: float = 99.9,
    headroom: float = 0.02,
    max_pixels: int = 2_000_000,
    rng: np.random.Generator | int | None = None,
    low_percentile: float = 0.1,
) -> IntensityWindow:
    """Suggest the intensity window of one image kind (GT or Low) of a dataset.

    The paper set the window by hand per dataset: the minimum so that "the black regions between grid
    cells become zero but dark regions within the sample still maintained some intensity variations",
    the maximum "slightly above" the brightest sample. This automates that as a starting point the
    user can override:

    * ``low``: when the data hold a clearly separated, sizeable dark population (the grid bars at the
      detector offset, found by repeated Otsu splits of the lower class), its 99.99th percentile, so the
      bars map to exactly 0 and all sample above them keeps its contrast. Without bars, the
      `low_percentile` of the data.
    * ``high``: the `high_percentile` of the data plus `headroom` times (that percentile - ``low``),
      so the brightest sample sits just below 1 and only hot pixels saturate.

    Parameters
    ----------
    images : iterable of ndarray, or one ndarray
        Images of one kind, each (H, W) or (F, H, W), any real dtype, in counts. Exact zeros are
        registration padding and are ignored.
    high_percentile : float
        Percentile (0-100) of the data taken as the brightest sample.
    headroom : float
        Fraction of the range added above `high_percentile`; >= 0.
    max_pixels : int
        At most this many pixels are drawn, uniformly at random over all images, so huge streams are
        never concatenated.
    rng : numpy.random.Generator, int or None
        Source of the subsample; None uses seed 0, so the suggestion is reproducible.
    low_percentile : float
        Percentile (0-100) used as ``low`` when no grid bars are present.

    Returns
    -------
    IntensityWindow

    Raises
    ------
    ValueError
        For empty input, wrong dimensionality, NaN/inf, all-zero data, or data with a single value.
    """
    if not 0 <= low_percentile < high_percentile <= 100:
        raise ValueError(
            "need 0 <= low_percentile < high_percentile <= 100, got "
            f"low_percentile={low_percentile}, high_percentile={high_percentile}"
        )
    if not (math.isfinite(headroom) and headroom >= 0):
        raise ValueError(f"headroom must be finite and >= 0, got {headroom}")
    if int(max_pixels) < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    values = _sample_values(images, int(max_pixels), np.random.default_rng(0 if rng is None else rng))
    if values.min() == values.max():
        raise ValueError(
            f"all nonzero intensities equal {values.min()}; no window can be derived from them"
        )
    bars = _bar_population(values)
    if bars is not None:
        low = float(np.percentile(bars, _BAR_PERCENTILE))
    else:
        low = float(np.percentile(values, low_percentile))
    top = float(np.percentile(values, high_percentile))
    if top <= low:
        # Percentiles collapse when most pixels share one value; fall back to the full data range.
        top = float(values.max())
    return IntensityWindow(low=low, high=top + headroom * (top - low))


def apply_window(
    image: np.ndarray, window: IntensityWindow, *, quantize_8bit: bool = False
) -> np.ndarray:
    """Map counts to [0, 1]: ``clip((x - low) / (high - low), 0, 1)``.

    Parameters
    ----------
    image : ndarray
        Any shape, any real dtype, in counts.
    window : IntensityWindow
    quantize_8bit : bool
        Round to the 256 levels k / 255, as the paper did when it stored the data as 8 bits.

    Returns
    -------
    ndarray
        float32, same shape as `image`, values in [0, 1].

    Raises
    ------
    ValueError
        If `image` contains NaN.
    """
    if not isinstance(window, IntensityWindow):
        raise ValueError(f"window must be an IntensityWindow, got {type(window).__name__}")
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise ValueError(f"image must be real-valued, got dtype {image.dtype}")
    if image.dtype.kind == "f" and np.isnan(image).any():
        raise ValueError("image contains NaN; apply_window cannot map it to an intensity")
    # float32 holds every uint16 count exactly and halves the memory of a float64 stream.
    out = (image.astype(np.float32) - np.float32(window.low)) / np.float32(window.high - window.low)
    np.clip(out, 0.0, 1.0, out=out)
    if quantize_8bit:
        out = np.round(out * np.float32(255)) / np.float32(255)
    return out


def sample_mask(
    windowed: np.ndarray,
    *,
    erosion_radius: int = 0,
    iterations: int = 1,
    min_hole_px: int = 64,
    min_island_px: int = 64,
) -> np.ndarray:
    """Boolean mask of the sample (grid-cell content) in a windowed image.

    A pixel is sample where it is above the window minimum (> 0 after :func:`apply_window`), as in the
    paper. Then, so that read noise does not change the mask's shape:

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
        raise ValueError(
            f"windowed must be (H, W) or (F, H, W), got shape {windowed.shape} (ndim {windowed.ndim})"
        )
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
    outside = (
        table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    )
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


def evaluation_tiles(
    mask: np.ndarray, *, size: int = 128, keep_rows_fraction: float | None = None
) -> np.ndarray:
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
