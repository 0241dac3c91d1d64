"""The plugin in a real napari viewer (under Xvfb): reader through npe2, and the sample data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_temdeblur._reader import get_reader
from napari_temdeblur.core.io import write_image


def test_reader_claims_only_its_layouts(tmp_path, simulated_dataset, simulated_sessions):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.ones((8, 8), np.uint16))
    assert get_reader(str(plain)) is None
    assert get_reader(str(tmp_path)) is None  # a folder with only a plain tif
    assert get_reader(str(simulated_dataset.out)) is not None
    assert get_reader(str(simulated_dataset.out / "Kidney" / "Test")) is not None
    assert get_reader(str(simulated_sessions.folders["Kidney"][0])) is not None


def test_dataset_opens_through_npe2(make_napari_viewer, simulated_dataset):
    viewer = make_napari_viewer()
    layers = viewer.open(str(simulated_dataset.out / "Kidney"), plugin="napari-temdeblur")
    names = [layer.name for layer in layers]
    assert names == [
        "Kidney Train GT",
        "Kidney Train Low",
        "Kidney Val GT",
        "Kidney Val Low",
        "Kidney Test GT",
        "Kidney Test Low",
    ]
    gt, low = viewer.layers["Kidney Test GT"], viewer.layers["Kidney Test Low"]
    assert low.data.ndim == 4 and low.data.shape[1:] == gt.data.shape
    meta = gt.metadata["temdeblur"]
    assert meta["split"] == "Test" and all(s == 3 for s in meta["sessions"])
    assert gt.contrast_limits == [meta["window"]["low"], meta["window"]["high"]]
    # the image slider moves GT and burst together; the frame slider steps through the burst
    viewer.dims.set_point(1, 1)
    viewer.dims.set_point(0, 3)
    np.testing.assert_array_equal(low._data_view, low.data[3, 1])
    np.testing.assert_array_equal(gt._data_view, gt.data[1])


def test_session_opens_through_npe2(make_napari_viewer, simulated_sessions):
    viewer = make_napari_viewer()
    folder = simulated_sessions.folders["CalibrationGrid"][0]
    layers = viewer.open(str(folder), plugin="napari-temdeblur")
    hq, stream = layers
    assert (hq.name, stream.name) == ("CalibrationGrid sess1 HQ", "CalibrationGrid sess1 stream")
    assert hq.data.shape[1:] == (512, 512) and stream.data.shape[1:] == (256, 256)
    np.testing.assert_allclose(hq.scale[1:], [0.5, 0.5])
    assert hq.metadata["temdeblur"]["names"][0] == "sess1_im1"
    # both cover the same field of view in world coordinates
    np.testing.assert_allclose(np.array(hq.extent.world)[:, 1:], np.array(stream.extent.world)[:, 1:], atol=1)


def test_broken_pair_opens_the_rest_and_warns(make_napari_viewer, simulated_dataset, tmp_path):
    import shutil

    copy = tmp_path / "Kidney"
    shutil.copytree(simulated_dataset.out / "Kidney", copy)
    victim = sorted((copy / "Test" / "GT").iterdir())[0]
    shutil.rmtree(copy / "Test" / "Low" / victim.stem)
    viewer = make_napari_viewer()
    with pytest.warns(UserWarning, match=f"missing Low frames for GT {victim.name}"):
        viewer.open(str(copy), plugin="napari-temdeblur")
    test_gt = viewer.layers["Kidney Test GT"]
    assert victim.stem not in test_gt.metadata["temdeblur"]["names"]
    assert len(test_gt.data) == len(list((copy / "Test" / "GT").iterdir())) - 1


@pytest.mark.parametrize("key, sample", [("kidney", "Kidney"), ("grid", "CalibrationGrid")])
def test_sample_data_loads(make_napari_viewer, key, sample):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-temdeblur", key)
    gt, low = viewer.layers
    assert gt.name.startswith(sample) and gt.name.endswith("GT") and low.name.endswith("Low")
    assert low.data.shape[0] == 5 and low.data.shape[1:] == gt.data.shape
    lo, hi = gt.contrast_limits
    assert 0 < lo < np.percentile(gt.data[gt.data > 0], 50) < hi


def test_samples_are_simulated_when_the_files_are_absent(monkeypatch):
    from napari_temdeblur import _sample_data

    shipped = _sample_data.grid_sample()
    monkeypatch.setattr(_sample_data, "SAMPLE_DATA_DIR", None)  # as in an install from a wheel
    simulated = _sample_data.grid_sample()
    assert [kw["name"] for _, kw, _ in simulated] == [kw["name"] for _, kw, _ in shipped]
    # same configuration and seed as the shipped files (bytes may differ across numpy/scipy releases)
    for (a, _, _), (b, _, _) in zip(simulated, shipped):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert a.mean() == pytest.approx(b.mean(), rel=0.02)


def test_session_without_json_is_claimed_and_explained(simulated_sessions, tmp_path):
    import shutil

    from napari_temdeblur.core import DataError

    copy = tmp_path / "sess1"
    shutil.copytree(simulated_sessions.folders["Kidney"][0], copy)
    (copy / "session.json").unlink()
    reader = get_reader(str(copy))
    assert reader is not None
    with pytest.raises(DataError, match="session.json is missing"):
        reader(str(copy))


def test_folder_of_sessions_opens_every_session(simulated_sessions):
    layers = get_reader(str(simulated_sessions.out))(str(simulated_sessions.out))
    names = [kw["name"] for _, kw, _ in layers]
    assert len(names) == len(set(names)) == 2 * 2 * 3  # 2 specimens x 3 sessions x (HQ, stream)
    assert "Kidney sess3 stream" in names and "CalibrationGrid sess1 HQ" in names


def test_one_bad_session_does_not_stop_the_others(simulated_sessions, tmp_path):
    import shutil

    for k in (1, 2):
        shutil.copytree(simulated_sessions.folders["Kidney"][k - 1], tmp_path / f"sess{k}")
    blank = tmp_path / "sess2/stream.tif"
    write_image(blank, np.zeros((4, 256, 256), np.uint16))
    with pytest.warns(UserWarning, match="sess2.*no nonzero pixels"):
        layers = get_reader(str(tmp_path))(str(tmp_path))
    assert [kw["name"] for _, kw, _ in layers] == ["Kidney sess1 HQ", "Kidney sess1 stream"]


def test_split_without_low_folder_is_claimed_and_explained(tmp_path):
    from napari_temdeblur.core import DataError

    (tmp_path / "GT").mkdir()
    tifffile.imwrite(tmp_path / "GT/sess1_im1.tif", np.ones((8, 8), np.uint16))
    reader = get_reader(str(tmp_path))
    assert reader is not None
    with pytest.raises(DataError, match="missing Low frames for GT sess1_im1.tif"):
        reader(str(tmp_path))


def test_the_shipped_samples_are_found_in_a_checkout():
    from napari_temdeblur.core.simulate import SAMPLE_DATA_DIR

    # an editable install from this checkout: File > Open Sample reads sample_data/, simulating nothing
    assert SAMPLE_DATA_DIR == Path(__file__).resolve().parents[1] / "sample_data"
    assert (SAMPLE_DATA_DIR / "Kidney").is_dir() and (SAMPLE_DATA_DIR / "CalibrationGrid").is_dir()
