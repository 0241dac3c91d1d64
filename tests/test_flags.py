"""Hallucination flags (core.flags, docs/flags.md): an inserted structure the frames do not show is
flagged there and not elsewhere, a faithful restoration is hardly flagged, bad input is named; the
restore CLI writes the flags beside each image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_temdeblur.core.flags import FrameModel, hallucination_flags
from napari_temdeblur.core.simulate import synthetic_burst


@pytest.fixture(scope="module")
def burst():
    """A 128 px synthetic spots image and its 5 motion-blurred, noisy, registered frames."""
    return synthetic_burst("spots", size=256, seed=2)


def test_a_faithful_restoration_is_hardly_flagged(burst):
    flags = hallucination_flags(burst.gt, burst.low)
    assert flags.mask.shape == burst.gt.shape and flags.mask.dtype == bool
    assert flags.fraction < 0.01
    # the fitted streak is the simulator's vertical scan (25 um/s x 15 ms = 12 stream px), give or take vibration
    assert all(abs(f.angle_deg - 90) <= 15 and 8 <= f.length_px <= 16 for f in flags.frames)
    assert np.nanmean(flags.score) == pytest.approx(1.0, abs=0.4)  # z^2 is chi^2_1 (mean 1) where faithful


def test_an_inserted_structure_is_flagged_there_and_not_elsewhere(burst):
    gt = burst.gt.astype(np.float32)
    invented = gt.copy()
    invented[58:64, 20:100] = 0.3 * np.median(gt)  # a dark bar the specimen does not have
    flags = hallucination_flags(invented, burst.low)
    inside = np.zeros(gt.shape, bool)
    inside[58:64, 20:100] = True
    assert flags.mask[inside].mean() > 0.8
    near = np.zeros(gt.shape, bool)
    near[40:84, 5:115] = True  # the streak and the window spread the disagreement a few px
    assert flags.mask[~near].mean() < 0.01


def test_known_motion_is_used_and_gains_fitted(burst):
    motion = [FrameModel(12.0, 90.0)] * len(burst.low)
    flags = hallucination_flags(burst.gt, burst.low, motion=motion)
    assert [f.length_px for f in flags.frames] == [12.0] * 5
    assert all(f.gain > 0 for f in flags.frames) and flags.fraction < 0.01


@pytest.mark.parametrize(
    ("restored", "frames", "message"),
    [
        (np.zeros((64, 64)), np.ones((3, 64, 60)), "64 x 60 px but the restored image is 64 x 64"),
        (np.zeros((64, 64)), np.ones((1, 64, 64)), "at least 2 frames"),
        (np.zeros((3, 64, 64)), np.ones((3, 64, 64)), "restored image must be (rows, cols)"),
        (np.full((64, 64), np.nan), np.ones((3, 64, 64)), "finite"),
    ],
)
def test_bad_input_names_the_problem(restored, frames, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hallucination_flags(restored, frames)


def test_motion_of_another_length_is_refused(burst):
    with pytest.raises(ValueError, match="2 frame models for 5 frames"):
        hallucination_flags(burst.gt, burst.low, motion=[FrameModel(12.0, 90.0)] * 2)


def test_restore_flags_writes_a_mask_and_the_fraction(burst, untrained_run, tmp_path, one_torch_thread):
    from napari_temdeblur.cli import main
    from napari_temdeblur.core.io import read_image, write_image

    run = untrained_run(tmp_path / "run.pt", "fast-burst", gt_window=(0, 30000), low_window=(0, 8000))
    source = tmp_path / "spots.tif"
    write_image(source, burst.low)
    out = tmp_path / "out"
    assert main(["restore", str(run), str(source), str(out), "--flags", "--device", "cpu"]) == 0
    mask = read_image(out / "spots_flags.tif")
    assert mask.shape == burst.gt.shape and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    image = json.loads((out / "restore.json").read_text())["images"]["spots"]
    assert image["flagged_fraction"] == pytest.approx(mask.mean(), abs=0.1)
    assert image["flags"]["frames"][0]["length_px"] >= 0


def test_a_given_streak_bounds_each_frames_length_and_a_bad_one_is_named(burst):
    from napari_temdeblur.core.restore import RestoreOptions

    flags = hallucination_flags(burst.gt, burst.low, streak_px=12.0)
    assert all(10.0 <= f.length_px <= 14.0 for f in flags.frames) and flags.fraction < 0.01
    with pytest.raises(ValueError, match="streak_px"):
        RestoreOptions(streak_px=-3.0)
