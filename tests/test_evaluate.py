"""The paper's evaluation: ``evaluate``, its tables and JSON, ``temdeblur evaluate``, ``train --hold-out``."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from napari_temdeblur import cli
from napari_temdeblur.core import DataError, drain, write_json
from napari_temdeblur.core.evaluate import (
    BASELINES,
    HELD_OUT,
    EvaluateOptions,
    Evaluation,
    MethodScores,
    evaluate,
    format_table,
    markdown_table,
)
from napari_temdeblur.core.imaging import IntensityWindow as Window
from napari_temdeblur.core.imaging import (
    apply_window,
    evaluation_tiles,
    sample_mask,
    suggest_window,
    tile_scores,
)
from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.models import ModelConfig
from napari_temdeblur.core.restore import RestoreOptions, collect_restored, restore
from napari_temdeblur.core.train import TrainConfig, TrainingData, train

TILE = 64  # the simulated strips are ~160 x 250 px: 128 px tiles would leave one per image at most
FAST = RestoreOptions(device="cpu", inference_tile=256)  # one inference tile per simulated strip
SUMMARY = {"ssim_mean", "ssim_std", "psnr_mean", "psnr_std"}


def _train(out, data):
    """A tiny bu trained for one step: real weights, BN statistics and config.json in seconds."""
    data = dataclasses.replace(data, val=data.val[:1])
    cfg = TrainConfig(
        ModelConfig.tiny("bu"), epochs=1, steps_per_epoch=1, patch=32, batch=2, frames=(2, 3), val_tile=64, device="cpu"
    )
    drain(train(cfg, data, out))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory, kidney):
    return _train(tmp_path_factory.mktemp("runs") / "kidney-bu", TrainingData.from_folders(kidney))


@pytest.fixture(scope="module")
def held_out_run(tmp_path_factory, kidney):
    data = TrainingData.from_folders(kidney, hold_out_sessions=(2,))
    return _train(tmp_path_factory.mktemp("runs") / "kidney-without-2", data)


def _direct_input_scores(sample_folder, split="Test"):
    """The protocol written out with the core functions: windows over the split, centre frame vs GT."""
    pairs = next(s for s in read_dataset(sample_folder) if s.split == split).pairs
    gt_window = suggest_window([p.gt for p in pairs])
    low_window = suggest_window([p.low for p in pairs])
    ssim, psnr, frame_mean = [], [], []
    for pair in pairs:
        gt, low = apply_window(pair.gt, gt_window), apply_window(pair.low, low_window)
        origins = evaluation_tiles(sample_mask(np.concatenate([gt[None], low])), size=TILE, keep_rows_fraction=0.5)
        s, p = tile_scores(low[len(low) // 2], gt, origins, TILE)
        ssim.append(s)
        psnr.append(p)
        frame_mean.append(tile_scores(low.mean(axis=0), gt, origins, TILE)[0])
    return np.concatenate(ssim), np.concatenate(psnr), np.concatenate(frame_mean), pairs, gt_window


def test_cli_evaluate_json_schema_tables_and_figure(simulated_dataset, run, tmp_path, capsys):
    out = tmp_path / "scores.json"
    png, md = tmp_path / "figure.png", tmp_path / "tables.md"
    rc = cli.main(
        [
            "evaluate",
            str(simulated_dataset.out),
            "--model",
            str(run),
            "--baselines",
            "--tile",
            str(TILE),
            "--device",
            "cpu",
            "--restore-tile",
            "256",
            "--json",
            str(out),
            "--markdown",
            str(md),
            "--figure",
            str(png),
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0
    scores = json.loads(out.read_text())
    keys = ["input", *BASELINES, "kidney-bu"]
    assert {"dataset", "split", "tiles", "methods"} <= set(scores)
    assert scores["dataset"] == str(simulated_dataset.out) and scores["split"] == "Test"
    assert list(scores["methods"]) == keys
    assert all(set(m) == SUMMARY and all(np.isfinite(list(m.values()))) for m in scores["methods"].values())
    # Table 3: each sample on its own, and pooled
    assert set(scores["samples"]) == {"Kidney", "CalibrationGrid"}
    assert scores["tiles"] == sum(s["tiles"] for s in scores["samples"].values()) > 0
    for sample in scores["samples"].values():
        assert list(sample["methods"]) == keys
    for key in keys:
        assert key in printed and key in md.read_text()
    assert "Kidney SSIM" in printed and "all SSIM" in printed and "±" in printed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the input row is the protocol computed directly (windows of the Kidney test images only)
    ssim, psnr, frame_mean, pairs, gt_window = _direct_input_scores(simulated_dataset.out / "Kidney")
    kidney = scores["samples"]["Kidney"]
    assert kidney["tiles"] == len(ssim)
    assert kidney["methods"]["input"]["ssim_mean"] == pytest.approx(ssim.mean(), abs=1e-9)
    assert kidney["methods"]["input"]["ssim_std"] == pytest.approx(ssim.std(), abs=1e-9)
    assert kidney["methods"]["input"]["psnr_mean"] == pytest.approx(psnr.mean(), abs=1e-9)
    assert kidney["methods"]["frame-mean"]["ssim_mean"] == pytest.approx(frame_mean.mean(), abs=1e-6)
    # the run restores through its own windows; its output is scored in the evaluation's GT window
    restored = drain(collect_restored(restore(run, pairs, RestoreOptions(device="cpu", inference_tile=256))))
    expected = []
    for pair, result in zip(pairs, restored):
        gt = apply_window(pair.gt, gt_window)
        low = apply_window(pair.low, Window.from_dict(scores["windows"]["Kidney"]["low"]))
        origins = evaluation_tiles(sample_mask(np.concatenate([gt[None], low])), size=TILE, keep_rows_fraction=0.5)
        expected.append(tile_scores(apply_window(result.counts, gt_window), gt, origins, TILE)[0])
    assert kidney["methods"]["kidney-bu"]["ssim_mean"] == pytest.approx(np.concatenate(expected).mean(), abs=1e-6)


def test_cross_validation_scores_each_run_on_the_sessions_it_held_out(kidney, run, held_out_run, tmp_path):
    config = json.loads((held_out_run / "config.json").read_text())["data"]
    assert config["held_out_sessions"] == [2]
    assert not any(name.startswith("sess2_") for name in config["train"] + config["val"])

    # an older run without the held_out_sessions record: scored on every session it never saw (2 and 3)
    unrecorded = tmp_path / "kidney-unrecorded"
    shutil.copytree(held_out_run, unrecorded)
    config = json.loads((unrecorded / "config.json").read_text())
    del config["data"]["held_out_sessions"]
    (unrecorded / "config.json").write_text(json.dumps(config))

    evaluation = drain(
        evaluate(
            [kidney],
            [run, held_out_run, unrecorded],
            EvaluateOptions(score_tile=TILE, cross_validation=True, restore=FAST),
        )
    )
    assert evaluation.split == HELD_OUT
    # the held-out run is scored on exactly the session it held out (not also on Test, which it never
    # saw either); run (sessions 1 and 2 in Train and Val) and the unrecorded run fall back, with a message
    assert [(f.run, f.session) for f in evaluation.folds] == [
        ("kidney-bu", 3),
        ("kidney-without-2", 2),
        ("kidney-unrecorded", 2),
        ("kidney-unrecorded", 3),
    ]
    assert (
        "kidney-bu records no held-out session (trained without --hold-out): scored on the sessions it never saw: 3"
    ) in evaluation.messages
    assert "kidney-unrecorded records no held-out session" in " ".join(evaluation.messages)
    assert not any(m.startswith("kidney-without-2") for m in evaluation.messages)
    assert set(evaluation.folds[0].methods) == {"input", "kidney-bu"}
    assert evaluation.folds[1].tiles > 0 and evaluation.folds[0].tiles == evaluation.folds[3].tiles
    assert evaluation.tiles == sum(f.tiles for f in evaluation.folds)
    assert evaluation.methods["kidney-without-2"].tiles == evaluation.folds[1].tiles
    scores = evaluation.to_json()
    assert [f["session"] for f in scores["folds"]] == [3, 2, 2, 3]
    assert "mean ± std over folds" in format_table(evaluation)
    with pytest.raises(ValueError, match="held out sessions 2, but the data holds sessions 3: nothing to score"):
        drain(evaluate([kidney / "Test"], [held_out_run], EvaluateOptions(cross_validation=True, score_tile=TILE)))

    # a run that saw every session of the data has nothing to be cross-validated on
    with pytest.raises(ValueError, match="none is held out"):
        drain(
            evaluate([kidney / "Train", kidney / "Val"], [run], EvaluateOptions(cross_validation=True, score_tile=TILE))
        )


def test_json_is_strict_when_a_tile_equals_its_gt(tmp_path):
    identical = MethodScores(np.array([1.0, 1.0]), np.array([np.inf, np.inf]))  # PSNR of identical tiles
    evaluation = Evaluation("d", "Test", 2, {"input": identical}, {"S": {"tiles": 2, "methods": {"input": identical}}})
    scores = evaluation.to_json()
    assert scores["methods"]["input"] == {"ssim_mean": 1.0, "ssim_std": 0.0, "psnr_mean": None, "psnr_std": None}
    assert scores["samples"]["S"]["methods"]["input"]["psnr_mean"] is None
    assert json.loads(write_json(tmp_path / "s.json", scores, allow_nan=False).read_text()) == scores
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json(tmp_path / "nan.json", {"psnr": float("inf")}, allow_nan=False)
    assert not (tmp_path / "nan.json").exists()


def test_hold_out_training_data(kidney):
    data = TrainingData.from_folders(kidney, hold_out_sessions=(2,))
    assert data.held_out_sessions == [2] and data.train and data.val
    assert all(p.session != 2 for p in data.train + data.val)
    with pytest.raises(DataError, match="cannot hold out session.s. 7"):
        TrainingData.from_folders(kidney, hold_out_sessions=(7,))
    with pytest.raises(DataError, match="leaves no Val pair"):
        TrainingData.from_folders(kidney, hold_out_sessions=(1,))
    parser = cli.build_parser()
    assert parser.parse_args(["train", "d", "--model", "bu", "--out", "o", "--hold-out", "sess2, 3"]).hold_out == (2, 3)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "d", "--model", "bu", "--out", "o", "--hold-out", "sess2_im3"])


def test_bad_inputs_get_clear_messages(kidney, run, tmp_path, capsys):
    twin = tmp_path / "elsewhere" / run.name
    shutil.copytree(run, twin)
    with pytest.raises(ValueError, match=f"two runs share the name 'kidney-bu': {run}.* and {twin}"):
        drain(evaluate([kidney], [run, twin]))
    with pytest.raises(DataError, match="no readable Nope split here .splits found: Test, Train, Val"):
        drain(evaluate([kidney], [run], EvaluateOptions(split="Nope")))
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / "config.json").write_text("{}")
    with pytest.raises(DataError, match="no best.pt in this folder"):
        drain(evaluate([kidney], [untrained]))
    with pytest.raises(DataError, match="not a run folder"):
        drain(evaluate([kidney], [tmp_path / "missing"]))
    with pytest.raises(DataError, match="no dataset here"):
        drain(evaluate([untrained], [run]))
    with pytest.raises(ValueError, match="nothing to compare"):
        drain(evaluate([kidney]))
    named_input = tmp_path / "input"
    shutil.copytree(run, named_input)
    with pytest.raises(ValueError, match="named like the built-in method 'input'"):
        drain(evaluate([kidney], [named_input]))
    with pytest.raises(ValueError, match="read twice"):
        drain(evaluate([kidney, kidney / "Test"], options=EvaluateOptions(baselines=True)))
    with pytest.raises(ValueError, match="score_tile must be at least the SSIM window, 11 px, got 8"):
        drain(evaluate([kidney], options=EvaluateOptions(baselines=True, score_tile=8)))
    with pytest.raises(ValueError, match="no image holds a 512 x 512 evaluation tile"):
        drain(evaluate([kidney], options=EvaluateOptions(baselines=True, score_tile=512)))
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    shutil.copy(run / "best.pt", no_config / "best.pt")
    with pytest.raises(DataError, match="config.json: missing; cross-validation reads"):
        drain(evaluate([kidney], [no_config], EvaluateOptions(cross_validation=True)))
    assert cli.main(["evaluate", str(kidney), "--baselines", "--synthetic-figure", str(tmp_path / "f.png")]) == 2
    assert "--synthetic-figure draws the runs' outputs" in capsys.readouterr().err


def test_progress_cancel_examples_and_tables(kidney):
    work = evaluate(kidney, options=EvaluateOptions(baselines=True, score_tile=TILE))  # one folder needs no list
    first = next(work)
    assert (first.stage, first.done, first.total) == ("evaluate", 0, 4) and "Kidney/sess3_im1" in first.message
    next(work)
    work.close()  # a cancel at a yield (napari's worker.quit()) ends it cleanly: nothing was written
    events = []
    evaluation = drain(
        evaluate(kidney, options=EvaluateOptions(baselines=True, score_tile=TILE, keep_examples=2)), events.append
    )
    assert [e.done for e in events] == [0, 1, 2, 3, 4]
    assert list(evaluation.methods) == ["input", *BASELINES]
    ssim, psnr, _, pairs, _ = _direct_input_scores(kidney)
    np.testing.assert_allclose(evaluation.methods["input"].ssim, ssim, atol=1e-9)
    np.testing.assert_allclose(evaluation.methods["input"].psnr, psnr, atol=1e-9)
    assert [e.name for e in evaluation.examples] == [p.name for p in pairs[:2]]
    example = evaluation.examples[0]
    assert list(example.outputs) == list(BASELINES) and example.gt.shape == example.input.shape == pairs[0].gt.shape
    assert example.input.max() <= 1 and all(out.min() >= 0 and out.max() <= 1 for out in example.outputs.values())
    text = format_table(evaluation).splitlines()
    assert text[1].split() == ["method", "Kidney", "SSIM", "Kidney", "PSNR", "(dB)"] and text[3].startswith("input ")
    table = markdown_table(evaluation).splitlines()
    assert table[2] == "| method | Kidney SSIM | Kidney PSNR (dB) |"
    assert table[4].startswith(f"| input | {ssim.mean():.4f} ± {ssim.std():.4f} | {psnr.mean():.2f} ± ")
