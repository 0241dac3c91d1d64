"""Tests for napari_temdeblur.core.preprocess (intensity windows, masks, crops, tiles)."""

import json
import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import disk

from napari_temdeblur.core.preprocess import (
    IntensityWindow,
    apply_window,
    evaluation_tiles,
    random_crops,
    sample_mask,
    suggest_window,
    valid_crop_origins,
)

BAR_LEVEL, READ_NOISE = 100.0, 30.0


def synthetic_tem(
    rng, *, shape=(256, 960), bar_rows=(0, 48), low=3000.0, high=16000.0, pad_cols=40, blur_rows=0
):
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
    [(5.0, 5.0, "high > low.*low=5.0, high=5.0"), (9.0, 2.0, "low=9.0, high=2.0"),
     (math.nan, 1.0, "finite.*low=nan"), (0.0, math.inf, "finite.*high=inf")],
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
    images, bar_masks = zip(
        *(synthetic_tem(rng, low=3000 * scale, high=16000 * scale) for _ in range(3))
    )
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
    [([], "at least one image"), ([np.ones(10)], r"shape \(10,\)"),
     ([np.zeros((4, 4))], "no nonzero"), ([np.full((4, 4), np.nan)], "NaN"),
     ([np.full((4, 4), 7.0)], "equal 7.0")],
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


# ---------------------------------------------------------------- sample_mask


def test_mask_fills_small_holes_only():
    windowed = np.zeros((100, 100), np.float32)
    windowed[10:90, 10:100] = 0.5
    windowed[20, 20] = windowed[30, 31] = 0  # dark noise inside the sample
    windowed[40:47, 40:49] = 0  # 63 px: still noise at min_hole_px=64
    windowed[50:58, 50:58] = 0  # 64 px dark structure: a real hole
    windowed[60:62, 98:100] = 0  # 4 px dark spot on the image edge: noise too
    windowed[10:13, 70:73] = 0  # a notch open to the 2000 px of bar above: part of the bar
    mask = sample_mask(windowed, min_hole_px=64)
    assert mask[20, 20] and mask[30, 31] and mask[40:47, 40:49].all() and mask[60:62, 98:].all()
    assert not mask[50:58, 50:58].any()
    assert not mask[10:13, 70:73].any()
    assert mask.sum() == 80 * 90 - 64 - 9


def test_mask_removes_small_islands_and_requires_all_frames():
    windowed = np.zeros((2, 60, 60), np.float32)
    windowed[:, 5:55, 5:30] = 0.4
    windowed[:, 2, 40] = 0.9  # bright noise pixel in the bar
    windowed[:, 0:8, 50:58] = 0.9  # 64 px bright bar feature: kept at min_island_px=64
    windowed[1, 5:55, 5:8] = 0  # padding of one frame
    mask = sample_mask(windowed)
    expected = np.zeros((60, 60), bool)
    expected[5:55, 8:30] = True
    expected[0:8, 50:58] = True
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(("radius", "iterations"), [(3, 1), (5, 2)])
def test_erosion_shrinks_square_by_radius(radius, iterations):
    windowed = np.zeros((80, 90), np.float32)
    windowed[20:60, 25:75] = 1.0
    mask = sample_mask(windowed, erosion_radius=radius, iterations=iterations)
    shrink = radius * iterations
    expected = np.zeros_like(mask)
    expected[20 + shrink : 60 - shrink, 25 + shrink : 75 - shrink] = True
    np.testing.assert_array_equal(mask, expected)


def test_erosion_equals_disk_erosion_and_ignores_image_border():
    rng = np.random.default_rng(6)
    for _ in range(5):
        windowed = ndi.gaussian_filter(rng.random((70, 90)), 3) > 0.5
        mask = sample_mask(windowed.astype(np.float32), erosion_radius=4, iterations=2,
                           min_hole_px=0, min_island_px=0)
        # Outside the image counts as sample (border_value=1): only non-sample pixels erode.
        expected = ndi.binary_erosion(windowed, disk(4), iterations=2, border_value=1)
        np.testing.assert_array_equal(mask, expected)
    assert sample_mask(np.ones((20, 20)), erosion_radius=5).all()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"windowed": np.ones(5)}, r"shape \(5,\)"),
     ({"windowed": np.ones((5, 5)), "erosion_radius": -1}, "erosion_radius.*-1"),
     ({"windowed": np.ones((5, 5)), "iterations": 0}, "iterations.*0")],
)
def test_mask_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        sample_mask(**kwargs)


# ---------------------------------------------------------------- crops


def random_blob_mask(rng, shape):
    return ndi.gaussian_filter(rng.random(shape), rng.uniform(1, 4)) > rng.uniform(0.45, 0.52)


def test_valid_crop_origins_match_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(60):
        shape = tuple(rng.integers(5, 40, size=2))
        mask = random_blob_mask(rng, shape)
        size = int(rng.integers(1, 8))
        expected = [
            (r, c)
            for r in range(shape[0] - size + 1)
            for c in range(shape[1] - size + 1)
            if mask[r : r + size, c : c + size].all()
        ]
        origins = valid_crop_origins(mask, size)
        assert origins.shape == (len(expected), 2) and origins.dtype == np.int64
        assert [tuple(o) for o in origins] == expected


def test_valid_crop_origins_empty_when_nothing_fits():
    assert valid_crop_origins(np.ones((10, 10), bool), 11).shape == (0, 2)
    assert valid_crop_origins(np.zeros((10, 10), bool), 1).shape == (0, 2)
    with pytest.raises(ValueError, match="size.*0"):
        valid_crop_origins(np.ones((10, 10), bool), 0)


def test_random_crops_never_contain_non_mask_pixels():
    rng = np.random.default_rng(8)
    for _ in range(20):
        mask = random_blob_mask(rng, (48, 64))
        if not len(valid_crop_origins(mask, 6)):
            continue
        gt = np.where(mask, 1.0, -1.0)
        low = np.stack([gt, 2 * gt, 3 * gt])
        gt_crops, low_crops = random_crops(rng, gt, low, mask, size=6, count=30)
        assert gt_crops.shape == (30, 6, 6) and low_crops.shape == (30, 3, 6, 6)
        assert (gt_crops == 1).all() and (low_crops > 0).all()


def dihedral(a):
    """The 8 flips/rotations of the last two axes."""
    rotations = [np.rot90(a, k, axes=(-2, -1)) for k in range(4)]
    return rotations + [r[..., ::-1] for r in rotations]


def test_augmentation_transforms_gt_and_every_frame_identically():
    rng = np.random.default_rng(9)
    gt = rng.random((30, 40)).astype(np.float32)
    low = np.stack([gt * (k + 1) + k for k in range(4)])  # frame k is a known function of GT
    mask = np.zeros(gt.shape, bool)
    mask[5:13, 7:15] = True  # exactly one 8 x 8 origin, so every crop shows the same region
    region = gt[5:13, 7:15]
    gt_crops, low_crops = random_crops(np.random.default_rng(0), gt, low, mask, size=8, count=200)
    seen = set()
    for g, frames in zip(gt_crops, low_crops):
        matches = [i for i, t in enumerate(dihedral(region)) if np.array_equal(g, t)]
        assert len(matches) == 1
        seen.add(matches[0])
        for k, frame in enumerate(frames):
            np.testing.assert_allclose(frame, g * (k + 1) + k)
    assert seen == set(range(8))
    plain_gt, plain_low = random_crops(0, gt, low, mask, size=8, count=3, augment=False)
    assert all(np.array_equal(g, region) for g in plain_gt)
    np.testing.assert_array_equal(plain_low[0], low[:, 5:13, 7:15])


def test_random_crops_are_reproducible_and_keep_dtype():
    gt = np.arange(400, dtype=np.uint16).reshape(20, 20)
    low = np.stack([gt, gt])
    mask = np.ones(gt.shape, bool)
    a = random_crops(np.random.default_rng(3), gt, low, mask, size=5, count=4)
    b = random_crops(np.random.default_rng(3), gt, low, mask, size=5, count=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].dtype == np.uint16 and a[1].dtype == np.uint16


@pytest.mark.parametrize(
    ("gt_shape", "low_shape", "mask_shape", "kwargs", "pattern"),
    [((20, 30), (3, 20, 30), (20, 30), {"size": 25}, "25 x 25 crop.*20 x 30 image"),
     ((20, 30), (3, 20, 31), (20, 30), {}, r"low \(3, 20, 31\)"),
     ((20, 30), (20, 30), (20, 30), {}, r"low must be \(F, H, W\)"),
     ((20, 30), (3, 20, 30), (20, 29), {}, r"mask \(20, 29\)"),
     ((20, 30), (3, 20, 30), (20, 30), {"count": 0, "size": 4}, "count.*0")],
)
def test_random_crops_errors(gt_shape, low_shape, mask_shape, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        random_crops(0, np.zeros(gt_shape), np.zeros(low_shape), np.ones(mask_shape, bool), **kwargs)


# ---------------------------------------------------------------- evaluation tiles


def brute_force_tiles(mask, size, row_limit=None):
    height, width = mask.shape
    return [
        (r, c)
        for r in range(0, height - size + 1, size)
        for c in range(0, width - size + 1, size)
        if mask[r : r + size, c : c + size].all() and (row_limit is None or r < row_limit)
    ]


def test_evaluation_tiles_match_brute_force():
    rng = np.random.default_rng(10)
    for _ in range(40):
        shape = tuple(rng.integers(8, 60, size=2))
        mask = random_blob_mask(rng, shape) | (rng.random() < 0.3)
        size = int(rng.integers(1, 9))
        fraction = [None, 0.5, 0.3, 1.0][rng.integers(4)]
        limit = None if fraction is None else math.ceil(round(shape[0] * fraction, 9))
        tiles = evaluation_tiles(mask, size=size, keep_rows_fraction=fraction)
        assert tiles.dtype == np.int64 and tiles.shape[1] == 2
        assert [tuple(t) for t in tiles] == brute_force_tiles(mask, size, limit)


def test_evaluation_tiles_paper_layout():
    mask = np.ones((280, 1000), bool)
    mask[:, 600:610] = False  # a grid bar crossing tile column 4 (cols 512-639)
    tiles = evaluation_tiles(mask, size=128)
    # 2 full tile rows x 7 full tile columns; the partial row/column at the edges is not used.
    assert len(tiles) == 2 * 7 - 2
    assert not any(c == 512 for _, c in tiles)
    top = evaluation_tiles(mask, size=128, keep_rows_fraction=0.5)
    # ceil(280 * 0.5) = 140, so tiles starting at rows 0 and 128 are kept, none below.
    assert set(top[:, 0]) == {0, 128}
    assert set(evaluation_tiles(np.ones((256, 256), bool), size=128, keep_rows_fraction=0.5)[:, 0]) == {0}


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"mask": np.ones((4, 4, 4))}, r"mask must be \(H, W\).*\(4, 4, 4\)"),
     ({"mask": np.ones((4, 4)), "size": 0}, "size.*0"),
     ({"mask": np.ones((4, 4)), "keep_rows_fraction": 0.0}, "keep_rows_fraction.*0.0"),
     ({"mask": np.ones((4, 4)), "keep_rows_fraction": 1.5}, "keep_rows_fraction.*1.5")],
)
def test_evaluation_tiles_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        evaluation_tiles(**kwargs)
