"""Sharing a trained run: ONNX export with dynamic height and width, checked against torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_temdeblur.cli import main
from napari_temdeblur.core import DataError
from napari_temdeblur.core.models import size_multiple

onnxruntime = pytest.importorskip("onnxruntime")  # the export extra: installed by the test set-up


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, untrained_run):
    """A run folder holding a tiny fast-burst with random weights (an export does not care how good)."""
    run = tmp_path_factory.mktemp("run")
    untrained_run(run / "best.pt", "fast-burst", gt_window=(100, 20000), low_window=(300, 6000), frames=(5, 5), epoch=2)
    return run


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """(the tiny run exported with ``temdeblur export``, what the command printed); exported once."""
    import contextlib
    import io

    out, printed = tmp_path_factory.mktemp("exported") / "model.onnx", io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", str(tiny_run), "--format", "onnx", "--out", str(out)]) == 0
    return out, printed.getvalue()


def test_onnx_export_matches_torch_at_sizes_it_was_not_traced_at(tiny_run, exported):
    from napari_temdeblur.core.models import load_model, read_onnx_description

    out, printed = exported
    assert "onnxruntime matches torch" in printed
    meta = read_onnx_description(out)
    model, checkpoint = load_model(tiny_run)
    multiple = size_multiple(checkpoint.model)
    assert meta["model"] == checkpoint.model.to_dict() and meta["frames"] == 5 and meta["size_multiple"] == multiple
    assert meta["windows"]["low"] == {"low": 300.0, "high": 6000.0}
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (burst,) = session.get_inputs()
    assert burst.name == "burst" and burst.shape[1] == 5 and all(isinstance(burst.shape[i], str) for i in (0, 2, 3))
    rng = np.random.default_rng(1)
    for batch, height, width in [(1, multiple * 5, multiple * 3), (3, multiple * 2, multiple * 9)]:
        x = rng.random((batch, 5, height, width), np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"burst": x})[0]
        assert got.shape == (batch, 1, height, width)
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_onnx_export_of_something_that_is_not_a_run_names_it(tmp_path, capsys):
    from napari_temdeblur.core.models import read_onnx_description

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["export", str(junk), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "junk.pt: not a readable napari-temdeblur checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(DataError, match="not a readable ONNX model"):
        read_onnx_description(junk)


def test_without_the_export_extra_the_command_names_what_to_install(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)  # as if it were not installed
    assert main(["export", str(tiny_run), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "needs onnxscript, which is not installed" in err and 'pip install "napari-temdeblur[export]"' in err


def test_an_exported_model_restores_like_its_run(tiny_run, exported, simulated_dataset, tmp_path, capsys):
    """Import: ``temdeblur restore MODEL.onnx`` gives the run's images (within the export's 1e-4), with
    the run's windows and frames from the model's description; batch-norm adaptation is refused."""
    model = exported[0]
    test = simulated_dataset.out / "Kidney" / "Test"
    args = ["--device", "cpu", "--inference-tile", "64"]
    assert main(["restore", str(tiny_run), str(test), str(tmp_path / "torch"), *args]) == 0
    assert main(["restore", str(model), str(test), str(tmp_path / "onnx"), *args]) == 0
    records = [json.loads((tmp_path / kind / "restore.json").read_text()) for kind in ("torch", "onnx")]
    assert records[1]["model"] == records[0]["model"] and records[1]["windows"] == records[0]["windows"]
    names = sorted(records[0]["images"])
    assert names and sorted(records[1]["images"]) == names
    for name in names:
        expected, got = (tifffile.imread(tmp_path / kind / f"{name}.tif") for kind in ("torch", "onnx"))
        np.testing.assert_allclose(got, expected, atol=1e-4)
    capsys.readouterr()
    assert main(["restore", str(model), str(test), str(tmp_path / "bn"), *args, "--adapt-bn"]) == 2
    assert "an exported (ONNX) model" in capsys.readouterr().err


def test_a_foreign_onnx_model_is_refused_with_its_inputs_named(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["out"])],
        "foreign",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 256, 256])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 256, 256])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(foreign))
    burst = tmp_path / "burst.tif"
    tifffile.imwrite(burst, np.ones((5, 32, 32), np.uint16))
    assert main(["restore", str(foreign), str(burst), str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "foreign.onnx: an ONNX model without napari-temdeblur's description (inputs image [1, 3, 256, 256])" in err


def test_the_restore_dock_takes_an_exported_model_as_its_run(exported, restore_in_dock):
    restored = restore_in_dock(exported[0])
    assert restored.metadata["temdeblur"]["restore"][0]["run"] == str(exported[0])
    assert restored.metadata["temdeblur"]["restore"][0]["tile"] == 1088  # fast-burst's own tile, from the model


def test_export_replaces_only_a_model_it_exported(tiny_run, exported, tmp_path, capsys):
    foreign = tmp_path / "notes.onnx"
    foreign.write_text("my notes")
    assert main(["export", str(tiny_run), "--out", str(foreign)]) == 2
    assert "would replace 1 file not written by napari-temdeblur" in capsys.readouterr().err
    assert foreign.read_text() == "my notes"
    ours = tmp_path / "ours.onnx"
    ours.write_bytes(exported[0].read_bytes())  # an earlier export: replaced without asking
    assert main(["export", str(tiny_run), "--out", str(ours)]) == 0
    assert main(["export", str(tiny_run), "--out", str(foreign), "--overwrite"]) == 0


def test_a_network_that_cannot_be_exported_is_named_with_the_reason(tiny_run, tmp_path):
    # a forward pass through numpy cannot be traced: the export says which network and why, writes nothing
    from napari_temdeblur.core.models import load_model
    from napari_temdeblur.core.share._onnx import write_onnx

    model, checkpoint = load_model(tiny_run, "cpu")

    class ThroughNumpy(torch.nn.Module):
        def forward(self, x):
            return model(torch.from_numpy(x.numpy()))

    out = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=r"^fast-burst could not be exported to ONNX: \S"):
        write_onnx(ThroughNumpy().eval(), checkpoint, out)
    assert not out.exists()
