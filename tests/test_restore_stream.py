"""Restoring a raw session stream: on-the-fly registration of each position's frames, restore_stream and
``temdeblur restore RUN SESSION OUT``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_temdeblur import cli
from napari_temdeblur.core import DataError, drain
from napari_temdeblur.core.imaging import IntensityWindow, apply_window, suggest_window
from napari_temdeblur.core.io import open_session
from napari_temdeblur.core.register import RegistrationSettings, register_stream_burst
from napari_temdeblur.core.restore import (
    InputSkipped,
    RestoreOptions,
    collect_restored,
    restore_position,
    restore_stream,
)
from napari_temdeblur.core.simulate import read_true_translations


@pytest.fixture(scope="module")
def sessions(simulated_sessions):
    """{sample: (Session, truth (T, 2): where HQ image 0's origin lies in each frame)} for session 1."""
    out = simulated_sessions.out
    found = {}
    for sample in ("Kidney", "CalibrationGrid"):
        truth = read_true_translations(out / "truth" / sample / "sess1.json")
        found[sample] = open_session(out / sample / "sess1"), next(iter(truth.values()))
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory, sessions, untrained_run):
    """A tiny bu with fresh weights and the kidney stream's window, trained (nominally) on 3 frames."""
    session, _ = sessions["Kidney"]
    window = suggest_window(np.asarray(session.stream[:4]))
    return untrained_run(tmp_path_factory.mktemp("run") / "best.pt", low_window=(window.low, window.high))


@pytest.mark.parametrize("sample, mean_px, max_px", [("Kidney", 0.25, 0.8), ("CalibrationGrid", 0.5, 2.0)])
def test_frames_registered_to_their_centre_frame_match_the_truth(sessions, sample, mean_px, max_px):
    session, truth = sessions[sample]
    errors = []
    for position in (2, 9, 16):
        burst = register_stream_burst(session.stream, position, 5)
        assert burst.frames == list(range(position - 2, position + 3)) and not burst.messages
        for reg in burst.registrations:
            # the simulator's truth: where the HQ origin lies in each frame; relative to frame `position`
            errors.append(np.hypot(*np.subtract(reg.translation_yx, truth[reg.index] - truth[position])))
        assert burst.low.dtype == np.uint16 and burst.low.shape[0] == 5
        # the reference frame itself is on the burst's grid, untouched
        y, x = burst.origin_yx
        h, w = burst.low.shape[1:]
        np.testing.assert_array_equal(burst.low[2], np.asarray(session.stream[position])[y : y + h, x : x + w])
    assert np.mean(errors) < mean_px and np.max(errors) < max_px


def test_unusable_frames_in_a_stream(sessions):
    session, _ = sessions["Kidney"]
    stream = np.asarray(session.stream).copy()
    stream[11] = 0
    burst = register_stream_burst(stream, 10, 5)
    assert burst.frames == [8, 9, 10, 12] and "frame 11 left out: frame 11 is all zero (blank)" in burst.messages
    with pytest.raises(DataError, match="stream.tif: frame 11 is all zero .blank.: position 11 cannot be restored"):
        register_stream_burst(stream, 11, 5, source="stream.tif")
    end = register_stream_burst(stream, 23, 3)
    assert end.frames == [21, 22, 23] and "not centred on frame 23: it is near the last frame" in end.messages[0]
    with pytest.raises(ValueError, match="position 24 is outside the stream .frames 0-23."):
        register_stream_burst(stream, 24, 3)


def test_restore_stream_positions(run, sessions):
    session, _ = sessions["Kidney"]
    stream = np.asarray(session.stream).copy()
    stream[5] = 0  # position 5 cannot be restored, position 6 does without frame 5; the others go on
    events = []
    results = drain(
        collect_restored(restore_stream(run, stream, [0, 5, 6, 12], RestoreOptions(device="cpu", inference_tile=128))),
        events.append,
    )
    assert [r.name for r in results] == ["frame_0000", "frame_0006", "frame_0012"]
    (skipped,) = [e for e in events if isinstance(e, InputSkipped)]
    assert "frame 5 is all zero" in skipped.message
    first, short, mid = results
    # the network's centre frame x[:, N // 2] is the position's own frame, also beside a gap and at the start
    assert short.frames == [7, 6] and "frame_0006: frame 5 left out: frame 5 is all zero (blank)" in short.messages
    assert "2 frames, the run was trained with up to 3; restoring with 2" in short.messages[-1]
    json.dumps(short.metadata, allow_nan=False)  # restore.json stays strict JSON
    assert first.frames == [1, 0, 2] and mid.frames == [11, 12, 13]
    for result in results:
        y, x = result.metadata["origin_yx"]
        h, w = result.image.shape
        assert result.frames[len(result.frames) // 2] == result.metadata["position"]
        window = IntensityWindow.from_dict(result.metadata["windows"]["low"])
        np.testing.assert_array_equal(
            result.centre, apply_window(stream[result.metadata["position"], y : y + h, x : x + w], window)
        )
    assert "frame_0000: frames 0-2 are not centred on frame 0" in first.messages[0]
    assert mid.metadata["position"] == 12 and [r["index"] for r in mid.metadata["registration"]] == [11, 12, 13]
    assert mid.counts.shape == mid.image.shape and 0 <= mid.image.min() <= mid.image.max() <= 1
    with pytest.raises(ValueError, match=r"positions \[30\] are outside the stream \(frames 0-23\)"):
        drain(collect_restored(restore_stream(run, stream, [3, 30], RestoreOptions(device="cpu"))))


@pytest.mark.usefixtures("one_torch_thread")
def test_one_position_with_a_loaded_model(run, sessions):
    """restore_position restores as restore_stream does, with the model loaded once by the caller; a
    position that cannot be registered raises (one position alone has no others to go on with)."""
    from napari_temdeblur.core.models import load_model
    from napari_temdeblur.core.register import stream_positions

    session, _ = sessions["Kidney"]
    stream = np.asarray(session.stream).copy()
    stream[5] = 0
    options = RestoreOptions(device="cpu", inference_tile=128)
    model, checkpoint = load_model(run, "cpu")
    events = []
    one = drain(restore_position(model, checkpoint, stream, 12, options), events.append)
    (same,) = drain(collect_restored(restore_stream(run, stream, [12], options)))
    assert one.name == "frame_0012" and one.frames == same.frames == [11, 12, 13]
    np.testing.assert_array_equal(one.image, same.image)
    assert one.metadata["origin_yx"] == same.metadata["origin_yx"]
    assert any(type(e).__name__ == "TileProgress" for e in events)  # where a preview is cancelled
    with pytest.raises(DataError, match="stream.tif: frame 5 is all zero .blank.: position 5 cannot be restored"):
        drain(restore_position(model, checkpoint, stream, 5, options, source="stream.tif"))
    with pytest.raises(ValueError, match="position 24 is outside the stream"):
        drain(restore_position(model, checkpoint, stream, 24, options))
    with pytest.raises(ValueError, match="without batch-norm adaptation"):
        drain(restore_position(model, checkpoint, stream, 3, RestoreOptions(device="cpu", adapt_bn=True)))
    # with solved positions nothing is registered again: the frames are resampled where they lie
    positions = drain(stream_positions(session))
    placed = drain(restore_position(model, checkpoint, session.stream, 12, options, positions=positions))
    assert placed.frames == [11, 12, 13] and placed.image.shape[0] > 0.8 * one.image.shape[0]
    assert [r["method"] for r in placed.metadata["registration"]] == ["positions"] * 3


def test_frames_as_channels_keep_time_order(sessions, tmp_path, untrained_run):
    session, _ = sessions["Kidney"]
    stream = np.asarray(session.stream)
    window = suggest_window(stream[:4])
    gan = untrained_run(tmp_path / "gan.pt", "deblurgan", low_window=(window.low, window.high))
    first, mid = drain(
        collect_restored(restore_stream(gan, stream, [0, 12], RestoreOptions(device="cpu", inference_tile=128)))
    )
    assert first.frames == [0, 1, 2] and mid.frames == [11, 12, 13]  # its residual goes onto the middle frame
    assert (
        "frame_0000: the network's centre frame is 1, not 0: this model takes its frames in time order"
        in first.messages
    )
    assert not any("centre frame" in m for m in mid.messages)
    # the centre shown is the frame the network centred on: frame 1 registered onto frame 0
    burst = register_stream_burst(stream, 0, 3, RegistrationSettings())
    window = IntensityWindow.from_dict(first.metadata["windows"]["low"])
    np.testing.assert_array_equal(first.centre, apply_window(burst.low[1], window))


def test_cli_restores_a_session_stream(run, sessions, tmp_path, capsys):
    session, _ = sessions["Kidney"]
    out = tmp_path / "out"
    assert cli.main(["restore", str(run), str(session.path), str(out), "--positions", "4,15", "--device", "cpu"]) == 0
    meta = json.loads((out / "restore.json").read_text())
    assert sorted(meta["images"]) == ["frame_0004", "frame_0015"] and meta["model"]["name"] == "bu"
    assert meta["images"]["frame_0015"]["frames"] == [14, 15, 16]
    with tifffile.TiffFile(out / "frame_0004.tif") as tif:
        description = json.loads(tif.pages.first.description)
        assert tif.asarray().dtype == np.float32
    assert description["position"] == 4 and len(description["origin_yx"]) == 2
    assert tifffile.imread(out / "frame_0004_counts.tif").dtype == np.uint16
    assert (
        cli.main(["restore", str(run), str(session.path), str(tmp_path / "e"), "--every", "10", "--device", "cpu"]) == 0
    )
    assert sorted(json.loads((tmp_path / "e" / "restore.json").read_text())["images"]) == [
        "frame_0000",
        "frame_0010",
        "frame_0020",
    ]
    capsys.readouterr()
    hq = session.path / "hq" / f"{session.hq_names[0]}.tif"
    assert cli.main(["restore", str(run), str(hq), str(tmp_path / "x"), "--every", "2"]) == 2
    assert "--positions and --every are for a session stream" in capsys.readouterr().err
