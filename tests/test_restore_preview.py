"""The Restore dock's preview in a real viewer: the stream position under the frame slider restored on
the fly into a layer over the frame, stale requests dropped, the event loop free, off, and errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_temdeblur.core import drain
from napari_temdeblur.core.restore import RestoreOptions, restore_position

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SESSION = "Kidney sess1"
PREVIEW = f"{SESSION} restored (preview)"


@pytest.fixture(scope="module")
def run(tmp_path_factory, untrained_run):
    """A tiny burst U-Net with fresh weights: the preview's mechanics need no trained one."""
    return untrained_run(tmp_path_factory.mktemp("run") / "best.pt")


@pytest.fixture
def viewer_dock(make_napari_viewer, simulated_sessions, run):
    return open_dock(make_napari_viewer, simulated_sessions, run)


def open_dock(make_napari_viewer, simulated_sessions, run, show: bool = False):
    """(viewer, Restore dock): session 1's stream open, the dock on the tiny run, CPU, 128 px tiles."""
    viewer = make_napari_viewer(show=show)
    viewer.open(str(simulated_sessions.out / "Kidney" / "sess1"), plugin="napari-temdeblur")
    _, dock = viewer.window.add_plugin_dock_widget("napari-temdeblur", "Restore")
    dock.run.value, dock.device.value, dock.inference_tile.value = run, "cpu", 128
    assert dock.preview_box.stream.value == f"{SESSION} stream"  # the session's stream, chosen by itself
    return viewer, dock


def settle(box, timeout: float = 60.0) -> None:
    """Process Qt events until the preview has restored everything asked for."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while box.busy or box._pending is not None:
        assert time.monotonic() < deadline, "the preview did not finish in time"
        QApplication.processEvents()
        time.sleep(0.01)
    QApplication.processEvents()


def test_the_preview_follows_the_frame_slider_over_the_frame(viewer_dock, run):
    from napari_temdeblur.core.models import load_model

    viewer, dock = viewer_dock
    box, stream = dock.preview_box, viewer.layers[f"{SESSION} stream"]
    viewer.dims.set_current_step(0, 4)
    box.preview.value = True
    settle(box)
    layer = viewer.layers[PREVIEW]
    info = layer.metadata["temdeblur"]
    assert info["kind"] == "restored" and info["position"] == 4 and box.restored == [4]
    # what the core restores for that position with the same run and settings, where it lies in frame 4
    model, checkpoint = load_model(run, "cpu")
    expected = drain(
        restore_position(model, checkpoint, stream.data, 4, RestoreOptions(device="cpu", inference_tile=128))
    )
    np.testing.assert_array_equal(layer.data, expected.image)
    y, x = expected.metadata["origin_yx"]
    np.testing.assert_allclose(layer.scale, stream.scale[1:])
    np.testing.assert_allclose(
        layer.translate, np.asarray(stream.translate[1:]) + (y, x) * np.asarray(stream.scale[1:])
    )
    assert [str(u) for u in layer.units] == [str(u) for u in stream.units[1:]] == ["nanometer", "nanometer"]
    assert "preview: position 4 in" in dock.status.message and "restored in" in dock.status.message
    viewer.dims.set_current_step(0, 9)  # the slider (or play) moves on: the layer follows
    settle(box)
    assert layer.metadata["temdeblur"]["position"] == 9 and box.restored == [4, 9]
    viewer.dims.set_current_step(0, 4)  # back to a position restored before: shown at once, not restored
    assert layer.metadata["temdeblur"]["position"] == 4 and not box.busy and box.restored == [4, 9]
    assert "kept: shown again at once" in dock.status.message
    dock.overlap.value = 16  # another setting: restored again with it
    settle(box)
    assert box.restored == [4, 9, 4]


def test_rapid_moves_restore_only_the_newest_position_and_the_viewer_keeps_running(viewer_dock):
    from qtpy.QtCore import QTimer

    viewer, dock = viewer_dock
    box = dock.preview_box
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(10)
    viewer.dims.set_current_step(0, 2)
    start = time.monotonic()
    box.preview.value = True  # position 2 is being restored in a worker ...
    for t in range(3, 9):  # ... while the slider runs on: each move replaces the one waiting
        viewer.dims.set_current_step(0, t)
    asked = time.monotonic() - start
    assert box.busy and box._pending == 8
    settle(box)
    timer.stop()
    assert box.restored == [2, 8]  # no backlog: 3 to 7 were never restored
    assert viewer.layers[PREVIEW].metadata["temdeblur"]["position"] == 8
    # the Qt event loop kept ticking while the two positions were restored in the background
    took = time.monotonic() - start
    assert asked < took / 2 and len(ticks) >= 5, (asked, took, len(ticks))


def test_turning_the_preview_off_stops_it(viewer_dock):
    from qtpy.QtWidgets import QApplication

    viewer, dock = viewer_dock
    box = dock.preview_box
    viewer.dims.set_current_step(0, 3)
    box.preview.value = True
    assert box.busy
    viewer.dims.set_current_step(0, 6)
    box.preview.value = False  # the running restoration stops at its next tile, the waiting one is dropped
    assert not box.busy and box._pending is None and dock.status.message == "preview off"
    viewer.dims.set_current_step(0, 7)
    end = time.monotonic() + 1  # a position takes about 0.3 s here
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)
    assert box.restored == [] and PREVIEW not in viewer.layers and dock.status.message == "preview off"


def test_a_position_that_cannot_be_restored_is_said_and_the_others_go_on(viewer_dock, tmp_path):
    viewer, dock = viewer_dock
    box, stream = dock.preview_box, viewer.layers[f"{SESSION} stream"]
    frames = np.asarray(stream.data).copy()
    frames[5] = 0  # a blank frame: position 5 has nothing to register to
    stream.data = frames
    viewer.dims.set_current_step(0, 5)
    box.preview.value = True
    settle(box)
    assert "preview of position 5 failed:" in dock.status.message
    assert "frame 5 is all zero (blank): position 5 cannot be restored" in dock.status.message
    assert "run folder" not in dock.status.message  # the stream is at fault, not the run
    viewer.dims.set_current_step(0, 6)  # its neighbour does without frame 5
    settle(box)
    assert box.restored == [6] and "preview: position 6 in" in dock.status.message
    assert "frame 5 left out" in dock.status.message
    dock.run.value = tmp_path  # a folder without best.pt: said, with what a run folder holds
    settle(box)
    assert "preview of position 6 failed:" in dock.status.message and "best.pt" in dock.status.message
    assert "a run folder holds best.pt" in dock.status.message


def test_a_mosaic_folder_of_the_session_gives_solved_positions(viewer_dock, simulated_sessions, tmp_path):
    """With the dock's mosaic folder holding this session's positions, a position's neighbours are
    resampled at them instead of being registered again."""
    from napari_temdeblur.core import write_json
    from napari_temdeblur.core.io import open_session
    from napari_temdeblur.core.register import save_positions, stream_positions

    viewer, dock = viewer_dock
    session = open_session(simulated_sessions.out / "Kidney" / "sess1")
    save_positions(tmp_path / "positions.json", drain(stream_positions(session)))
    write_json(tmp_path / "mosaic.json", {"format": "temdeblur-mosaic/1", "session": str(session.path.resolve())})
    dock.mosaic_box.out.value = tmp_path
    viewer.dims.set_current_step(0, 6)
    dock.preview_box.preview.value = True
    assert "restoring position 6 (at its solved positions)" in dock.status.message
    settle(dock.preview_box)
    record = viewer.layers[PREVIEW].metadata["temdeblur"]["restore"]
    assert record["frames"] == [5, 6, 7] and {r["method"] for r in record["registration"]} == {"positions"}


def test_closing_the_dock_ends_the_preview(viewer_dock):
    viewer, dock = viewer_dock
    box = dock.preview_box
    viewer.dims.set_current_step(0, 3)
    box.preview.value = True
    settle(box)
    viewer.window.remove_dock_widget(dock)
    viewer.dims.set_current_step(0, 5)
    assert not box.preview.value and not box.busy and box.restored == [3]


def test_the_preview_follows_naparis_play_button(make_napari_viewer, simulated_sessions, run):
    from qtpy.QtWidgets import QApplication

    from napari_temdeblur.layers import frame_index

    viewer, dock = open_dock(make_napari_viewer, simulated_sessions, run, show=True)  # napari plays when shown
    box, stream = dock.preview_box, viewer.layers[f"{SESSION} stream"]
    viewer.dims.set_current_step(0, 0)
    box.preview.value = True
    shown = []
    viewer.dims.events.current_step.connect(lambda event: shown.append(event.value[0]))
    dims = viewer.window._qt_viewer.dims
    dims.play(axis=0, fps=30)  # faster than the preview restores
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.005)
    dims.stop()
    settle(box)
    assert len(set(shown)) > len(box.restored) >= 2  # positions played past were dropped, not queued
    # once playing stops, the preview shows the position the slider stopped at
    here = frame_index(stream, viewer.dims.point)
    assert viewer.layers[PREVIEW].metadata["temdeblur"]["position"] == here
