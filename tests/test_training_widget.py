"""The "Train network" dock in a real viewer: layers -> pairs, Train, Stop, errors, a responsive viewer."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QTimer

from napari_temdeblur.core.io import BurstPair, read_dataset
from napari_temdeblur.layers import find_bursts, hold_out, validation_for


@pytest.fixture
def kidney_viewer(make_napari_viewer, simulated_dataset):
    """A viewer with the simulated Kidney dataset opened through the reader (Train, Val, Test)."""
    viewer = make_napari_viewer()
    viewer.open(str(simulated_dataset.out / "Kidney"), plugin="napari-temdeblur")
    return viewer


def _pair(name: str, value: int = 1) -> BurstPair:
    return BurstPair(name, np.full((4, 4), value, np.uint16), np.full((3, 4, 4), value, np.uint16))


def test_layers_give_back_the_pairs_on_disk(kidney_viewer, simulated_dataset):
    bursts = find_bursts(kidney_viewer.layers)
    assert [b.title for b in bursts] == ["Kidney Train", "Kidney Val", "Kidney Test"]
    on_disk = {s.split: s.pairs for s in read_dataset(simulated_dataset.out / "Kidney")}
    for burst in bursts:
        pairs = burst.pairs()
        assert [p.name for p in pairs] == [p.name for p in on_disk[burst.split]]
        for mine, theirs in zip(pairs, on_disk[burst.split]):
            # the zero padding that stacks different sizes into one layer is cut off again
            np.testing.assert_array_equal(mine.gt, theirs.gt)
            np.testing.assert_array_equal(mine.low, theirs.low)
    train, val = bursts[0], bursts[1]
    assert validation_for(train, bursts) is val
    assert validation_for(val, bursts) is None
    gt_window, low_window = train.windows()
    assert [gt_window.low, gt_window.high] == train.gt.contrast_limits
    assert [low_window.low, low_window.high] == train.low.contrast_limits


def test_unregistered_slots_and_unpaired_layers_are_left_out(make_napari_viewer):
    viewer = make_napari_viewer()
    gt = np.zeros((3, 6, 6), np.uint16)
    gt[0], gt[2, :4, :5] = 7, 9
    low = np.stack([gt] * 2)
    viewer.add_image(gt, name="Grid registered GT")
    viewer.add_image(low, name="Grid registered Low")
    viewer.add_image(gt, name="Lonely GT")
    viewer.add_image(low[0], name="something else")
    (burst,) = find_bursts(viewer.layers)
    pairs = burst.pairs()
    assert [p.name for p in pairs] == ["Grid registered #0", "Grid registered #2"]
    assert pairs[1].gt.shape == (6, 6) and pairs[1].low.shape == (2, 6, 6)
    assert burst.windows() == (None, None)
    viewer.layers["Grid registered Low"].data = low[:, :2]
    with pytest.raises(ValueError, match="do not form a burst dataset"):
        burst.pairs()


def test_zero_frames_padding_a_shorter_burst_are_cut_off(make_napari_viewer):
    viewer = make_napari_viewer()
    gt = np.full((2, 6, 6), 5, np.uint16)
    low = np.full((4, 2, 6, 6), 3, np.uint16)
    low[3:, 1] = 0  # registration kept 3 frames of the second burst and padded the stack with zeros
    layer = viewer.add_image(gt, name="Grid registered GT")
    viewer.add_image(low, name="Grid registered Low")
    layer.metadata["temdeblur"] = {"names": ["a", "b"], "frame_counts": [4, 3]}
    (burst,) = find_bursts(viewer.layers)
    first, second = burst.pairs()
    assert first.low.shape == (4, 6, 6) and second.low.shape == (3, 6, 6) and second.low.all()


def test_hold_out_keeps_sessions_apart():
    pairs = [_pair(n) for n in ("sess1_im1", "sess1_im2", "sess2_im1", "sess3_im1", "sess3_im2")]
    train, val = hold_out(pairs)
    assert [p.name for p in val] == ["sess3_im1", "sess3_im2"]
    assert [p.name for p in train] == ["sess1_im1", "sess1_im2", "sess2_im1"]
    one_session = [_pair(f"sess1_im{k}") for k in range(1, 11)]
    train, val = hold_out(one_session)
    # sess1_im8 overlaps sess1_im9 (HQ images overlap by half along the scan): it trains nothing
    assert [p.name for p in val] == ["sess1_im9", "sess1_im10"]
    assert [p.name for p in train] == [f"sess1_im{k}" for k in range(1, 8)]
    train, val = hold_out(one_session[:2])
    assert [p.name for p in train] == ["sess1_im1"] and [p.name for p in val] == ["sess1_im2"]
    with pytest.raises(ValueError, match="at least one more pair"):
        hold_out(one_session[:1])


# --- the dock --------------------------------------------------------------------------------------


def _quick(widget, out, epochs: int, steps: int = 2) -> None:
    """Settings for a run of a few seconds on CPU: a tiny network on small crops and tiles."""
    form = widget.settings
    form.model.value, form.width.value = "bdu-uc-ssim", "tiny"
    form.epochs.value, form.steps.value, form.batch.value = epochs, steps, 2
    form.patch.value, form.val_tile.value, form.frames.value = 32, 32, "3-5"
    form.device.value, form.out.value = "cpu", out


def _press(widget) -> None:
    widget.run_button.native.click()


def _notifications() -> list[str]:
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records]


def test_dock_trains_while_the_viewer_stays_responsive(kidney_viewer, tmp_path, qtbot, one_torch_thread):
    import time

    from napari_temdeblur.core.models import load_checkpoint
    from napari_temdeblur.widgets._dock import RunState
    from napari_temdeblur.widgets.train import TrainingWidget

    _, widget = kidney_viewer.window.add_plugin_dock_widget("napari-temdeblur", "Train network")
    assert isinstance(widget, TrainingWidget)
    assert (widget.train_layers.value, widget.val_layers.value) == ("Kidney Train", "Kidney Val")
    assert widget.status.state is RunState.IDLE and widget.run_button.text == "Train"
    _quick(widget, tmp_path / "run", epochs=3)
    assert widget.plot.isHidden()  # no empty axes before the first epoch
    stamps = []
    timer = QTimer()
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    timer.start(10)
    _press(widget)
    started = time.perf_counter()
    assert widget.status.state is RunState.RUNNING and widget.run_button.text == "Stop"
    assert not widget.settings.container.enabled
    qtbot.waitUntil(lambda: widget.status.state is not RunState.RUNNING, timeout=60_000)
    elapsed = time.perf_counter() - started
    timer.stop()
    assert widget.status.state is RunState.DONE, widget.status.message
    assert widget.run_button.text == "Train" and widget.settings.container.enabled
    assert widget.device_in_use.value == "cpu (1 threads)"
    # the Qt event loop kept running all along: the 10 ms timer ticked throughout, never pausing for
    # long (training in the GUI thread would leave one gap as long as the whole run)
    gaps = np.diff([started, *stamps, time.perf_counter()])
    assert len(stamps) >= 20 and gaps.max() < elapsed / 4, (elapsed, len(stamps), gaps.max())
    history = widget.status.history
    assert [r.epoch for r in history] == [1, 2, 3] and not widget.plot.isHidden()
    assert (widget.epoch_bar.value, widget.epoch_bar.max, widget.batch_bar.value, widget.batch_bar.max) == (3, 3, 2, 2)
    loss_line, ssim_line = widget.plot.loss_axes.lines[0], widget.plot.ssim_axes.lines[0]
    np.testing.assert_allclose(loss_line.get_ydata(), [r.train_loss for r in history])
    np.testing.assert_allclose(ssim_line.get_ydata(), [r.val_ssim for r in history])
    best = max(history, key=lambda r: r.val_ssim)
    assert widget.status.best_epoch == best.epoch
    assert widget.status.best_checkpoint == tmp_path / "run" / "best.pt"
    assert str(tmp_path / "run" / "best.pt") in widget.result_label.value
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    assert checkpoint.epoch == best.epoch and checkpoint.model.name == "bdu-uc-ssim"
    # trained through the windows the layers show
    gt_limits = kidney_viewer.layers["Kidney Train GT"].contrast_limits
    assert [checkpoint.gt_window.low, checkpoint.gt_window.high] == gt_limits


def test_stop_keeps_the_checkpoints(kidney_viewer, tmp_path, qtbot, one_torch_thread):
    from napari_temdeblur.core.models import load_checkpoint
    from napari_temdeblur.widgets._dock import RunState
    from napari_temdeblur.widgets.train import TrainingWidget

    widget = TrainingWidget(kidney_viewer)
    kidney_viewer.window.add_dock_widget(widget)
    _quick(widget, tmp_path / "run", epochs=1000)
    _press(widget)
    qtbot.waitUntil(lambda: len(widget.status.history) >= 2, timeout=60_000)
    _press(widget)  # the same button, now reading Stop
    qtbot.waitUntil(lambda: widget.status.state is not RunState.RUNNING, timeout=30_000)
    assert widget.status.state is RunState.STOPPED, widget.status.message
    assert not widget._stopping_timer.isActive()
    assert widget.run_button.text == "Train"
    finished = len(widget.status.history)
    assert 2 <= finished < 1000
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert best.epoch == widget.status.best_epoch and last.epoch == finished
    assert "best.pt" in widget.result_label.value
    # trained weights are never overwritten: a new run in the same folder is refused with a hint
    _press(widget)
    qtbot.waitUntil(lambda: widget.status.state is not RunState.RUNNING, timeout=30_000)
    assert widget.status.state is RunState.FAILED
    assert "already holds a training run" in widget.status_label.value and "tick resume" in widget.status_label.value
    # ... but resumed, with the earlier epochs back in the plot
    widget.settings.resume.value, widget.settings.epochs.value = True, finished + 1
    _press(widget)
    qtbot.waitUntil(lambda: widget.status.state is not RunState.RUNNING, timeout=30_000)
    assert widget.status.state is RunState.DONE, widget.status.message
    assert [r.epoch for r in widget.status.history] == list(range(1, finished + 2))
    assert load_checkpoint(tmp_path / "run" / "last.pt").epoch == finished + 1
    # closing the dock stops a run as well
    widget.settings.epochs.value = 1000
    _press(widget)
    qtbot.waitUntil(lambda: len(widget.status.history) >= finished + 2, timeout=60_000)
    kidney_viewer.window.remove_dock_widget(widget)
    qtbot.waitUntil(lambda: widget.status.state is not RunState.RUNNING, timeout=30_000)
    assert widget.status.state is RunState.STOPPED
    assert load_checkpoint(tmp_path / "run" / "last.pt").epoch < 1000


def test_errors_show_in_the_dock_and_as_notifications(make_napari_viewer, simulated_dataset, tmp_path, qtbot):
    from napari_temdeblur.widgets._dock import RunState
    from napari_temdeblur.widgets.train._widget import HOLD_OUT, DataSource, TrainingWidget

    viewer = make_napari_viewer()
    widget = TrainingWidget(viewer)
    viewer.window.add_dock_widget(widget)
    _quick(widget, tmp_path / "run", epochs=1)
    _press(widget)  # nothing open yet
    assert widget.status.state is RunState.FAILED
    assert "no burst layers to train on" in widget.status_label.value
    assert any("no burst layers to train on" in m for m in _notifications())

    empty = tmp_path / "empty"
    empty.mkdir()
    widget.source.value, widget.data_folder.value = DataSource.FOLDER, empty
    assert widget.train_layers.native.isHidden() and not widget.data_folder.native.isHidden()
    _press(widget)
    qtbot.waitUntil(lambda: widget.status.state is not RunState.RUNNING, timeout=30_000)
    assert widget.status.state is RunState.FAILED
    assert "the folder is empty" in widget.status_label.value and "<Sample>/<Split>/GT" in widget.status_label.value
    assert any("the folder is empty" in m for m in _notifications())

    # only a Train split open: images are held out for validation, and the dock says which
    viewer.open(str(simulated_dataset.out / "Kidney" / "Train"), plugin="napari-temdeblur")
    widget.source.value = DataSource.LAYERS
    assert (widget.train_layers.value, widget.val_layers.value) == ("Kidney Train", HOLD_OUT)
    _, note = widget.data_loader()
    assert "holding out sess2_im1, sess2_im2, sess2_im3, sess2_im4" in note
    widget.settings.lr.value = "fast"
    _press(widget)
    assert widget.status.state is RunState.FAILED and "learning rate must be a number" in widget.status_label.value


def test_plot_follows_the_napari_theme(make_napari_viewer):
    from matplotlib.colors import to_hex
    from napari.utils.theme import get_theme

    from napari_temdeblur.widgets.train import TrainingWidget

    viewer = make_napari_viewer()
    widget = TrainingWidget(viewer)
    for theme in ("light", "dark"):
        viewer.theme = theme
        assert to_hex(widget.plot.figure.get_facecolor()) == get_theme(theme).background.as_hex()
        assert to_hex(widget.plot.ssim_axes.xaxis.label.get_color()) == get_theme(theme).text.as_hex()


def test_settings_form_builds_the_train_config(qtbot, tmp_path):
    from napari_temdeblur.core.models import ModelConfig, size_multiple
    from napari_temdeblur.core.train import PRESETS
    from napari_temdeblur.widgets.train._form import SettingsForm

    form = SettingsForm()
    form.out.value = tmp_path
    # untouched controls give the preset that fits the device (quick on this CPU), device left on auto
    assert form.preset.value == "quick" and form.train_config() == PRESETS["quick"].config()
    assert form.output_folder() == tmp_path
    form.preset.value = "paper"  # a preset fills every control ...
    assert form.train_config() == PRESETS["paper"].config()
    assert (form.time_limit.value, form.steps.value, form.init.value) == ("none", "auto", "scratch")
    form.epochs.value, form.patience.value, form.time_limit.value = 12, "3", "2"  # ... each stays editable
    cfg = form.train_config()
    assert (cfg.model.name, cfg.epochs, cfg.patience, cfg.time_limit_s) == ("bdu-uc-ssim", 12, 3, 120.0)
    form.width.value, form.steps.value, form.frames.value, form.lr.value = "tiny", "7", "3-5", "2e-4"
    cfg = form.train_config()
    assert (cfg.model, cfg.steps_per_epoch, cfg.frames, cfg.lr) == (ModelConfig.tiny("bdu-uc-ssim"), 7, (3, 5), 2e-4)
    form.width.value = "24"
    assert form.model_config() == ModelConfig("bdu-uc-ssim", width=24)
    form.model.value = "deblurgan"
    assert form.frames.value == "3" and not form.frames.enabled
    assert form.patch.step == size_multiple(ModelConfig("deblurgan"))
    for control, text, message in [
        (form.width, "wide", "width must be tiny, full or a whole number"),
        (form.frames, "3 to 5", "frames must be a count such as 5"),
        (form.time_limit, "soon", "time limit must be a number or none, got 'soon'"),
        (form.patience, "-2", "patience must be positive or none"),
    ]:
        good = control.value
        control.value = text
        with pytest.raises(ValueError, match=message):
            form.train_config()
        control.value = good
    form.out.value = None
    with pytest.raises(ValueError, match="choose an output folder"):
        form.output_folder()


def test_a_stop_says_how_far_into_the_batch_it_is_and_how_long_is_left():
    """With heavy settings a batch can take minutes: while a Stop waits for it, the dock says so."""
    from napari_temdeblur.widgets.train._batch_clock import BatchClock

    clock = BatchClock()
    now = clock.started + 7.2
    assert clock.stopping_message(now) == (
        "stopping after this batch: 7 s into the first batch (its length is not known yet)"
    )
    clock.durations = [30.0, 20.0, 21.0]
    assert clock.stopping_message(now) == (
        "stopping after this batch: 7 s into it, about 14 s left (a batch takes about 21.0 s)"
    )
    assert "about 0 s left" in clock.stopping_message(clock.started + 40)
    clock.event(batch_done=True)
    assert len(clock.durations) == 4 and clock.stopping_message(clock.started + 1).startswith(
        "stopping after this batch: 1 s into it"
    )
    clock.event(batch_done=True, epoch_end=True)  # the epoch's last batch: validation comes next
    assert clock.stopping_message(clock.started + 3) == (
        "stopping after this epoch's validation and checkpoints: 3 s into them"
    )


def test_a_run_folder_in_use_by_another_process_is_named_in_the_status(kidney_viewer, tmp_path, qtbot):
    """Issue 16, item 2: the dock trains only in a folder no other process writes in."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import napari_temdeblur
    from napari_temdeblur.widgets._dock import RunState

    hold = (
        "import sys\nfrom napari_temdeblur.core.io import folder_lock\n"
        "with folder_lock(sys.argv[1], 'training'):\n    print('locked', flush=True)\n    sys.stdin.readline()\n"
    )
    source = str(Path(napari_temdeblur.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(tmp_path / "run")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        _, widget = kidney_viewer.window.add_plugin_dock_widget("napari-temdeblur", "Train network")
        _quick(widget, tmp_path / "run", epochs=1)
        _press(widget)
        qtbot.waitUntil(lambda: widget.status.state is not RunState.RUNNING, timeout=60_000)
        assert widget.status.state is RunState.FAILED
        assert f"in use by process {holder.pid}" in widget.status_label.value
        assert "tick resume" not in widget.status_label.value  # the hint for a finished run is not this one's
    finally:
        holder.communicate("\n", timeout=60)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []
