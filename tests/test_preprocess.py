"""Sample masks, crops and evaluation tiles of napari_temdeblur.core.imaging."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import disk

from napari_temdeblur.core.imaging import (
    evaluation_tiles,
    largest_fitting_tile,
    random_crops,
    sample_mask,
    valid_crop_origins,
)

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
        mask = sample_mask(windowed.astype(np.float32), erosion_radius=4, iterations=2, min_hole_px=0, min_island_px=0)
        # Outside the image counts as sample (border_value=1): only non-sample pixels erode.
        expected = ndi.binary_erosion(windowed, disk(4), iterations=2, border_value=1)
        np.testing.assert_array_equal(mask, expected)
    assert sample_mask(np.ones((20, 20)), erosion_radius=5).all()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"windowed": np.ones(5)}, r"shape \(5,\)"),
        ({"windowed": np.ones((5, 5)), "erosion_radius": -1}, "erosion_radius.*-1"),
        ({"windowed": np.ones((5, 5)), "iterations": 0}, "iterations.*0"),
    ],
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
    # origins computed once by the caller (the training sampler) give the very same crops
    mask[:, :3] = False
    origins = valid_crop_origins(mask, 5).astype(np.int32)
    c = random_crops(np.random.default_rng(3), gt, low, mask, size=5, count=4)
    d = random_crops(np.random.default_rng(3), gt, low, mask, size=5, count=4, origins=origins)
    np.testing.assert_array_equal(c[0], d[0])
    np.testing.assert_array_equal(c[1], d[1])


@pytest.mark.parametrize(
    ("gt_shape", "low_shape", "mask_shape", "kwargs", "pattern"),
    [
        ((20, 30), (3, 20, 30), (20, 30), {"size": 25}, "25 x 25 crop.*20 x 30 image"),
        ((20, 30), (3, 20, 31), (20, 30), {}, r"low \(3, 20, 31\)"),
        ((20, 30), (20, 30), (20, 30), {}, r"low must be \(F, H, W\)"),
        ((20, 30), (3, 20, 30), (20, 29), {}, r"mask \(20, 29\)"),
        ((20, 30), (3, 20, 30), (20, 30), {"count": 0, "size": 4}, "count.*0"),
    ],
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
    [
        ({"mask": np.ones((4, 4, 4))}, r"mask must be \(H, W\).*\(4, 4, 4\)"),
        ({"mask": np.ones((4, 4)), "size": 0}, "size.*0"),
        ({"mask": np.ones((4, 4)), "keep_rows_fraction": 0.0}, "keep_rows_fraction.*0.0"),
        ({"mask": np.ones((4, 4)), "keep_rows_fraction": 1.5}, "keep_rows_fraction.*1.5"),
    ],
)
def test_evaluation_tiles_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        evaluation_tiles(**kwargs)


def test_largest_fitting_tile_is_the_largest_side_with_a_tile_on_the_sample():
    # a 160 x 250 strip whose sample is rows 10-149 (bars above and below), as the demo's strips
    mask = np.zeros((160, 250), bool)
    mask[10:150] = True
    # top half: tiles must start in rows < 80 and lie on rows 10-149; origins are multiples of the side
    assert evaluation_tiles(mask, size=128, keep_rows_fraction=0.5).size == 0
    best = largest_fitting_tile([np.zeros_like(mask), mask], below=128, keep_rows_fraction=0.5)
    assert best == 64  # 112, 96, 80 have no aligned tile on rows 10-149; 64 has one at row 64
    assert len(evaluation_tiles(mask, size=best, keep_rows_fraction=0.5)) > 0
    assert all(len(evaluation_tiles(mask, size=s, keep_rows_fraction=0.5)) == 0 for s in range(best + 16, 128, 16))
    assert largest_fitting_tile([mask], below=128, step=32) == 64
    assert largest_fitting_tile([np.zeros((40, 40), bool)], below=128) is None
