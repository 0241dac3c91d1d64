"""The published dataset layout: every accepted level, padding of unequal strips, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_temdeblur.core import DataError
from napari_temdeblur.core.io import BurstPair, read_dataset, read_image, write_pair
from napari_temdeblur.layers import dataset_layers


def _pair(name, shape, frames=5, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.integers(1000, 20000, shape, dtype=np.uint16)
    low = rng.integers(100, 5000, (frames, *shape), dtype=np.uint16)
    return BurstPair(name, gt, low)


@pytest.fixture
def dataset(tmp_path):
    """Kidney with Train (two strips of different shapes) and Test; CalibrationGrid with Train."""
    write_pair(tmp_path / "Kidney" / "Train", _pair("sess1_im1", (20, 30)))
    write_pair(tmp_path / "Kidney" / "Train", _pair("sess1_im2", (22, 28), seed=1))
    write_pair(tmp_path / "Kidney" / "Test", _pair("sess4_im1", (20, 30), seed=2))
    write_pair(tmp_path / "CalibrationGrid" / "Train", _pair("sess2_im3", (16, 16), seed=3))
    return tmp_path


def test_reads_root_sample_and_split_levels(dataset):
    root = read_dataset(dataset)
    assert [(s.sample, s.split) for s in root] == [
        ("CalibrationGrid", "Train"),
        ("Kidney", "Train"),
        ("Kidney", "Test"),
    ]
    sample = read_dataset(dataset / "Kidney")
    assert [s.split for s in sample] == ["Train", "Test"]
    split = read_dataset(dataset / "Kidney" / "Train")
    assert len(split) == 1 and split[0].sample == "Kidney"
    pair = split[0].pairs[1]
    assert pair.name == "sess1_im2" and pair.session == 1
    assert pair.low.shape == (5, 22, 28) and pair.low.dtype == np.uint16
    written = tifffile.imread(dataset / "Kidney/Train/Low/sess1_im2/sess1_im2_3.tif")
    np.testing.assert_array_equal(pair.low[3], written)


def test_unequal_strips_are_padded_not_cropped(dataset):
    layers = dataset_layers(read_dataset(dataset / "Kidney" / "Train"))
    (gt, gt_kw, _), (low, low_kw, _) = layers
    assert gt.shape == (2, 22, 30) and low.shape == (5, 2, 22, 30)
    meta = gt_kw["metadata"]["temdeblur"]
    assert meta["valid_shapes"] == [[20, 30], [22, 28]]
    assert meta["names"] == ["sess1_im1", "sess1_im2"] and meta["sessions"] == [1, 1]
    original = read_dataset(dataset / "Kidney" / "Train")[0].pairs[1]
    np.testing.assert_array_equal(gt[1, :22, :28], original.gt)
    np.testing.assert_array_equal(low[:, 1, :22, :28], original.low)
    assert not gt[1, :, 28:].any()  # padding is zero and outside the valid region
    assert gt_kw["name"] == "Kidney Train GT" and low_kw["name"] == "Kidney Train Low"
    assert low_kw["axis_labels"] == ("frame", "image", "y", "x")
    lo, hi = gt_kw["contrast_limits"]
    assert lo < hi


def test_missing_low_frames_are_skipped_and_reported(dataset):
    tifffile.imwrite(dataset / "Kidney/Train/GT/sess1_im9.tif", np.ones((20, 30), np.uint16))
    (split,) = read_dataset(dataset / "Kidney" / "Train")
    assert [p.name for p in split.pairs] == ["sess1_im1", "sess1_im2"]
    assert len(split.skipped) == 1 and "missing Low frames" in split.skipped[0] and "sess1_im9" in split.skipped[0]


def test_shape_mismatch_names_the_frame(dataset):
    bad = dataset / "Kidney/Train/Low/sess1_im1/sess1_im1_2.tif"
    tifffile.imwrite(bad, np.ones((19, 30), np.uint16))
    (split,) = read_dataset(dataset / "Kidney" / "Train")
    assert [p.name for p in split.pairs] == ["sess1_im2"]
    assert str(bad) in split.skipped[0] and "(19, 30)" in split.skipped[0] and "(20, 30)" in split.skipped[0]


def test_frame_numbering_gap_is_reported(dataset):
    (dataset / "Kidney/Train/Low/sess1_im1/sess1_im1_2.tif").unlink()
    (split,) = read_dataset(dataset / "Kidney" / "Train")
    assert "without gaps" in split.skipped[0] and "[0, 1, 3, 4]" in split.skipped[0]


@pytest.mark.parametrize(
    "write, expected",
    [
        (lambda p: tifffile.imwrite(p, np.ones((20, 30, 3), np.uint8), photometric="rgb"), "RGB"),
        (lambda p: tifffile.imwrite(p, np.ones((20, 30), np.float32)), "pixel type float32"),
        (lambda p: p.write_bytes(b"this is not a tiff"), "not a readable TIFF"),
    ],
    ids=["rgb", "float", "garbage"],
)
def test_bad_tiffs_get_clear_messages(dataset, write, expected):
    bad = dataset / "Kidney/Train/GT/sess1_im1.tif"
    write(bad)
    (split,) = read_dataset(dataset / "Kidney" / "Train")
    assert [p.name for p in split.pairs] == ["sess1_im2"]
    assert str(bad) in split.skipped[0] and expected in split.skipped[0]


def test_truncated_tiff(tmp_path):
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_empty_and_foreign_folders(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_dataset(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="no dataset here"):
        read_dataset(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        read_dataset(tmp_path / "missing")


def test_nothing_readable_is_an_error_naming_the_reasons(tmp_path):
    (tmp_path / "Kidney/Test/GT").mkdir(parents=True)
    (tmp_path / "Kidney/Test/Low").mkdir()
    tifffile.imwrite(tmp_path / "Kidney/Test/GT/a.tif", np.ones((8, 8), np.uint16))
    with pytest.raises(DataError, match="no readable GT/Low pair.*missing Low frames"):
        read_dataset(tmp_path)


def test_inconsistent_frame_counts_keep_the_majority(dataset):
    write_pair(dataset / "Kidney" / "Train", _pair("sess1_im3", (20, 30), frames=3))
    (split,) = read_dataset(dataset / "Kidney" / "Train")
    assert [p.name for p in split.pairs] == ["sess1_im1", "sess1_im2"]
    assert "3 frames" in split.skipped[0] and "have 5" in split.skipped[0]
    write_pair(dataset / "Kidney" / "Train", _pair("sess0_im1", (20, 30), frames=3))
    (split,) = read_dataset(dataset / "Kidney" / "Train")  # a tie keeps the longer bursts
    assert [p.name for p in split.pairs] == ["sess1_im1", "sess1_im2"] and len(split.skipped) == 2


def test_hidden_files_are_not_images(dataset):
    """macOS copies leave ``._name.tif`` resource forks beside every image; they are not data."""
    (dataset / "Kidney/Train/GT/._sess1_im1.tif").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (split,) = read_dataset(dataset / "Kidney" / "Train")
    assert [p.name for p in split.pairs] == ["sess1_im1", "sess1_im2"] and split.skipped == []


def test_pixel_size_of_a_sample_from_its_sample_json(dataset):
    """The published dataset has no pixel size (layers in pixels); ours records it per sample folder,
    and a bad record is named while the images still open, in pixels."""
    import json

    from napari_temdeblur.core.io import read_pixel_size, write_pixel_size

    assert {s.pixel_size_nm for s in read_dataset(dataset)} == {None}
    assert dataset_layers(read_dataset(dataset))[0][1]["scale"] == (1.0, 1.0, 1.0)
    write_pixel_size(dataset / "Kidney", 31.25)
    kidney = read_dataset(dataset / "Kidney")
    assert [s.pixel_size_nm for s in kidney] == [31.25, 31.25]
    gt_kwargs, low_kwargs = (kwargs for _, kwargs, _ in dataset_layers(kidney)[:2])
    assert gt_kwargs["scale"] == (1.0, 31.25, 31.25) and gt_kwargs["units"] == ("pixel", "nm", "nm")
    assert low_kwargs["scale"] == (1.0, 1.0, 31.25, 31.25)
    with pytest.raises(ValueError, match="records 31.25 nm pixels, not 15.0 nm"):
        write_pixel_size(dataset / "Kidney", 15.0)
    for bad in (0, -2, "31", None, True):
        (dataset / "Kidney" / "sample.json").write_text(
            json.dumps({"format": "temdeblur-sample/1", "pixel_size_nm": bad})
        )
        with pytest.raises(DataError, match="pixel_size_nm must be a finite positive number"):
            read_pixel_size(dataset / "Kidney")
        (split,) = read_dataset(dataset / "Kidney" / "Train")
        assert split.pixel_size_nm is None and len(split.pairs) == 2
        assert "sample.json" in split.skipped[0] and "shown in pixels" in split.skipped[0]
    (dataset / "Kidney" / "sample.json").write_text('{"format": "temdeblur-sample/1", "pixel_size_nm": Infinity}')
    with pytest.raises(DataError, match="finite positive"):
        read_pixel_size(dataset / "Kidney")
