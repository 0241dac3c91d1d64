"""Live restoration: frames arriving in a replayed session, half-written and corrupt frame files, the idle
timeout, STOP and closing, a restart, ``temdeblur live`` and ``temdeblur replay``."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time

import numpy as np
import pytest
import tifffile

from napari_temdeblur.cli import main
from napari_temdeblur.core import STOP, DataError, drain
from napari_temdeblur.core.io import FrameFolder, read_pyramid, replay_session
from napari_temdeblur.core.register import load_positions
from napari_temdeblur.core.restore import (
    FrameArrived,
    LiveOptions,
    LiveRestored,
    MosaicWritten,
    RestoreOptions,
    live,
    mosaic,
)

FAST = LiveOptions(idle_timeout=1.0, grace=0.5, poll=0.02, rebuild_every=0.5, restore=RestoreOptions(device="cpu"))


@pytest.fixture(scope="module")
def source(simulated_sessions):
    """Simulated Kidney session 1 (stream.tif, HQ images, no registration)."""
    return simulated_sessions.out / "Kidney" / "sess1"


@pytest.fixture(scope="module")
def run(tmp_path_factory, untrained_run, one_torch_thread):
    return untrained_run(tmp_path_factory.mktemp("run") / "best.pt")


@pytest.fixture(scope="module")
def complete(source, tmp_path_factory):
    """The session replayed at once: every frame file there."""
    dest = tmp_path_factory.mktemp("complete") / "sess"
    drain(replay_session(source, dest, 1000.0))
    return dest


def replaying(source, dest, fps, **kwargs) -> threading.Thread:
    """Replay `source` into `dest` in a thread; returns once session.json is there."""
    thread = threading.Thread(target=lambda: drain(replay_session(source, dest, fps, **kwargs)), daemon=True)
    thread.start()
    while not (dest / "session.json").is_file():
        time.sleep(0.01)
    return thread


def test_frames_arriving_are_restored_into_a_mosaic_and_a_corrupt_one_is_skipped(source, run, tmp_path):
    thread = replaying(source, tmp_path / "sess", 40.0, corrupt={5})
    events = []
    result = drain(live(run, tmp_path / "sess", tmp_path / "out", FAST), events.append)
    thread.join()
    n_frames = len(list((tmp_path / "sess" / "stream").glob("*.tif")))
    arrived = [e.index for e in events if isinstance(e, FrameArrived)]
    assert arrived == list(range(n_frames)) and result.frames == n_frames
    skipped = [e for e in events if isinstance(e, FrameArrived) and e.problem]
    assert [e.index for e in skipped] == [5] and skipped[0].frame is None and "00005.tif" in skipped[0].problem
    assert 5 in result.skipped and any("00005.tif" in m for m in result.messages)
    assert result.stopped == "idle" and result.positions and result.resumed == 0
    restored = [e for e in events if isinstance(e, LiveRestored)]
    assert [e.position for e in restored] == [e.position for e in restored if e.position in result.positions]
    assert restored[0].image.dtype == np.uint16 and not restored[0].gap and restored[0].latency_s >= 0
    assert any(isinstance(e, MosaicWritten) for e in events)
    positions = load_positions(tmp_path / "out")
    assert len(positions.frames) == n_frames and positions.frames[5].flag
    pyramid = read_pyramid(tmp_path / "out" / "mosaic.ome.zarr")
    assert pyramid.levels[0].shape == result.shape and np.asarray(pyramid.levels[0]).max() > 0
    record = json.loads((tmp_path / "out" / "mosaic.json").read_text())
    assert record["mode"] == "live" and record["state"] == "done" and record["positions"] == result.positions
    # every placed frame's place is restored: the gaps were filled at the end
    ys = [positions.frames[t].yx[0] for t in result.positions]
    assert min(ys) <= positions.placed[2].yx[0] and max(ys) >= positions.placed[-3].yx[0]


def test_a_half_written_frame_is_retried_and_an_unreadable_one_skipped(tmp_path):
    folder = tmp_path / "stream"
    folder.mkdir()
    frame = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, frame)
    data = buffer.getvalue()
    frames = FrameFolder(folder, grace=0.3)
    (folder / "00000.tif").write_bytes(data[: len(data) // 2])
    assert frames.poll() == [] and frames.count == 0  # half written: tried again later
    (folder / "00000.tif").write_bytes(data)
    (first,) = frames.poll()
    assert first.index == 0 and first.problem is None and np.array_equal(first.frame, frame)
    (folder / "00001.tif").write_bytes(b"not a tiff at all")
    assert frames.poll() == []
    time.sleep(0.35)
    (second,) = frames.poll()
    assert second.frame is None and "frame 1 skipped" in second.problem and "00001.tif" in second.problem
    (folder / "00003.tif").write_bytes(data)  # frame 2 never comes
    assert frames.poll() == []
    time.sleep(0.35)
    missing, third = frames.poll()
    assert missing.index == 2 and "no file" in missing.problem and third.index == 3 and third.problem is None
    assert np.array_equal(frames[0], frame)  # read again from its file once out of memory


def test_a_stopped_live_run_continues_and_refuses_another_folder(complete, run, tmp_path):
    out = tmp_path / "out"
    work = live(run, complete, out, FAST)
    restored = 0
    for event in work:
        if isinstance(event, LiveRestored):
            restored += 1
            if restored == 2:
                break
    work.close()  # cancelled: the mosaic of the parts saved is written, no gap filled
    record = json.loads((out / "mosaic.json").read_text())
    assert record["stopped"] == "closed" and len(record["positions"]) == 2
    assert read_pyramid(out / "mosaic.ome.zarr").levels[0].shape == tuple(record["shape"])
    again = drain(live(run, complete, out, FAST))
    assert again.resumed == 2 and set(record["positions"]) <= set(again.positions) and again.stopped == "idle"
    with pytest.raises(DataError, match="mode"):
        drain(mosaic(run, complete, out, options=RestoreOptions(device="cpu")))
    other = tmp_path / "other"
    shutil.copytree(complete, other)
    with pytest.raises(DataError, match="session"):
        drain(live(run, other, out, FAST))


def test_stop_sent_in_finishes_with_the_gaps_filled(complete, run, tmp_path):
    work = live(run, complete, tmp_path / "out", FAST)
    event = next(work)
    while not isinstance(event, LiveRestored):
        event = next(work)
    try:
        while True:
            work.send(STOP)
    except StopIteration as done:
        result = done.value
    assert result.stopped == "stopped" and len(result.positions) >= 1
    assert (tmp_path / "out" / "mosaic.ome.zarr").is_dir()


def test_the_live_and_replay_commands(source, run, tmp_path, capsys):
    sess = tmp_path / "sess"
    assert main(["replay", str(source), str(sess), "--fps", "500", "--frames", "12"]) == 0
    assert "replayed 12 frames" in capsys.readouterr().out
    assert len(list((sess / "stream").glob("*.tif"))) == 12 and (sess / "hq").is_dir()
    assert main(["replay", str(source), str(sess), "--fps", "500"]) == 2  # never over a session
    assert "session.json" in capsys.readouterr().err
    args = ["live", str(run), str(sess), "--out", str(tmp_path / "out"), "--idle-timeout", "0.5", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "restored frame_" in printed and "latency" in printed and "stopped (no new frame for 0.5 s)" in printed
    assert "mosaic of" in printed and (tmp_path / "out" / "mosaic.ome.zarr").is_dir()
    assert main(args) == 0 and "restored before" in capsys.readouterr().out
    empty = tmp_path / "empty"
    (empty / "stream").mkdir(parents=True)
    shutil.copy(source / "session.json", empty / "session.json")
    assert main(["live", str(run), str(empty), "--out", str(tmp_path / "none"), "--idle-timeout", "0.3"]) == 1
    assert "nothing restored" in capsys.readouterr().out
    assert main(["live", str(run), str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"), "--idle-timeout", "1"]) == 2
    assert "session.json" in capsys.readouterr().err


def test_the_restore_dock_runs_live_and_the_viewer_keeps_ticking(make_napari_viewer, source, run, tmp_path):
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_temdeblur.widgets._dock import RunState
    from napari_temdeblur.widgets.restore import RestoreWidget

    viewer = make_napari_viewer()
    dock = RestoreWidget(viewer)
    dock.run.value, dock.device.value = str(run.parent), "cpu"
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    thread = replaying(source, tmp_path / "sess", 20.0)
    box = dock.live_box
    box.session.value, box.out.value, box.idle_timeout.value = str(tmp_path / "sess"), str(tmp_path / "out"), 1.0
    box.button.changed()  # Start live
    assert box.running and box.button.text == "Stop live" and dock.run_button.text == "Cancel"
    assert dock.wait(120) is RunState.DONE
    thread.join()
    timer.stop()
    assert len(ticks) > 20  # the event loop ran while frames were restored in the worker
    names = [layer.name for layer in viewer.layers]
    assert {"sess live raw", "sess live restored", "sess live mosaic"} <= set(names)
    mosaic = viewer.layers["sess live mosaic"]
    assert (
        mosaic.multiscale
        and [str(u) for u in mosaic.units] == ["nanometer", "nanometer"]
        and mosaic.scale[0] == pytest.approx(31.25)
    )
    assert "mosaic of" in dock.status.message and not box.running and box.button.text == "Start live"
    # a second session stopped with the button: it finishes cleanly (mosaic written, record done)
    thread = replaying(source, tmp_path / "sess2", 10.0)
    box.session.value, box.out.value, box.idle_timeout.value = str(tmp_path / "sess2"), str(tmp_path / "out2"), 0
    box.button.changed()
    while "sess2 live restored" not in viewer.layers and dock.status.running:
        QApplication.processEvents()
        time.sleep(0.01)
    box.button.changed()  # Stop live
    assert dock.wait(120) is RunState.DONE
    thread.join()
    record = json.loads((tmp_path / "out2" / "mosaic.json").read_text())
    assert record["state"] == "done" and record["stopped"] == "stopped"
    assert (tmp_path / "out2" / "mosaic.ome.zarr").is_dir()


def test_the_next_live_position_keeps_to_the_front_and_fills_gaps_in_spare_time():
    from napari_temdeblur.core.restore._blend import next_live_position

    spans = {t: (100.0 * t, 100.0 * t + 256) for t in range(10)}  # 256 px regions, 100 px apart
    assert next_live_position({t: spans[t] for t in range(3)}, set()) == 2  # nothing yet: the newest
    # the newest still overlaps the restored one by 64 px or more: nothing to do at the front
    # spare time: the gap behind, along the scan's greedy cover, newest first
    assert next_live_position({t: spans[t] for t in range(4)}, {2}) == 1
    assert next_live_position({t: spans[t] for t in range(4)}, {1, 2}) == 0
    assert next_live_position({t: spans[t] for t in range(4)}, {0, 1, 2}) is None
    # the newest would overlap too little: the farthest that still overlaps enough
    assert next_live_position({t: spans[t] for t in range(5)}, {0, 2}) == 3
    assert next_live_position({t: spans[t] for t in range(6)}, {0, 2}) == 5  # a gap after 2: the newest
    # behind: the newest leaves a gap, so the newest itself (never further behind)
    assert next_live_position(spans, {0, 2}) == 9
    assert next_live_position(spans, {0, 2, 9}) is not None  # the gap 4-8 next, in spare time
    # at the end every gap is filled, up to the last position
    done = {0, 2, 4, 6, 9}
    assert (
        next_live_position(spans, done, final=True) is None or next_live_position(spans, done, final=True) not in done
    )


def test_a_finished_stream_is_not_watched(source, run, tmp_path):
    with pytest.raises(DataError, match="temdeblur mosaic"):
        drain(live(run, source, tmp_path / "out", FAST))
