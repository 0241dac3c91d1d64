"""Intensity windows of napari_temdeblur.core.imaging: suggestion, application, round trip."""

import json
import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_temdeblur.core.imaging import IntensityWindow, apply_window, suggest_window

BAR_LEVEL, READ_NOISE = 100.0, 30.0


def synthetic_tem(rng, *, shape=(256, 960), bar_rows=(0, 48), low=3000.0, high=16000.0, pad_cols=40, blur_rows=0):
    """uint16 image: smooth sample in [low, high] with shot + read noise, optional grid bar and padding.

    Returns the image and the boolean bar mask. Sample counts are shot-noise limited (variance equal
    to the signal above the detector offset); the bar is the offset with Gaussian read noise only.
    `blur_rows` smears the scene along the rows like the stream's vertical motion blur.
    """
    smooth = ndi.gaussian_filter(rng.random(shape), 6)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    clean = low + (high - low) * smooth
    bars = np.zeros(shape, bool)
    if bar_rows is not None:
        bars[bar_rows[0] : bar_rows[1]] = True
    clean[bars] = BAR_LEVEL
    if blur_rows:
        clean = ndi.uniform_filter1d(clean, blur_rows, axis=0)
    signal = np.maximum(clean - BAR_LEVEL, 0)
    noisy = clean + np.sqrt(signal) * rng.standard_normal(shape) + READ_NOISE * rng.standard_normal(shape)
    # 1 rather than 0 so that only the deliberate padding is exactly zero.
    image = np.clip(np.round(noisy), 1, 65535).astype(np.uint16)
    if pad_cols:
        image[:, -pad_cols:] = 0
    return image, bars


# ---------------------------------------------------------------- IntensityWindow


def test_window_round_trip_through_json():
    window = IntensityWindow(low=np.float64(212.5), high=np.uint16(15000))
    again = IntensityWindow.from_dict(json.loads(json.dumps(window.to_dict())))
    assert again == window
    assert type(again.low) is float and type(again.high) is float


@pytest.mark.parametrize(
    ("low", "high", "pattern"),
    [
        (5.0, 5.0, "high > low.*low=5.0, high=5.0"),
        (9.0, 2.0, "low=9.0, high=2.0"),
        (math.nan, 1.0, "finite.*low=nan"),
        (0.0, math.inf, "finite.*high=inf"),
    ],
)
def test_window_rejects_invalid_bounds(low, high, pattern):
    with pytest.raises(ValueError, match=pattern):
        IntensityWindow(low=low, high=high)


def test_window_from_dict_names_wrong_keys():
    with pytest.raises(ValueError, match=r"\['low'\]"):
        IntensityWindow.from_dict({"low": 1.0})
    with pytest.raises(ValueError, match="gamma"):
        IntensityWindow.from_dict({"low": 1.0, "high": 2.0, "gamma": 1.0})


# ---------------------------------------------------------------- suggest_window


@pytest.mark.parametrize("scale", [1.0, 0.3], ids=["GT-like", "Low-like"])
def test_suggested_window_zeroes_bars_and_keeps_dark_sample(scale):
    rng = np.random.default_rng(0)
    images, bar_masks = zip(*(synthetic_tem(rng, low=3000 * scale, high=16000 * scale) for _ in range(3)))
    window = suggest_window(images)
    for image, bars in zip(images, bar_masks):
        scaled = apply_window(image, window)
        sample = ~bars & (image > 0)
        assert np.mean(scaled[bars] == 0) > 0.999
        assert np.all(scaled[sample] > 0)
        # The maximum sits slightly above the brightest sample: almost nothing saturates...
        assert np.mean(scaled[sample] == 1) < 0.002
    # ...and the headroom is small, so the sample still uses most of [0, 1].
    all_sample = np.concatenate([im[~b & (im > 0)] for im, b in zip(images, bar_masks)])
    assert window.high < all_sample.max() * 1.1
    assert window.low < 300


def test_motion_blurred_bar_edges_do_not_hide_the_bars():
    rng = np.random.default_rng(11)
    blur = 15
    image, bars = synthetic_tem(rng, low=900, high=4800, blur_rows=blur)
    scaled = apply_window(image, suggest_window([image]))
    # The blur mixes bar and sample within blur // 2 rows of the edge; judge only the rows beyond.
    inner_bar = ndi.binary_erosion(bars, np.ones((blur, 1)), border_value=1)
    inner_sample = ndi.binary_erosion(~bars, np.ones((blur, 1)), border_value=1) & (image > 0)
    assert np.mean(scaled[inner_bar] == 0) > 0.999
    assert np.all(scaled[inner_sample] > 0)


def test_no_bars_low_is_a_low_percentile_of_the_sample():
    rng = np.random.default_rng(1)
    image, _ = synthetic_tem(rng, bar_rows=None)
    window = suggest_window([image])
    sample = image[image > 0]
    scaled = apply_window(sample, window)
    # Not pulled down to a non-existent bar level: dark sample keeps its variation...
    assert window.low > np.percentile(sample, 0.01)
    # ...and only the darkest ~0.1 % of the sample (plus rounding) maps to 0.
    assert 0 < np.mean(scaled == 0) < 0.003
    # Without subsampling the documented formulas hold exactly.
    assert window.low == np.percentile(sample, 0.1)
    top = np.percentile(sample, 99.9)
    assert window.high == pytest.approx(top + 0.02 * (top - window.low))
    assert suggest_window([image], headroom=0.0).high == pytest.approx(top)


def test_dark_sample_phase_is_not_mistaken_for_bars():
    # A narrow, well separated dark phase at 30 % of the bright level is sample, not grid.
    rng = np.random.default_rng(2)
    clean = np.where(rng.random((200, 800)) < 0.3, 2400.0, 8000.0)
    image = np.round(clean + np.sqrt(clean) * rng.standard_normal(clean.shape)).astype(np.uint16)
    scaled = apply_window(image, suggest_window([image]))
    dark = scaled[clean == 2400]
    assert np.mean(dark == 0) < 0.01
    assert np.std(dark) > 0.005


def test_small_bar_population_is_still_found():
    # Bars on 2 % of the pixels hide inside the dark half after the first Otsu split.
    rng = np.random.default_rng(3)
    image, bars = synthetic_tem(rng, bar_rows=(0, 5), pad_cols=0)
    scaled = apply_window(image, suggest_window([image]))
    assert np.mean(scaled[bars] == 0) > 0.999
    assert np.all(scaled[~bars] > 0)


def test_padding_is_ignored_and_bursts_are_accepted():
    rng = np.random.default_rng(4)
    image, _ = synthetic_tem(rng, pad_cols=0)
    padded = np.zeros((image.shape[0] + 30, image.shape[1]), image.dtype)
    padded[30:] = image
    assert suggest_window([padded]) == suggest_window([image])
    other = synthetic_tem(rng)[0]
    assert suggest_window([np.stack([image, other])]) == suggest_window([image, other])
    assert suggest_window(image) == suggest_window([image])


def test_subsampling_is_deterministic_and_representative():
    rng = np.random.default_rng(5)
    images = [synthetic_tem(rng)[0] for _ in range(4)]
    full = suggest_window(images)
    sub = suggest_window(images, max_pixels=100_000)
    assert sub == suggest_window(images, max_pixels=100_000)
    assert sub != suggest_window(images, max_pixels=100_000, rng=7)
    assert abs(sub.low - full.low) < 30
    assert abs(sub.high - full.high) < 0.02 * full.high


@pytest.mark.parametrize(
    ("images", "pattern"),
    [
        ([], "at least one image"),
        ([np.ones(10)], r"shape \(10,\)"),
        ([np.zeros((4, 4))], "no nonzero"),
        ([np.full((4, 4), np.nan)], "NaN"),
        ([np.full((4, 4), 7.0)], "equal 7.0"),
    ],
)
def test_suggest_window_errors(images, pattern):
    with pytest.raises(ValueError, match=pattern):
        suggest_window(images)


# ---------------------------------------------------------------- apply_window


def test_apply_window_is_linear_clipped_float32_any_shape():
    window = IntensityWindow(100, 1100)
    image = np.array([[[0, 100, 350], [600, 1100, 60000]]], dtype=np.uint16)
    out = apply_window(image, window)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out.ravel(), [0, 0, 0.25, 0.5, 1, 1])


def test_apply_window_8bit_levels():
    window = IntensityWindow(0, 1000)
    image = np.linspace(-50, 1050, 10_001)
    exact = apply_window(image, window)
    quantized = apply_window(image, window, quantize_8bit=True)
    levels = quantized * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
    assert len(np.unique(quantized)) == 256
    assert np.max(np.abs(quantized - exact)) <= 0.5 / 255 + 1e-6


def test_apply_window_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        apply_window(np.array([1.0, np.nan]), IntensityWindow(0, 1))


def test_matching_window_recovers_gain_and_offset_through_noise():
    """A stream frame is the HQ field times a gain plus an offset, plus shot noise: the window that
    shows it like the HQ image is the HQ window through the same gain and offset."""
    from scipy import ndimage

    from napari_temdeblur.core.imaging import matching_window

    rng = np.random.default_rng(3)
    field = ndimage.gaussian_filter(rng.uniform(0, 1, (256, 256)), 4)
    reference = 1000 + 8000 * (field - field.min()) / np.ptp(field)
    image = 0.3 * reference + 250 + rng.normal(0, 150, reference.shape)
    window = matching_window(image, reference, IntensityWindow(2000.0, 8000.0))
    np.testing.assert_allclose((window.low, window.high), (0.3 * 2000 + 250, 0.3 * 8000 + 250), rtol=0.03)
    with pytest.raises(ValueError, match="no common contrast"):
        matching_window(np.full((64, 64), 7.0), reference[:64, :64], window)
