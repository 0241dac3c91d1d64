"""The README's main job, ``temdeblur demo``, end to end with a few seconds of training."""

from __future__ import annotations

import json

from napari_temdeblur.cli import main
from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.train import read_history


def test_demo_simulates_registers_and_trains(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--minutes", "0.05"]) == 0
    printed = capsys.readouterr().out
    # every step is shown as the command a user would type
    for step in ("$ temdeblur simulate", "$ temdeblur register", "$ temdeblur train", "$ temdeblur evaluate"):
        assert step in printed
    splits = {(s.sample, s.split): len(s.pairs) for s in read_dataset(out / "dataset")}
    assert splits[("Kidney", "Train")] > 0 and splits[("Kidney", "Val")] > 0
    assert all((out / "sessions" / "Kidney" / f"sess{k}" / "registration.json").is_file() for k in (1, 2, 3, 4))
    run = out / "runs" / "fast-burst"
    assert (run / "best.pt").is_file()
    history = read_history(run / "history.csv")
    assert len(history) >= 1
    # evaluated on the kidney Test session against the input and the baselines, and reported
    scores = json.loads((out / "evaluation.json").read_text())
    assert scores["split"] == "Test" and scores["tiles"] > 0
    assert set(scores["methods"]) == {"input", "frame-mean", "wiener", "richardson-lucy", "fast-burst"}
    report = (out / "report.md").read_text()
    assert "| fast-burst |" in report and "| input |" in report and "comparison.png" in report
    assert (out / "comparison.png").stat().st_size > 10_000
    assert "fast-burst: SSIM" in printed and "Verdict: the network" in printed
    # a second demo into the same folder replaces its own run instead of refusing
    assert main(["demo", "--out", str(out), "--minutes", "0.05"]) == 0


def test_demo_verdict_compares_with_the_input_and_the_best_baseline():
    from napari_temdeblur.cli._demo import verdict

    def scores(ssim, psnr):
        return {"ssim_mean": ssim, "ssim_std": 0.0, "psnr_mean": psnr, "psnr_std": 0.0}

    methods = {
        "input": scores(0.15, 14.5),
        "wiener": scores(0.67, 16.2),
        "frame-mean": scores(0.34, 15.7),
        "fast-burst": scores(0.66, 23.6),
    }
    first, second, third = verdict(methods)
    assert "(+0.510)" in first and "(+9.10 dB)" in first
    assert "wiener" in second and "below it in SSIM (-0.010)" in second and "above it in PSNR (+7.40 dB)" in second
    assert "does NOT clearly beat" in third
    # clearly better means by at least 0.05 SSIM over the best baseline
    assert "does NOT clearly beat" in verdict({**methods, "fast-burst": scores(0.719, 23.6)})[2]
    assert (
        "clearly beats every classical baseline (by +0.060" in verdict({**methods, "fast-burst": scores(0.73, 23.6)})[2]
    )
