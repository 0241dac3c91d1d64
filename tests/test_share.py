"""Sharing a trained run: ONNX export with dynamic height and width, checked against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_temdeblur.cli import main
from napari_temdeblur.core import DataError
from napari_temdeblur.core.imaging import IntensityWindow
from napari_temdeblur.core.models import ModelConfig, build_model, save_checkpoint, size_multiple

onnxruntime = pytest.importorskip("onnxruntime")  # the export extra: installed by the test set-up


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder holding a tiny fast-burst with random weights (an export does not care how good)."""
    torch.manual_seed(0)
    cfg = ModelConfig.tiny("fast-burst")
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(
        run / "best.pt",
        model=cfg,
        state_dict=build_model(cfg, pretrained=False).state_dict(),
        epoch=2,
        gt_window=IntensityWindow(100.0, 20000.0),
        low_window=IntensityWindow(300.0, 6000.0),
        frames=(5, 5),
    )
    return run


def test_onnx_export_matches_torch_at_sizes_it_was_not_traced_at(tiny_run, tmp_path, capsys):
    from napari_temdeblur.core.models import load_model
    from napari_temdeblur.core.share import onnx_metadata

    out = tmp_path / "model.onnx"
    assert main(["export", str(tiny_run), "--format", "onnx", "--out", str(out)]) == 0
    assert "onnxruntime matches torch" in capsys.readouterr().out
    meta = onnx_metadata(out)
    model, checkpoint = load_model(tiny_run)
    multiple = size_multiple(checkpoint.model)
    assert meta["model"] == checkpoint.model.to_dict() and meta["frames"] == 5 and meta["size_multiple"] == multiple
    assert meta["windows"]["low"] == {"low": 300.0, "high": 6000.0}
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (burst,) = session.get_inputs()
    assert burst.name == "burst" and burst.shape[:2] == [1, 5] and all(isinstance(d, str) for d in burst.shape[2:])
    rng = np.random.default_rng(1)
    for height, width in [(multiple * 5, multiple * 3), (multiple * 2, multiple * 9)]:
        x = rng.random((1, 5, height, width), np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"burst": x})[0]
        assert got.shape == (1, 1, height, width)
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_onnx_export_of_something_that_is_not_a_run_names_it(tmp_path, capsys):
    from napari_temdeblur.core.share import onnx_metadata

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["export", str(junk), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "junk.pt: not a readable napari-temdeblur checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(DataError, match="not a readable ONNX model"):
        onnx_metadata(junk)


def test_without_the_export_extra_the_command_names_what_to_install(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)  # as if it were not installed
    assert main(["export", str(tiny_run), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "needs onnxscript, which is not installed" in err and 'pip install "napari-temdeblur[export]"' in err
