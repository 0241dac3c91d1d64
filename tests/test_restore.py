"""Restoration: tiled inference, batch-norm adaptation, ``restore`` and ``temdeblur restore``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from napari_temdeblur import cli
from napari_temdeblur.core import DataError, drain
from napari_temdeblur.core.imaging import apply_window
from napari_temdeblur.core.io import BurstPair, read_dataset
from napari_temdeblur.core.models import ModelConfig, build_model, load_checkpoint
from napari_temdeblur.core.restore import (
    RestoreOptions,
    adapt_batchnorm,
    collect_restored,
    restore,
    restore_burst,
    tile_layout,
    to_counts,
)
from napari_temdeblur.core.train import TrainConfig, train


class LocalNet(nn.Module):
    """Two 3 x 3 convolutions: receptive radius 2 px, so tiling must reproduce it exactly."""

    size_multiple = 8

    def __init__(self, frames: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(frames, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))

    def forward(self, x):
        return torch.sigmoid(self.body(x))


@pytest.fixture(scope="module")
def run(tmp_path_factory, kidney):
    """A tiny bu trained for one short epoch on 2-3 frames (enough for real weights and BN statistics)."""
    from napari_temdeblur.core.train import TrainingData

    data = TrainingData.from_folders(kidney)
    data.val = data.val[:1]
    cfg = TrainConfig(
        ModelConfig.tiny("bu"), epochs=1, steps_per_epoch=2, patch=32, batch=2, frames=(2, 3), val_tile=64, device="cpu"
    )
    out = tmp_path_factory.mktemp("run")
    drain(train(cfg, data, out))
    return out


@pytest.mark.parametrize("shape, tile, overlap", [((100, 150), 32, 16), ((97, 61), 40, 8), ((64, 64), 24, 12)])
def test_tiled_equals_untiled_for_a_local_network(shape, tile, overlap):
    torch.manual_seed(0)
    model = LocalNet().eval()
    burst = np.random.default_rng(1).random((3, *shape), dtype=np.float32)
    with torch.no_grad():
        untiled = model(torch.from_numpy(burst)[None])[0, 0].numpy()
    tiled = drain(restore_burst(model, burst, RestoreOptions(inference_tile=tile, overlap=overlap, batch=3)))
    assert tiled.shape == shape and tiled.dtype == np.float32
    # the network zero-pads while tiles are mirror-padded: only the outer 2 px (its receptive radius) differ
    np.testing.assert_allclose(tiled[2:-2, 2:-2], untiled[2:-2, 2:-2], atol=1e-5)
    assert np.abs(tiled - untiled).max() > 1e-3  # the border comparison is not vacuous


def test_one_exact_tile_is_the_plain_forward_pass_of_a_real_model(run):
    from napari_temdeblur.core.models import load_model

    model, _ = load_model(run)
    burst = np.random.default_rng(2).random((3, 64, 96), dtype=np.float32)
    with torch.no_grad():
        direct = model(torch.from_numpy(burst)[None])[0, 0].clamp(0, 1).numpy()
    np.testing.assert_allclose(
        drain(restore_burst(model, burst, RestoreOptions(inference_tile=96, overlap=0))), direct, atol=1e-6
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"inference_tile": 0}, "inference_tile must be a positive integer or None, got 0"),
        ({"overlap": -1}, "overlap must be an integer >= 0, got -1"),
        ({"batch": 0}, "batch must be a positive integer, got 0"),
        ({"adapt_steps": 1.5}, "adapt_steps must be a positive integer, got 1.5"),
    ],
)
def test_restore_options_refuse_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        RestoreOptions(**values)


def test_the_default_inference_tile_is_the_networks_own():
    burst = np.random.default_rng(4).random((3, 300, 400), dtype=np.float32)
    assert RestoreOptions().inference_tile is None

    def tiles(model, options=None):
        events = []
        drain(restore_burst(model, burst, options), events.append)
        return events[-1].total

    # fast-burst restores a whole 1024 px frame in one tile; a network without a tile of its own gets
    # 128 px tiles (of 128 - 32 = 96 px stride), as does any network given a tile explicitly
    assert tiles(build_model(ModelConfig.tiny("fast-burst")).eval()) == 1
    assert tiles(LocalNet().eval()) == 4 * 5
    assert tiles(build_model(ModelConfig.tiny("fast-burst")).eval(), RestoreOptions(inference_tile=128)) == 4 * 5


def test_image_smaller_than_a_tile_and_bad_tiling_values():
    model = LocalNet().eval()
    small = np.random.default_rng(3).random((3, 5, 11), dtype=np.float32)
    out = drain(restore_burst(model, small, RestoreOptions(inference_tile=256)))
    assert out.shape == (5, 11) and np.isfinite(out).all() and 0 <= out.min() <= out.max() <= 1
    with pytest.raises(ValueError, match="multiple of 8"):
        drain(restore_burst(model, small, RestoreOptions(inference_tile=30)))
    with pytest.raises(ValueError, match="overlap must be between 0 and inference_tile / 2"):
        drain(restore_burst(model, small, RestoreOptions(inference_tile=32, overlap=20)))


def test_bn_adaptation_changes_running_stats_only():
    torch.manual_seed(0)
    model = build_model(ModelConfig.tiny("bdu-uc")).eval()  # has dropout: it must stay off
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bursts = [np.random.default_rng(4).random((3, 80, 80), dtype=np.float32) * 0.3 + 0.6]
    assert drain(adapt_batchnorm(model, bursts, steps=3, crop=32, batch=2)) > 0
    after = model.state_dict()
    weights = [k for k in before if "running" not in k and "num_batches" not in k]
    stats = [k for k in before if "running" in k]
    assert weights and stats
    assert all(torch.equal(before[k], after[k]) for k in weights)
    assert all(not torch.equal(before[k], after[k]) for k in stats)
    assert not model.training and not any(m.training for m in model.modules())
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    # dropout off: a different torch seed gives the same statistics
    torch.manual_seed(123)
    first = {k: after[k].clone() for k in stats}
    drain(adapt_batchnorm(model, bursts, steps=3, crop=32, batch=2))
    assert all(torch.allclose(first[k], model.state_dict()[k]) for k in stats)


def test_restore_outputs_windows_and_metadata(run, kidney):
    pairs = read_dataset(kidney / "Test")[0].pairs[:2]
    checkpoint = load_checkpoint(run / "best.pt")
    short = BurstPair("short", pairs[0].gt, pairs[0].low[:2])
    results = drain(
        collect_restored(
            restore(run, [pairs[0], short, pairs[1].low], RestoreOptions(device="cpu", inference_tile=64, overlap=16))
        )
    )
    assert [r.name for r in results] == [pairs[0].name, "short", "image 2"]
    first = results[0]
    assert first.image.shape == pairs[0].gt.shape and first.image.dtype == np.float32
    assert 0 <= first.image.min() <= first.image.max() <= 1
    assert first.counts.dtype == np.uint16
    np.testing.assert_allclose(apply_window(first.counts, checkpoint.gt_window), first.image, atol=2e-4)
    n = pairs[0].low.shape[0]
    assert first.frames == list(range(n // 2 - 1, n // 2 + 2))  # the run's 3 frames around the centre
    np.testing.assert_array_equal(first.centre, apply_window(pairs[0].low[n // 2], checkpoint.low_window))
    assert first.metadata["model"]["name"] == "bu" and first.metadata["frames"] == first.frames
    assert first.metadata["run"] == str(run / "best.pt") and not first.messages
    assert results[1].frames == [0, 1] and "2 frames" in results[1].messages[0]
    assert "accept any number of frames" in results[1].messages[0]


def test_restore_with_bn_adaptation_leaves_the_run_unchanged(run, kidney):
    pair = read_dataset(kidney / "Test")[0].pairs[0]
    saved = (run / "best.pt").read_bytes()
    (plain,) = drain(collect_restored(restore(run, [pair], RestoreOptions(device="cpu", inference_tile=64))))
    (adapted,) = drain(
        collect_restored(
            restore(run, [pair], RestoreOptions(device="cpu", inference_tile=64, adapt_bn=True, adapt_steps=2))
        )
    )
    assert adapted.metadata["adapted_batchnorm"] > 0 and plain.metadata["adapted_batchnorm"] == 0
    assert not np.array_equal(plain.image, adapted.image)
    assert (run / "best.pt").read_bytes() == saved


def test_bad_inputs_get_clear_messages(run, tmp_path):
    burst = np.full((3, 40, 40), 1000, dtype=np.uint16)
    corrupt = tmp_path / "best.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DataError, match="best.pt: not a readable napari-temdeblur checkpoint"):
        drain(collect_restored(restore(tmp_path, [burst], RestoreOptions(device="cpu"))))
    nan = burst.astype(np.float32)
    nan[1, 5, 5] = np.nan
    with pytest.raises(ValueError, match="bad: the burst contains NaN"):
        drain(collect_restored(restore(run, [BurstPair("bad", None, nan)], RestoreOptions(device="cpu"))))
    with pytest.raises(ValueError, match=r"odd: the GT image is \(40, 41\) but the burst frames are \(40, 40\)"):
        drain(
            collect_restored(
                restore(run, [BurstPair("odd", np.zeros((40, 41), np.uint16), burst)], RestoreOptions(device="cpu"))
            )
        )
    with pytest.raises(ValueError, match="nothing to restore"):
        drain(collect_restored(restore(run, [], RestoreOptions(device="cpu"))))
    (bright,) = drain(collect_restored(restore(run, [burst * 60], RestoreOptions(device="cpu"))))
    assert "exceed the run's Low window" in bright.messages[0]


def test_to_counts_undoes_the_window():
    from napari_temdeblur.core.imaging import IntensityWindow

    window = IntensityWindow(100.0, 20100.0)
    np.testing.assert_array_equal(to_counts(np.array([0.0, 0.5, 1.0]), window), [100, 10100, 20100])


def test_cli_restore_dataset_and_burst_folder(run, kidney, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["restore", str(run), str(kidney / "Test"), str(out), "--device", "cpu", "--tile", "64"]) == 0
    names = [p.name for p in read_dataset(kidney / "Test")[0].pairs]
    assert "restored" in capsys.readouterr().out
    meta = json.loads((out / "restore.json").read_text())
    assert meta["format"] == "temdeblur-restore/1" and meta["model"]["name"] == "bu"
    assert sorted(meta["images"]) == sorted(names) and meta["windows"]["gt"]["high"] > 0
    with tifffile.TiffFile(out / f"{names[0]}.tif") as tif:
        image = tif.asarray()
        description = json.loads(tif.pages.first.description)
    assert image.dtype == np.float32 and 0 <= image.min() <= image.max() <= 1
    assert description["name"] == names[0] and description["frames"] == meta["images"][names[0]]["frames"]
    assert tifffile.imread(out / f"{names[0]}_counts.tif").dtype == np.uint16
    # a whole dataset: one folder per sample and split, so names cannot collide
    assert cli.main(["restore", str(run), str(kidney), str(tmp_path / "all"), "--device", "cpu", "--tile", "64"]) == 0
    assert (tmp_path / "all" / "Kidney" / "Test" / f"{names[0]}_counts.tif").is_file()
    # a burst folder of frame TIFFs
    burst_dir = kidney / "Test" / "Low" / names[0]
    assert cli.main(["restore", str(run), str(burst_dir), str(tmp_path / "one"), "--device", "cpu"]) == 0
    assert (tmp_path / "one" / f"{names[0]}.tif").is_file()


def test_cli_restore_reports_a_bad_run(tmp_path, kidney, capsys):
    (tmp_path / "best.pt").write_text("foreign")
    assert cli.main(["restore", str(tmp_path), str(kidney / "Test"), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not a readable napari-temdeblur checkpoint" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_restore_keeps_dotted_names_and_never_replaces_the_input(run, tmp_path, capsys):
    burst = np.random.default_rng(5).integers(500, 3000, (3, 40, 40), dtype=np.uint16)
    source = tmp_path / "burst.v2.tif"
    tifffile.imwrite(source, burst, photometric="minisblack")
    saved = source.read_bytes()
    assert cli.main(["restore", str(run), str(source), str(tmp_path), "--device", "cpu", "--tile", "64"]) == 2
    assert "is a file of the input" in capsys.readouterr().err and source.read_bytes() == saved
    out = tmp_path / "out"
    assert cli.main(["restore", str(run), str(source), str(out), "--device", "cpu", "--tile", "64"]) == 0
    assert (out / "burst.v2.tif").is_file() and (out / "burst.v2_counts.tif").is_file()


def test_cli_burst_folder_frames_are_read_in_frame_order(tmp_path):
    from napari_temdeblur.core.io import read_inputs

    folder = tmp_path / "b"
    folder.mkdir()
    for k in range(12):  # "b_10" sorts before "b_2" by name
        tifffile.imwrite(folder / f"b_{k}.tif", np.full((8, 8), k, dtype=np.uint16))
    inputs = read_inputs(folder)
    (pair,) = inputs
    assert inputs.names == ["b"] and inputs.folders == [Path()]
    assert pair.name == "b" and pair.low[:, 0, 0].tolist() == list(range(12))
    (folder / "b_0.tif").rename(folder / "other.tif")
    with pytest.raises(DataError, match="without gaps"):
        read_inputs(folder)


def test_cli_restore_never_replaces_a_dataset_gt(run, kidney, tmp_path, capsys):
    import shutil

    split = shutil.copytree(kidney / "Test", tmp_path / "Test")
    gts = {p: p.read_bytes() for p in (split / "GT").iterdir()}
    assert cli.main(["restore", str(run), str(split), str(split / "GT"), "--device", "cpu", "--tile", "64"]) == 2
    assert "is a file of the input" in capsys.readouterr().err
    assert all(p.read_bytes() == data for p, data in gts.items())


# --- progress, cancel, lazy inputs, bad input (issue 5, section 7) ---------------------------------------


def tiny_checkpoint(path, name="bu", low_window=(500.0, 5000.0), frames=(3, 3)):
    """A checkpoint of a tiny network with fresh weights: enough to exercise restoring, no training."""
    from napari_temdeblur.core.imaging import IntensityWindow
    from napari_temdeblur.core.models import save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig.tiny(name)
    return save_checkpoint(
        path,
        model=cfg,
        state_dict=build_model(cfg).state_dict(),
        epoch=1,
        gt_window=IntensityWindow(0.0, 20000.0),
        low_window=IntensityWindow(*low_window),
        frames=frames,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "best.pt")


def _counts(shape, seed=0):
    return np.random.default_rng(seed).integers(1000, 4000, shape, dtype=np.uint16)


def test_closing_restore_mid_image_stops_within_one_batch_of_tiles(tiny_run, monkeypatch):
    from napari_temdeblur.core.restore import ImageRestored, TileProgress
    from napari_temdeblur.core.restore import _apply as apply

    calls = []

    def counting_load_model(run, device):
        model, checkpoint = load_model(run, device)
        model.register_forward_hook(lambda *_: calls.append(1))
        return model, checkpoint

    load_model = apply.load_model
    monkeypatch.setattr(apply, "load_model", counting_load_model)
    work = restore(
        tiny_run, [_counts((3, 160, 160))], RestoreOptions(device="cpu", inference_tile=32, overlap=8, batch=2)
    )
    events = []
    for event in work:
        events.append(event)
        if isinstance(event, TileProgress):
            break
    work.close()
    assert events[-1].done == 2 and events[-1].total > 20 and len(calls) == 1
    # run to the end, the same generator yields a tile event per batch and the image before returning it
    events = []
    (result,) = drain(
        collect_restored(
            restore(
                tiny_run, [_counts((3, 60, 70))], RestoreOptions(device="cpu", inference_tile=32, overlap=8, batch=3)
            )
        ),
        events.append,
    )
    tiles = [e for e in events if isinstance(e, TileProgress)]
    assert [e.done for e in tiles] == list(range(3, tiles[0].total, 3)) + [tiles[0].total]
    (done,) = [e for e in events if isinstance(e, ImageRestored)]
    assert done.result is result and done.index == 0


def test_bn_adaptation_reads_only_the_images_it_crops_once_each():

    class Lazy:
        def __init__(self, bursts):
            self.bursts, self.reads = bursts, []

        def __len__(self):
            return len(self.bursts)

        def __getitem__(self, k):
            self.reads.append(k)
            return self.bursts[k]

    rng = np.random.default_rng(6)
    # different frame counts and sizes: crops are cut to the fewest frames and the smallest side
    bursts = Lazy([rng.random((n, 48 + 8 * n, 64), dtype=np.float32) for n in (3, 5, 4, 3, 5, 2, 3, 4)] + [None])
    model = build_model(ModelConfig.tiny("bu")).eval()
    events = []
    adapted = drain(adapt_batchnorm(model, bursts, steps=2, batch=2, crop=256), events.append)
    assert adapted > 0 and len(bursts.reads) == len(set(bursts.reads)) <= 4
    assert events[-1].done == events[-1].total and not model.training


def test_run_whose_frame_count_or_window_does_not_fit_the_data(tiny_run, tmp_path):
    deblurgan = tiny_checkpoint(tmp_path / "gan.pt", "deblurgan")
    with pytest.raises(ValueError, match=r"two: the model takes exactly 3 frames \(as channels\) but the burst has 2"):
        drain(
            collect_restored(
                restore(deblurgan, [BurstPair("two", None, _counts((2, 32, 32)))], RestoreOptions(device="cpu"))
            )
        )
    (five,) = drain(
        collect_restored(
            restore(deblurgan, [_counts((5, 32, 32))], RestoreOptions(device="cpu", inference_tile=32, overlap=0))
        )
    )
    assert five.frames == [1, 2, 3] and five.metadata["input_frames"] == 5
    dim, bright = drain(
        collect_restored(
            restore(tiny_run, [_counts((3, 40, 40)) // 20, _counts((3, 40, 40)) * 8], RestoreOptions(device="cpu"))
        )
    )
    assert "reaches only" in dim.messages[0] and "trained on brighter data" in dim.messages[0]
    assert "exceed the run's Low window (high = 5000 counts)" in bright.messages[0]
    assert "clipped to 1" in bright.messages[0]


def test_foreign_or_missing_checkpoint_and_small_images(tiny_run, tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(DataError, match=r"foreign.pt: not a napari-temdeblur checkpoint \(expected format"):
        drain(collect_restored(restore(tmp_path / "foreign.pt", [_counts((3, 32, 32))], RestoreOptions(device="cpu"))))
    with pytest.raises(DataError, match="best.pt: no such checkpoint file"):
        drain(collect_restored(restore(tmp_path, [_counts((3, 32, 32))], RestoreOptions(device="cpu"))))
    (small,) = drain(
        collect_restored(
            restore(
                tiny_run,
                [BurstPair("tiny", None, _counts((3, 20, 30)))],
                RestoreOptions(device="cpu", inference_tile=128),
            )
        )
    )
    assert small.image.shape == (20, 30)
    # + 16 px context a side, rounded up to a multiple of 16
    assert small.messages == [
        ("tiny: 20 x 30 px is smaller than one 128 px tile: restored in one pass, mirror-padded to 64 x 64 px")
    ]
    # 110 px + 16 px context a side needs two 128 px tiles per axis: tiled as usual, no one-pass note
    assert len(tile_layout(110, 128, 32, 16)[2]) == 2
    (tiled,) = drain(
        collect_restored(
            restore(
                tiny_run,
                [BurstPair("tiled", None, _counts((3, 110, 110)))],
                RestoreOptions(device="cpu", inference_tile=128),
            )
        )
    )
    assert tiled.image.shape == (110, 110) and not any("one pass" in m for m in tiled.messages)


def test_a_burst_that_cannot_be_read_is_skipped_and_the_others_restored(tiny_run):
    from napari_temdeblur.core.restore import InputSkipped

    class Inputs:
        def __len__(self):
            return 3

        def __getitem__(self, k):
            if k == 1:
                raise DataError("b.tif", "not a readable TIFF file")
            return BurstPair(f"p{k}", None, _counts((3, 32, 32), seed=k))

    for adapt in (False, True):
        events = []
        results = drain(
            collect_restored(restore(tiny_run, Inputs(), RestoreOptions(device="cpu", adapt_bn=adapt, adapt_steps=2))),
            events.append,
        )
        assert [r.name for r in results] == ["p0", "p2"]
        (skipped,) = [e for e in events if isinstance(e, InputSkipped)]
        assert skipped.index == 1 and skipped.message == "b.tif: not a readable TIFF file"


def test_cli_reads_a_dataset_pair_by_pair_and_skips_a_broken_pair(tiny_run, kidney, tmp_path, capsys, monkeypatch):
    import shutil

    from napari_temdeblur.core.io import _inputs

    split = shutil.copytree(kidney / "Test", tmp_path / "Test")
    names = sorted(p.stem for p in (split / "GT").iterdir())
    tifffile.imwrite(split / "GT" / f"{names[0]}.tif", np.zeros((10, 10), np.uint16))  # GT of another shape
    reads = []
    monkeypatch.setattr(_inputs, "read_pair", lambda gt: reads.append(gt) or read_pair(gt))
    from napari_temdeblur.core.io import read_pair

    inputs = _inputs.read_inputs(split)
    assert inputs.names == names and not reads  # listed without reading pixels
    out = tmp_path / "out"
    # exit status 1: an input was skipped, the others restored (issue 16, item 7)
    assert cli.main(["restore", str(tiny_run), str(split), str(out), "--device", "cpu", "--tile", "64"]) == 1
    printed = capsys.readouterr().out
    assert f"skipped: {split / 'Low' / names[0]}" in printed and "does not match GT" in printed
    assert sorted(json.loads((out / "restore.json").read_text())["images"]) == names[1:]
    assert len(reads) == len(names)


def test_cli_turns_a_torch_failure_into_one_line(tiny_run, tmp_path, capsys, monkeypatch):
    from napari_temdeblur.core.restore import _apply as apply

    class Hungry(nn.Module):
        size_multiple = 1

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.empty(1 << 60, dtype=torch.uint8)  # the allocator refuses: a real torch RuntimeError

    source = tmp_path / "b.tif"
    tifffile.imwrite(source, _counts((3, 32, 32)), photometric="minisblack")
    checkpoint = load_checkpoint(tiny_run)
    monkeypatch.setattr(apply, "load_model", lambda run, device: (Hungry(), checkpoint))
    assert cli.main(["restore", str(tiny_run), str(source), str(tmp_path / "o"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "ran out of memory" in err and "use a smaller --inference-tile or --batch, or --device cpu" in err

    class Buggy(Hungry):
        def forward(self, x):  # raised through nn.Module.__call__: torch frames in the traceback, still a bug
            raise RuntimeError("a bug in forward")

    monkeypatch.setattr(apply, "load_model", lambda run, device: (Buggy(), checkpoint))
    with pytest.raises(RuntimeError, match="a bug in forward"):
        cli.main(["restore", str(tiny_run), str(source), str(tmp_path / "o"), "--device", "cpu"])

    def bug(run, device):
        raise RuntimeError("a bug, not torch")

    monkeypatch.setattr(apply, "load_model", bug)
    with pytest.raises(RuntimeError, match="a bug, not torch"):
        cli.main(["restore", str(tiny_run), str(source), str(tmp_path / "o"), "--device", "cpu"])
