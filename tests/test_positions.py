"""Stream geometry: frame-to-frame shifts, global positions against the simulator's truth (with a blank,
a corrupt frame and a stage jump in the stream), HQ anchors and positions.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_temdeblur.core import DataError, drain
from napari_temdeblur.core.io import open_session, write_session
from napari_temdeblur.core.register import (
    FramePosition,
    FrameRegistration,
    PairRegistration,
    StreamPositions,
    load_positions,
    save_positions,
    save_registration,
    stream_positions,
    translation_matrix,
)

BLANK, CORRUPT = 10, 14


def test_shifted_positions_move_the_origin_of_frames_and_hq_images_alike():
    frames = (FramePosition(0, (10.0, 5.0), 0.1), FramePosition(1, (7.5, 4.0), 0.2, "blank"))
    positions = StreamPositions(31.25, frames, {"im1": (12.0, -3.0)}, ("a note",))
    moved = positions.shifted((10.0, 5.0))
    assert [f.yx for f in moved.frames] == [(0.0, 0.0), (-2.5, -1.0)]
    assert [(f.index, f.residual_px, f.flag) for f in moved.frames] == [(0, 0.1, None), (1, 0.2, "blank")]
    assert moved.hq == {"im1": (2.0, -8.0)} and moved.messages == ("a note",) and moved.pixel_size_nm == 31.25
    assert positions.frames[0].yx == (10.0, 5.0)  # the original is unchanged


def _truth(out, sample="Kidney", session=1):
    """(T, 2) true top-left corners of the frames and {name: (y, x)} of the HQ images, stream px."""
    record = json.loads((out / "truth" / sample / f"sess{session}.json").read_text())
    binning = record["stream_binning"]
    frames = np.array([f["position"] for f in record["frames"]]) / binning
    return frames, {h["name"]: np.array(h["position"]) / binning for h in record["hq"]}


def _copy_session(source, path, frames=None, edit=None):
    """A copy of a session with its stream's frames picked (`frames`) and edited (`edit(stream)`)."""
    stream = np.asarray(source.stream)[frames if frames is not None else slice(None)].copy()
    if edit:
        edit(stream)
    hq = [np.asarray(source.hq[i]) for i in range(len(source.hq_names))]
    write_session(path, {k: v for k, v in source.meta.items() if k != "format"}, source.hq_names, hq, stream)
    return open_session(path)


def _errors(positions, truth, frames):
    """|error| (stream px) of the placed frames against the truth, the common offset removed."""
    placed = positions.placed
    found = np.array([f.yx for f in placed])
    true = truth[[frames[f.index] for f in placed]]
    offset = (found - true).mean(axis=0)
    return np.hypot(*(found - true - offset).T), offset


@pytest.fixture(scope="module")
def kidney(simulated_sessions):
    out = simulated_sessions.out
    return open_session(out / "Kidney" / "sess1"), *_truth(out)


def test_positions_against_truth_with_a_blank_and_a_corrupt_frame(kidney, tmp_path):
    source, truth, _ = kidney
    rng = np.random.default_rng(0)

    def spoil(stream):
        stream[BLANK] = 0
        stream[CORRUPT] = rng.integers(0, 8000, stream.shape[1:], dtype=np.uint16)

    session = _copy_session(source, tmp_path / "sess1", edit=spoil)
    positions = drain(stream_positions(session))
    flagged = {f.index: f.flag for f in positions.frames if f.flag}
    assert set(flagged) == {BLANK, CORRUPT}, flagged
    assert "blank" in flagged[BLANK] and "matches none of its neighbours" in flagged[CORRUPT]
    errors, _ = _errors(positions, truth, range(len(truth)))
    # every other frame is placed, the chain going on after the flagged ones
    assert len(errors) == len(truth) - 2
    assert errors.mean() <= 0.3 and errors.max() < 1.0
    assert min(min(f.yx) for f in positions.placed) == 0  # mosaic coordinates start at 0
    assert all(f.residual_px < 1.0 for f in positions.placed)
    assert np.isnan(positions.frames[BLANK].residual_px)
    assert positions.pixel_size_nm == source.meta["stream_pixel_size_nm"]


def test_a_stage_jump_is_found_and_the_chain_continues(kidney, tmp_path):
    source, truth, _ = kidney
    kept = [t for t in range(len(truth)) if not 6 <= t <= 8]  # the stage skipped three frames' travel
    session = _copy_session(source, tmp_path / "jump", frames=kept)
    positions = drain(stream_positions(session))
    assert not [f.flag for f in positions.frames if f.flag]
    errors, _ = _errors(positions, truth, kept)
    assert errors.mean() <= 0.3 and errors.max() < 1.0


def test_registered_hq_images_anchor_the_positions(kidney, tmp_path):
    source, truth, hq_truth = kidney
    session = _copy_session(source, tmp_path / "anchored")
    # registration.json from the truth: where each HQ origin lies in the frames around it
    pairs = []
    for name, hq_yx in list(hq_truth.items())[:2]:
        nearest = int(np.argmin(np.abs(truth[:, 0] - hq_yx[0])))
        frames = [
            FrameRegistration(t, translation_matrix(tuple(hq_yx - truth[t])), 0.9)
            for t in range(max(0, nearest - 2), min(len(truth), nearest + 3))
        ]
        pairs.append(PairRegistration(name, (0.0, 0.0), tuple(frames)))
    save_registration(session, pairs)
    positions = drain(stream_positions(session))
    errors, offset = _errors(positions, truth, range(len(truth)))
    assert errors.mean() <= 0.3
    assert list(positions.hq) == [p.hq for p in pairs]
    for name, yx in positions.hq.items():
        assert np.hypot(*(np.subtract(yx, hq_truth[name]) - offset)) < 0.5
    unanchored = drain(stream_positions(session, use_registration=False))
    assert unanchored.hq == {}


def test_positions_json_has_the_issue_format_and_reads_back(kidney, tmp_path):
    source, _, _ = kidney
    session = _copy_session(source, tmp_path / "sess", edit=lambda s: s.__setitem__(BLANK, 0))
    positions = drain(stream_positions(session))
    path = save_positions(tmp_path / "out", positions)
    data = json.loads(path.read_text())
    assert path.name == "positions.json"
    assert list(data) == ["format", "pixel_size_nm", "frames", "hq"]
    assert data["format"] == "temdeblur-positions/1"
    assert list(data["frames"][0]) == ["index", "yx", "residual_px", "flag"]
    assert data["frames"][BLANK]["residual_px"] is None and "blank" in data["frames"][BLANK]["flag"]
    again = load_positions(tmp_path / "out")
    assert [f.index for f in again.placed] == [f.index for f in positions.placed]
    np.testing.assert_allclose([f.yx for f in again.frames], [f.yx for f in positions.frames], atol=1e-4)


def test_bad_positions_input_is_named(kidney, tmp_path):
    source, _, _ = kidney
    with pytest.raises(ValueError, match="neighbours"):
        drain(stream_positions(source, neighbours=0))
    bad = tmp_path / "positions.json"
    bad.write_text(json.dumps({"format": "something-else/1", "frames": []}))
    with pytest.raises(DataError, match="positions.json.*format"):
        load_positions(bad)
    bad.write_text(json.dumps({"format": "temdeblur-positions/1", "frames": [{"index": 0}]}))
    with pytest.raises(DataError, match="malformed"):
        load_positions(bad)
    with pytest.raises(DataError, match="not found"):
        load_positions(tmp_path / "nowhere")
    blank = _copy_session(source, tmp_path / "blank", edit=lambda s: s.__setitem__(slice(None), 0))
    with pytest.raises(DataError, match="no two stream frames match"):
        drain(stream_positions(blank))
