"""Checkpoints: round trip, atomic writes, clear errors for bad files; devices."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_temdeblur.core import DataError, available_devices, resolve_device
from napari_temdeblur.core.imaging import IntensityWindow
from napari_temdeblur.core.models import ModelConfig, build_model
from napari_temdeblur.core.models import _checkpoint as ckpt

GT_WINDOW, LOW_WINDOW = IntensityWindow(100.0, 20000.0), IntensityWindow(300.0, 6000.0)


def _save(path, model, cfg, epoch=3, **extra):
    return ckpt.save_checkpoint(
        path,
        model=cfg,
        state_dict=model.state_dict(),
        epoch=epoch,
        gt_window=GT_WINDOW,
        low_window=LOW_WINDOW,
        frames=(3, 5),
        **extra,
    )


@pytest.fixture
def saved(tmp_path):
    cfg = ModelConfig.tiny("bdu-uc")
    torch.manual_seed(1)
    model = build_model(cfg)
    return _save(tmp_path / "best.pt", model, cfg, val_ssim=0.5), model, cfg


def test_round_trip_restores_weights_windows_and_frames(saved):
    path, model, cfg = saved
    loaded = ckpt.load_checkpoint(path)
    assert (loaded.model, loaded.epoch, loaded.frames, loaded.val_ssim) == (cfg, 3, (3, 5), 0.5)
    assert (loaded.gt_window, loaded.low_window) == (GT_WINDOW, LOW_WINDOW)
    assert loaded.versions["torch"] == str(torch.__version__)
    restored, from_run = ckpt.load_model(path.parent, "cpu")  # a run folder means its best.pt
    assert from_run.path == path and not restored.training
    x = torch.rand(2, 4, 16, 16)
    with torch.no_grad():
        assert torch.equal(restored(x), model.eval()(x))


def test_failed_write_keeps_the_previous_checkpoint(saved, monkeypatch):
    path, model, cfg = saved
    before = path.read_bytes()

    def dies_half_way(obj, f):  # a crash (or kill) while the new checkpoint is being written
        with open(f, "wb") as handle:
            handle.write(before[: len(before) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="No space"):
        _save(path, model, cfg, epoch=9)
    assert path.read_bytes() == before and ckpt.load_checkpoint(path).epoch == 3
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temporary file left behind


def test_leftover_temporary_file_of_a_killed_write_is_harmless(saved):
    path, _, _ = saved
    (path.parent / ".best.pt.abc123.tmp").write_bytes(path.read_bytes()[:1000])
    assert ckpt.load_checkpoint(path).epoch == 3


_WRITER = """
import os, sys
from napari_temdeblur.core import atomic_write

def write(tmp):
    tmp.write_bytes(b"half a file")
    print(tmp, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), 9)
    if sys.argv[2] == "wait":
        sys.stdin.readline()  # a write in progress until told to finish
    tmp.write_bytes(b"a whole file")

atomic_write(sys.argv[1], write)
"""


def test_a_temporary_file_left_by_a_killed_save_is_removed_by_the_next_run(tmp_path):
    def writer(name, how):
        return subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path / name), how], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    running = writer("best.pt", "wait")  # another run's save in progress
    busy = running.stdout.readline().decode().strip()
    killed = writer("last.pt", "kill")  # kill -9 during a save
    left = killed.stdout.readline().decode().strip()
    assert killed.wait() == -9 and sorted(str(p) for p in tmp_path.glob(".*.tmp")) == sorted([busy, left])
    assert writer("history.csv", "now").wait() == 0  # the next run's first write into the folder
    assert [str(p) for p in tmp_path.glob(".*.tmp")] == [busy]  # the killed save's file is gone, not the other's
    running.communicate(b"go\n")
    assert (tmp_path / "best.pt").read_bytes() == b"a whole file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "history.csv"]


class _Foreign:
    pass


class _RunsCode:
    def __reduce__(self):
        return (print, ("this would run while loading",))


@pytest.mark.parametrize(
    ("payload", "named"),
    [(_Foreign(), "_Foreign"), ({"state_dict": _RunsCode()}, "print"), ({"x": np.zeros(3)}, "_reconstruct")],
    ids=["class", "reduce", "numpy"],
)
def test_a_file_that_would_run_code_is_refused_without_torch_advice(tmp_path, payload, named):
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(DataError) as info:
        ckpt.load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a napari-temdeblur checkpoint") and named in message
    assert "napari-temdeblur never runs code from a file" in message
    _no_torch_advice(message)


def _no_torch_advice(message: str) -> None:
    for advice in ("weights_only", "will likely succeed", "safe_globals", "trust", "Please"):
        assert advice not in message, message


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch's, about the file
@pytest.mark.parametrize("content", [b"not a checkpoint at all", b"\x80\x04\x95\x05\x00K\x01."], ids=["text", "pickle"])
def test_a_file_torch_refuses_as_data_gets_no_torch_advice_either(tmp_path, content):
    path = tmp_path / "other.pt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not a readable napari-temdeblur checkpoint") as info:
        ckpt.load_checkpoint(path)
    _no_torch_advice(str(info.value))


@pytest.mark.parametrize("kind", ["truncated", "garbage", "foreign-dict", "pickled-code", "empty", "missing"])
def test_unusable_files_raise_data_error_naming_the_file(saved, kind):
    path, _, _ = saved
    bad = path.parent / "bad.pt"
    if kind == "truncated":
        bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "garbage":
        bad.write_bytes(bytes(range(256)) * 10)
    elif kind == "foreign-dict":
        torch.save({"model": {"weights": torch.zeros(3)}}, bad)
    elif kind == "pickled-code":
        torch.save(_Foreign(), bad)
    elif kind == "empty":
        bad.write_bytes(b"")
    with pytest.raises(DataError, match="bad.pt") as info:
        ckpt.load_checkpoint(bad)
    assert "checkpoint" in str(info.value)


def test_unknown_model_or_mismatched_weights_raise_data_error(tmp_path, saved):
    path, model, cfg = saved
    data = torch.load(path, weights_only=True)
    data["model"]["name"] = "unet9000"
    torch.save(data, tmp_path / "renamed.pt")
    with pytest.raises(DataError, match="unet9000"):
        ckpt.load_checkpoint(tmp_path / "renamed.pt")
    _save(tmp_path / "wrong.pt", build_model(ModelConfig.tiny("bu")), cfg)  # bu weights labelled bdu-uc
    with pytest.raises(DataError, match="do not fit model bdu-uc"):
        ckpt.load_model(tmp_path / "wrong.pt")


def test_devices():
    names = available_devices()
    assert names[:2] == ["auto", "cpu"]
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if "cuda" in names else "mps" if "mps" in names else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="cuda:99.*choose one of auto, cpu"):
        resolve_device("cuda:99")
