"""Training: data preparation, the training loop's guarantees, run folders and ``temdeblur train``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_temdeblur import cli
from napari_temdeblur.cli import _train as _cli_train
from napari_temdeblur.core import DataError, drain, time_left
from napari_temdeblur.core.imaging import IntensityWindow, tile_scores
from napari_temdeblur.core.io import BurstPair
from napari_temdeblur.core.models import ModelConfig, load_checkpoint, load_model
from napari_temdeblur.core.train import (
    PRESETS,
    STOP,
    BatchDone,
    CropSampler,
    DeviceOutOfMemory,
    EpochDone,
    SupervisedTrainer,
    TrainConfig,
    TrainingData,
    TrainStarted,
    ValidationTiles,
    preset_for_device,
    read_history,
    train,
)


@pytest.fixture(scope="module")
def data(simulated_dataset):
    full = TrainingData.from_folders(simulated_dataset.out / "Kidney")
    return dataclasses.replace(full, val=full.val[:1])  # one validation image keeps each epoch short


def config(name="bu", **overrides) -> TrainConfig:
    values = dict(epochs=2, steps_per_epoch=2, patch=32, batch=2, frames=(2, 3), val_tile=64, device="cpu")
    if name == "deblurgan":
        values["frames"] = 3
    return TrainConfig(ModelConfig.tiny(name), **{**values, **overrides})


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


# ---------------------------------------------------------------- data


def test_from_folders_splits_and_windows(data, simulated_dataset):
    assert data.train and data.val and not data.skipped
    assert all(p.session is not None for p in data.train + data.val)
    assert {p.name for p in data.train}.isdisjoint(p.name for p in data.val)
    # Low frames hold ~1/4 of the GT counts: each kind gets its own window
    assert data.low_window.high < data.gt_window.high / 2
    with pytest.raises(DataError, match="no readable Val pairs"):
        TrainingData.from_folders(simulated_dataset.out / "Kidney" / "Train")
    with pytest.raises(ValueError, match="no validation pairs"):
        TrainingData.from_pairs(data.train, [])


def _pair(name, gt, frames):
    return BurstPair(name, gt.astype(np.uint16), np.stack(frames).astype(np.uint16))


def test_crops_avoid_bars_and_padding_and_share_one_transform():
    rng = np.random.default_rng(0)
    gt = rng.integers(1000, 9000, (80, 120))
    gt[:, :30] = 0  # a grid bar
    frames = [gt // 4 for _ in range(5)]
    frames[4][60:, :] = 0  # registration padding of one frame
    window = IntensityWindow(0.0, 9000.0)
    data = TrainingData.from_pairs(
        [_pair("sess1_im1", gt, frames)],
        [_pair("sess1_im2", gt, frames)],
        gt_window=window,
        low_window=IntensityWindow(0.0, 2250.0),
    )
    inputs, targets = CropSampler(data, 32, (5, 5)).batch(np.random.default_rng(1), 64)
    assert inputs.shape == (64, 5, 32, 32) and targets.shape == (64, 1, 32, 32) and inputs.dtype == np.float32
    assert targets.min() > 0 and inputs.min() > 0
    # every frame is GT / 4 here, so any frame differing from the GT crop had another flip or turn
    np.testing.assert_allclose(inputs, np.broadcast_to(targets, inputs.shape), atol=1e-3)
    with pytest.raises(ValueError, match="no 64 x 64 training crop fits"):
        CropSampler(data, 64, (3, 5))


def test_frame_selection_burst_models_shuffle_deblurgan_keeps_time_order():
    gt = np.full((48, 48), 5000)
    frames = [np.full((48, 48), 1000 * (k + 1)) for k in range(5)]  # frame k windows to (k + 1) / 5
    data = TrainingData.from_pairs(
        [_pair("a", gt, frames)],
        [_pair("b", gt, frames)],
        gt_window=IntensityWindow(0.0, 8000.0),
        low_window=IntensityWindow(0.0, 5000.0),
    )
    rng = np.random.default_rng(2)

    def frame_indices(sampler):
        return tuple(np.round(sampler.batch(rng, 1)[0][0, :, 0, 0] * 5).astype(int) - 1)

    assert {CropSampler(data, 16, (3, 5)).batch(rng, 2)[0].shape[1] for _ in range(40)} == {3, 4, 5}
    shuffled = {frame_indices(CropSampler(data, 16, (3, 3))) for _ in range(60)}
    ordered = {frame_indices(CropSampler(data, 16, (3, 3), ordered=True)) for _ in range(60)}
    assert all(sorted(b) == list(range(min(b), min(b) + 3)) for b in shuffled | ordered)  # adjacent frames
    assert len(shuffled) > 6  # random order
    assert all(abs(b[2] - b[0]) == 2 for b in ordered)  # time order (or reversed): the middle stays the centre
    assert {(0, 1, 2), (2, 1, 0)} <= ordered


def test_validation_tiles_and_too_small_images(data):
    val = ValidationTiles.from_data(data, 32)
    assert val.count == sum(len(o) for o in val.origins) > 0
    assert all(o[:, 0].max() < g.shape[0] / 2 for o, g in zip(val.origins, val.gt))  # top half only
    (tiles, *_) = val.bursts(3)
    assert tiles.shape == (len(val.origins[0]), 3, 32, 32)
    np.testing.assert_array_equal(tiles[:, 1], val.bursts(1)[0][:, 0])  # centred on the centre frame
    with pytest.raises(ValueError, match="too small for one 256 x 256 validation tile"):
        ValidationTiles.from_data(data, 256)


def test_config_validation_and_round_trip():
    cfg = config("bdu-uc", frames=(3, 5), lr=0.01, patience=4, time_limit_s=60.0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg and cfg.frame_range == (3, 5)
    with pytest.raises(ValueError, match="deblurgan takes exactly 3 frames"):
        TrainConfig(ModelConfig.tiny("deblurgan"), frames=5)
    with pytest.raises(ValueError, match="patch 40 must be a multiple of 16"):
        config("bu", patch=40)
    with pytest.raises(ValueError, match="unknown training parameter"):
        TrainConfig.from_dict({**cfg.to_dict(), "learning_rate": 1})


# ---------------------------------------------------------------- the loop


def test_loss_falls_and_best_epoch_is_saved(data, tmp_path):
    events = []
    result = drain(train(config("bu", epochs=6, steps_per_epoch=5, batch=4), data, tmp_path / "run"), events.append)
    assert isinstance(events[0], TrainStarted) and events[0].device.startswith("cpu")
    assert sum(isinstance(e, BatchDone) for e in events) == 30
    history = result.history
    assert history[-1]["train_loss"] < 0.75 * history[0]["train_loss"]
    assert read_history(tmp_path / "run" / "history.csv") == history  # repr floats round-trip
    best = int(np.argmax([row["val_ssim"] for row in history]))
    assert result.best_epoch == best + 1 and result.best_val_ssim == history[best]["val_ssim"]
    assert [e.is_best for e in events if isinstance(e, EpochDone)] == [
        row["val_ssim"] > max([-1.0] + [r["val_ssim"] for r in history[:i]]) for i, row in enumerate(history)
    ]
    # best.pt holds the best epoch's weights: rescoring them independently gives its val SSIM
    model, checkpoint = load_model(tmp_path / "run")
    assert checkpoint.epoch == result.best_epoch and load_checkpoint(tmp_path / "run" / "last.pt").epoch == 6
    windows = dict(gt_window=checkpoint.gt_window, low_window=checkpoint.low_window)
    val = ValidationTiles.from_data(dataclasses.replace(data, **windows), 64)
    scores = []
    with torch.no_grad():
        for i, tiles in enumerate(val.bursts(3)):
            restored = model(torch.from_numpy(tiles)).clamp(0, 1)[:, 0].numpy()
            scores.append(tile_scores(val.paste(i, restored), val.gt[i], val.origins[i], 64)[0])
    assert np.concatenate(scores).mean() == pytest.approx(result.best_val_ssim, abs=1e-5)


def test_early_stop_after_patience_epochs_without_improvement(data, tmp_path):
    result = drain(train(config("bu", epochs=40, steps_per_epoch=1, patience=2, lr=0.03), data, tmp_path / "r"))
    assert result.stopped_reason == "early-stop"
    ssims = [row["val_ssim"] for row in result.history]
    best = [int(np.argmax(ssims[: i + 1])) + 1 for i in range(len(ssims))]
    assert [e - b for e, b in zip(range(1, len(ssims) + 1), best)][-1] == 2
    assert all(e - b < 2 for e, b in zip(range(1, len(ssims)), best[:-1]))


def test_time_limit_ends_the_epoch_early_and_saves_it(data, tmp_path):
    result = drain(train(config("bu", epochs=5, steps_per_epoch=50, time_limit_s=0.0), data, tmp_path / "r"))
    assert result.stopped_reason == "time-limit" and len(result.history) == 1 and result.best_epoch == 1
    assert load_checkpoint(tmp_path / "r" / "best.pt").epoch == 1


@pytest.mark.parametrize(("name", "epochs"), [("bdu-uc", 4), ("deblurgan", 2)])
def test_resume_continues_exactly(data, tmp_path, name, epochs):
    cfg = config(name, epochs=epochs)
    straight = drain(train(cfg, data, tmp_path / "straight"))
    drain(train(dataclasses.replace(cfg, epochs=epochs // 2), data, tmp_path / "split"))
    resumed = drain(train(cfg, data, tmp_path / "split", resume=True))
    assert without_seconds(resumed.history) == without_seconds(straight.history)
    a, b = (load_checkpoint(tmp_path / run / "last.pt") for run in ("straight", "split"))
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.training["trainer"]["optimizers"].keys() == b.training["trainer"]["optimizers"].keys()


def test_resume_and_restore_do_not_need_the_pretrained_backbone_file(data, tmp_path):
    from napari_temdeblur.core.models import build_model

    tiny = ModelConfig.tiny("deblurgan")
    backbone = tmp_path / "backbone.pth"
    torch.save(build_model(tiny).fpn.backbone.state_dict(), backbone)
    cfg = dataclasses.replace(
        config("deblurgan", epochs=2), model=dataclasses.replace(tiny, backbone_weights=str(backbone))
    )
    drain(train(dataclasses.replace(cfg, epochs=1), data, tmp_path / "run"))
    backbone.unlink()  # the user moved the file: the run's weights are in its checkpoints
    assert drain(train(cfg, data, tmp_path / "run", resume=True)).history[-1]["epoch"] == 2
    model, _ = load_model(tmp_path / "run", "cpu")
    assert sum(p.numel() for p in model.parameters()) > 0


def test_same_seed_same_history_other_seed_differs(data, tmp_path):
    runs = [
        drain(train(config("bdu-t", seed=seed, epochs=1), data, tmp_path / f"r{i}")) for i, seed in enumerate((5, 5, 6))
    ]
    assert without_seconds(runs[0].history) == without_seconds(runs[1].history)
    assert without_seconds(runs[0].history) != without_seconds(runs[2].history)


def test_existing_run_is_never_overwritten(data, tmp_path):
    drain(train(config("bu", epochs=1), data, tmp_path / "r"))
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    with pytest.raises(DataError, match="already holds a training run"):
        drain(train(config("bu", epochs=1), data, tmp_path / "r"))
    with pytest.raises(DataError, match="resume with the same model"):
        drain(train(config("bdu-uc", epochs=2), data, tmp_path / "r", resume=True))
    with pytest.raises(DataError, match="nothing to resume"):
        drain(train(config("bu"), data, tmp_path / "empty", resume=True))
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before


def test_resuming_another_model_names_model_and_width(data, tmp_path):
    drain(train(config("bu", epochs=1), data, tmp_path / "r"))
    others = [
        (config("bdu-uc", epochs=2), "was trained as bu of width 3, not bdu-uc of width 8"),
        (
            dataclasses.replace(config("bu", epochs=2), model=ModelConfig("bu", width=4)),
            "bu of width 3, not bu of width 4",
        ),
        (
            dataclasses.replace(config("bu", epochs=2), model=ModelConfig("bu", width=3, dropout=0.3)),
            "was trained as bu of width 3 (dropout 0.2), not bu of width 3 (dropout 0.3)",
        ),
    ]
    for cfg, words in others:
        with pytest.raises(DataError, match="resume with the same model") as info:
            drain(train(cfg, data, tmp_path / "r", resume=True))
        assert words in str(info.value) and "{" not in str(info.value) and len(str(info.value)) < 400


def test_resuming_with_no_epoch_left_to_train_says_so_and_changes_nothing(data, tmp_path, simulated_dataset, capsys):
    out = tmp_path / "r"
    drain(train(config("bu", epochs=2), data, out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for epochs in (1, 2):
        with pytest.raises(ValueError, match=rf"already trained 2 epochs, so epochs = {epochs} leaves none to train"):
            drain(train(config("bu", epochs=epochs), data, out, resume=True))
    args = ["train", str(simulated_dataset.out), "--model", "bu", "--out", str(out), "--resume", *ARGS]
    assert cli.main([*args, "--epochs", "1"]) == 2
    error = capsys.readouterr().err
    assert "already trained 2 epochs" in error and "nothing was changed" in error and "more than 2 epochs" in error
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_stop_and_close_keep_the_saved_epochs(data, tmp_path):
    out = tmp_path / "r"
    work = train(config("bu", epochs=5), data, out)
    event = next(work)
    while not isinstance(event, EpochDone):
        event = next(work)
    next(work)  # a batch of epoch 2 is done
    work.close()  # napari's worker.quit(): GeneratorExit at the yield
    assert load_checkpoint(out / "last.pt").epoch == 1 and len(read_history(out / "history.csv")) == 1
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json", "history.csv", "last.pt"]
    work = train(config("bu", epochs=5), data, out, resume=True)
    next(work), next(work)
    with pytest.raises(StopIteration) as stop:
        work.send(STOP)
    assert stop.value.value.stopped_reason == "cancelled" and stop.value.value.best_epoch == 1
    assert load_checkpoint(out / "last.pt").epoch == 1


def test_bursts_shorter_than_the_frames_asked_for_are_named(data, tmp_path):
    # registration leaves flagged frames out, so a registered burst may hold fewer frames
    short = dataclasses.replace(data.val[0], low=data.val[0].low[:2])
    with pytest.raises(ValueError, match=rf"some validation bursts have fewer: {short.name} \(2\)"):
        next(train(config("bu"), dataclasses.replace(data, val=[short]), tmp_path / "r"))
    short = dataclasses.replace(data.train[1], low=data.train[1].low[:2])
    with pytest.raises(ValueError, match=rf"some training bursts have fewer: {short.name} \(2\)"):
        next(train(config("bu"), dataclasses.replace(data, train=[data.train[0], short]), tmp_path / "s"))


def test_a_run_stopped_before_its_first_epoch_leaves_the_folder_usable(data, tmp_path):
    out = tmp_path / "r"
    work = train(config("bu", epochs=1), data, out)
    next(work)  # TrainStarted: config.json is written, no weights yet
    with pytest.raises(StopIteration):
        work.send(STOP)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert drain(train(config("bu", epochs=1), data, out)).best_epoch == 1


def test_out_of_memory_becomes_a_hint(data, tmp_path, monkeypatch):
    def oom(self, inputs, targets):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(SupervisedTrainer, "step", oom)
    with pytest.raises(DeviceOutOfMemory, match="smaller batch or patch"):
        drain(train(config("bu"), data, tmp_path / "r"))


def test_deblurgan_trains_its_generator_and_discriminators(data, tmp_path):
    result = drain(train(config("deblurgan", epochs=1, steps_per_epoch=1), data, tmp_path / "r"))
    last = load_checkpoint(tmp_path / "r" / "last.pt")
    assert result.best_epoch == 1 and set(last.training["trainer"]["optimizers"]) == {"model", "discriminators"}
    assert last.training["trainer"]["optimizers"]["discriminators"]["state"]  # the discriminators took a step
    model, _ = load_model(tmp_path / "r")
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)


# ---------------------------------------------------------------- temdeblur train

ARGS = [
    "--width",
    "tiny",
    "--epochs",
    "2",
    "--steps-per-epoch",
    "2",
    "--patch",
    "32",
    "--batch",
    "2",
    "--val-tile",
    "64",
    "--device",
    "cpu",
    "--frames",
    "2-3",
]


def test_cli_writes_the_run_folder(simulated_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", str(simulated_dataset.out), "--model", "bu", "--out", str(out), *ARGS]) == 0
    lines = capsys.readouterr().out.splitlines()
    # what the preset chose and what the options changed, before anything trains
    assert lines[0].startswith("preset quick (CPU, minutes): fast-burst, 64 px crops, batch 8, 20 steps per epoch")
    assert lines[1].startswith("  changed: model bu (width 3), epochs 2, steps_per_epoch 2, patch 32, batch 2")
    assert lines[2].startswith("training bu (") and "from scratch) on cpu" in lines[2]
    text = "\n".join(lines)
    assert "epoch 1/2" in text and "s/epoch  about" in text and f"checkpoint: {out / 'best.pt'}" in text
    assert "trust intervals calibrated on" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "calibration.json",
        "config.json",
        "history.csv",
        "last.pt",
    ]
    assert cli.main(["train", str(simulated_dataset.out), "--model", "bu", "--out", str(out), *ARGS]) == 2
    assert "already holds a training run" in capsys.readouterr().err


def test_presets_fit_the_device_and_every_value_stays_editable():
    assert set(PRESETS) == {"quick", "thorough", "paper"}
    assert preset_for_device("cpu") is PRESETS["quick"]
    quick, paper = PRESETS["quick"].config(init="scratch"), PRESETS["paper"].config()
    assert (quick.model.name, quick.patch, quick.time_limit_s, quick.patience) == ("fast-burst", 64, 300.0, 40)
    assert (paper.model, paper.epochs, paper.patch, paper.time_limit_s) == (ModelConfig("bdu-uc-ssim"), 2000, 128, None)
    assert PRESETS["quick"].config(patch=96, init="scratch").patch == 96
    args = cli.build_parser().parse_args(["train", "D", "--out", "R", "--time-limit", "none", "--epochs", "7"])
    cfg, preset = _cli_train.training_config(args)
    assert preset.name == "quick" and cfg.time_limit_s is None and cfg.epochs == 7 and cfg.patience == 40


def test_each_epoch_estimates_the_time_left(data, tmp_path):
    events = []
    drain(train(config("bu", epochs=3), data, tmp_path / "r"), events.append)
    epochs = [e for e in events if isinstance(e, EpochDone)]
    assert [e.seconds_left > 0 for e in epochs] == [True, True, False]  # 2 epochs, 1, none left
    assert epochs[0].seconds_left > epochs[1].seconds_left
    limited = []
    drain(train(config("bu", epochs=1000, time_limit_s=1e-6), data, tmp_path / "t"), limited.append)
    assert [e.seconds_left for e in limited if isinstance(e, EpochDone)] == [0.0]  # the time limit comes first
    assert time_left(42) == "about 42 s left" and time_left(600) == "about 10 min left" and time_left(None) == ""


def test_cli_ctrl_c_keeps_the_best_checkpoint(simulated_dataset, tmp_path, capsys, monkeypatch):
    show = _cli_train._Display.__call__

    def interrupted_in_epoch_2(self, event):
        show(self, event)
        if isinstance(event, BatchDone) and event.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(_cli_train._Display, "__call__", interrupted_in_epoch_2)
    out = tmp_path / "run"
    assert cli.main(["train", str(simulated_dataset.out), "--model", "bdu-uc", "--out", str(out), *ARGS]) == 130
    assert "best epoch 1" in capsys.readouterr().out
    assert load_checkpoint(out / "best.pt").epoch == 1 and load_checkpoint(out / "last.pt").epoch == 1
