"""Trust intervals (docs/trust.md): the conformal quantile, coverage on held-out pixels, calibrating at the end
of training and with ``temdeblur calibrate``, uncalibrated runs, ``restore --trust``, ``evaluate --uncertainty``."""

from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
import pytest
from scipy import ndimage

from napari_temdeblur import cli
from napari_temdeblur.core import drain
from napari_temdeblur.core.imaging import IntensityWindow, window_pair
from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.models import ModelConfig, load_model
from napari_temdeblur.core.restore import (
    CALIBRATION,
    CalibrateOptions,
    RestoreOptions,
    Uncalibrated,
    burst_sample,
    calibrate,
    collect_restored,
    conformal_quantile,
    edge_factor,
    read_calibration,
    restore,
    restore_with,
    spread_of,
)
from napari_temdeblur.core.restore._trust import EDGE_DISTANCE_PX, EDGE_FACTOR
from napari_temdeblur.core.train import TrainConfig, TrainingData, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = RestoreOptions(device="cpu", inference_tile=256)  # one inference tile per simulated strip
UNCERTAINTY = {"coverage", "nominal_coverage", "interval_width_mean", "uncertainty_error_spearman"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, kidney):
    """A tiny bu trained for two steps: training calibrates it on its Val pairs at the end."""
    data = TrainingData.from_folders(kidney)
    cfg = TrainConfig(
        ModelConfig.tiny("bu"), epochs=1, steps_per_epoch=2, patch=32, batch=2, frames=(3, 3), val_tile=64, device="cpu"
    )
    out = tmp_path_factory.mktemp("runs") / "kidney-bu"
    return drain(train(cfg, data, out))


def test_conformal_quantile_is_the_ceil_n_plus_1_rank():
    scores = np.random.default_rng(0).permutation(np.arange(1.0, 100.0))  # 1 .. 99, n = 99
    assert conformal_quantile(scores, 0.9) == 90.0  # ceil(100 * 0.9) = 90th smallest
    assert conformal_quantile(scores, 0.5) == 50.0
    assert conformal_quantile(np.arange(1.0, 10.0), 0.9) == 9.0  # n = 9: ceil(9) = 9
    with pytest.raises(ValueError, match="8 calibration pixels are too few for a coverage of 0.9: need at least 9"):
        conformal_quantile(np.arange(8.0), 0.9)
    with pytest.raises(ValueError, match="coverage must be between 0 and 1"):
        conformal_quantile(scores, 1.0)


def test_the_spread_widens_near_the_sample_edge_by_the_edge_factor():
    # a 40 px bar (non-sample) down the middle of a 64 x 200 image: the factor at each pixel is the
    # profile at its distance to the bar, 1 far from it; the image border is no edge
    sample = np.ones((64, 200), bool)
    sample[:, 80:120] = False
    factor = edge_factor(sample)
    for col, distance in ((79, 1.0), (75, 5.0), (72, 8.0), (60, 20.0), (0, 80.0), (125, 6.0), (199, 80.0)):
        assert factor[30, col] == pytest.approx(np.interp(distance, EDGE_DISTANCE_PX, EDGE_FACTOR), rel=1e-3)
    assert factor[30, 0] == factor[0, 40] == 1.0  # the image's border and corners are not edges
    assert np.all(edge_factor(np.ones((16, 16), bool)) == 1.0)
    assert np.all(edge_factor(np.zeros((16, 16), bool)) == 1.0)  # no sample (a blank frame): no edge either


def test_the_spread_is_the_disagreement_over_the_root_of_the_images_detail():
    # the formula of docs/trust.md, written out with scipy: u = e(d) (G2(|y - y'|) + 0.005) /
    # sqrt(median over the sample of |y - G1(y)| + 0.002); the bar's pixels do not enter the median
    rng = np.random.default_rng(0)
    image = rng.random((64, 200)).astype(np.float32)
    mirrored = image + rng.normal(0, 0.05, image.shape).astype(np.float32)
    sample = np.ones(image.shape, bool)
    sample[:, 80:120] = False
    image[:, 80:120] = 0.0  # a flat bar: its zero detail would pull the median down
    mirrored[:, 80:120] = 0.0
    blur = {s: functools.partial(ndimage.gaussian_filter, sigma=s, mode="reflect", truncate=4.0) for s in (1, 2)}
    detail = np.median(np.abs(image - blur[1](image))[sample]) + 0.002
    expected = edge_factor(sample) * (blur[2](np.abs(image - mirrored)) + 0.005) / np.sqrt(detail)
    np.testing.assert_allclose(spread_of(image, mirrored, sample), expected, rtol=2e-3, atol=2e-5)
    everywhere = np.median(np.abs(image - blur[1](image))) + 0.002  # without a sample: the whole image, no edge
    # an empty sample (a blank frame) is as none: the whole image's detail, no edge factor
    np.testing.assert_array_equal(spread_of(image, mirrored, np.zeros(image.shape, bool)), spread_of(image, mirrored))
    np.testing.assert_allclose(
        spread_of(image, mirrored),
        (blur[2](np.abs(image - mirrored)) + 0.005) / np.sqrt(everywhere),
        rtol=2e-3,
        atol=2e-5,
    )


def test_the_burst_sample_excludes_bars_and_any_frames_padding():
    window = IntensityWindow(100.0, 1100.0)
    rng = np.random.default_rng(2)
    burst = rng.integers(300, 1000, (3, 96, 96)).astype(np.uint16)
    burst[:, :, 40:60] = 100  # a grid bar: at the window minimum in every frame
    burst[1, :8, :] = 0  # one frame's registration padding
    burst[2, 70, 10] = 50  # a lone dark pixel in the sample is noise, not an edge
    sample = burst_sample(burst, window)
    assert not sample[:, 40:60].any() and not sample[:8].any()
    assert sample[8:, :40].all() and sample[8:, 60:].all()
    windowed = np.clip((burst.astype(np.float32) - 100) / 1000, 0, 1)
    assert np.array_equal(burst_sample(windowed), sample)  # frames already in [0, 1]: the same sample


def test_coverage_holds_on_exchangeable_held_out_data():
    # heteroscedastic, heavy-tailed errors whose scale the spread only roughly knows: the guarantee
    # needs no model of the errors, only exchangeability
    rng = np.random.default_rng(1)
    for coverage in (0.8, 0.9, 0.95):
        u = rng.uniform(0.01, 0.2, 60_000)
        error = np.abs(rng.standard_t(3, u.size)) * u * rng.uniform(0.5, 2.0, u.size)
        scale = conformal_quantile(error[:20_000] / u[:20_000], coverage)
        held_out = np.mean(error[20_000:] <= scale * u[20_000:])
        assert coverage - 0.01 <= held_out <= coverage + 0.01


def test_coverage_holds_on_held_out_pixels_of_real_restorations(untrained_run, kidney, tmp_path):
    # the spread of a real (untrained) network on simulated images; calibration and held-out pixels are
    # a random split of the same images' sample pixels, so they are exchangeable and coverage must hold
    model, checkpoint = load_model(untrained_run(tmp_path / "best.pt", "fast-burst"))
    pairs = [p for split in read_dataset(kidney, ["Val", "Test"]) for p in split.pairs]
    results = drain(collect_restored(restore_with(model, checkpoint, pairs, CPU, spread=True)))
    scores = []
    for pair, result in zip(pairs, results):
        truth, _, mask = window_pair(pair, checkpoint.gt_window, checkpoint.low_window)
        assert result.spread.shape == truth.shape and (result.spread > 0).all()
        scores.append((np.abs(truth - result.image) / result.spread)[mask])
    scores = np.random.default_rng(0).permutation(np.concatenate(scores))
    half = len(scores) // 2
    scale = conformal_quantile(scores[:half], 0.9)
    assert 0.88 <= np.mean(scores[half:] <= scale) <= 0.92


def test_training_calibrates_and_restore_gives_intervals(trained, kidney):
    calibration = trained.calibration
    assert calibration is not None and trained.calibration_message is None
    record = json.loads((trained.out / CALIBRATION).read_text())
    assert record["format"] == "temdeblur-calibration/1" and record["scale"] == calibration.scale > 0
    assert record["checkpoint"] == "best.pt" and record["epoch"] == 1 and record["nominal_coverage"] == 0.9
    assert record["split"] == "Val" and record["pixels"] > 1000 and record["empirical_coverage"] >= 0.9
    (test,) = read_dataset(kidney / "Test")
    plain = drain(collect_restored(restore(trained.out, test.pairs[:1], CPU)))[0]
    trusted = drain(collect_restored(restore(trained.out, test.pairs[:1], dataclasses.replace(CPU, trust=True))))[0]
    np.testing.assert_array_equal(plain.image, trusted.image)  # the extra pass does not change the image
    assert plain.interval_width is None and trusted.metadata["trust"]["nominal_coverage"] == 0.9
    lo, hi = trusted.interval()
    assert (lo <= trusted.image).all() and (trusted.image <= hi).all() and (0 <= lo).all() and (hi <= 1).all()
    np.testing.assert_allclose(trusted.interval_width, 2 * calibration.scale * trusted.spread, rtol=1e-6)


def test_an_uncalibrated_run_asked_for_intervals_says_how_to_calibrate(untrained_run, kidney, tmp_path, capsys):
    run = tmp_path / "run"
    untrained_run(run / "best.pt")
    (test,) = read_dataset(kidney / "Test")
    with pytest.raises(Uncalibrated, match=rf"not calibrated.*temdeblur calibrate {run} DATA"):
        next(restore(run, test.pairs, dataclasses.replace(CPU, trust=True)))
    assert cli.main(["restore", str(run), str(kidney / "Test"), str(tmp_path / "out"), "--trust"]) == 2
    err = capsys.readouterr().err
    assert "the run is not calibrated" in err and "temdeblur calibrate" in err
    assert not (tmp_path / "out").exists()
    assert cli.main(["evaluate", str(kidney), "--model", str(run), "--uncertainty", "--device", "cpu"]) == 2
    assert "temdeblur calibrate" in capsys.readouterr().err


def test_cli_calibrate_writes_calibration_json_and_refuses_bad_input(
    untrained_run, simulated_dataset, tmp_path, capsys
):
    run = tmp_path / "run"
    untrained_run(run / "best.pt", epoch=3)
    data = str(simulated_dataset.out)
    assert cli.main(["calibrate", str(run), data, "--coverage", "0.8", "--pixels", "5000", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "calibrated on 5,000 pixels of 4 Val image(s): the 80% interval" in printed and str(run) in printed
    record = json.loads((run / CALIBRATION).read_text())
    assert record["nominal_coverage"] == 0.8 and record["pixels"] == 5000 and record["epoch"] == 3
    assert "Kidney/sess1_im3" in record["images"] and record["data"] == [data]
    checkpoint = load_model(run)[1]
    assert read_calibration(checkpoint).scale == record["scale"]
    # weights saved since (another epoch): the calibration no longer applies
    untrained_run(run / "best.pt", epoch=4)
    with pytest.raises(Uncalibrated, match="calibration is of best.pt at epoch 3, not of best.pt at epoch 4"):
        read_calibration(load_model(run)[1])

    bad = [
        (["--coverage", "1.5"], "coverage must be a number between 0 and 1"),
        (["--split", "Nope"], "holds no Nope split with GT/Low pairs"),
    ]
    for flags, message in bad:
        assert cli.main(["calibrate", str(run), data, "--device", "cpu", *flags]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["calibrate", str(tmp_path / "nothing"), data]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
    assert cli.main(["calibrate", str(run), str(tmp_path)]) == 2
    assert "no dataset here" in capsys.readouterr().err
    with pytest.raises(ValueError, match="shipped pretrained weights come calibrated"):
        next(calibrate("pretrained", data, CalibrateOptions(restore=CPU)))


def test_restore_trust_writes_the_interval_width(trained, kidney, tmp_path, capsys):
    from napari_temdeblur._reader import read_restored

    out = tmp_path / "out"
    args = ["restore", str(trained.out), str(kidney / "Test"), str(out), "--device", "cpu"]
    assert cli.main([*args, "--trust", "--flags"]) == 0
    import tifffile

    image, width = tifffile.imread(out / "sess3_im1.tif"), tifffile.imread(out / "sess3_im1_trust.tif")
    assert width.shape == image.shape and width.dtype == np.float32 and (width > 0).all()
    # the folder opens with its trust and flags layers, placed like the restored images
    layers = {kwargs["name"]: (data, kwargs, kind) for data, kwargs, kind in read_restored(out)}
    restored, trust, flags = (
        layers[f"out {what}"] for what in ("restored", "trust (interval width, 0-1 intensity)", "flags")
    )
    assert trust[2] == "image" and flags[2] == "labels" and trust[1]["colormap"] == "magma"
    for layer in (trust, flags):
        assert layer[0].shape == restored[0].shape
        for key in ("scale", "translate", "units", "axis_labels"):
            assert layer[1].get(key) == restored[1].get(key), key
    names = restored[1]["metadata"]["temdeblur"]["names"]
    h, w = width.shape
    np.testing.assert_array_equal(trust[0][names.index("sess3_im1"), :h, :w], width)
    np.testing.assert_array_equal(
        flags[0][names.index("sess3_im1"), :h, :w], tifffile.imread(out / "sess3_im1_flags.tif")
    )
    assert cli.main(args) == 0
    # a width or flags of an earlier image would mislead
    assert not (out / "sess3_im1_trust.tif").exists() and not (out / "sess3_im1_flags.tif").exists()
    assert not any("trust" in kwargs["name"] or "flags" in kwargs["name"] for _, kwargs, _ in read_restored(out))


def test_evaluate_uncertainty_adds_the_four_keys(trained, kidney, tmp_path, capsys):
    out = tmp_path / "scores.json"
    args = ["evaluate", str(kidney), "--model", str(trained.out), "--tile", "64", "--device", "cpu"]
    assert cli.main([*args, "--restore-tile", "256", "--uncertainty", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    scores = json.loads(out.read_text())
    run = scores["methods"]["kidney-bu"]
    assert UNCERTAINTY <= set(run) and UNCERTAINTY <= set(scores["samples"]["Kidney"]["methods"]["kidney-bu"])
    assert 0 <= run["coverage"] <= 1 and run["nominal_coverage"] == 0.9 and run["interval_width_mean"] > 0
    assert -1 <= run["uncertainty_error_spearman"] <= 1
    assert not UNCERTAINTY & set(scores["methods"]["input"])
    assert "Trust intervals" in printed and "width-error Spearman" in printed


def test_restore_dock_shows_the_trust_layer_aligned_with_the_restored_layer(
    make_napari_viewer, trained, kidney, untrained_run, tmp_path
):
    from napari_temdeblur.layers import TRUST_SUFFIX as TRUST
    from napari_temdeblur.layers import LayerKind, kind_of
    from napari_temdeblur.widgets._dock import RunState
    from napari_temdeblur.widgets.restore import RestoreWidget
    from napari_temdeblur.widgets.restore._widget import COMPARE_TRUST

    viewer = make_napari_viewer()
    viewer.open(str(kidney), plugin="napari-temdeblur")  # every split: the Test images sit after the others
    _, widget = viewer.window.add_plugin_dock_widget("napari-temdeblur", "Restore")
    assert isinstance(widget, RestoreWidget) and widget.trust.value  # on by default
    widget.device.value, widget.score_tile.value, widget.run.value = "cpu", 64, trained.out
    widget.start()
    assert widget.wait(60) is RunState.DONE, widget.status.message
    restored, trust = viewer.layers["Kidney Test restored"], viewer.layers["Kidney Test" + TRUST]
    assert kind_of(trust) is LayerKind.TRUST and trust.colorbar.visible and "interval width" in trust.name
    assert trust.data.shape == restored.data.shape
    assert tuple(trust.scale) == tuple(restored.scale) and tuple(trust.translate) == tuple(restored.translate)
    assert tuple(trust.units) == tuple(restored.units) == tuple(viewer.layers["Kidney Test GT"].units)
    # the widths shown are the core's, in the restored layer's [0, 1] scale (the scoring GT window)
    result = widget.result
    span = result.gt_window.high - result.gt_window.low
    for k, one in enumerate(result.restored):
        run_window = one.metadata["windows"]["gt"]
        h, w = one.image.shape
        expected = one.interval_width * (run_window["high"] - run_window["low"]) / span
        np.testing.assert_allclose(trust.data[k, :h, :w], expected, rtol=1e-5)
    assert "trust     90% interval, mean width" in viewer.canvas.overlays.text.text
    # it follows the image slider with the restored layer: the overlay names the image on screen
    last = len(result.restored) - 1
    viewer.dims.set_point(viewer.dims.ndim - 3, float(restored.translate[0] + last * restored.scale[0]))
    text = viewer.canvas.overlays.text.text
    assert result.selection.pairs[last].name in text and f"mean width {np.mean(result.trust[last]):.3f}" in text
    widget.compare_what.value = COMPARE_TRUST
    widget.compare()
    assert viewer.canvas.grid.enabled and [layer for layer in viewer.layers if layer.visible] == [restored, trust]
    widget.end_compare()

    # an uncalibrated run restores without it, and the status says how to calibrate
    run = tmp_path / "uncalibrated"
    untrained_run(run / "best.pt", frames=(3, 3))
    widget.run.value = run
    widget.start()
    assert widget.wait(60) is RunState.DONE, widget.status.message
    assert "Kidney Test" + TRUST not in viewer.layers
    assert "no trust layer" in widget.status.message and "temdeblur calibrate" in widget.status.message
