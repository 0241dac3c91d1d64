"""Sharing a trained run as a bioimage.io model package: export (valid, passes bioimage.io's own model
test), import (restores like the run), another tool's package (refused, naming what does not fit)."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import zipfile

import numpy as np
import pytest
import tifffile

from napari_temdeblur.cli import main
from napari_temdeblur.core import DataError

pytest.importorskip("bioimageio.core")  # the export extra: installed by the test set-up
pytest.importorskip("onnxruntime")
yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, untrained_run, simulated_dataset, one_torch_thread):
    """A tiny fast-burst with random weights whose config.json names the simulated kidney data, so the
    export takes its test burst from the run's own Val data."""
    run = tmp_path_factory.mktemp("run")
    untrained_run(run / "best.pt", "fast-burst", gt_window=(100, 20000), low_window=(300, 6000), frames=(5, 5), epoch=2)
    kidney = simulated_dataset.out / "Kidney"
    val = sorted(p.stem for p in (kidney / "Val" / "GT").glob("*.tif"))
    config = {"data": {"sources": [str(kidney)], "train": [], "val": val, "held_out_sessions": []}, "train": {}}
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.fixture(scope="module")
def package(tiny_run, tmp_path_factory):
    """(the tiny run exported with ``temdeblur export --format bioimageio``, what the command printed)."""
    out, printed = tmp_path_factory.mktemp("package") / "model.zip", io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", str(tiny_run), "--format", "bioimageio", "--out", str(out)]) == 0
    return out, printed.getvalue()


def test_the_package_is_valid_and_passes_the_bioimageio_model_test(package, simulated_dataset):
    from bioimageio.spec import load_description
    from bioimageio.spec.model import v0_5

    out, printed = package
    assert "bioimage.io model test: passed" in printed  # bioimageio.core.test_model, run by the export
    descr = load_description(out, perform_io_checks=True)
    assert isinstance(descr, v0_5.ModelDescr), descr.validation_summary.format()
    assert not descr.validation_summary.errors
    (burst,), (restored,) = descr.inputs, descr.outputs
    assert [a.type for a in burst.axes] == ["batch", "channel", "space", "space"] and burst.axes[1].size == 5
    assert burst.axes[2].size.min == burst.axes[2].size.step == 16  # fast-burst's size multiple
    assert [a.type for a in restored.axes] == ["batch", "channel", "space", "space"] and restored.axes[1].size == 1
    assert {"torchscript", "onnx"} <= {w for w, entry in descr.weights if entry is not None}
    assert "10.1371/journal.pone.0246336" in {str(c.doi) for c in descr.cite}
    assert descr.config.model_extra["temdeblur"]["windows"]["low"] == {"low": 300.0, "high": 6000.0}
    # the training data from the run's config.json, by folder name (no full path leaves the machine)
    assert "validation pairs from Kidney" in descr.training_data.description
    assert str(simulated_dataset.out) not in descr.training_data.description
    # the test input is a real Val burst of the run's data, in counts; the cover is input | restored
    test_input = descr.get_input_test_arrays()[0]
    assert test_input.dtype == np.uint16 and test_input.shape[:2] == (1, 5) and test_input.max() > 1000
    import matplotlib.image

    with zipfile.ZipFile(out) as archive:
        cover = matplotlib.image.imread(io.BytesIO(archive.read(str(descr.covers[0].source))))
    assert cover.shape[:2] == (test_input.shape[2], 2 * test_input.shape[3])


def test_a_package_restores_like_its_run(tiny_run, package, simulated_dataset, tmp_path, capsys):
    """Import: ``temdeblur restore MODEL.zip`` gives the run's images within 1e-4 (TorchScript weights),
    with the run's windows and frames from the package's description."""
    test = simulated_dataset.out / "Kidney" / "Test"
    args = ["--device", "cpu", "--inference-tile", "64"]
    assert main(["restore", str(tiny_run), str(test), str(tmp_path / "torch"), *args]) == 0
    assert main(["restore", str(package[0]), str(test), str(tmp_path / "package"), *args]) == 0
    records = [json.loads((tmp_path / kind / "restore.json").read_text()) for kind in ("torch", "package")]
    assert records[1]["model"] == records[0]["model"] and records[1]["windows"] == records[0]["windows"]
    names = sorted(records[0]["images"])
    assert names and sorted(records[1]["images"]) == names
    for name in names:
        expected, got = (tifffile.imread(tmp_path / kind / f"{name}.tif") for kind in ("torch", "package"))
        np.testing.assert_allclose(got, expected, atol=1e-4)
    capsys.readouterr()
    assert main(["restore", str(package[0]), str(test), str(tmp_path / "bn"), *args, "--adapt-bn"]) == 2
    assert "an exported (ONNX) model or bioimage.io package does not expose" in capsys.readouterr().err


def _repackaged(package, tmp_path, name, change):
    """`package` with its rdf.yaml changed by `change(rdf)` and napari-temdeblur's description removed."""
    out = tmp_path / name
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == "rdf.yaml":
                rdf = yaml.safe_load(data)
                del rdf["config"]["temdeblur"]
                change(rdf)
                data = yaml.safe_dump(rdf).encode()
            target.writestr(item, data)
    return out


def test_another_tools_package_is_refused_naming_what_does_not_fit(package, tmp_path, capsys):
    from napari_temdeblur.core.models import load_model

    def two_channels(rdf):
        rdf["outputs"][0]["axes"][1]["channel_names"] = ["a", "b"]

    def volume(rdf):
        rdf["inputs"][0]["axes"].insert(2, {"type": "space", "id": "z", "size": 8})

    burst = tmp_path / "burst.tif"
    tifffile.imwrite(burst, np.ones((5, 32, 32), np.uint16))
    for name, change, expected in [
        ("channels.zip", two_channels, "its output restored has 2 channels, not one"),
        ("volume.zip", volume, "its input burst has axes (batch, channel, z (space), y (space), x (space))"),
        ("fits.zip", lambda rdf: None, "fits a burst restoration but was not exported by napari-temdeblur"),
    ]:
        foreign = _repackaged(package[0], tmp_path, name, change)
        assert main(["restore", str(foreign), str(burst), str(tmp_path / "out"), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert f"{name}: the bioimage.io model" in err and expected in err, err
    notzip = tmp_path / "notes.zip"
    notzip.write_text("my notes")
    with pytest.raises(DataError, match=r"notes.zip: not a bioimage.io package \(not a zip file\)"):
        load_model(notzip)


def test_export_replaces_only_a_package_it_exported(tiny_run, package, tmp_path, capsys):
    from napari_temdeblur.core.models import read_bioimageio_description

    foreign = tmp_path / "notes.zip"
    foreign.write_text("my notes")
    assert main(["export", str(tiny_run), "--format", "bioimageio", "--out", str(foreign)]) == 2
    assert "would replace 1 file not written by napari-temdeblur" in capsys.readouterr().err
    assert foreign.read_text() == "my notes"
    assert read_bioimageio_description(package[0])["frames"] == 5  # ours: an export may replace it


def test_without_the_export_extra_export_and_import_name_what_to_install(
    tiny_run, package, tmp_path, monkeypatch, capsys
):
    from napari_temdeblur.core.models import load_model

    monkeypatch.setitem(sys.modules, "bioimageio.core", None)  # as if it were not installed
    assert main(["export", str(tiny_run), "--format", "bioimageio", "--out", str(tmp_path / "m.zip")]) == 2
    err = capsys.readouterr().err
    assert "needs bioimageio.core, which is not installed" in err and 'pip install "napari-temdeblur[export]"' in err
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)
    with pytest.raises(DataError, match=r"needs bioimageio.spec: install the export extra"):
        load_model(package[0])


def test_export_of_a_run_without_data_asks_for_a_sample(untrained_run, tmp_path, capsys):
    run = tmp_path / "run"
    untrained_run(run / "best.pt", "fast-burst", frames=(5, 5))
    assert main(["export", str(run), "--format", "bioimageio", "--out", str(tmp_path / "m.zip")]) == 2
    assert "name a registered burst (dataset, burst folder or TIFF) with --sample" in capsys.readouterr().err
    assert not (tmp_path / "m.zip").exists()


def test_the_restore_dock_takes_a_package_as_its_run(package, restore_in_dock):
    restored = restore_in_dock(package[0])
    assert restored.metadata["temdeblur"]["restore"][0]["run"] == str(package[0])
    assert restored.metadata["temdeblur"]["restore"][0]["windows"]["gt"] == {"low": 100.0, "high": 20000.0}
