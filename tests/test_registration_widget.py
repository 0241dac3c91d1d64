"""The registration dock in a real viewer: alignment read-back, drag, Find frames, Register, restore, export."""

from __future__ import annotations

import dataclasses
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from napari.utils.transforms import Affine
from scipy import ndimage

from napari_temdeblur.core import drain
from napari_temdeblur.core.io import open_session
from napari_temdeblur.core.register import (
    extract_burst,
    hq_at_stream_pixels,
    load_registrations,
)
from napari_temdeblur.core.simulate import SimulationConfig, simulate
from napari_temdeblur.layers import find_bursts, frame_index
from napari_temdeblur.widgets._dock import RunState
from napari_temdeblur.widgets.register import _alignment as align


@pytest.fixture(scope="module")
def one_session(tmp_path_factory):
    """One small kidney session (2 HQ images, 13 stream frames) and its truth, simulated once."""
    cfg = dataclasses.replace(SimulationConfig.demo(), sessions=1, hq_per_session=2)
    out = tmp_path_factory.mktemp("regwidget")
    result = drain(simulate(out, cfg, ["kidney"], layout="session", seed=5))
    return result.folders["Kidney"][0], json.loads(result.truth[0].read_text())


@pytest.fixture
def session_dir(one_session, tmp_path):
    """A fresh copy of the session: the widget writes registration.json into it."""
    return shutil.copytree(one_session[0], tmp_path / "sess1")


def truth_yx(truth: dict, hq: int, frame: int) -> np.ndarray:
    """(ty, tx) stream px of HQ image `hq` in stream frame `frame` (as core.simulate.read_true_translations)."""
    position = np.array(truth["hq"][hq]["position"], float)
    return (position - np.array(truth["frames"][frame]["position"])) / truth["stream_binning"]


def open_layers(viewer, folder):
    hq, stream = viewer.open(str(folder), plugin="napari-temdeblur")
    return hq, stream


def test_translation_read_back_follows_the_layer_transforms(make_napari_viewer, session_dir):
    viewer = make_napari_viewer()
    hq, stream = open_layers(viewer, session_dir)
    # the reader lays HQ pixels 2q, 2q+1 over stream pixel q, so hq_down pixel q is shown at world
    # q * px (nm); stream pixel p at (p + d) * px: the stream pixel over hq_down pixel q is q - d, so
    # (ty, tx) = -d
    px = stream.scale[-1]
    assert px == open_session(session_dir).meta["stream_pixel_size_nm"] and str(stream.units[-1]) == "nanometer"
    stream.translate = (0, 3.0 * px, -5.5 * px)
    np.testing.assert_allclose(align.translation_yx(hq, stream, 2), (-3.0, 5.5))
    # napari's transform mode edits the affine: its translation counts too
    stream.affine = Affine(translate=(0, 1.0 * px, 2.0 * px))
    np.testing.assert_allclose(align.translation_yx(hq, stream, 2), (-4.0, 3.5))
    # setting the numbers moves the layer so the read-back returns them, also under a rotation
    stream.affine = Affine(rotate=3.0, ndim=3)
    align.set_translation_yx(hq, stream, 2, (-7.25, 4.5))
    np.testing.assert_allclose(align.translation_yx(hq, stream, 2), (-7.25, 4.5), atol=1e-9)


def _affine_of(map_point, ndim=3):
    """(A, b) with map_point(p) == A @ p + b, read off napari's (affine) transform at unit points."""
    b = np.asarray(map_point(np.zeros(ndim)), float)
    return np.stack([np.asarray(map_point(np.eye(ndim)[i]), float) - b for i in range(ndim)], 1), b


def test_true_translation_overlays_the_images(make_napari_viewer, session_dir, one_session):
    """Set through the layers, the simulator's true (ty, tx) shows each stream pixel over the HQ content
    it imaged: shifting the overlay any further only lowers the agreement (up to the ~1 px streak
    centroid ambiguity along the scan)."""
    viewer = make_napari_viewer()
    hq, stream = open_layers(viewer, session_dir)
    frame = 3
    align.set_translation_yx(hq, stream, 2, tuple(truth_yx(one_session[1], 0, frame)))
    session = open_session(session_dir)
    hq_down = hq_at_stream_pixels(session, 0)
    frame_img = np.asarray(session.stream[frame], float)
    a_s, b_s = _affine_of(stream.data_to_world)
    a_h, b_h = _affine_of(hq.world_to_data)
    rows, cols = np.mgrid[30:220, 30:220]
    points = np.stack([np.full(rows.size, frame), rows.ravel(), cols.ravel()]).astype(float)
    hq_px = (a_h @ (a_s @ points + b_s[:, None]) + b_h[:, None])[1:]
    down = (hq_px - 0.5) / 2  # hq_down pixel q is centred on HQ pixel 2q + 0.5

    def agreement(dy, dx):
        seen = ndimage.map_coordinates(hq_down, down + [[dy], [dx]], order=1, mode="constant", cval=np.nan)
        ok = np.isfinite(seen)
        return np.corrcoef(seen[ok], frame_img[rows, cols].ravel()[ok])[0, 1]

    shifts = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)]
    scores = [agreement(dy, dx) for dy, dx in shifts]
    best = shifts[int(np.argmax(scores))]
    assert max(scores) > 0.9
    assert abs(best[0]) <= 1 and best[1] == 0


def test_drag_moves_the_stream_by_the_mouse_displacement(make_napari_viewer, session_dir):
    viewer = make_napari_viewer()
    hq, stream = open_layers(viewer, session_dir)
    before = np.array(align.translation_yx(hq, stream, 2))
    px = stream.scale[-1]  # world units are nm
    event = SimpleNamespace(type="mouse_press", position=(4.0, 100.0 * px, 50.0 * px))
    drag = align.drag_stream(stream, event)
    next(drag)
    for y, x in ((102.0, 49.0), (106.5, 47.0)):
        event.type, event.position = "mouse_move", (4.0, y * px, x * px)
        next(drag)
    event.type = "mouse_release"
    with pytest.raises(StopIteration):
        next(drag)
    np.testing.assert_allclose(stream.translate[1:], (6.5 * px, -3.0 * px))
    # moving the stream down moves the HQ origin up in the frame
    np.testing.assert_allclose(align.translation_yx(hq, stream, 2), before - (6.5, -3.0))


# --- the dock ---------------------------------------------------------------------------------------


@pytest.fixture
def dock(make_napari_viewer, session_dir):
    """A viewer with the session open and the dock added through the manifest, as a user would."""
    viewer = make_napari_viewer()
    open_layers(viewer, session_dir)
    _, widget = viewer.window.add_plugin_dock_widget("napari-temdeblur", "Register stream")
    return viewer, widget


def wait_idle(qtbot, widget, timeout=30_000):
    qtbot.waitUntil(lambda: widget.status.state is not RunState.RUNNING, timeout=timeout)
    assert widget.status.state is not RunState.FAILED, widget.status.message


def test_dock_opens_through_the_manifest_and_picks_the_session(dock):
    from napari._app_model import get_app_model

    viewer, widget = dock
    menu = get_app_model().menus.get_menu("napari/layers/register")  # Layers > Register
    assert "napari-temdeblur.registration_widget" in [item.command.id for item in menu if hasattr(item, "command")]
    hq, stream = viewer.layers
    assert type(widget).__name__ == "RegistrationWidget"
    assert widget.hq_layer.value is hq and widget.stream_layer.value is stream
    assert list(widget.hq_image.choices) == ["sess1_im1", "sess1_im2"]
    assert hq.colormap.name == "green" and stream.colormap.name == "magenta"
    assert stream.blending == "additive" and stream.opacity == 1  # green + magenta = grey where they agree
    assert widget.registered.value == "none yet"
    assert widget.find_button.enabled and widget.run_button.enabled and widget.run_button.text == "Register"


def test_drag_toggle_attaches_the_drag_and_stops_panning(dock):
    viewer, widget = dock
    stream = widget.stream_layer.value
    widget.drag.value = True
    assert widget._drag in stream.mouse_drag_callbacks and not stream.mouse_pan
    assert viewer.layers.selection.active is stream
    widget.drag.value = False
    assert widget._drag not in stream.mouse_drag_callbacks and stream.mouse_pan


def test_numbers_follow_the_layer_and_move_it(dock):
    viewer, widget = dock
    stream = widget.stream_layer.value
    px = stream.scale[-1]  # world units are nm; the numbers are stream pixels
    stream.translate = (0, -4.0 * px, 9.0 * px)  # as a drag leaves it
    assert (widget.shift_y.value, widget.shift_x.value) == (4.0, -9.0)
    widget.shift_x.value = 2.5
    np.testing.assert_allclose(stream.translate[1:], (-4.0 * px, -2.5 * px))


def test_find_frames_moves_the_slider_to_the_best_frame(dock, qtbot, one_session):
    viewer, widget = dock
    widget.hq_image.value = "sess1_im2"
    assert widget.current_index() == 1
    widget.find_frames()
    assert widget.progress.max == 0  # busy while matching ...
    wait_idle(qtbot, widget)
    assert widget.progress.max == widget.progress.value == 1  # ... and full, not busy, once done
    best = int(widget.status.message.split("best frame ")[1].split()[0])
    assert widget.current_frame() == best  # the slider, the status and the registration agree
    truth = one_session[1]
    nearest = int(np.argmin([np.abs(truth_yx(truth, 1, t)).sum() for t in range(len(truth["frames"]))]))
    assert abs(widget.current_frame() - nearest) <= 1
    assert widget.current_index() == 1  # the HQ image stays on screen over its best frame
    proposed = np.array([widget.shift_y.value, widget.shift_x.value])
    np.testing.assert_allclose(proposed, truth_yx(truth, 1, widget.current_frame()), atol=4)


def test_the_slider_lands_on_the_frame_and_image_shown(dock):
    """Showing HQ image i over stream frame t (Find frames, choosing a registered image) must leave
    the slider on frame t, also once the slider snaps to its own steps: with HQ images a non-whole
    number of frames apart, a stack moved to start half a frame before the stream put every step
    between two frames (the status said frame 59, the slider showed 60)."""
    viewer, widget = dock
    hq = widget.hq_layer.value
    hq.scale = (5.5, *hq.scale[1:])  # most sessions: (frames - 1) / (HQ images - 1) is not whole
    for index, frame in [(1, 5), (1, 6), (0, 2), (1, 12), (0, 0)]:
        widget._show_frame(index, frame)
        viewer.dims.set_current_step(0, viewer.dims.current_step[0])  # as the Qt slider snaps
        assert (widget.current_frame(), widget.current_index()) == (frame, index)
        assert viewer.dims.range[0].start == 0


def test_the_frame_slider_keeps_the_stream_length(dock, qtbot):
    """Moving the HQ stack so image i shows over frame t must not stretch the frame slider beyond the
    stream (a walk-through saw its maximum jump 119 -> 238 -> 180): the stack keeps inside the
    stream's frames, also with the registered layers added."""
    viewer, widget = dock
    last = widget.stream_layer.value.data.shape[0] - 1

    def frame_range():
        r = viewer.dims.range[widget._frame_axis()]
        return (r.start, r.stop, r.step)

    assert frame_range() == (0, last, 1)
    for index, frame in [(1, 5), (0, 8), (1, 12), (0, 0), (1, 1), (0, 11)]:
        widget._show_frame(index, frame)
        assert (widget.current_frame(), widget.current_index()) == (frame, index)
        assert frame_range() == (0, last, 1)
    viewer.dims.set_point(0, 3)
    widget.run_button.clicked()
    wait_idle(qtbot, widget)
    assert len(viewer.layers) == 4  # the registered GT and Low came in beside the session
    assert str(viewer.layers.units[-1]) == "nanometer"  # in nm like the session (napari drops units that differ)
    for index, frame in [(1, 4), (0, 9)]:
        widget._show_frame(index, frame)
        assert (widget.current_frame(), widget.current_index()) == (frame, index)
        assert frame_range() == (0, last, 1)
        registered = viewer.layers[-2]  # the registered GT: its slot of image `index` follows the HQ image
        assert frame_index(registered, viewer.dims.point) == index


def _shown(layer, image: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as the layer's colormap receives them (its contrast limits)."""
    low, high = layer.contrast_limits
    return np.clip((image - low) / (high - low), 0, 1)


def test_where_hq_and_stream_agree_the_overlay_is_grey(dock, qtbot, one_session, session_dir):
    """Green HQ + magenta stream add up to grey only where both reach the colormaps at the same level:
    at the true alignment the stream frame must look as bright, with as much contrast, as the HQ image
    (a walk-through saw green everywhere: the stream's own window made it darker, so a few px offset
    was hard to judge)."""
    viewer, widget = dock
    hq, stream = widget._layers
    session = open_session(session_dir)
    for index, name in enumerate(session.hq_names):
        widget.hq_image.value = name
        widget.find_button.clicked()  # shows the best frame under the HQ image at the proposed alignment
        wait_idle(qtbot, widget)
        frame = widget.current_frame()
        ty, tx = np.round(truth_yx(one_session[1], index, frame)).astype(int)
        hq_down = hq_at_stream_pixels(session, index)
        frame_img = np.asarray(session.stream[frame], float)
        h, w = frame_img.shape
        rows, cols = slice(max(ty, 0) + 8, min(h, ty + h) - 8), slice(max(tx, 0) + 8, min(w, tx + w) - 8)
        green = ndimage.gaussian_filter(
            _shown(hq, hq_down[rows.start - ty : rows.stop - ty, cols.start - tx : cols.stop - tx]), 2
        )
        magenta = ndimage.gaussian_filter(_shown(stream, frame_img[rows, cols]), 2)
        assert abs(green.mean() - magenta.mean()) < 0.03, (green.mean(), magenta.mean())
        assert 0.8 < magenta.std() / green.std() < 1.25, (green.std(), magenta.std())


def test_register_from_a_drag_saves_shows_and_keeps_the_viewer_responsive(dock, qtbot, one_session, session_dir):
    from qtpy.QtCore import QTimer

    viewer, widget = dock
    truth = one_session[1]
    frame = 3
    viewer.dims.set_point(0, frame)
    assert widget.current_index() == 0 and widget.current_frame() == frame
    # a hand drag lands a few pixels off the truth
    hand = truth_yx(truth, 0, frame) + (2.5, -3.0)
    stream = widget.stream_layer.value
    stream.translate = (0, *(-hand * stream.scale[-1]))  # world units are nm
    np.testing.assert_allclose((widget.shift_y.value, widget.shift_x.value), hand, atol=0.005)  # shown to 0.01 px

    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(widget.status.state))
    timer.start(0)
    widget.run_button.clicked()
    assert widget.status.state is RunState.RUNNING  # the click returned at once: the work runs in a thread
    assert widget.run_button.text == "Cancel" and not widget.register_all_button.enabled
    wait_idle(qtbot, widget)
    timer.stop()
    assert RunState.RUNNING in ticks  # the event loop kept running during the registration
    assert widget.status.state is RunState.DONE and widget.run_button.text == "Register"

    saved = json.loads((session_dir / "registration.json").read_text())
    (pair,) = saved["pairs"]
    assert pair["hq"] == "sess1_im1" and pair["init_frame"] == frame and pair["init_source"] == "user"
    np.testing.assert_allclose(pair["init_translation_yx"], hand, atol=1e-3)
    accepted = [f for f in pair["frames"] if f["flag"] is None]
    assert len(accepted) >= 3
    for f in accepted:
        (a, b, tx), (c, d, ty) = f["matrix"]
        np.testing.assert_allclose((ty, tx), truth_yx(truth, 0, f["index"]), atol=1.5)
    gt = viewer.layers["Kidney sess1 registered GT"]
    low = viewer.layers["Kidney sess1 registered Low"]
    assert gt.data.shape[0] == 2 and low.data.shape[1:] == gt.data.shape
    assert low.data.shape[0] == len(accepted)
    assert gt.metadata["temdeblur"]["frame_counts"] == [len(accepted), 0]
    assert gt.data[0].any() and not gt.data[1].any()  # only the first HQ image is registered
    # the training dock takes the registered layers as one burst: the core's burst, padding cut off
    (shown,) = [b for b in find_bursts(list(viewer.layers)) if b.title == "Kidney sess1 registered"]
    (burst,) = shown.pairs()
    expected = extract_burst(open_session(session_dir), load_registrations(session_dir)["sess1_im1"])
    np.testing.assert_array_equal(burst.gt, expected.gt)
    # the file keeps matrices to 1e-6 px: a cubic resampling of them may round one count differently
    np.testing.assert_allclose(burst.low.astype(int), expected.low, atol=1)
    for f in pair["frames"]:
        assert f"frame {f['index']}: r = {f['correlation']:.3f}" in widget.result.value
    assert widget.registered.value == f"sess1_im1: {len(accepted)} frames"
    # the viewer shows the refined alignment of the frame the user started from (the overlay turns
    # grey), the fields say so, and the user's start stays listed in the result
    assert widget.current_frame() == frame and widget.current_index() == 0
    (refined,) = [(f["matrix"][1][2], f["matrix"][0][2]) for f in accepted if f["index"] == frame]
    np.testing.assert_allclose(widget.translation_yx(), refined, atol=1e-3)
    np.testing.assert_allclose((widget.shift_y.value, widget.shift_x.value), refined, atol=0.005)
    np.testing.assert_allclose(refined, truth_yx(truth, 0, frame), atol=0.5)
    assert np.abs(np.subtract(refined, hand)).max() > 2
    assert widget.result.value.startswith(f"start: frame {frame} at y {hand[0]:.2f}, x {hand[1]:.2f} px (yours)")


def test_reopening_restores_the_registrations(make_napari_viewer, qtbot, session_dir):
    from napari_temdeblur.core.register import (
        InitialGuess,
        RegistrationSettings,
        register_session,
    )

    session = open_session(session_dir)
    init = InitialGuess(frame=9, translation_yx=(0.5, -2.0))
    drain(register_session(session, RegistrationSettings(), inits={"sess1_im2": init}, names=["sess1_im2"]))
    viewer = make_napari_viewer()
    open_layers(viewer, session_dir)
    _, widget = viewer.window.add_plugin_dock_widget("napari-temdeblur", "Register stream")
    assert widget.registered.value.startswith("sess1_im2: ")
    widget.hq_image.value = "sess1_im2"
    assert widget.current_frame() == 9 and widget.current_index() == 1
    # the registered alignment is shown; the start is listed first in the result
    pair = load_registrations(session_dir)["sess1_im2"]
    (refined,) = [f.translation_yx for f in pair.accepted if f.index == 9]
    np.testing.assert_allclose((widget.shift_y.value, widget.shift_x.value), refined, atol=0.005)
    assert widget.result.value.startswith("start: frame 9 at y 0.50, x -2.00 px (yours)\nframe ")


def test_cancel_keeps_what_was_saved(dock, qtbot, session_dir):
    viewer, widget = dock
    widget.register_all_button.clicked()
    qtbot.waitUntil((session_dir / "registration.json").is_file, timeout=30_000)  # the first image is saved
    widget.run_button.clicked()  # reads Cancel while registering
    wait_idle(qtbot, widget)
    kept = load_registrations(session_dir)
    assert widget.status.state is RunState.STOPPED and f"cancelled; {len(kept)} registered" in widget.status.message
    assert "sess1_im1" in kept
    assert widget.registered.value == "\n".join(f"{n}: {len(p.accepted)} frames" for n, p in kept.items())


def test_a_drag_is_kept_for_register_all_and_the_export_follows_the_splits(dock, qtbot, tmp_path, session_dir):
    from napari_temdeblur.core.io import read_dataset

    viewer, widget = dock
    viewer.dims.set_point(0, 3)
    widget.drag.value = True
    stream = widget.stream_layer.value
    before = np.array(widget.translation_yx())
    px = stream.scale[-1]  # world units are nm
    event = SimpleNamespace(type="mouse_press", position=(3.0, 50.0 * px, 50.0 * px))
    for callback in stream.mouse_drag_callbacks:  # as napari runs them for a drag on the active layer
        drag = callback(stream, event)
        next(drag)
        event.type, event.position = "mouse_move", (3.0, 52.0 * px, 47.0 * px)
        next(drag)
        event.type = "mouse_release"
        with pytest.raises(StopIteration):
            next(drag)
    widget.hq_image.value = "sess1_im2"  # another image on screen: Register all still has the drag on im1
    widget.register_all_button.clicked()
    wait_idle(qtbot, widget)
    assert viewer.layers.selection.active is stream  # still draggable after the new layers came
    saved = {p["hq"]: p for p in json.loads((session_dir / "registration.json").read_text())["pairs"]}
    assert saved["sess1_im1"]["init_frame"] == 3 and saved["sess1_im1"]["init_source"] == "user"
    np.testing.assert_allclose(saved["sess1_im1"]["init_translation_yx"], before - (2.0, -3.0), atol=1e-3)

    box = widget.exporter
    box.export_button.clicked()  # no folder chosen yet: refused with a message, nothing written
    assert widget.status.state is RunState.FAILED and "choose the dataset folder" in widget.status.message
    box.split_by.value = "per HQ image"
    widget.hq_image.value = "sess1_im2"
    box.split.value = "Val"
    widget.hq_image.value = "sess1_im1"
    assert box.split.value == "Train"
    box.out.value = tmp_path / "data"
    box.export_button.clicked()
    assert widget.status.state is RunState.DONE
    splits = {s.split: [p.name for p in s.pairs] for s in read_dataset(tmp_path / "data")}
    assert splits == {"Train": ["sess1_im1"], "Val": ["sess1_im2"]}
    # an image whose frames were all flagged is left out, and the dock says which and why
    pair = widget._registered["sess1_im2"]
    flagged = tuple(dataclasses.replace(f, flag="correlation 0.20 < 0.50") for f in pair.frames)
    widget._registered["sess1_im2"] = dataclasses.replace(pair, frames=flagged)
    box.export_button.clicked()
    assert widget.status.state is RunState.DONE
    assert "sess1_im2 left out: no accepted frame" in widget.status.message
    assert "correlation 0.20 < 0.50" in widget.status.message


def test_removing_the_layers_during_a_run_leaves_the_dock_idle(dock, qtbot):
    viewer, widget = dock
    widget.register_all_button.clicked()
    viewer.layers.clear()
    qtbot.wait(300)
    assert widget.status.state is RunState.IDLE and widget.registered.value == "none yet"
    assert not widget.run_button.enabled and widget.run_button.text == "Register"


def test_closing_the_dock_mid_run_cancels_it(dock, qtbot, session_dir):
    viewer, widget = dock
    widget.register_all_button.clicked()
    qtbot.waitUntil((session_dir / "registration.json").is_file, timeout=30_000)  # the first image is saved
    worker = widget._worker
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    viewer.window.remove_dock_widget(widget)  # the user closes the dock
    qtbot.waitUntil(lambda: bool(finished), timeout=30_000)
    # cancelled after the image in progress: not every image was registered, and no layer was added
    assert sorted(load_registrations(session_dir)) == ["sess1_im1"]
    assert [layer.name for layer in viewer.layers] == ["Kidney sess1 HQ", "Kidney sess1 stream"]
    assert widget.status.state is RunState.STOPPED


def test_export_never_replaces_a_file_it_did_not_write_and_says_so(make_napari_viewer, tmp_path, session_dir):
    """Issue 16, item 1: the dock tells the user in its status instead of overwriting."""
    from napari_temdeblur.core.register import RegistrationSettings, register_session

    drain(register_session(open_session(session_dir), RegistrationSettings(), names=["sess1_im2"]))
    viewer = make_napari_viewer()
    open_layers(viewer, session_dir)
    _, widget = viewer.window.add_plugin_dock_widget("napari-temdeblur", "Register stream")
    foreign = tmp_path / "published" / "Kidney" / "Train" / "GT" / "sess1_im2.tif"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"the published ground truth")
    widget.exporter.out.value = tmp_path / "published"
    widget.exporter.export_button.clicked()
    assert widget.status.state is RunState.FAILED
    assert "Kidney/Train/GT/sess1_im2.tif" in widget.status.message and "not written" in widget.status.message
    assert foreign.read_bytes() == b"the published ground truth"
    assert not (tmp_path / "published" / "Kidney" / "Train" / "Low").exists()
    # into a folder of its own, again and again
    widget.exporter.out.value = tmp_path / "mine"
    for _ in range(2):
        widget.exporter.export_button.clicked()
        assert widget.status.state is RunState.DONE, widget.status.message
    assert (tmp_path / "mine" / "Kidney" / "Train" / "GT" / "sess1_im2.tif").is_file()
