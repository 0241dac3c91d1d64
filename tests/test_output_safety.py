"""Nothing lost, nothing written where it does not belong (issue 16, items 1, 4 and 7): every command
replaces only files it wrote itself (or with --overwrite), names from data files never leave the
output folder, and ``temdeblur restore`` says by its exit status that inputs were skipped."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import tifffile

from napari_temdeblur import cli
from napari_temdeblur.core import DataError
from napari_temdeblur.core.io import (
    OverwriteRefused,
    check_overwrite,
    open_session,
    path_component,
    write_session,
)

RESTORE = ["--device", "cpu", "--tile", "64"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, untrained_run):
    """A checkpoint of a tiny network with fresh weights: enough to restore, no training."""
    return untrained_run(tmp_path_factory.mktemp("tiny") / "best.pt", gt_window=(0, 20000), low_window=(500, 5000))


@pytest.fixture
def split(simulated_dataset, tmp_path):
    """A private copy of the Kidney Test split (its GT must survive what the tests do)."""
    return shutil.copytree(simulated_dataset.out / "Kidney" / "Test", tmp_path / "Test")


def _burst(folder, name, seed=0):
    """A burst folder ``<folder>/<name>/<name>_<k>.tif`` of three 40 x 40 frames."""
    rng = np.random.default_rng(seed)
    (folder / name).mkdir(parents=True)
    for k in range(3):
        tifffile.imwrite(folder / name / f"{name}_{k}.tif", rng.integers(1000, 4000, (40, 40), dtype=np.uint16))
    return folder / name


# --- the shared rule ----------------------------------------------------------------------------------


def test_check_overwrite_refuses_files_it_does_not_own_and_names_them(tmp_path):
    foreign = [tmp_path / f"f{k}.tif" for k in range(5)]
    for path in foreign:
        path.write_bytes(b"theirs")
    ours = tmp_path / "ours.tif"
    ours.write_bytes(b"ours")
    planned = [*foreign, ours, tmp_path / "new.tif"]
    with pytest.raises(OverwriteRefused) as refused:
        check_overwrite(tmp_path, planned, owned=[ours])
    message = str(refused.value)
    assert isinstance(refused.value, DataError) and refused.value.files == foreign
    assert "5 files" in message and "f0.tif, f1.tif, f2.tif and 2 more" in message and "ours.tif" not in message
    # what it wrote itself is replaced; --overwrite takes the others too
    assert check_overwrite(tmp_path, [ours, tmp_path / "new.tif"], owned=[ours]) == [ours]
    assert check_overwrite(tmp_path, planned, owned=[ours], overwrite=True) == [*foreign, ours]
    # ownership may be a test of the file itself
    theirs = lambda path: path.read_bytes() == b"theirs"  # noqa: E731
    assert check_overwrite(tmp_path, [*foreign, tmp_path / "new.tif"], owned=theirs) == foreign
    with pytest.raises(OverwriteRefused, match="ours.tif"):
        check_overwrite(tmp_path, planned, owned=theirs)


# --- restore ------------------------------------------------------------------------------------------


def test_restore_into_a_dataset_gt_folder_replaces_nothing(tiny_run, split, capsys):
    """The case of the issue: restoring a burst of Low/ into GT/ replaced the uint16 ground truth."""
    name = sorted(p.stem for p in (split / "GT").iterdir())[0]
    before = {p.name: p.read_bytes() for p in (split / "GT").iterdir()}
    burst = split / "Low" / name
    assert cli.main(["restore", str(tiny_run), str(burst), str(split / "GT"), *RESTORE]) == 2
    err = capsys.readouterr().err
    assert f"{name}.tif" in err and "not written" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in (split / "GT").iterdir()} == before  # no stray _counts.tif either
    # asked for, it does replace them
    assert cli.main(["restore", str(tiny_run), str(burst), str(split / "GT"), *RESTORE, "--overwrite"]) == 0
    assert tifffile.imread(split / "GT" / f"{name}.tif").dtype == np.float32


def test_restore_json_keeps_every_runs_images(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    first, second = _burst(tmp_path / "in", "a", 1), _burst(tmp_path / "in", "b", 2)
    assert cli.main(["restore", str(tiny_run), str(first), str(out), *RESTORE]) == 0
    assert cli.main(["restore", str(tiny_run), str(second), str(out), *RESTORE]) == 0
    record = json.loads((out / "restore.json").read_text())
    assert sorted(record["images"]) == ["a", "b"]
    assert record["images"]["a"]["input"] == str(first) and record["images"]["b"]["input"] == str(second)
    assert all((out / f"{n}{s}.tif").is_file() for n in "ab" for s in ("", "_counts"))
    # its own earlier image is restored again in place, and the run says so
    capsys.readouterr()
    assert cli.main(["restore", str(tiny_run), str(first), str(out), *RESTORE]) == 0
    assert "replacing 1 image(s) restored earlier" in capsys.readouterr().out
    assert sorted(json.loads((out / "restore.json").read_text())["images"]) == ["a", "b"]
    # a file it did not write, under a name it would use, is refused
    (out / "c.tif").write_bytes(b"someone else's")
    assert cli.main(["restore", str(tiny_run), str(_burst(tmp_path / "in", "c")), str(out), *RESTORE]) == 2
    assert "c.tif" in capsys.readouterr().err and (out / "c.tif").read_bytes() == b"someone else's"


def test_restore_refuses_a_restore_json_of_another_kind(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "restore.json").write_text('{"mine": true}')
    assert cli.main(["restore", str(tiny_run), str(_burst(tmp_path, "a")), str(out), *RESTORE]) == 2
    assert "restore.json" in capsys.readouterr().err
    assert (out / "restore.json").read_text() == '{"mine": true}' and not (out / "a.tif").exists()


# --- item 7: skipped inputs ---------------------------------------------------------------------------


def test_restore_exits_1_when_an_input_was_skipped_after_restoring_the_rest(tiny_run, split, tmp_path, capsys):
    names = sorted(p.stem for p in (split / "GT").iterdir())
    (split / "Low" / names[0] / f"{names[0]}_1.tif").write_bytes(b"damaged")
    out = tmp_path / "out"
    assert cli.main(["restore", str(tiny_run), str(split), str(out), *RESTORE]) == 1
    printed = capsys.readouterr().out
    assert f"skipped: {split / 'Low' / names[0] / names[0]}_1.tif" in printed
    assert sorted(json.loads((out / "restore.json").read_text())["images"]) == names[1:]
    assert "1 of " in printed.splitlines()[-1] and "skipped" in printed.splitlines()[-1]
    with pytest.raises(SystemExit):
        cli.main(["restore", "--help"])
    assert "exit status 1 when some inputs were skipped" in " ".join(capsys.readouterr().out.split())


# --- register --out and the export ------------------------------------------------------------------


def _session(tmp_path, sample=None):
    """A tiny session whose stream is its HQ image binned and shifted: registration is quick."""
    from test_register import write_shifted_session

    session = write_shifted_session(tmp_path / "sess1")
    if sample is not None:
        meta = json.loads((session.path / "session.json").read_text())
        (session.path / "session.json").write_text(json.dumps({**meta, "sample": sample}))
    return open_session(session.path)


def test_register_out_replaces_its_own_export_but_never_a_foreign_file(tmp_path, capsys):
    session = _session(tmp_path, sample="Kidney")
    out = tmp_path / "ds"
    args = ["register", str(session.path), "--out", str(out), "--split", "Train"]
    assert cli.main(args) == 0
    gt = out / "Kidney" / "Train" / "GT" / "sess1_s1_im1.tif"  # the session folder's name added
    assert gt.is_file() and json.loads((out / "export.json").read_text())["format"] == "temdeblur-export/1"
    assert cli.main(args) == 0  # its own export: replaced
    other = tmp_path / "other"
    foreign = other / "Kidney" / "Train" / "GT" / "sess1_s1_im1.tif"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"published dataset")
    capsys.readouterr()
    assert cli.main(["register", str(session.path), "--out", str(other), "--split", "Train"]) == 2
    err = capsys.readouterr().err
    assert "Kidney/Train/GT/sess1_s1_im1.tif" in err and "--overwrite" in err
    assert foreign.read_bytes() == b"published dataset" and not (other / "Kidney" / "Train" / "Low").exists()
    assert cli.main(["register", str(session.path), "--out", str(other), "--split", "Train", "--overwrite"]) == 0
    assert tifffile.imread(foreign).dtype == np.uint16


def test_a_new_export_of_a_pair_removes_its_own_stale_frames(tmp_path):
    from napari_temdeblur.core.register import PairRegistration, export_dataset, load_registrations

    session = _session(tmp_path, sample="Kidney")
    assert cli.main(["register", str(session.path), "--out", str(tmp_path / "ds"), "--split", "Train"]) == 0
    low = tmp_path / "ds" / "Kidney" / "Train" / "Low" / "sess1_s1_im1"
    assert len(list(low.iterdir())) == 5
    pair = load_registrations(session)["s1_im1"]
    fewer = PairRegistration(pair.hq, pair.init_translation_yx, pair.frames[:3], init_frame=pair.init_frame)
    export_dataset([(session, [fewer])], tmp_path / "ds", lambda s, n: "Train")
    assert sorted(p.name for p in low.iterdir()) == [f"sess1_s1_im1_{k}.tif" for k in range(3)]
    # moved to another split: its files in the old one go, so no image is in two splits
    export_dataset([(session, [fewer])], tmp_path / "ds", lambda s, n: "Val")
    assert not (tmp_path / "ds" / "Kidney" / "Train" / "GT" / "sess1_s1_im1.tif").exists() and not low.exists()
    assert len(list((tmp_path / "ds" / "Kidney" / "Val" / "Low" / "sess1_s1_im1").iterdir())) == 3


# --- item 4: names from data files ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "../x", "a/b", "a\\b", "/abs", "C:x", "a\x00b", "line\nbreak", "tab\there"]
)
def test_path_component_refuses_what_is_not_one_plain_name(bad, tmp_path):
    with pytest.raises(DataError) as refused:
        path_component(bad, tmp_path / "session.json", "sample")
    assert str(tmp_path / "session.json") in str(refused.value) and repr(bad) in str(refused.value)


@pytest.mark.parametrize("good", ["Kidney", "sess2_im5", "burst.v2", "Calibration Grid", "näme"])
def test_path_component_keeps_plain_names(good, tmp_path):
    assert path_component(good, tmp_path / "x.json", "name") == good


@pytest.mark.parametrize("sample", ["../../somewhere", "ABSOLUTE", "a/b", "..", "bad\x07bell"])
def test_register_out_refuses_a_sample_that_is_not_a_folder_name(sample, tmp_path, capsys):
    if sample == "ABSOLUTE":
        sample = str(tmp_path / "abs-sample")
    session = _session(tmp_path, sample=sample)
    out = tmp_path / "deep" / "er" / "ds"
    before = sorted(p for p in tmp_path.rglob("*"))
    assert cli.main(["register", str(session.path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(session.path / "session.json") in err and repr(sample) in err
    # refused before registering: nothing written anywhere, registration.json included
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "somewhere").exists() and not (tmp_path / "abs-sample").exists()


def test_export_checks_every_name_it_makes_a_path_of(tmp_path):
    from napari_temdeblur.core.register import PairRegistration, export_dataset, translation_matrix
    from napari_temdeblur.core.register._file import FrameRegistration

    session = _session(tmp_path, sample="../escape")
    pair = PairRegistration("s1_im1", (0.0, 0.0), (FrameRegistration(0, translation_matrix((0, 0)), 0.9),))
    with pytest.raises(DataError, match=r"session.json: sample '\.\./escape'"):
        export_dataset([(session, [pair])], tmp_path / "ds", lambda s, n: "Train")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "ds").exists()


def test_an_hq_name_that_is_not_a_plain_name_is_refused(tmp_path):
    from napari_temdeblur.core.register import PairRegistration, export_dataset, translation_matrix
    from napari_temdeblur.core.register._file import FrameRegistration

    name = "im\x071"  # a control character: legal in a Linux file name, not in a dataset
    hq = np.full((64, 64), 1000, np.uint16)
    meta = {"hq_pixel_size_nm": 1.0, "stream_pixel_size_nm": 2.0, "sample": "Kidney"}
    write_session(tmp_path / "s", meta, [name], [hq], np.full((2, 32, 32), 250, np.uint16))
    session = open_session(tmp_path / "s")
    pair = PairRegistration(name, (0.0, 0.0), (FrameRegistration(0, translation_matrix((0, 0)), 0.9),))
    with pytest.raises(DataError, match=re.escape(repr(f"s_{name}"))):
        export_dataset([(session, [pair])], tmp_path / "ds", lambda s, n: "Train")
    assert not (tmp_path / "ds").exists()


# --- evaluate and train -------------------------------------------------------------------------------


def test_evaluate_refuses_to_replace_files_it_did_not_write(simulated_dataset, tmp_path, capsys):
    kidney = simulated_dataset.out / "Kidney"
    for flag, name in (("--json", "notes.json"), ("--markdown", "notes.md"), ("--figure", "photo.png")):
        target = tmp_path / name
        target.write_bytes(b"a user's file")
        assert cli.main(["evaluate", str(kidney), "--baselines", flag, str(target)]) == 2
        err = capsys.readouterr().err
        assert name in err and "--overwrite" in err and target.read_bytes() == b"a user's file"


def test_evaluate_knows_its_own_files(tmp_path):
    from matplotlib.figure import Figure  # no pyplot: its GUI backend depends on what ran before

    from napari_temdeblur.core import write_json
    from napari_temdeblur.core.evaluate import EVALUATION_FORMAT, written_by_evaluate
    from napari_temdeblur.core.evaluate._figures import write_png

    scores = write_json(tmp_path / "scores.json", {"format": EVALUATION_FORMAT, "methods": {}})
    png = write_png(Figure(), tmp_path / "figure.png")
    other_png = tmp_path / "other.png"
    Figure().savefig(other_png)
    (tmp_path / "session.json").write_text('{"format": "temdeblur-session/1"}')
    assert written_by_evaluate(scores) and written_by_evaluate(png)
    assert not written_by_evaluate(other_png) and not written_by_evaluate(tmp_path / "session.json")
    assert not written_by_evaluate(tmp_path / "missing.json")


def test_train_refuses_a_folder_with_someone_elses_config(simulated_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"theirs": 1}')
    args = ["train", str(simulated_dataset.out / "Kidney"), "--model", "bu", "--width", "tiny", "--out", str(out)]
    assert cli.main([*args, "--epochs", "1", "--steps-per-epoch", "1", "--patch", "32", "--batch", "2"]) == 2
    assert "config.json" in capsys.readouterr().err
    assert (out / "config.json").read_text() == '{"theirs": 1}'


def test_simulate_keeps_a_simulation_json_it_did_not_write(tmp_path, capsys):
    (tmp_path / "simulation.json").write_text('{"notes": "mine"}')
    assert cli.main(["simulate", str(tmp_path), "--sessions", "1", "--images", "1"]) == 2
    assert "simulation.json" in capsys.readouterr().err
    assert (tmp_path / "simulation.json").read_text() == '{"notes": "mine"}' and not (tmp_path / "Kidney").exists()
