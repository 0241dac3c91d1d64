"""Acquisition session folders: lazy opening, single-frame streams, and bad input."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import psutil
import pytest
import tifffile

from napari_temdeblur import cli
from napari_temdeblur._reader import read_folder
from napari_temdeblur.core import DataError
from napari_temdeblur.core.io import open_session, write_image, write_session
from napari_temdeblur.core.register import load_registrations

META = {
    "hq_pixel_size_nm": 15.625,
    "stream_pixel_size_nm": 31.25,
    "exposure_ms": 15.0,
    "scan_direction": "up",
    "hq_overlap": 0.5,
}


def _session(path, hq_size=32, stream_size=16, frames=6):
    rng = np.random.default_rng(0)
    hq = [rng.integers(0, 20000, (hq_size, hq_size), dtype=np.uint16) for _ in range(3)]
    stream = rng.integers(0, 5000, (frames, stream_size, stream_size), dtype=np.uint16)
    write_session(path, META, ["s_im1", "s_im2", "s_im10"], hq, stream)
    return hq, stream


def _session_with_frame_files(path):
    """A session whose stream is a folder of single-frame TIFFs, ``stream/<t>.tif``."""
    _, stream = _session(path)
    (path / "stream.tif").unlink()
    (path / "stream").mkdir()
    for t, frame in enumerate(stream):
        tifffile.imwrite(path / f"stream/{t}.tif", frame)
    return stream


def test_open_is_lazy_and_keeps_scan_order(tmp_path):
    hq, stream = _session(tmp_path / "sess1")
    session = open_session(tmp_path / "sess1")
    assert session.hq_names == ["s_im1", "s_im2", "s_im10"]  # natural order, not im1, im10, im2
    assert isinstance(session.stream, np.memmap)
    assert type(session.hq).__module__.startswith("dask")
    np.testing.assert_array_equal(np.asarray(session.stream), stream)
    np.testing.assert_array_equal(np.asarray(session.hq[2]), hq[2])
    assert session.binning == 2


def test_stream_as_folder_of_single_frames(tmp_path):
    stream = _session_with_frame_files(tmp_path / "sess1")
    session = open_session(tmp_path / "sess1")
    assert session.stream.shape == stream.shape
    np.testing.assert_array_equal(session.stream[4].compute(), stream[4])


def test_large_stream_opens_without_loading(tmp_path):
    """A 2000-frame 1024 x 1024 uint16 stream (4 GB, sparse on disk) opens memory-mapped."""
    _session(tmp_path / "big", hq_size=2048, stream_size=1024, frames=1)
    big = tifffile.memmap(tmp_path / "big/stream.tif", shape=(2000, 1024, 1024), dtype=np.uint16)
    big[1999, 5, 7] = 4321
    big.flush()
    del big
    before = psutil.Process().memory_info().rss
    session = open_session(tmp_path / "big")
    assert session.stream.shape == (2000, 1024, 1024)
    assert int(session.stream[1999, 5, 7]) == 4321
    assert psutil.Process().memory_info().rss - before < 200 * 2**20


def test_missing_session_json(tmp_path):
    _session(tmp_path / "sess1")
    (tmp_path / "sess1/session.json").unlink()
    with pytest.raises(DataError, match="session.json is missing") as info:
        open_session(tmp_path / "sess1")
    assert str(tmp_path / "sess1") in str(info.value)


def test_stream_not_half_the_hq_size(tmp_path):
    _session(tmp_path / "sess1", hq_size=32, stream_size=20)
    with pytest.raises(DataError, match="same field of view"):
        open_session(tmp_path / "sess1")


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"compression": "zlib"}, {"contiguous": False}, {"imagej": True}],
    ids=["contiguous", "compressed", "paged", "imagej"],
)
@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_stream(tmp_path, kwargs, keep):
    """A stream cut short must not open with the frames it has left, whatever the TIFF flavour."""
    _session(tmp_path / "sess1")
    path = tmp_path / "sess1/stream.tif"
    tifffile.imwrite(path, np.random.default_rng(1).integers(0, 5000, (34, 16, 16), dtype=np.uint16), **kwargs)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match="truncated") as info:
        open_session(tmp_path / "sess1")
    assert "stream.tif" in str(info.value)


def _cut(path, keep: float) -> int:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return int(len(data) * keep)


def test_our_stacks_declare_their_shape(tmp_path):
    write_image(tmp_path / "stack.tif", np.zeros((5, 8, 6), np.uint16))
    with tifffile.TiffFile(tmp_path / "stack.tif") as tif:
        assert tif.shaped_metadata[0]["shape"] == [5, 8, 6]


@pytest.mark.parametrize("keep", [0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_a_truncated_stream_is_named_and_its_complete_frames_open_with_a_warning(tmp_path, keep):
    """Cut anywhere, our own stream never opens as a shorter stream in silence (issue 16, item 3)."""
    _, stream = _session(tmp_path / "sess1", frames=12)
    path = tmp_path / "sess1/stream.tif"
    with tifffile.TiffFile(path) as tif:
        start = tif.pages.first.dataoffsets[0]
    complete = min(12, max(0, _cut(path, keep) - start) // stream[0].nbytes)
    with pytest.raises(DataError, match=rf"stream.tif: the file is truncated .*: {complete} of 12 frames are complete"):
        open_session(tmp_path / "sess1")
    if complete == 0:
        with pytest.raises(DataError, match="0 of 12 frames"):
            open_session(tmp_path / "sess1", allow_truncated=True)
        return
    session = open_session(tmp_path / "sess1", allow_truncated=True)
    np.testing.assert_array_equal(np.asarray(session.stream), stream[:complete])
    (note,) = session.notes
    assert "stream.tif: the file is truncated" in note and f"opened with its {complete} complete frames" in note
    with pytest.warns(UserWarning, match=f"stream.tif: the file is truncated .*{complete} of 12 frames"):
        layers = read_folder(tmp_path / "sess1")
    assert [data.shape[0] for data, kwargs, _ in layers if kwargs["name"].endswith("stream")] == [complete]


@pytest.mark.parametrize(
    "kwargs",
    [{"metadata": None}, {"metadata": None, "compression": "zlib"}, {"imagej": True}],
    ids=["no-shape", "compressed-no-shape", "imagej"],
)
def test_a_truncated_stack_of_another_program_says_what_is_complete(tmp_path, kwargs):
    _session(tmp_path / "sess1")
    path = tmp_path / "sess1/stream.tif"
    stream = np.random.default_rng(1).integers(0, 5000, (34, 16, 16), dtype=np.uint16)
    tifffile.imwrite(path, stream, **kwargs)
    _cut(path, 0.6)
    with pytest.raises(DataError, match=r"stream.tif: the file is truncated .*frames? (is|are) complete"):
        open_session(tmp_path / "sess1")
    session = open_session(tmp_path / "sess1", allow_truncated=True)
    complete = session.stream.shape[0]
    assert 1 <= complete < 34 and f"{complete} complete frame" in session.notes[0]
    np.testing.assert_array_equal(np.asarray(session.stream), stream[:complete])


def test_registration_names_a_truncated_stream_not_the_frame_count(tmp_path, capsys):
    _session(tmp_path / "sess1", frames=12)
    _cut(tmp_path / "sess1/stream.tif", 0.5)
    assert cli.main(["register", str(tmp_path / "sess1")]) == 1
    printed = capsys.readouterr().out
    assert "stream.tif: the file is truncated" in printed and "of 12 frames are complete" in printed
    assert "fewer than" not in printed and not (tmp_path / "sess1/registration.json").exists()


def test_truncated_frame_file_is_caught_at_open(tmp_path):
    _session_with_frame_files(tmp_path / "sess1")
    cut = tmp_path / "sess1/stream/3.tif"
    cut.write_bytes(cut.read_bytes()[:-100])
    with pytest.raises(DataError, match="3.tif: .*truncated"):
        open_session(tmp_path / "sess1")


def test_bad_session_json(tmp_path):
    _session(tmp_path / "sess1")
    (tmp_path / "sess1/session.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        open_session(tmp_path / "sess1")
    (tmp_path / "sess1/session.json").write_text(json.dumps({"format": "temdeblur-session/1", "hq_pixel_size_nm": 0}))
    with pytest.raises(DataError, match="hq_pixel_size_nm must be a positive"):
        open_session(tmp_path / "sess1")


@pytest.mark.parametrize(
    ("value", "shown"),
    [(float("inf"), "inf"), (float("nan"), "nan"), (1e300, "1e+300"), (1e-12, "1e-12"), (True, "True"), ("31", "'31'")],
)
def test_absurd_pixel_sizes_are_refused_naming_file_and_value(tmp_path, value, shown):
    _session(tmp_path / "sess1")
    path = tmp_path / "sess1/session.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "stream_pixel_size_nm": value}))  # NaN and Infinity as Python writes them
    with pytest.raises(
        DataError, match=rf"session.json: stream_pixel_size_nm must be a positive number .*found {re.escape(shown)}$"
    ):
        open_session(tmp_path / "sess1")


def test_corrupt_registration_is_reported_and_left_untouched(tmp_path):
    _session(tmp_path / "sess1")
    reg = tmp_path / "sess1/registration.json"
    reg.write_text('{"format": "temdeblur-registration/1", "pairs": [')
    open_session(tmp_path / "sess1")  # opening a session never reads registration.json
    with pytest.raises(DataError, match="registration.json: is not valid JSON"):
        load_registrations(tmp_path / "sess1")
    with pytest.warns(UserWarning, match="registration.json: is not valid JSON.*left untouched"):
        read_folder(tmp_path / "sess1")
    assert reg.read_text() == '{"format": "temdeblur-registration/1", "pairs": ['


def test_valid_registration_is_restored(tmp_path):
    _session(tmp_path / "sess1")
    content = {
        "format": "temdeblur-registration/1",
        "pairs": [
            {
                "hq": "s_im1",
                "init_translation_yx": [1.5, -2.0],
                "frames": [{"index": 2, "matrix": [[1, 0, -2.0], [0, 1, 1.5]], "correlation": 0.91}],
            }
        ],
    }
    (tmp_path / "sess1/registration.json").write_text(json.dumps(content))
    (pair,) = load_registrations(tmp_path / "sess1").values()
    assert pair.hq == "s_im1" and pair.init_translation_yx == (1.5, -2.0)
    assert pair.frames[0].translation_yx == (1.5, -2.0) and pair.frames[0].correlation == 0.91


def test_simulated_session_opens(simulated_sessions, tmp_path):
    folder = simulated_sessions.folders["Kidney"][0]
    session = open_session(folder)
    assert session.hq.shape[1:] == (512, 512) and session.stream.shape[1:] == (256, 256)
    assert session.meta["scan_direction"] == "up"
    assert not (folder / "truth").exists() and not any("truth" in p.name for p in folder.rglob("*"))
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "hq" / "sess1_im1.tif").write_bytes(b"broken")
    with pytest.raises(DataError, match="sess1_im1.tif: not a readable TIFF"):
        open_session(copy)


def test_a_four_frame_stream_stays_grey_scale(tmp_path):
    _session(tmp_path / "sess1", frames=4)
    assert open_session(tmp_path / "sess1").stream.shape == (4, 16, 16)
