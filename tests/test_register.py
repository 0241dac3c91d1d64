"""Registration core and CLI: conventions, accuracy against the simulator's truth, quality control,
bad input, saving, burst extraction."""

from __future__ import annotations

import json
import re
import shutil

import cv2
import numpy as np
import pytest
from scipy import ndimage

from napari_temdeblur.cli import main
from napari_temdeblur.core import DataError, drain
from napari_temdeblur.core.io import open_session, read_dataset, write_session
from napari_temdeblur.core.register import (
    FrameRegistration,
    InitialGuess,
    PairDone,
    PairFailed,
    PairRegistration,
    RegistrationSettings,
    extract_burst,
    image_problem,
    load_registrations,
    match_frames,
    read_init_file,
    register_pair,
    register_session,
    save_registration,
    scan_order_outliers,
    translation_matrix,
)
from napari_temdeblur.core.simulate import bin_pixels, read_true_translations

META = {"hq_pixel_size_nm": 15.625, "stream_pixel_size_nm": 31.25, "exposure_ms": 15.0}
#: Known (ty, tx) of each synthetic frame: where the HQ origin lies in it, stream px (halves are exact).
SHIFTS = [(-30.5, 2.0), (-15.0, 1.5), (0.5, -1.0), (15.5, -2.5), (30.0, -3.0)]
#: The calibration grating's period in stream px (463 nm at 31.25 nm per stream pixel).
GRATING_PERIOD = 463 / 31.25


def _texture(rng, shape):
    """Smooth random texture with a few dark blobs, in HQ counts."""
    image = ndimage.gaussian_filter(rng.normal(0, 1, shape), 3)
    image = 20000 + 2500 * image / image.std()
    for _ in range(6):
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        yy, xx = np.ogrid[: shape[0], : shape[1]]
        image -= 5000 * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 60.0)
    return image


def write_shifted_session(path, shifts=SHIFTS, hq_size=256, rng_seed=0, meta=META):
    """A session whose stream frames are the HQ scene binned 2 x 2 and shifted by known amounts:
    frame k shows HQ pixel (y, x) (at stream pixels) at (y + ty_k, x + tx_k)."""
    rng = np.random.default_rng(rng_seed)
    margin = 80
    canvas = _texture(rng, (hq_size + 2 * margin, hq_size + 2 * margin))
    hq = canvas[margin : margin + hq_size, margin : margin + hq_size]
    frames = []
    for ty, tx in shifts:
        r, c = margin - int(round(2 * ty)), margin - int(round(2 * tx))
        view = bin_pixels(canvas[r : r + hq_size, c : c + hq_size], 2) / 4
        frames.append(view + rng.normal(0, 30, view.shape))
    to16 = lambda a: np.clip(np.round(a), 0, 65535).astype(np.uint16)  # noqa: E731
    write_session(path, meta, ["s1_im1"], [to16(hq)], to16(np.stack(frames)))
    return open_session(path)


@pytest.fixture
def shifted(tmp_path):
    return write_shifted_session(tmp_path / "sess1")


@pytest.fixture(scope="module")
def kidney_session(simulated_sessions, tmp_path_factory):
    """A private copy of simulated Kidney session 1 (registration writes into the folder) and its truth."""
    out = simulated_sessions.out
    copy = tmp_path_factory.mktemp("kidney") / "sess1"
    shutil.copytree(out / "Kidney" / "sess1", copy)
    return open_session(copy), read_true_translations(out / "truth/Kidney/sess1.json")


# --- conventions -----------------------------------------------------------------------------------


def test_known_shift_pins_the_matrix_and_napari_conventions(shifted):
    """A napari drag of the stream layer by translate = (-ty, -tx) lines it up with the HQ layer; the
    matrix is OpenCV's [[1, 0, tx], [0, 1, ty]] with frame(A @ [x, y, 1]) = hq_down(x, y)."""
    ty, tx = SHIFTS[2]
    layer_translate = (-ty + 1.5, -tx - 2.0)  # the user's drag, a little off
    init = InitialGuess(2, (-layer_translate[0], -layer_translate[1]))
    pair = drain(register_pair(shifted, 0, init, RegistrationSettings(streak=False)))
    assert [f.index for f in pair.frames] == [0, 1, 2, 3, 4]
    assert pair.init_translation_yx == init.translation_yx and pair.init_source == "user"
    for f, (sy, sx) in zip(pair.frames, SHIFTS):
        assert f.flag is None and f.method == "ecc"
        np.testing.assert_allclose(f.matrix, [[1, 0, sx], [0, 1, sy]], atol=0.05)
        assert f.translation_yx == (f.matrix[1, 2], f.matrix[0, 2])
    # the matrix maps HQ (x, y) to the frame: frame(A @ [x, y, 1]) ~= hq_down(x, y)
    hq_down = bin_pixels(np.asarray(shifted.hq[0]).astype(float), 2) / 4
    frame = np.asarray(shifted.stream[0]).astype(np.float32)
    a = pair.frames[0].matrix
    warped = cv2.warpAffine(frame, a, (128, 128), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    inside = (slice(40, 90), slice(10, 110))
    assert np.abs(warped[inside] - hq_down[inside]).mean() < 40  # noise is 30 counts r.m.s.


def test_matcher_finds_the_frame_and_translation(shifted):
    match = match_frames(shifted, 0, RegistrationSettings(frames=3))
    assert match.best_frame == 2 and match.frames == [1, 2, 3]
    np.testing.assert_allclose(match.translation_yx, SHIFTS[2], atol=1.0)
    np.testing.assert_allclose(match.translations_yx, SHIFTS[1:4], atol=1.0)
    clipped = match_frames(shifted, 0, RegistrationSettings(frames=5), around=4)
    assert clipped.frames == [0, 1, 2, 3, 4] and "not centred" in clipped.messages[0]


# --- accuracy against the simulator's truth --------------------------------------------------------


def test_accuracy_against_truth_from_starts_8_px_off(kidney_session):
    session, truth = kidney_session
    rng = np.random.default_rng(5)
    errors = []
    for i, name in enumerate(session.hq_names):
        t = truth[name]
        best = int(np.argmin(np.abs(t[:, 0])))
        angle = rng.uniform(0, 2 * np.pi)
        init = InitialGuess(best, (t[best, 0] + 8 * np.sin(angle), t[best, 1] + 8 * np.cos(angle)))
        pair = drain(register_pair(session, i, init))
        assert len(pair.accepted) == 5, pair.messages
        errors += [np.hypot(*np.subtract(f.translation_yx, t[f.index])) for f in pair.frames]
    assert np.mean(errors) <= 0.25 and np.max(errors) < 1.0


def test_wrong_grating_period_is_flagged_never_saved_as_good(simulated_sessions):
    session = open_session(simulated_sessions.out / "CalibrationGrid" / "sess1")
    truth = read_true_translations(simulated_sessions.out / "truth/CalibrationGrid/sess1.json")
    wrong = 0
    for i, name in enumerate(session.hq_names[:3]):
        t = truth[name]
        best = int(np.argmin(np.abs(t[:, 0])))
        for offset in ((0, GRATING_PERIOD), (0, -GRATING_PERIOD)):
            init = InitialGuess(best, tuple(t[best] + offset))
            # no pyramid: full-resolution ECC from a period off stays on the wrong period
            pair = drain(register_pair(session, i, init, RegistrationSettings(pyramid_levels=0)))
            for f in pair.frames:
                error = np.hypot(*np.subtract(f.translation_yx, t[f.index]))
                wrong += error > 5
                assert f.flag is not None or error < 2, (name, f, pair.messages)
            if any(f.flag for f in pair.frames):
                assert any("grating" in m for m in pair.messages)
    assert wrong > 0  # the scenario really produced wrong locks


def test_half_period_start_on_a_grating_converges_with_the_pyramid(simulated_sessions):
    session = open_session(simulated_sessions.out / "CalibrationGrid" / "sess1")
    truth = read_true_translations(simulated_sessions.out / "truth/CalibrationGrid/sess1.json")
    t = truth[session.hq_names[1]]
    best = int(np.argmin(np.abs(t[:, 0])))
    pair = drain(register_pair(session, 1, InitialGuess(best, (t[best, 0], t[best, 1] + GRATING_PERIOD / 2))))
    for f in pair.frames:
        assert f.flag is not None or np.hypot(*np.subtract(f.translation_yx, t[f.index])) < 2


def test_scan_order_catches_a_match_one_grid_pitch_away():
    """Best frames grow about linearly along the scan; one matched a grid pitch away stands out."""
    best = {0: 3, 1: 6, 2: 9, 3: 1, 4: 14, 5: 17, 6: 9, 7: 22}  # a full-size grid session's first matches
    assert scan_order_outliers(best) == {3: 11, 6: 19}
    assert scan_order_outliers({0: 3, 1: 6, 2: 9, 3: 12}) == {}
    assert scan_order_outliers({0: 3, 1: 30}) == {}  # too few images to tell


# --- quality control and bad input -----------------------------------------------------------------


def test_blank_and_saturated_frames_are_left_out_with_reasons(tmp_path):
    session = write_shifted_session(tmp_path / "s")
    stream = np.array(session.stream)
    stream[1] = 0
    stream[3] = 65535
    write_session(tmp_path / "bad", META, ["s1_im1"], [np.asarray(session.hq[0])], stream)
    pair = drain(register_pair(open_session(tmp_path / "bad"), 0, None, RegistrationSettings(streak=False)))
    flags = {f.index: f.flag for f in pair.frames}
    assert "all zero" in flags[1] and "saturated" in flags[3]
    assert flags[0] is None and flags[2] is None and flags[4] is None
    save_registration(tmp_path / "bad", [pair])  # what could not be registered is saved too, as such
    assert load_registrations(tmp_path / "bad")["s1_im1"].frames[1].flag == flags[1]
    burst = extract_burst(open_session(tmp_path / "bad"), pair)
    assert burst.low.shape[0] == 3


def test_a_flagged_frame_is_replaced_by_the_next_frame_out(simulated_sessions, tmp_path):
    out = simulated_sessions.out
    session = open_session(out / "Kidney" / "sess1")
    truth = read_true_translations(out / "truth/Kidney/sess1.json")[session.hq_names[1]]
    best = int(np.argmin(np.abs(truth[:, 0])))
    stream = np.array(session.stream)
    stream[best + 1] = 0  # a dropped frame inside the burst
    write_session(tmp_path / "s", session.meta, session.hq_names, list(np.asarray(session.hq)), stream)
    init = InitialGuess(best, tuple(truth[best] + (3.0, -4.0)))
    pair = drain(register_pair(open_session(tmp_path / "s"), 1, init))
    indices = [f.index for f in pair.frames]
    assert indices == list(range(best - 2, best + 4)), pair.messages
    assert "all zero" in pair.frames[3].flag
    assert [f.index for f in pair.accepted] == [best - 2, best - 1, best, best + 2, best + 3]
    assert any(f"frame {best + 3} registered in place" in m for m in pair.messages)
    errors = [np.hypot(*np.subtract(f.translation_yx, truth[f.index])) for f in pair.accepted]
    assert max(errors) < 1.0 and np.mean(errors) < 0.5


def test_image_problems_are_named():
    assert "NaN" in image_problem(np.array([[1.0, np.nan]]))
    assert "all zero" in image_problem(np.zeros((4, 4), np.uint16))
    assert "saturated" in image_problem(np.full((4, 4), 65535, np.uint16))
    assert image_problem(np.arange(16, dtype=np.uint16).reshape(4, 4)) is None


def test_hq_image_not_in_the_stream(tmp_path):
    session = write_shifted_session(tmp_path / "s")
    other = write_shifted_session(tmp_path / "o", rng_seed=7)
    write_session(tmp_path / "x", META, ["s1_im1"], [np.asarray(other.hq[0])], np.array(session.stream))
    with pytest.raises(DataError, match="matches no stream frame.*magnification or field of view"):
        drain(register_pair(open_session(tmp_path / "x"), 0))


def test_hq_and_stream_of_different_fields_of_view(tmp_path, capsys):
    session = write_shifted_session(tmp_path / "s")
    write_session(tmp_path / "fov", META, ["s1_im1"], [np.asarray(session.hq[0])], np.array(session.stream)[:, :64])
    assert main(["register", str(tmp_path / "fov")]) == 1
    out = capsys.readouterr().out
    assert "skipped session" in out and "do not cover the same field of view" in out


def test_blank_hq_image(tmp_path):
    session = write_shifted_session(tmp_path / "s")
    write_session(tmp_path / "z", META, ["s1_im1"], [np.zeros((256, 256), np.uint16)], np.array(session.stream))
    with pytest.raises(DataError, match="s1_im1.tif: HQ image is all zero"):
        drain(register_pair(open_session(tmp_path / "z"), 0))


def test_stream_shorter_than_the_burst(tmp_path):
    session = write_shifted_session(tmp_path / "s", shifts=SHIFTS[:3])
    with pytest.raises(ValueError, match="3 frames, fewer than the 5"):
        drain(register_pair(session, 0))
    with pytest.raises(ValueError, match="initial frame 9 is outside the stream"):
        drain(register_pair(session, 0, InitialGuess(9, (0.0, 0.0)), RegistrationSettings(frames=3)))


def test_a_start_far_outside_the_frames_is_refused_and_never_saved(shifted, tmp_path, capsys):
    height, width = shifted.stream.shape[1:]
    with pytest.raises(
        ValueError, match=rf"s1_im1: the start \(ty, tx\) = \(1e\+09, 0\) px .*±{height} px in y and ±{width}"
    ):
        drain(register_pair(shifted, 0, InitialGuess(2, (1e9, 0.0))))
    init = tmp_path / "init.json"
    init.write_text(json.dumps({"s1_im1": {"frame": 2, "translation_yx": [1e9, 0]}}))
    assert main(["register", str(shifted.path), "--init", str(init), "--frames", "3"]) == 1
    out = capsys.readouterr().out
    assert "s1_im1: FAILED - s1_im1: the start (ty, tx) = (1e+09, 0) px" in out
    assert "saved" not in out and "registration.json not written" in out
    assert not (shifted.path / "registration.json").exists()
    # never stored, so never reused: the next registration starts from the frame matcher
    assert main(["register", str(shifted.path), "--frames", "3"]) == 0
    assert f"saved {shifted.path / 'registration.json'}" in capsys.readouterr().out
    assert load_registrations(shifted)["s1_im1"].init_source == "matcher"


def test_settings_and_init_file_are_checked(tmp_path):
    with pytest.raises(ValueError, match="frames must be an integer from 3 to 8"):
        RegistrationSettings(frames=9)
    with pytest.raises(ValueError, match="motion must be one of"):
        RegistrationSettings(motion="spline")
    with pytest.raises(ValueError, match="unknown registration setting"):
        RegistrationSettings.from_dict({"frame": 5})
    good = tmp_path / "init.json"
    good.write_text(json.dumps({"s1_im1": {"frame": 2, "translation_yx": [1.5, -2]}}))
    assert read_init_file(good) == {"s1_im1": InitialGuess(2, (1.5, -2.0))}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"s1_im1": {"frame": 2, "translation_yx": [1.5]}}))
    with pytest.raises(DataError, match="bad.json: entry 's1_im1' must be"):
        read_init_file(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_init_file(bad)


def test_other_motion_models_recover_a_translation(shifted):
    for motion in ("euclidean", "affine"):
        pair = drain(register_pair(shifted, 0, None, RegistrationSettings(motion=motion, streak=False)))
        for f, (sy, sx) in zip(pair.frames, SHIFTS):
            # more parameters, more noise: compare where the image centre goes, and the linear part
            np.testing.assert_allclose(f.matrix @ [64, 64, 1], [64 + sx, 64 + sy], atol=0.1)
            np.testing.assert_allclose(f.matrix[:, :2], np.eye(2), atol=0.01)


# --- saving, merging, cancelling -------------------------------------------------------------------


def test_save_merges_and_cancel_keeps_finished_pairs(tmp_path):
    session = write_shifted_session(tmp_path / "s")
    # a second HQ image (the same scene) and an earlier registration of an image not in this run
    write_session(tmp_path / "s", META, ["s1_im1", "s1_im2"], [np.asarray(session.hq[0])] * 2, np.array(session.stream))
    session = open_session(tmp_path / "s")
    earlier = PairRegistration("older", (1.0, 2.0), (FrameRegistration(0, translation_matrix((1, 2)), 0.9),))
    save_registration(session.path, [earlier])
    work = register_session(session, RegistrationSettings(streak=False))
    for event in work:
        if isinstance(event, PairDone):
            break
    work.close()  # what napari's worker.quit() does: GeneratorExit at the yield
    saved = load_registrations(session)
    assert sorted(saved) == ["older", "s1_im1"]
    assert saved["older"].frames[0].translation_yx == (1.0, 2.0)
    pairs = drain(register_session(session, RegistrationSettings(streak=False), names=["s1_im2"]))
    assert [p.hq for p in pairs] == ["s1_im2"]
    saved = load_registrations(session)
    assert sorted(saved) == ["older", "s1_im1", "s1_im2"]
    assert json.loads((session.path / "registration.json").read_text())["format"] == "temdeblur-registration/1"
    np.testing.assert_allclose(saved["s1_im2"].frames[2].matrix, pairs[0].frames[2].matrix, atol=1e-6)


def test_unreadable_registration_is_never_overwritten(tmp_path):
    session = write_shifted_session(tmp_path / "s")
    (session.path / "registration.json").write_text("{broken")
    with pytest.raises(DataError, match="not overwritten"):
        drain(register_session(session, RegistrationSettings(streak=False)))
    assert (session.path / "registration.json").read_text() == "{broken"


def test_a_failing_image_does_not_stop_the_session(tmp_path):
    session = write_shifted_session(tmp_path / "s")
    write_session(
        tmp_path / "s",
        META,
        ["s1_im1", "s1_im2"],
        [np.asarray(session.hq[0]), np.zeros((256, 256), np.uint16)],
        np.array(session.stream),
    )
    events = []
    pairs = drain(register_session(open_session(tmp_path / "s"), RegistrationSettings(streak=False)), events.append)
    assert [p.hq for p in pairs] == ["s1_im1"]
    failed = [e for e in events if isinstance(e, PairFailed)]
    assert failed[0].hq == "s1_im2" and "all zero" in failed[0].message


# --- burst extraction ------------------------------------------------------------------------------


def test_extract_burst_crops_to_the_intersection(shifted):
    pair = drain(register_pair(shifted, 0, None, RegistrationSettings(streak=False)))
    burst = extract_burst(shifted, pair)
    ty = [f.translation_yx[0] for f in pair.frames]
    tx = [f.translation_yx[1] for f in pair.frames]
    # rows y with 0 <= y + ty <= 127 for every frame (and columns likewise)
    assert burst.gt.shape == (
        int(np.floor(127 - max(ty))) - int(np.ceil(-min(ty))) + 1,
        int(np.floor(127 - max(tx))) - int(np.ceil(-min(tx))) + 1,
    )
    assert burst.low.shape == (5, *burst.gt.shape) and burst.low.dtype == np.uint16 and burst.gt.dtype == np.uint16
    assert burst.low.min() > 0 and burst.gt.min() > 0  # translation: no padding
    # Low frames are about a quarter of the GT counts and line up with it
    assert np.abs(burst.low.astype(float) * 4 - burst.gt).mean() < 200


def test_extract_burst_pads_a_rotation_with_zeros(shifted):
    angle = np.deg2rad(3)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0]])
    moved = rot + translation_matrix((2, 0)) - np.eye(2, 3)
    frames = (FrameRegistration(0, rot, 0.9), FrameRegistration(1, moved, 0.9))
    burst = extract_burst(shifted, PairRegistration("s1_im1", (0, 0), frames))
    padding = burst.gt == 0
    assert 0 < padding.mean() < 0.2  # the corners outside the rotated frames
    assert all(np.array_equal(frame == 0, padding) for frame in burst.low)
    with pytest.raises(ValueError, match="no accepted frame"):
        extract_burst(shifted, PairRegistration("s1_im1", (0, 0), (FrameRegistration(0, rot, 0.1, flag="x"),)))


# --- command line ----------------------------------------------------------------------------------


def test_cli_starts_from_the_hand_alignment_saved_by_the_dock(shifted, capsys):
    ty, tx = SHIFTS[2]
    hand = InitialGuess(2, (ty + 1.0, tx - 1.5))
    drain(register_session(shifted, RegistrationSettings(streak=False), inits={"s1_im1": hand}))
    assert main(["register", str(shifted.path)]) == 0
    pair = load_registrations(shifted)["s1_im1"]
    assert (pair.init_source, pair.init_frame, pair.init_translation_yx) == ("user", 2, hand.translation_yx)


def test_cli_registers_a_session_and_writes_a_dataset(kidney_session, tmp_path, capsys):
    session, truth = kidney_session
    name = session.hq_names[0]
    best = int(np.argmin(np.abs(truth[name][:, 0])))
    init = tmp_path / "init.json"
    init.write_text(json.dumps({name: {"frame": best, "translation_yx": (truth[name][best] + 3).tolist()}}))
    assert main(["register", str(session.path), "--out", str(tmp_path / "ds"), "--init", str(init)]) == 0
    out = capsys.readouterr().out
    assert f"{name}: frames" in out and "summary: 4 HQ images registered in 1 sessions; 20/20 frames accepted" in out
    assert sorted(load_registrations(session)) == sorted(session.hq_names)
    assert load_registrations(session)[name].init_source == "user"
    splits = {(s.sample, s.split): len(s.pairs) for s in read_dataset(tmp_path / "ds")}
    assert splits == {("Kidney", "Val"): 2, ("Kidney", "Train"): 1}  # image 3 overlaps Val: left out
    assert f"left out of the dataset: {session.hq_names[2]}: it overlaps the Val images" in out  # and says so
    # the stream pixel size goes with the images, so the exported dataset opens in nm
    assert {s.pixel_size_nm for s in read_dataset(tmp_path / "ds")} == {session.meta["stream_pixel_size_nm"]}
    assert main(["register", str(tmp_path / "ds")]) == 2
    assert "no acquisition session here" in capsys.readouterr().err
    assert main(["register", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"frame_interval_ms": 15.0}, "session.json lacks exposure_ms: no streak model"),
        ({"exposure_ms": 15.0}, "session.json lacks frame_interval_ms: no streak model"),
        ({}, "session.json lacks exposure_ms and frame_interval_ms: no streak model"),
        (
            {"exposure_ms": 20.0, "frame_interval_ms": 15.0},
            r"session.json's exposure_ms \(20.0\) must be a number > 0 and at most frame_interval_ms \(15.0\)",
        ),
    ],
)
def test_the_streak_note_names_what_session_json_lacks(meta, message):
    from types import SimpleNamespace

    from napari_temdeblur.core.register._matching import motion_streak

    streak, note = motion_streak(SimpleNamespace(meta=meta), thumbnails=None, anchor=0)
    assert streak is None and re.match(message, note)
