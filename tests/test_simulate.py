"""The simulator's physics, truth and layouts."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from napari_temdeblur.core import drain
from napari_temdeblur.core.imaging import apply_window, suggest_window
from napari_temdeblur.core.io import open_session, read_dataset
from napari_temdeblur.core.simulate import (
    SimulationConfig,
    bin_pixels,
    blurred_view,
    detect,
    motion_kernel,
    render_specimen,
    simulate,
    support_grid_bars,
)


def _truth(result, sample, session):
    path = result.out / "truth" / sample / f"sess{session}.json"
    truth = json.loads(path.read_text())
    kernels = np.load(path.with_name(truth["kernels_file"]))
    return truth, [kernels[f"frame{k}"] for k in range(len(truth["frames"]))]


def _moments(kernel):
    rows, cols = np.indices(kernel.shape)
    mean_r, mean_c = (kernel * rows).sum(), (kernel * cols).sum()
    return (kernel * (rows - mean_r) ** 2).sum(), (kernel * (cols - mean_c) ** 2).sum()


def test_blur_is_longer_along_the_scan_and_differs_between_frames(simulated_sessions, small_cfg):
    _, kernels = _truth(simulated_sessions, "Kidney", 1)
    var_rows, var_cols = np.array([_moments(k) for k in kernels]).T
    blur_px = small_cfg.scan_speed_um_s * small_cfg.exposure_ms / small_cfg.hq_pixel_size_nm  # um/s * ms / nm
    # a uniform streak of length L has standard deviation L / sqrt(12)
    assert np.median(np.sqrt(var_rows)) == pytest.approx(blur_px / np.sqrt(12), rel=0.3)
    assert np.all(var_rows > 4 * var_cols)
    assert np.std(np.sqrt(var_rows)) > 0.02 * np.mean(np.sqrt(var_rows))  # every frame has its own blur


def test_stream_frames_lose_vertical_detail(simulated_dataset):
    """Vertical motion blur removes more row-wise than column-wise gradient energy.

    Images are smoothed first so that white detector noise, equal along both axes, does not dominate.
    """
    pairs = [p for s in read_dataset(simulated_dataset.out / "Kidney") for p in s.pairs]
    ratios = []
    for images in ([p.gt for p in pairs], [p.low.mean(axis=0) for p in pairs]):
        smooth = [ndimage.gaussian_filter(im.astype(float), 1.5) for im in images]
        gy = np.mean([np.mean(np.diff(im, axis=0) ** 2) for im in smooth])
        gx = np.mean([np.mean(np.diff(im, axis=1) ** 2) for im in smooth])
        ratios.append(gy / gx)
    assert ratios[1] < 0.7 * ratios[0]


def test_detector_noise_is_poisson_gaussian():
    cfg = SimulationConfig.demo()
    rng = np.random.default_rng(0)
    levels = np.linspace(0.05, 1.0, 8)
    counts = [detect(np.full((200, 200), t), cfg.stream_electrons, cfg.stream_gain, cfg, rng) for t in levels]
    means = np.array([c.mean() for c in counts])
    variances = np.array([c.astype(float).var() for c in counts])
    slope, _ = np.polyfit(means - cfg.detector_offset, variances, 1)
    assert slope == pytest.approx(cfg.stream_gain, rel=0.05)  # Poisson: variance grows with the signal
    dark = detect(np.zeros((400, 400)), cfg.stream_electrons, cfg.stream_gain, cfg, rng)
    assert dark.astype(float).std() == pytest.approx(cfg.read_noise, rel=0.05)  # no signal: read noise only
    assert means[-1] - cfg.detector_offset == pytest.approx(cfg.stream_gain * cfg.stream_electrons, rel=0.01)


def test_stream_is_about_a_quarter_of_hq_intensity(simulated_dataset):
    pairs = [p for s in read_dataset(simulated_dataset.out / "Kidney") for p in s.pairs]
    gt = np.concatenate([p.gt.ravel() for p in pairs]).astype(float)
    low = np.concatenate([p.low.mean(axis=0).ravel() for p in pairs])
    sample = gt > 0.5 * np.percentile(gt, 99)
    ratio = low[sample].mean() / gt[sample].mean()
    assert 0.2 < ratio < 0.33
    assert 15000 < np.percentile(gt, 99.9) < 23000 and 4000 < np.percentile(low, 99.9) < 6500  # the paper's counts


def test_grid_bars_image_black_after_windowing(simulated_sessions, small_cfg):
    truth, _ = _truth(simulated_sessions, "Kidney", 1)
    session = open_session(simulated_sessions.folders["Kidney"][0])
    hq = np.asarray(session.hq)
    px_um = small_cfg.hq_pixel_size_nm / 1000
    bars = []
    for record in truth["hq"]:
        row, col = record["position"]
        origin = (truth["strip_origin_um"][0] + row * px_um, truth["strip_origin_um"][1] + col * px_um)
        bars.append(
            support_grid_bars(
                hq.shape[1:], origin, small_cfg.hq_pixel_size_nm, small_cfg.grid_pitch_um, small_cfg.grid_bar_um
            )
        )
    bars = np.array(bars)
    # bar interiors: the optics blur the edges over a few pixels
    inner = ~ndimage.binary_dilation(~bars, np.ones((1, 9, 9), bool))
    assert inner.mean() > 0.02, "the test needs bars in view"
    windowed = apply_window(hq, suggest_window(list(hq)))
    assert np.mean(windowed[inner] == 0) > 0.999
    assert np.mean(windowed[~bars] > 0) > 0.99


def test_truth_translation_matches_the_images(simulated_sessions, small_cfg):
    """Pins docs/design.md's Matrix convention, stream_frame(y + ty, x + tx) ~= hq_down(y, x), against an
    independent estimate (scikit-image's cross-correlation) for every frame that overlaps the HQ image well."""
    truth, _ = _truth(simulated_sessions, "Kidney", 2)
    session = open_session(simulated_sessions.folders["Kidney"][1])
    b, m = small_cfg.stream_binning, 64  # compare the central region, which every nearby frame covers
    hq_pos = np.array(truth["hq"][1]["position"], float)
    hq_down = bin_pixels(np.asarray(session.hq[1]).astype(float), b)
    ref = hq_down[m:-m, m:-m]
    residuals = []
    for record in truth["frames"]:
        ty, tx = (hq_pos - np.array(record["position"])) / b
        if abs(ty) > m - 4 or abs(tx) > m - 4:
            continue
        oy, ox = int(round(ty)), int(round(tx))
        frame = np.asarray(session.stream[record["index"]]).astype(float)
        moving = frame[m + oy : m + oy + ref.shape[0], m + ox : m + ox + ref.shape[1]]
        # plain cross-correlation peaks at the blur's centroid; phase correlation does not for a streak
        shift, _, _ = phase_cross_correlation(ref, moving, upsample_factor=20, normalization=None)
        # the returned shift registers moving onto ref: moving(p - shift) ~= ref(p)
        residuals.append(-shift - (np.array([ty, tx]) - [oy, ox]))
    residuals = np.abs(residuals)
    assert len(residuals) >= 3
    # the truth is the blur's centroid; vibration makes streaks uneven, so a correlation peak can sit
    # up to about a pixel from it along the scan. A sign or axis mix-up would be off by many pixels.
    assert np.median(residuals) < 0.5 and residuals.max() < 1.5, residuals


@pytest.mark.parametrize("blur", [0.0, 24.0])
@pytest.mark.parametrize("frame_pos", [(230.3, 185.6), (170.8, 215.2)])
def test_frame_formation_convention_is_exact(frame_pos, blur):
    """A noise-free frame at a known fractional position, with a uniform vertical streak, lands where
    true_translations' formula says (to interpolation accuracy)."""
    rng = np.random.default_rng(0)
    strip = ndimage.gaussian_filter(render_specimen("kidney", (900, 900), 15.625, rng), 0.7)
    hq_pos = np.array([200, 200])
    hq_down = bin_pixels(strip[200:712, 200:712], 2)
    pos = np.array(frame_pos)
    path = np.stack([np.linspace(pos[0] - blur / 2, pos[0] + blur / 2, 96), np.full(96, pos[1])], axis=1)
    kernel, corner = motion_kernel(path)
    frame = bin_pixels(blurred_view(strip, kernel, corner, 512), 2)
    ty, tx = (hq_pos - pos) / 2
    m, oy, ox = 64, int(round(ty)), int(round(tx))
    ref = hq_down[m:-m, m:-m]
    moving = frame[m + oy : m + oy + ref.shape[0], m + ox : m + ox + ref.shape[1]]
    shift, _, _ = phase_cross_correlation(ref, moving, upsample_factor=50, normalization=None)
    np.testing.assert_allclose(-shift, [ty - oy, tx - ox], atol=0.2)


def test_same_seed_same_bytes(tmp_path):
    cfg = dataclasses.replace(SimulationConfig.demo(), sessions=2, hq_per_session=2)

    def digest(folder):
        return {
            p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    drain(simulate(tmp_path / "a", cfg, ["grid"], layout="dataset", seed=11))
    drain(simulate(tmp_path / "b", cfg, ["grid"], layout="dataset", seed=11))
    drain(simulate(tmp_path / "c", cfg, ["grid"], layout="dataset", seed=12))
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b
    assert a != c


def test_dataset_splits_follow_the_paper(simulated_dataset, small_cfg):
    splits = {(s.sample, s.split): s for s in read_dataset(simulated_dataset.out)}
    for sample in ("Kidney", "CalibrationGrid"):
        test_sessions = {p.session for p in splits[(sample, "Test")].pairs}
        assert test_sessions == {small_cfg.sessions}
        val = splits[(sample, "Val")].pairs
        assert 1 <= len(val) <= small_cfg.val_max_images and {p.session for p in val} == {1}
        truth, _ = _truth(simulated_dataset, sample, 1)
        tops = {h["name"]: h["position"][0] for h in truth["hq"]}
        train_names = [p.name for p in splits[(sample, "Train")].pairs if p.session == 1]
        for v in val:  # no field of view in two splits
            assert all(abs(tops[v.name] - tops[t]) >= small_cfg.hq_size for t in train_names)
        assert all(p.low.shape[0] == small_cfg.burst_frames for s in splits.values() for p in s.pairs)


def test_dataset_frames_are_registered_to_their_gt(simulated_dataset, small_cfg):
    """Every written Low frame lies on its GT's grid: an independent cross-correlation finds it within a
    fraction of a pixel (the injected residual plus the blur-centroid offset), never pixels away."""
    truth, _ = _truth(simulated_dataset, "Kidney", 2)
    split = {p.name: p for s in read_dataset(simulated_dataset.out / "Kidney") for p in s.pairs}
    shifts = []
    for record in truth["pairs"]:
        pair = split[record["name"]]
        gt = ndimage.gaussian_filter(pair.gt.astype(float), 1.0)
        for frame in pair.low:
            moving = ndimage.gaussian_filter(frame.astype(float), 1.0)
            shift, _, _ = phase_cross_correlation(gt, moving, upsample_factor=20, normalization=None)
            shifts.append(shift)
    shifts = np.abs(shifts)
    assert len(shifts) == 5 * len(truth["pairs"]) > 0
    assert np.median(shifts) < 0.5 and shifts.max() < 1.5, shifts
    errors = np.concatenate(
        [np.subtract(p["applied_translation_yx"], p["true_translation_yx"]) for p in truth["pairs"]]
    )
    assert 0 < np.sqrt(np.mean(errors**2)) < 3 * small_cfg.registration_residual_px


def test_motion_kernel_conserves_mass_and_position():
    path = np.stack([np.linspace(10.3, 30.8, 50), np.full(50, 5.6)], axis=1)
    kernel, corner = motion_kernel(path)
    assert kernel.sum() == pytest.approx(1.0)
    rows, cols = np.indices(kernel.shape)
    centroid = np.array([(kernel * rows).sum(), (kernel * cols).sum()]) + corner
    np.testing.assert_allclose(centroid, path.mean(axis=0), atol=1e-9)


def test_config_round_trip_and_validation(tmp_path):
    cfg = SimulationConfig.demo()
    assert SimulationConfig.load(cfg.save(tmp_path / "c.json", seed=3)) == cfg
    with pytest.raises(ValueError, match="unknown simulation parameter.*dose"):
        SimulationConfig.from_dict({"dose": 3})
    with pytest.raises(ValueError, match="grid_bar_um"):
        SimulationConfig(grid_bar_um=70.0, grid_pitch_um=62.0)
    with pytest.raises(ValueError, match="exposure_ms"):
        SimulationConfig(exposure_ms=50.0, frame_interval_ms=30.0)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown specimen.*kidney"):
        drain(simulate(tmp_path, SimulationConfig.demo(), ["liver"]))
    with pytest.raises(ValueError, match="layout must be one of"):
        drain(simulate(tmp_path, SimulationConfig.demo(), ["kidney"], layout="zarr"))
