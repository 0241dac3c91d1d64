"""Intensity windows: map raw detector counts to [0, 1].

Implements the windowing of the *Data* section of Wieslander et al. (PLOS ONE 2021): raw uint16 counts
are mapped to [0, 1] by a per-dataset window whose minimum sends the black support-grid bars to 0 while
dark sample keeps some contrast and whose maximum sits slightly above the brightest sample.

Images are indexed (row, col) = (y, x); bursts are (frame, row, col). Intensities are detector counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

__all__ = ["IntensityWindow", "suggest_window", "apply_window", "matching_window"]

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
            raise ValueError(f"IntensityWindow needs numbers, got low={self.low!r}, high={self.high!r}") from None
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
            raise ValueError(f"IntensityWindow dict needs exactly the keys 'high' and 'low', got {sorted(keys)}")
        return cls(low=d["low"], high=d["high"])


def _sample_values(images: Iterable[np.ndarray], max_pixels: int, rng: np.random.Generator) -> np.ndarray:
    """Nonzero values of `images`, at most `max_pixels` drawn uniformly over all pixels."""
    if isinstance(images, np.ndarray):
        images = [images]
    arrays = [np.asarray(a) for a in images]
    if not arrays:
        raise ValueError("suggest_window needs at least one image, got an empty iterable")
    for i, a in enumerate(arrays):
        if a.ndim not in (2, 3):
            raise ValueError(f"image {i} must be (H, W) or (F, H, W), got shape {a.shape} (ndim {a.ndim})")
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
        raise ValueError(f"all nonzero intensities equal {values.min()}; no window can be derived from them")
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


#: Deciles (10th .. 90th percentile) compared by :func:`matching_window`: the tails hold noise and
#: hot pixels, the deciles the specimen.
_MATCH_QUANTILES = np.linspace(0.1, 0.9, 9)


def matching_window(
    image: np.ndarray, reference: np.ndarray, reference_window: IntensityWindow, *, smooth_px: float = 1.5
) -> IntensityWindow:
    """The window under which `image` looks like `reference` under `reference_window`.

    For an overlay of two acquisitions of one field (a noisy stream frame over an HQ image): where
    they show the same specimen, both should reach their colormaps at the same level, so matching
    structure looks neutral (green + magenta = grey). Detector counts of the two differ by a gain and
    an offset (dose, exposure); these are fitted by least squares between the deciles of the two
    images, both smoothed alike first so that the stream's shot noise does not widen its deciles.

    Parameters
    ----------
    image, reference : numpy.ndarray
        (H, W) each, counts, the same field of view on the same pixel grid (a shift of a few pixels
        changes the deciles little).
    reference_window : IntensityWindow
        How `reference` is shown.
    smooth_px : float
        Gaussian sigma applied to both, pixels.

    Returns
    -------
    IntensityWindow
        ``gain * reference_window + offset``.

    Raises
    ------
    ValueError
        When the images are not 2-D or hold no contrast to match (e.g. blank).
    """
    image, reference = (np.asarray(a, np.float32) for a in (image, reference))
    if image.ndim != 2 or reference.ndim != 2:
        raise ValueError(f"matching_window needs two (H, W) images, got {image.shape} and {reference.shape}")
    levels = [np.quantile(ndimage.gaussian_filter(a, smooth_px), _MATCH_QUANTILES) for a in (image, reference)]
    if min(np.ptp(levels[0]), np.ptp(levels[1])) <= 0:
        raise ValueError("the images hold no common contrast to match their intensities on")
    gain, offset = np.polyfit(levels[1], levels[0], 1)
    if not (math.isfinite(gain) and gain > 0):
        raise ValueError("the images hold no common contrast to match their intensities on")
    return IntensityWindow(gain * reference_window.low + offset, gain * reference_window.high + offset)


def apply_window(image: np.ndarray, window: IntensityWindow, *, quantize_8bit: bool = False) -> np.ndarray:
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
    # float32 holds every uint16 count exactly and halves the memory of a float64 stream; in place, so a
    # large burst needs one float copy, not three at once (the same float32 operations, the same values).
    out = image.astype(np.float32)
    out -= np.float32(window.low)
    out /= np.float32(window.high - window.low)
    np.clip(out, 0.0, 1.0, out=out)
    if quantize_8bit:
        out = np.round(out * np.float32(255)) / np.float32(255)
    return out
