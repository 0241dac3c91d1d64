"""The README's main job, ``temdeblur demo``, end to end with a few seconds of training."""

from __future__ import annotations

from napari_temdeblur.cli import main
from napari_temdeblur.core.dataset import read_dataset
from napari_temdeblur.core.train import read_history


def test_demo_simulates_registers_and_trains(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--minutes", "0.05"]) == 0
    printed = capsys.readouterr().out
    # every step is shown as the command a user would type
    for step in ("$ temdeblur simulate", "$ temdeblur register", "$ temdeblur train"):
        assert step in printed
    splits = {(s.sample, s.split): len(s.pairs) for s in read_dataset(out / "dataset")}
    assert splits[("Kidney", "Train")] > 0 and splits[("Kidney", "Val")] > 0
    assert all((out / "sessions" / "Kidney" / f"sess{k}" / "registration.json").is_file() for k in (1, 2, 3, 4))
    assert (out / "run" / "best.pt").is_file()
    history = read_history(out / "run" / "history.csv")
    assert len(history) >= 1
    # a second demo into the same folder replaces its own run instead of refusing
    assert main(["demo", "--out", str(out), "--minutes", "0.05"]) == 0
