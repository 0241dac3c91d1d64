"""The restored mosaic of a scan: positions covering the scan, blending at the solved positions, the
OME-Zarr pyramid with its pixel size in nm, resuming after a stop, ``temdeblur mosaic`` and the reader."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from napari_temdeblur.cli import main
from napari_temdeblur.core import DataError, drain
from napari_temdeblur.core.io import open_session, read_pyramid, write_pyramid
from napari_temdeblur.core.register import (
    FrameRegistration,
    PairRegistration,
    load_positions,
    positioned_burst,
    save_registration,
    translation_matrix,
)
from napari_temdeblur.core.restore import PositionRestored, RestoreOptions, mosaic, mosaic_positions

CPU = RestoreOptions(device="cpu")


@pytest.fixture(scope="module")
def session(simulated_sessions, tmp_path_factory):
    """A copy of simulated Kidney session 1 with two HQ images registered from the truth, and the truth:
    (T, 2) frame corners and {name: corner} of the HQ images, stream px."""
    out = simulated_sessions.out
    copy = tmp_path_factory.mktemp("mosaic") / "sess1"
    shutil.copytree(out / "Kidney" / "sess1", copy)
    record = json.loads((out / "truth" / "Kidney" / "sess1.json").read_text())
    frames = np.array([f["position"] for f in record["frames"]]) / record["stream_binning"]
    hq = {h["name"]: np.array(h["position"]) / record["stream_binning"] for h in record["hq"]}
    pairs = []
    for name in list(hq)[:2]:
        near = int(np.argmin(np.abs(frames[:, 0] - hq[name][0])))
        regs = [FrameRegistration(t, translation_matrix(tuple(hq[name] - frames[t])), 0.9) for t in (near, near + 1)]
        pairs.append(PairRegistration(name, (0.0, 0.0), tuple(regs)))
    save_registration(copy, pairs)
    return open_session(copy), frames, hq


@pytest.fixture(scope="module")
def run(tmp_path_factory, session, untrained_run):
    """A tiny burst U-Net with fresh weights (the mosaic's mechanics do not need a trained one), its Low
    window much wider than the stream's counts (trained on other data)."""
    return untrained_run(tmp_path_factory.mktemp("run") / "best.pt", low_window=(0, 60000))


@pytest.fixture(scope="module")
def whole(run, session, tmp_path_factory):
    """A mosaic made in one go, with the raw one."""
    out = tmp_path_factory.mktemp("whole") / "out"
    return drain(mosaic(run, session[0], out, raw=True, options=CPU))


def _levels(path):
    return [np.asarray(level) for level in read_pyramid(path).levels]


def test_the_mosaic_is_an_ome_zarr_pyramid_in_nm_at_the_solved_positions(whole, session):
    sess, frames, _ = session
    out = whole.out
    assert [f.name for f in whole.files] == ["mosaic.ome.zarr", "raw.ome.zarr"]
    attrs = json.loads((out / "mosaic.ome.zarr" / "zarr.json").read_text())["attributes"]
    multiscale = attrs["ome"]["multiscales"][0]
    assert [a["unit"] for a in multiscale["axes"]] == ["nanometer", "nanometer"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]]
    assert scales[0] == [31.25, 31.25] and len(scales) >= 2 and scales[1] == [62.5, 62.5]
    levels = _levels(out / "mosaic.ome.zarr")
    assert levels[0].dtype == np.uint16 and levels[0].shape == whole.shape
    assert levels[1].shape == tuple((n + 1) // 2 for n in whole.shape)
    # the default positions cover every place that the bursts see in full, with overlaps
    positions = load_positions(out)
    assert 3 <= len(whole.positions) < len(frames) / 2
    # the raw mosaic shows each position's own frame where positions.json puts it
    raw = _levels(out / "raw.ome.zarr")[0].astype(float)
    t = whole.positions[len(whole.positions) // 2]
    y, x = (int(round(v)) for v in positions.frames[t].yx)
    frame = np.asarray(sess.stream[t]).astype(float)
    h, w = frame.shape
    centre = (slice(h // 2 - 20, h // 2 + 20), slice(w // 2 - 40, w // 2 + 40))
    placed = raw[y : y + h, x : x + w][centre]
    assert np.corrcoef(placed.ravel(), frame[centre].ravel())[0, 1] > 0.9
    record = json.loads((out / "mosaic.json").read_text())
    assert record["state"] == "done" and record["positions"] == whole.positions
    assert record["pixel_size_nm"] == 31.25 and record["shape"] == list(whole.shape)


def test_a_stopped_mosaic_continues_to_the_identical_result(whole, run, session, tmp_path):
    out = tmp_path / "out"
    work = mosaic(run, session[0], out, raw=True, options=CPU)
    saved = 0
    for event in work:
        if isinstance(event, PositionRestored):
            saved += 1
            if saved == 2:
                break
    work.close()  # what napari's worker.quit() and Ctrl-C do: the saved parts stay
    assert len(list((out / "parts").glob("*.npz"))) == 2 and not (out / "mosaic.ome.zarr").exists()
    result = drain(mosaic(run, session[0], out, raw=True, options=CPU))
    assert result.resumed == 2 and result.positions == whole.positions
    for name in ("mosaic.ome.zarr", "raw.ome.zarr"):
        for a, b in zip(_levels(out / name), _levels(whole.out / name), strict=True):
            np.testing.assert_array_equal(a, b)


def test_another_run_or_every_is_refused_in_a_begun_folder(whole, run, session):
    with pytest.raises(DataError, match="mosaic.json.*every 2, not None|every None, not 2"):
        drain(mosaic(run, session[0], whole.out, every=2, options=CPU))
    with pytest.raises(ValueError, match="every"):
        drain(mosaic(run, session[0], whole.out, every=0, options=CPU))
    with pytest.raises(ValueError, match="batch-norm"):
        drain(mosaic(run, session[0], whole.out, options=RestoreOptions(device="cpu", adapt_bn=True)))


def test_a_mosaic_writes_neither_over_foreign_files_nor_beside_another_mosaic(run, session, tmp_path):
    """docs/safety.md's rules: a new OUT that holds another program's mosaic.ome.zarr is refused before
    anything is written, and an OUT another mosaic is writing is refused, naming its holder."""
    from napari_temdeblur.core.io import FolderInUse, OverwriteRefused, folder_lock

    foreign = tmp_path / "foreign"
    (foreign / "mosaic.ome.zarr").mkdir(parents=True)
    with pytest.raises(OverwriteRefused, match="mosaic.ome.zarr"):
        drain(mosaic(run, session[0], foreign, options=CPU))
    assert sorted(p.name for p in foreign.iterdir()) == ["mosaic.ome.zarr"]
    busy = tmp_path / "busy"
    with folder_lock(busy, "making a mosaic"), pytest.raises(FolderInUse, match="in use by process"):
        drain(mosaic(run, session[0], busy, options=CPU))


def test_positioned_burst_uses_the_solved_positions(whole, session):
    sess, _, _ = session
    positions = load_positions(whole.out)
    burst = positioned_burst(sess.stream, 10, 5, positions)
    assert burst.frames == [8, 9, 10, 11, 12] and burst.low.shape[0] == 5
    y, x = burst.origin_yx
    h, w = burst.low.shape[1:]
    np.testing.assert_array_equal(burst.low[2], np.asarray(sess.stream[10])[y : y + h, x : x + w])
    # neighbours resampled onto frame 10's grid agree with it
    assert np.corrcoef(burst.low[1].ravel(), burst.low[2].ravel())[0, 1] > 0.8
    with pytest.raises(ValueError, match="stream of"):
        positioned_burst(sess.stream[:5], 2, 3, positions)


def test_a_mosaic_folder_gives_its_sessions_positions(whole, session, simulated_sessions, tmp_path):
    sess = session[0]
    n_frames = sess.stream.shape[0]
    found = mosaic_positions(whole.out, sess.path, n_frames)
    assert found is not None and found.to_dict() == load_positions(whole.out).to_dict()
    other = simulated_sessions.out / "Kidney" / "sess2"
    assert mosaic_positions(whole.out, other, n_frames) is None  # another session's folder
    assert mosaic_positions(whole.out, sess.path, n_frames + 1) is None  # a stream of another length
    assert mosaic_positions(tmp_path, sess.path, n_frames) is None  # no mosaic there


def test_the_mosaic_command(run, session, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["mosaic", str(session[0].path), "--run", str(run), "--out", str(out), "--every", "4", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mosaic of 6 stream positions" in printed and "mosaic.ome.zarr" in printed
    assert (out / "positions.json").is_file() and not (out / "raw.ome.zarr").exists()
    assert main([*args, "--raw"]) == 0
    assert "6 of them restored before" in capsys.readouterr().out and (out / "raw.ome.zarr").is_dir()
    assert main([*args[:-4], "--every", "3", "--device", "cpu"]) == 2
    assert "mosaic.json" in capsys.readouterr().err


def test_one_and_two_local_workers_give_the_in_process_mosaic(whole, run, session, tmp_path):
    for workers in (1, 2):
        out = tmp_path / f"workers{workers}"
        events = []
        result = drain(
            mosaic(run, session[0], out, raw=True, options=CPU, scheduler="local", workers=workers), events.append
        )
        assert result.positions == whole.positions
        assert sorted(e.position for e in events if isinstance(e, PositionRestored)) == whole.positions
        for name in ("mosaic.ome.zarr", "raw.ome.zarr"):
            for a, b in zip(_levels(out / name), _levels(whole.out / name), strict=True):
                np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="workers"):
        drain(mosaic(run, session[0], tmp_path / "bad", options=CPU, workers=2))


def test_the_fewest_regions_cover_the_scan_with_overlaps_across_gaps():
    from napari_temdeblur.core.restore._blend import MIN_OVERLAP, greedy_cover

    # regions 200 px long every 50 px: each next choice is the farthest overlapping by MIN_OVERLAP
    spans = [(50.0 * k, 50.0 * k + 200, k) for k in range(10)]
    chosen = greedy_cover(spans)
    assert chosen[0] == 0 and chosen[-1] == 9
    for a, b in zip(chosen, chosen[1:]):
        assert spans[a][1] - spans[b][0] >= MIN_OVERLAP
    # only touching: taken; beyond a gap: the next region
    assert greedy_cover([(0.0, 100.0, 0), (100.0, 200.0, 1), (300.0, 400.0, 2), (350.0, 380.0, 3)]) == [0, 1, 2]


def test_pyramid_round_trip_and_bad_store(tmp_path):
    image = np.arange(300 * 140, dtype=np.uint16).reshape(300, 140)
    write_pyramid(tmp_path / "a.ome.zarr", image, 31.25, "mosaic")
    pyramid = read_pyramid(tmp_path / "a.ome.zarr")
    assert pyramid.pixel_size_nm == 31.25 and pyramid.name == "mosaic"
    assert [level.shape for level in pyramid.levels] == [(300, 140), (150, 70)]
    np.testing.assert_array_equal(np.asarray(pyramid.levels[0]), image)
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="b"):
        read_pyramid(tmp_path / "b")


def test_the_mosaic_opens_in_napari_with_scale_and_hq_images_placed(make_napari_viewer, whole, session):
    from napari_temdeblur.layers import LayerKind, kind_of

    sess, frames, hq = session
    viewer = make_napari_viewer()
    layers = viewer.open(str(whole.out), plugin="napari-temdeblur")
    names = [layer.name for layer in layers]
    assert names[:2] == ["Kidney sess1 mosaic", "Kidney sess1 raw"]
    restored = layers[0]
    assert restored.multiscale and kind_of(restored) is LayerKind.MOSAIC
    assert len(restored.data) >= 2 and restored.data[0].shape == whole.shape
    np.testing.assert_allclose(restored.scale, [31.25, 31.25])
    assert str(viewer.layers.units[-1]) == "nanometer"
    # restored in the run's GT window; the raw frames in a window of their own counts (not the run's
    # Low window, which need not fit them)
    assert list(restored.contrast_limits) == [0, 30000]
    raw = np.asarray(layers[1].data[-1])
    low, high = layers[1].contrast_limits
    assert 0 < low < high <= raw.max() * 1.05 and np.mean((raw > low) & (raw < high)) > 0.3
    # the registered HQ images lie where the truth puts them on the mosaic (nm)
    positions = load_positions(whole.out)
    placed = [layer for layer in layers if kind_of(layer) is LayerKind.HQ]
    assert [layer.name for layer in placed] == [f"Kidney sess1 {n}" for n in positions.hq]
    offset = np.mean([np.subtract(positions.frames[t].yx, frames[t]) for t in range(len(frames))], axis=0)
    for layer in placed:
        name = layer.name.split()[-1]
        corner = (np.array(layer.translate) - (15.625 - 31.25) / 2) / 31.25
        assert np.hypot(*(corner - hq[name] - offset)) < 0.5
        np.testing.assert_allclose(layer.scale, [15.625, 15.625])
    # the OME-Zarr image alone opens too
    alone = viewer.open(str(whole.out / "mosaic.ome.zarr"), plugin="napari-temdeblur")
    assert alone[0].multiscale and alone[0].data[0].shape == whole.shape


def test_the_restore_dock_makes_the_mosaic_of_a_session_with_progress_and_cancel(
    make_napari_viewer, run, session, tmp_path
):
    from napari_temdeblur.layers import LayerKind, kind_of
    from napari_temdeblur.widgets._dock import RunState

    viewer = make_napari_viewer()
    viewer.open(str(session[0].path), plugin="napari-temdeblur")
    _, widget = viewer.window.add_plugin_dock_widget("napari-temdeblur", "Restore")
    box = widget.mosaic_box
    assert box.stream.value == f"{session[0].name} stream"  # the session's stream, chosen by itself
    widget.run.value, widget.device.value = run, "cpu"
    box.make_button.clicked()
    assert widget.status.state is RunState.FAILED and "choose the mosaic folder" in widget.status.message
    box.out.value = tmp_path / "overview"
    widget.adapt_bn.value = True  # not used for a mosaic: the dock says so rather than drop it silently
    box.make_button.clicked()
    assert widget.status.state is RunState.RUNNING and widget.run_button.text == "Cancel"
    assert "without batch-norm adaptation" in widget.status.message
    widget.run_button.clicked()  # Cancel: the parts restored so far stay
    assert widget.wait(120) is RunState.STOPPED
    assert "Make mosaic continues" in widget.status.message
    box.make_button.clicked()
    assert widget.wait(300) is RunState.DONE, widget.status.message
    assert (tmp_path / "overview" / "mosaic.ome.zarr").is_dir()
    opened = [layer for layer in viewer.layers if layer.multiscale]
    assert opened and str(opened[0].units[-1]) == "nanometer"  # opened lazily, in nm, by the reader
    assert kind_of(viewer.layers[f"{session[0].name} stream"]) is LayerKind.STREAM
