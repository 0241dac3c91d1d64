"""The "Restore" dock in a real viewer: restore, scores equal to the core's, SSIM map, Compare, CSV, errors."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from napari_temdeblur.core import drain
from napari_temdeblur.core.evaluate import EvaluateOptions, evaluate
from napari_temdeblur.core.imaging import (
    apply_window,
    evaluation_tiles,
    ssim_map,
    suggest_window,
    tile_scores,
    window_pair,
)
from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.restore import RestoreOptions, collect_restored, restore

SCORE_TILE = 64  # the test images are about 157 x 250 px: 128 px tiles would leave one or none per image


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory, simulated_dataset):
    """A tiny Burst U-Net trained for two steps on the simulated Kidney data (real weights, 3-5 frames)."""
    from napari_temdeblur.core.models import ModelConfig
    from napari_temdeblur.core.train import TrainConfig, TrainingData, train

    data = TrainingData.from_folders(simulated_dataset.out / "Kidney")
    data.val = data.val[:1]
    cfg = TrainConfig(
        ModelConfig.tiny("bu"), epochs=1, steps_per_epoch=2, patch=32, batch=2, frames=(3, 5), val_tile=64, device="cpu"
    )
    out = tmp_path_factory.mktemp("run")
    drain(train(cfg, data, out))
    return out


@pytest.fixture
def test_split(simulated_dataset):
    (split,) = read_dataset(simulated_dataset.out / "Kidney" / "Test")
    return split


@pytest.fixture
def viewer(make_napari_viewer, test_split):
    viewer = make_napari_viewer()
    viewer.open(str(test_split.path), plugin="napari-temdeblur")
    return viewer


def _dock(viewer, run=None):
    from napari_temdeblur.widgets.restore import RestoreWidget

    _, widget = viewer.window.add_plugin_dock_widget("napari-temdeblur", "Restore")
    assert isinstance(widget, RestoreWidget)
    widget.device.value, widget.score_tile.value = "cpu", SCORE_TILE
    if run is not None:
        widget.run.value = run
    return widget


def _numbers(text: str, label: str) -> tuple[float, float]:
    match = re.search(rf"{label}\s+SSIM ([0-9.]+)\s+PSNR ([0-9.]+) dB", text)
    assert match, text
    return float(match[1]), float(match[2])


def _core_scores(run, split):
    """Per image (tile SSIM, tile PSNR) of the input and of the restored image, the restored image in
    the GT window and the windowed GT, computed with the core as docs/evaluation.md describes it."""
    pairs = split.pairs
    restored = drain(collect_restored(restore(run, pairs, RestoreOptions(device="cpu"))))
    gt_window, low_window = suggest_window([p.gt for p in pairs]), suggest_window([p.low for p in pairs])
    scores = []
    for pair, out in zip(pairs, restored):
        gt, low, mask = window_pair(pair, gt_window, low_window)
        origins = evaluation_tiles(mask, size=SCORE_TILE, keep_rows_fraction=0.5)
        output = apply_window(out.counts, gt_window)
        scores.append(
            (
                tile_scores(low[len(low) // 2], gt, origins, SCORE_TILE),
                tile_scores(output, gt, origins, SCORE_TILE),
                output,
                gt,
            )
        )
    return scores


def test_restore_with_gt_scores_compare_and_csv(viewer, run, test_split, tmp_path, qtbot):
    from napari_temdeblur.widgets._dock import RunState
    from napari_temdeblur.widgets.restore._widget import NO_GT

    widget = _dock(viewer, run)
    assert (widget.burst.value, widget.gt.value) == ("Kidney Test Low", "Kidney Test GT")
    widget.start()
    assert widget.run_button.text == "Cancel" and not widget.form.enabled
    assert widget.wait(60) is RunState.DONE, widget.status.message
    assert widget.run_button.text == "Restore" and widget.form.enabled

    gt_layer = viewer.layers["Kidney Test GT"]
    restored, ssim_layer = viewer.layers["Kidney Test restored"], viewer.layers["Kidney Test SSIM map"]
    n, height, width = gt_layer.data.shape
    assert restored.data.shape == (n, height, width) and restored.data.dtype == np.float32
    assert restored.data.min() >= 0 and restored.data.max() <= 1
    assert restored.metadata["temdeblur"]["restore"][0]["model"]["name"] == "bu"
    assert ssim_layer.data.shape == (n, height - 10, width - 10) and ssim_layer.colorbar.visible
    np.testing.assert_allclose(ssim_layer.translate[-2:], 5 * np.asarray(gt_layer.scale[-2:]))  # 5 px in
    assert ssim_layer.units == restored.units == gt_layer.units  # napari drops units that differ

    core = _core_scores(run, test_split)
    shapes = gt_layer.metadata["temdeblur"]["valid_shapes"]
    for k, (h, w) in enumerate(shapes):
        np.testing.assert_allclose(restored.data[k, :h, :w], core[k][2], atol=1e-6)
        # the SSIM map is the core's on the sample, transparent (NaN) off it and in the padding
        expected, shown = ssim_map(core[k][2], core[k][3]), ssim_layer.data[k]
        on_sample = np.isfinite(shown[: h - 10, : w - 10])
        assert on_sample.any() and not on_sample.all() and np.isnan(shown[h - 10 :]).all()
        np.testing.assert_allclose(shown[: h - 10, : w - 10][on_sample], expected[on_sample], atol=1e-5)
    # the overlay follows the image slider and shows the core's numbers (to the digits it prints)
    assert sum(len(c[0][0]) for c in core) >= n, "the check needs tiles on the sample"
    for k in (0, n - 1):
        viewer.dims.set_current_step(viewer.dims.ndim - 3, k)
        text = viewer.canvas.overlays.text.text
        assert viewer.canvas.overlays.text.visible and test_split.pairs[k].name in text
        (in_ssim, in_psnr), (out_ssim, out_psnr), *_ = core[k]
        assert _numbers(text, "input")[0] == pytest.approx(in_ssim.mean(), abs=5.1e-5)
        assert _numbers(text, "restored")[0] == pytest.approx(out_ssim.mean(), abs=5.1e-5)
        assert _numbers(text, "input")[1] == pytest.approx(in_psnr.mean(), abs=5.1e-3)
        assert _numbers(text, "restored")[1] == pytest.approx(out_psnr.mean(), abs=5.1e-3)

    # the table, its CSV and the clipboard hold the same per-image means, then all tiles pooled
    path = widget.save_csv(tmp_path / "scores.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["image"] for r in rows] == [p.name for p in test_split.pairs] + ["all"]
    for row, ((in_ssim, in_psnr), (out_ssim, out_psnr), *_) in zip(rows, core):
        assert int(row["tiles"]) == len(in_ssim)
        np.testing.assert_allclose(
            [float(row[c]) for c in ("input_ssim", "restored_ssim", "input_psnr", "restored_psnr")],
            [in_ssim.mean(), out_ssim.mean(), in_psnr.mean(), out_psnr.mean()],
            rtol=1e-9,
        )
    # the pooled row is what `temdeblur evaluate` reports for this split
    options = EvaluateOptions(score_tile=SCORE_TILE, restore=RestoreOptions(device="cpu"))
    evaluation = drain(evaluate([test_split.path], [run], options))
    for method, column in (("input", "input"), (run.name, "restored")):
        scores = evaluation.methods[method]
        assert int(rows[-1]["tiles"]) == scores.tiles
        assert float(rows[-1][f"{column}_ssim"]) == pytest.approx(scores.ssim.mean(), rel=1e-9)
        assert float(rows[-1][f"{column}_psnr"]) == pytest.approx(scores.psnr.mean(), rel=1e-9)
    assert widget.table.item(len(rows) - 1, 0).text() == "all"
    from qtpy.QtWidgets import QApplication

    assert widget.table.copy() == QApplication.clipboard().text() == path.read_text().replace(",", "\t")

    # Compare: GT | input | restored in grid mode, everything else hidden, contrast limits linked
    order = [layer.name for layer in viewer.layers]
    widget.compare_button.native.click()
    inputs = viewer.layers["Kidney Test input"]
    shown = [gt_layer, inputs, restored]
    assert viewer.canvas.grid.enabled and widget.compare_button.text == "End compare"
    assert [layer for layer in viewer.layers if layer.visible] == shown
    assert [viewer.canvas.grid.position(viewer.layers.index(layer), viewer.layers) for layer in shown] == [
        (0, 0),
        (0, 1),
        (0, 2),
    ]
    restored.contrast_limits = (0.25, 0.75)
    window = widget.result.gt_window
    assert inputs.contrast_limits == pytest.approx([0.25, 0.75])
    assert gt_layer.contrast_limits == pytest.approx(
        [window.low + f * (window.high - window.low) for f in (0.25, 0.75)]
    )
    widget.compare_button.native.click()
    assert not viewer.canvas.grid.enabled and not inputs.visible and viewer.layers["Kidney Test Low"].visible
    assert [layer.name for layer in viewer.layers] == order
    # restoring again without GT refreshes the layers and drops the scores of the GT run
    widget.gt.value = NO_GT
    widget.start()
    assert widget.wait(60) is RunState.DONE, widget.status.message
    assert "Kidney Test SSIM map" not in viewer.layers and widget.table.rowCount() == 0
    assert [layer.name for layer in viewer.layers] == [n for n in order if n != "Kidney Test SSIM map"]


def test_no_gt_restores_without_scores_and_the_trained_run_is_the_default(viewer, run, test_split, qtbot):
    from napari_temdeblur.widgets._dock import RunState
    from napari_temdeblur.widgets.restore._widget import NO_GT
    from napari_temdeblur.widgets.train import TrainingWidget

    # a Train network dock in the same viewer whose run finished gives the run folder
    trainer = TrainingWidget(viewer)
    viewer.window.add_dock_widget(trainer, name="Train network")
    trainer.status.best_checkpoint, trainer.status.state = run / "best.pt", RunState.DONE
    widget = _dock(viewer)
    widget.gt.value = NO_GT
    widget.start()
    assert widget.wait(60) is RunState.DONE, widget.status.message
    assert widget.run.value == run
    restored = viewer.layers["Kidney Test restored"]
    assert restored.data.shape == viewer.layers["Kidney Test GT"].data.shape
    assert "Kidney Test SSIM map" not in viewer.layers
    assert widget.result.scores is None and widget.table.rowCount() == 0
    assert "no GT, no scores" in viewer.canvas.overlays.text.text and "SSIM" not in viewer.canvas.overlays.text.text
    assert not widget.save_button.enabled
    with pytest.raises(ValueError, match="no scores to save"):
        widget.save_csv("never.csv")
    # any (frame, y, x) image layer is a burst too: one image, restored as one (y, x) layer
    low = test_split.pairs[0].low
    viewer.add_image(low, name="my burst")
    widget.burst.value = "my burst"
    assert widget.gt.value == NO_GT
    widget.start()
    assert widget.wait(60) is RunState.DONE, widget.status.message
    assert viewer.layers["my burst restored"].data.shape == low.shape[1:]
    (core,) = drain(collect_restored(restore(run, [low], RestoreOptions(device="cpu"))))
    np.testing.assert_allclose(viewer.layers["my burst restored"].data, core.image, atol=1e-6)


def test_cancel_adds_nothing(viewer, run, qtbot):
    from napari_temdeblur.widgets._dock import RunState

    widget = _dock(viewer, run)
    before = [layer.name for layer in viewer.layers]
    widget.run_button.native.click()
    widget.run_button.native.click()  # now reading Cancel
    assert widget.wait(60) is RunState.STOPPED
    assert widget.status_label.value == "cancelled: nothing was added"
    assert [layer.name for layer in viewer.layers] == before and widget.result is None
    # closing the dock cancels as well
    widget.start()
    viewer.window.remove_dock_widget(widget)
    assert widget.wait(60) is RunState.STOPPED
    assert [layer.name for layer in viewer.layers] == before


def test_bad_run_folder_or_gt_gets_a_clear_message(viewer, tmp_path, qtbot):
    from napari.utils.notifications import notification_manager

    from napari_temdeblur.widgets._dock import RunState

    widget = _dock(viewer)
    widget.run.value = tmp_path
    widget.start()
    assert widget.wait(60) is RunState.FAILED
    text = widget.status_label.value
    assert str(tmp_path / "best.pt") in text and "no such checkpoint file" in text and "best.pt" in text
    assert any("no such checkpoint file" in str(n.message) for n in notification_manager.records)
    viewer.add_image(np.zeros((4, 10, 10), np.uint16), name="other")
    widget.gt.value = "other"
    widget.start()
    assert widget.status.state is RunState.FAILED
    assert "'other' (4, 10, 10)" in widget.status_label.value and "do not form a burst" in widget.status_label.value
    assert "Kidney Test restored" not in viewer.layers
    # no run chosen and no Train network dock: the pretrained network shipped with the plugin restores
    widget.run.value, widget.gt.value = None, "Kidney Test GT"
    widget.start()
    assert "with the pretrained fast-burst (no run chosen)" in widget.status.message
    assert widget.wait(60) is RunState.DONE, widget.status.message
    assert "Kidney Test restored" in viewer.layers


def test_the_test_split_is_chosen_when_a_whole_dataset_opens_and_a_users_pick_stays(
    make_napari_viewer, simulated_dataset
):
    """A dataset's splits arrive one layer after another (Train first): the dock must end on the Test
    split, which no network trained on, not on the first burst it saw; a burst the user picks stays."""
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    viewer.open(str(simulated_dataset.out / "Kidney"), plugin="napari-temdeblur")
    assert [n for n in widget.burst.choices if n.startswith("Kidney")][0] == "Kidney Train Low"
    assert (widget.burst.value, widget.gt.value) == ("Kidney Test Low", "Kidney Test GT")
    widget.burst.value = "Kidney Train Low"
    viewer.open(str(simulated_dataset.out / "CalibrationGrid"), plugin="napari-temdeblur")
    assert (widget.burst.value, widget.gt.value) == ("Kidney Train Low", "Kidney Train GT")
    for layer in [layer for layer in viewer.layers if "Test" in layer.name]:
        viewer.layers.remove(layer)
    assert widget.burst.value == "Kidney Train Low"
    # without a Test split, Val; a dock opened after the layers chooses the same way
    second = make_napari_viewer()
    second.open(str(simulated_dataset.out / "Kidney" / "Train"), plugin="napari-temdeblur")
    second.open(str(simulated_dataset.out / "Kidney" / "Val"), plugin="napari-temdeblur")
    late = _dock(second)
    assert late.burst.value == "Kidney Val Low"
    # the user's own pick stays, even when it is the value the dock had chosen before
    late.burst.value = "Kidney Train Low"
    late.burst.value = "Kidney Val Low"
    second.open(str(simulated_dataset.out / "Kidney" / "Test"), plugin="napari-temdeblur")
    assert late.burst.value == "Kidney Val Low"


def test_no_tile_of_the_size_asked_for_falls_back_to_the_largest_that_fits(viewer, run, test_split):
    """Strips too small for the score tile asked for (the demo's hold no 128 px tile of pure sample in
    their top half; these test strips, about 157 x 250 px, no 256 px one): the dock scores them on the
    largest tile that fits and says so, instead of a table of blanks."""
    from napari_temdeblur.core.evaluate import prepare, sample_windows
    from napari_temdeblur.core.imaging import TOP_HALF_ROWS, largest_fitting_tile
    from napari_temdeblur.widgets._dock import RunState

    windows = sample_windows(test_split.pairs)
    masks = [prepare("Kidney", p, windows, score_tile=256, keep_rows_fraction=TOP_HALF_ROWS) for p in test_split.pairs]
    assert not any(len(m.origins) for m in masks), "the check needs strips without a 256 px tile"
    fits = largest_fitting_tile([m.mask for m in masks], below=256, keep_rows_fraction=TOP_HALF_ROWS)
    assert fits is not None and fits < 256
    widget = _dock(viewer, run)
    widget.score_tile.value = 256
    widget.start()
    assert widget.wait(60) is RunState.DONE, widget.status.message
    assert f"on {fits} px tiles: no 256 px tile lies wholly on the sample in the top half" in widget.status.message
    assert widget.result.scored and widget.result.score_tile == fits and widget.result.requested_tile == 256
    assert f"{fits} px tile(s)" in viewer.canvas.overlays.text.text and "no 256 px tile fits" in widget.overlay()
    pooled = widget.table.rows()[-1]  # all tiles of all images
    assert widget.copy_button.enabled and pooled[0] == "all" and pooled[1] > 0 and np.isfinite(pooled[2:]).all()


def test_the_checkpoint_of_the_run_can_be_chosen(viewer, run):
    from napari_temdeblur.widgets._dock import RunState
    from napari_temdeblur.widgets.restore._widget import NO_GT

    widget = _dock(viewer, run)
    widget.gt.value = NO_GT
    assert widget.checkpoint.value == "best.pt"
    widget.checkpoint.value = "last.pt"
    widget.start()
    assert widget.wait(60) is RunState.DONE, widget.status.message
    (restored,) = viewer.layers["Kidney Test restored"].metadata["temdeblur"]["restore"][:1]
    assert restored["run"] == str(run / "last.pt")


def test_flags_layer_lies_on_the_restored_layer_and_the_overlay_gives_the_fraction(viewer, run, test_split):
    from napari_temdeblur.widgets._dock import RunState

    widget = _dock(viewer, run)
    assert widget.flags.value  # on by default in the dock
    widget.start()
    assert widget.wait(60) is RunState.DONE, widget.status.message
    restored, flags = viewer.layers["Kidney Test restored"], viewer.layers["Kidney Test flags"]
    assert flags.data.shape == restored.data.shape and flags.data.dtype == np.uint8
    assert set(np.unique(flags.data)) <= {0, 1}
    np.testing.assert_array_equal(flags.scale, restored.scale)
    np.testing.assert_array_equal(flags.translate, restored.translate)
    assert flags.units == restored.units
    made = [r.flags for r in widget.result.restored]
    assert flags.metadata["temdeblur"]["fractions"] == [f.fraction for f in made]
    n = restored.data.shape[0]
    for k in (0, n - 1):
        h, w = made[k].mask.shape
        np.testing.assert_array_equal(flags.data[k, :h, :w], made[k].mask)
        viewer.dims.set_current_step(viewer.dims.ndim - 3, k)
        assert f"flags     {made[k].fraction:.1%} of the image" in viewer.canvas.overlays.text.text
    # unticked, a restore removes the earlier flags and says nothing of them
    widget.flags.value = False
    widget.start()
    assert widget.wait(60) is RunState.DONE, widget.status.message
    assert "Kidney Test flags" not in viewer.layers and "flags" not in viewer.canvas.overlays.text.text


def test_dock_work_runs_with_the_callers_torch_threads():
    # a pooled worker thread keeps the torch thread count of its first job, and another count sums in
    # another order; the dock's work first sets the count of the thread that started it, so that a
    # restoration in the dock equals the same one in the console, to the last digit
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from napari_temdeblur.core.models import ModelConfig, build_model
    from napari_temdeblur.widgets._dock import in_callers_torch_threads

    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny("bu")).eval()
    burst = torch.rand(1, 5, 256, 256)

    def restore():
        with torch.no_grad():
            return model(burst).numpy()

    def job():
        yield "event"
        return restore()

    before = torch.get_num_threads()
    with ThreadPoolExecutor(1) as pool:
        try:
            pool.submit(lambda: (torch.set_num_threads(2), restore())).result()  # the thread's first job
            torch.set_num_threads(1)  # the caller's count
            expected = restore()
            assert not np.array_equal(pool.submit(restore).result(), expected)  # the premise
            wrapped_job, wrapped_restore = in_callers_torch_threads(job), in_callers_torch_threads(restore)  # here
            assert np.array_equal(pool.submit(lambda: drain(wrapped_job())).result(), expected)
            assert np.array_equal(pool.submit(wrapped_restore).result(), expected)
        finally:
            torch.set_num_threads(before)
