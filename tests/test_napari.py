"""The plugin in a real napari viewer (under Xvfb): reader through npe2, and the sample data."""

from __future__ import annotations

import json
import shutil
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


def test_napari_proposes_the_reader_for_folders_only_and_an_unreadable_folder_is_not_claimed(
    tmp_path, simulated_dataset, monkeypatch
):
    from npe2 import PluginManager

    from napari_temdeblur import _reader

    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.ones((8, 8), np.uint16))
    manager = PluginManager()  # as napari discovers the installed plugins
    manager.discover()
    # File > Open on a plain TIFF must not offer (and preselect) this plugin
    assert "napari-temdeblur" not in {r.plugin_name for r in manager.iter_compatible_readers([str(plain)])}
    assert "napari-temdeblur" in {r.plugin_name for r in manager.iter_compatible_readers([str(simulated_dataset.out)])}

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_reader, "find_splits", refuse)
    assert get_reader(str(tmp_path)) is None


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
    # the splits follow one another on the image slider: each position shows one split's image
    gts = [viewer.layers[f"Kidney {split} GT"] for split in ("Train", "Val", "Test")]
    counts = [layer.data.shape[0] for layer in gts]
    firsts = [layer.translate[0] for layer in gts]
    assert firsts == [0, counts[0], counts[0] + counts[1]]
    assert [viewer.layers[f"Kidney {s} Low"].translate[1] for s in ("Train", "Val", "Test")] == firsts
    # the simulator records the stream pixel size in Kidney/sample.json: y and x in nm, as the scale bar
    pixel = json.loads((simulated_dataset.out / "Kidney" / "sample.json").read_text())["pixel_size_nm"]
    for layer in viewer.layers:
        np.testing.assert_allclose(layer.scale[-2:], (pixel, pixel))
    assert [str(u) for u in viewer.layers.units] == ["pixel", "pixel", "nanometer", "nanometer"]
    image_axis = viewer.dims.range[1]
    assert (image_axis.start, image_axis.stop, image_axis.step) == (0, sum(counts) - 1, 1)
    # the image slider moves GT and burst together; the frame slider steps through the burst
    viewer.dims.set_point(1, firsts[2] + 1)
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
    # y and x in nm, so napari's scale bar reads nm: each layer scaled by its pixel size (session.json)
    meta = json.loads((folder / "session.json").read_text())
    np.testing.assert_allclose(hq.scale[1:], [meta["hq_pixel_size_nm"]] * 2)
    np.testing.assert_allclose(stream.scale[1:], [meta["stream_pixel_size_nm"]] * 2)
    assert [str(u) for u in (*hq.units[1:], *stream.units[1:])] == ["nanometer"] * 4
    assert str(viewer.layers.units[-1]) == "nanometer"  # the units every layer agrees on: the scale bar's
    assert hq.metadata["temdeblur"]["names"][0] == "sess1_im1"
    # both cover the same field of view in world coordinates
    np.testing.assert_allclose(
        np.array(hq.extent.world)[:, 1:], np.array(stream.extent.world)[:, 1:], atol=meta["stream_pixel_size_nm"]
    )


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


@pytest.mark.parametrize("dock", ["Register stream", "Train network", "Restore"])
def test_the_window_fits_a_laptop_screen_with_any_dock_open(make_napari_viewer, simulated_dataset, dock):
    """A 1366 x 768 screen holds the window with any one dock: long dock contents scroll instead of
    forcing the window taller (the Train dock alone used to need ~954 px)."""
    from qtpy.QtWidgets import QApplication

    viewer = make_napari_viewer(show=True)
    viewer.open(str(simulated_dataset.out / "Kidney" / "Test"), plugin="napari-temdeblur")
    viewer.window.add_plugin_dock_widget("napari-temdeblur", dock)
    window = viewer.window._qt_window
    QApplication.processEvents()
    hint = window.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 768, (hint.width(), hint.height())
    window.resize(1366, 768)
    QApplication.processEvents()
    assert window.width() <= 1366 and window.height() <= 768, (window.width(), window.height())


def test_a_restore_output_folder_opens_as_restored_layers_next_to_its_input(
    make_napari_viewer, simulated_dataset, tmp_path, monkeypatch
):
    """The folder `temdeblur restore` writes (float and counts TIFFs + restore.json) opens as restored
    layers in the run's GT window, after the dataset it was restored from, each restored image on the
    image slider where its input is."""
    from napari_temdeblur.cli import main
    from napari_temdeblur.core.io import read_image
    from napari_temdeblur.layers import LayerKind, kind_of
    from napari_temdeblur.widgets.restore._job import burst_layer_names

    out = tmp_path / "out"
    monkeypatch.chdir(simulated_dataset.out)  # a relative input, as a user types it
    assert main(["restore", "pretrained", "Kidney", str(out), "--device", "cpu"]) == 0
    monkeypatch.chdir(tmp_path)  # opened from elsewhere: restore.json holds the input's absolute path
    record = json.loads((out / "restore.json").read_text())
    assert record["input"] == str(simulated_dataset.out / "Kidney")
    viewer = make_napari_viewer()
    layers = viewer.open(str(out), plugin="napari-temdeblur")
    splits = ("Train", "Val", "Test")
    assert [layer.name for layer in layers] == [
        *(f"Kidney {s} {kind}" for s in splits for kind in ("GT", "Low")),
        *(f"out Kidney {s} restored" for s in splits),
    ]
    window = record["windows"]["gt"]
    for split in splits:
        gt, restored = viewer.layers[f"Kidney {split} GT"], viewer.layers[f"out Kidney {split} restored"]
        assert kind_of(restored) is LayerKind.RESTORED
        assert restored.translate[0] == gt.translate[0] and restored.data.shape == gt.data.shape
        assert tuple(restored.scale) == tuple(gt.scale) and restored.units == gt.units  # in nm like their input
        info = restored.metadata["temdeblur"]
        assert info["names"] == gt.metadata["temdeblur"]["names"] and info["restore_record"] == record
        for k, name in enumerate(info["names"]):
            h, w = info["valid_shapes"][k]
            counts = read_image(out / "Kidney" / split / f"{name}_counts.tif")
            np.testing.assert_array_equal(restored.data[k, :h, :w], counts)
        assert list(restored.contrast_limits) == [window["low"], window["high"]]
        # the restore dock does not take its own kind of layer as a burst to restore
        assert restored.name not in burst_layer_names(viewer.layers)
    # the dataset moved away: the restored images open alone, still in nm (restore.json keeps the pixel size)
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    record["input"] = str(tmp_path / "gone")
    (moved / "restore.json").write_text(json.dumps(record))
    alone = make_napari_viewer().open(str(moved), plugin="napari-temdeblur")
    assert [layer.name for layer in alone] == [f"moved Kidney {s} restored" for s in splits]
    gt = viewer.layers["Kidney Test GT"]
    assert all(tuple(layer.scale[-2:]) == tuple(gt.scale[-2:]) and layer.units == gt.units for layer in alone)
    assert str(gt.units[-1]) == "nanometer"
