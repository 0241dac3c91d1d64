"""The shipped pretrained weights: checked before use, restoring at once, the start of training."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from napari_temdeblur.cli import main
from napari_temdeblur.core import DataError, drain
from napari_temdeblur.core.models import (
    DEFAULT_MODEL,
    ModelConfig,
    build_model,
    has_pretrained,
    load_checkpoint,
    load_model,
    pretrained_checkpoint,
    pretrained_manifest,
    save_checkpoint,
)
from napari_temdeblur.core.models import _pretrained as pretrained_module
from napari_temdeblur.core.train import TrainConfig, TrainingData, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def damaged(tmp_path, monkeypatch):
    """The shipped weights with one byte changed, as a broken download or disk would leave them."""
    folder = shutil.copytree(pretrained_module.PRETRAINED_DIR, tmp_path / "pretrained")
    weights = folder / f"{DEFAULT_MODEL}.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained_module, "PRETRAINED_DIR", folder)
    return weights


def test_the_default_model_ships_weights_that_match_their_manifest():
    assert has_pretrained(DEFAULT_MODEL) and not has_pretrained("bu")
    manifest = pretrained_manifest()
    path = pretrained_checkpoint()
    assert path.stat().st_size == manifest["bytes"] < 4_000_000  # a few MB at most
    assert any(c.startswith("python scripts/make_pretrained.py") for c in manifest["commands"])
    assert {"Kidney", "CalibrationGrid"} <= set(manifest["test_scores"])
    model, checkpoint = load_model("pretrained")
    assert checkpoint.model == ModelConfig(DEFAULT_MODEL) and not model.training
    with pytest.raises(ValueError, match="no pretrained weights for bu: they ship for fast-burst"):
        pretrained_checkpoint("bu")


def test_restore_pretrained_works_before_any_training(kidney, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["restore", "pretrained", str(kidney / "Test"), str(out), "--device", "cpu"]) == 0
    record = json.loads((out / "restore.json").read_text())
    assert record["run"] == str(pretrained_checkpoint()) and record["model"]["name"] == DEFAULT_MODEL
    assert len(record["images"]) == len(list((kidney / "Test" / "GT").iterdir()))


def test_a_damaged_file_is_refused_and_training_from_scratch_still_works(damaged, kidney, tmp_path, capsys):
    with pytest.raises(
        DataError,
        match="the pretrained weights are damaged .* reinstall napari-temdeblur, or train "
        r"from scratch \(--init scratch\)",
    ):
        pretrained_checkpoint()
    assert main(["restore", "pretrained", str(kidney / "Test"), str(tmp_path / "r"), "--device", "cpu"]) == 2
    assert "damaged" in capsys.readouterr().err
    args = [
        "train",
        str(kidney),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "1",
        "--patch",
        "32",
        "--val-tile",
        "32",
        "--device",
        "cpu",
    ]
    assert main(args) == 2  # the default start: the (damaged) pretrained weights
    assert "damaged" in capsys.readouterr().err
    assert main([*args, "--init", "scratch", "--width", "tiny"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["init"] == "scratch"


def test_training_starts_from_the_shipped_weights(kidney, tmp_path):
    data = TrainingData.from_folders(kidney)
    cfg = TrainConfig(
        ModelConfig(DEFAULT_MODEL), epochs=1, steps_per_epoch=1, patch=32, batch=2, lr=1e-12, val_tile=32, device="cpu"
    )
    assert cfg.init == "pretrained"  # the default where weights ship
    drain(train(cfg, data, tmp_path / "run"))
    start, trained = load_checkpoint(pretrained_checkpoint()), load_checkpoint(tmp_path / "run" / "best.pt")
    for name, weight in start.state_dict.items():  # one step at lr 1e-12 leaves the weights where they started
        torch.testing.assert_close(trained.state_dict[name], weight, atol=1e-6, rtol=0)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["init"] == "pretrained"


def test_fine_tuning_starts_from_a_run_of_the_same_model_only(kidney, tmp_path):
    data = TrainingData.from_folders(kidney)
    common = dict(epochs=1, steps_per_epoch=1, patch=32, batch=2, val_tile=32, device="cpu")
    drain(train(TrainConfig(ModelConfig.tiny("bu"), init="scratch", **common), data, tmp_path / "bu"))
    finetuned = TrainConfig(ModelConfig.tiny("bu"), init=str(tmp_path / "bu"), lr=1e-12, **common)
    drain(train(finetuned, data, tmp_path / "again"))
    first, second = (load_checkpoint(tmp_path / f / "best.pt").state_dict for f in ("bu", "again"))
    # the weights start where the first run ended (batch norm's running statistics move with every
    # forward pass whatever the rate, so they are left out)
    weights = [k for k in first if first[k].is_floating_point() and ".running_" not in k]
    assert len(weights) > 10
    assert all(torch.allclose(first[k], second[k], atol=1e-6) for k in weights)
    other = TrainConfig(ModelConfig.tiny("bdu-uc"), init=str(tmp_path / "bu"), **common)
    with pytest.raises(DataError, match="holds bu of width 3, not the bdu-uc of width 8 to train"):
        drain(train(other, data, tmp_path / "other"))
    with pytest.raises(ValueError, match="no pretrained weights ship for bu"):
        TrainConfig(ModelConfig.tiny("bu"), init="pretrained")
    assert TrainConfig(ModelConfig.tiny("bu")).init == "scratch"


def test_a_checkpoint_of_a_model_this_version_does_not_know_says_so(tmp_path):
    from napari_temdeblur.core.imaging import IntensityWindow

    window = IntensityWindow(0.0, 1000.0)
    model = build_model(ModelConfig.tiny("bu"))
    path = save_checkpoint(
        tmp_path / "new.pt",
        model=ModelConfig.tiny("bu"),
        state_dict=model.state_dict(),
        epoch=1,
        gt_window=window,
        low_window=window,
        frames=(5, 5),
    )
    data = torch.load(path, weights_only=True)
    data["model"]["name"], data["versions"]["napari-temdeblur"] = "burst-transformer", "9.0"
    torch.save(data, path)
    with pytest.raises(
        DataError,
        match=r"holds a 'burst-transformer' network \(written by napari-temdeblur 9.0\), "
        r"which this version .* does not know .*update napari-temdeblur",
    ):
        load_model(path)
    # weights of another width under a known name: one line naming the model, not torch's key lists
    data["model"] = ModelConfig.tiny("bdu-uc").to_dict()
    torch.save(data, path)
    with pytest.raises(DataError, match="the weights do not fit model bdu-uc of width 8") as error:
        load_model(path)
    assert len(str(error.value)) < 400
