"""Figures: the comparison figure, the synthetic test images and the paper's Fig 8 (synthetic figure)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from matplotlib.image import imread

from napari_temdeblur.core import DataError, drain
from napari_temdeblur.core.evaluate import (
    Example,
    comparison_figure,
    panel_figure,
    synthetic_figure,
    synthetic_images,
)
from napari_temdeblur.core.restore import RestoreOptions
from napari_temdeblur.core.simulate import SYNTHETIC_SPECIMENS, synthetic_burst


def _example(shape=(60, 90), seed=0) -> Example:
    """Images in [0.1, 0.9]: never white, so panels stand out against the white figure in the PNG."""
    rng = np.random.default_rng(seed)
    gt, low, a, b = (rng.uniform(0.1, 0.9, shape).astype(np.float32) for _ in range(4))
    return Example("sess4_im2", "Kidney", gt, low, {"bdu-uc-ssim": a, "wiener": b})


def _runs(row: np.ndarray) -> list[int]:
    """Lengths of the runs of non-white pixels along one PNG pixel row."""
    inked = np.concatenate([[False], (row[:, :3] < 0.99).any(axis=1), [False]])
    edges = np.flatnonzero(np.diff(inked.astype(int)))
    return list(edges[1::2] - edges[::2])


def test_comparison_figure_shows_gt_input_and_each_method_on_one_scale(tmp_path):
    example = _example()
    crop = (10, 20, 30, 40)
    fig = panel_figure([example], crop=crop)
    assert [ax.get_label() for ax in fig.axes] == ["GT", "input", "bdu-uc-ssim", "wiener"]
    for ax, image in zip(fig.axes, [example.gt, example.input, *example.outputs.values()]):
        (drawn,) = ax.images
        np.testing.assert_array_equal(drawn.get_array(), image[10:40, 20:60])
        assert drawn.get_clim() == (0.0, 1.0)  # one grey scale for every panel

    png = comparison_figure(example, tmp_path / "figs" / "compare.png", crop=crop)
    assert png == tmp_path / "figs" / "compare.png"
    pixels = imread(png)
    assert (pixels.shape[1], pixels.shape[0]) == tuple(fig.get_size_inches() * fig.dpi)
    # a 40 px wide crop is drawn 160 px wide (the smallest panel), 30 rows -> 120 px high
    middle = pixels[pixels.shape[0] - 8 - 60, 24:]  # right of the 24 px band of row labels
    assert _runs(middle) == [160] * 4
    # written atomically: no temporary file left behind, and an existing figure is replaced
    comparison_figure(_example(seed=1), png)
    assert sorted(p.name for p in png.parent.iterdir()) == ["compare.png"]
    assert _runs(imread(png)[-8 - 53, 24:]) == [160] * 4  # the whole 60 x 90 image: 160 x 107 px panels


def test_comparison_figure_bad_input(tmp_path):
    example = _example()
    with pytest.raises(ValueError, match=r"does not lie inside the \(60, 90\) image sess4_im2"):
        comparison_figure(example, tmp_path / "a.png", crop=(50, 0, 20, 20))
    example.outputs["wiener"] = example.gt[:50]
    with pytest.raises(ValueError, match=r"sess4_im2: wiener is \(50, 90\) but the GT is \(60, 90\)"):
        comparison_figure(example, tmp_path / "a.png")
    with pytest.raises(ValueError, match="no images given"):
        panel_figure([])
    assert not list(tmp_path.iterdir())


def test_synthetic_bursts_are_registered_blurred_noisy_and_reproducible():
    pair = synthetic_burst("crosslines", size=256)
    assert pair.name == "crosslines" and pair.gt.shape == (128, 128) and pair.low.shape == (5, 128, 128)
    assert pair.gt.dtype == pair.low.dtype == np.uint16
    np.testing.assert_array_equal(synthetic_burst("crosslines", size=256).low, pair.low)
    assert not np.array_equal(synthetic_burst("crosslines", size=256, seed=1).gt, pair.gt)
    # Low frames are about a quarter of GT counts, as in the real data
    assert 0.15 < pair.low.mean() / pair.gt.mean() < 0.35
    # registered: the frame mean matches the GT best without shifting it (circular cross-correlation)
    gt = pair.gt - pair.gt.mean()
    mean = pair.low.mean(axis=0) - pair.low.mean()
    xcorr = np.fft.ifft2(np.fft.fft2(mean) * np.conj(np.fft.fft2(gt))).real
    peak = np.array(np.unravel_index(np.argmax(xcorr), xcorr.shape))
    assert np.all(np.minimum(peak, 128 - peak) <= 1), peak
    with pytest.raises(ValueError, match="size must be a multiple of 2 and at least 32 HQ px, got 31"):
        synthetic_burst("spots", size=31)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, simulated_dataset, one_torch_thread):
    """A tiny bdu-uc-ssim trained for two steps on the Kidney sample, under two run folder names."""
    from napari_temdeblur.core.models import ModelConfig
    from napari_temdeblur.core.train import TrainConfig, TrainingData, train

    data = TrainingData.from_folders(simulated_dataset.out / "Kidney")
    data.val = data.val[:1]
    cfg = TrainConfig(
        ModelConfig.tiny("bdu-uc-ssim"),
        epochs=1,
        steps_per_epoch=2,
        patch=32,
        batch=2,
        frames=(3, 5),
        val_tile=64,
        device="cpu",
    )
    root = tmp_path_factory.mktemp("runs")
    drain(train(cfg, data, root / "kidney"))
    shutil.copytree(root / "kidney", root / "grid")
    return [root / "kidney", root / "grid"]


def test_synthetic_figure_restores_the_three_images_with_each_run(two_runs, tmp_path):
    before = (two_runs[0] / "best.pt").read_bytes()
    events = []
    options = RestoreOptions(device="cpu", adapt_bn=True)  # as the paper, and temdeblur evaluate's figure
    png = drain(synthetic_figure(two_runs, tmp_path / "fig8.png", options, size=128), events.append)
    assert png == tmp_path / "fig8.png"
    # 3 rows x (GT, input, 2 runs) of 64 px images drawn as 160 px panels, 8 px apart, 24 px bands
    assert imread(png).shape[:2] == (24 + 3 * (160 + 8), 24 + 4 * (160 + 8))
    stages = {e.stage for e in events}
    assert {"kidney: adapt batch norm", "grid: adapt batch norm", "synthetic images"} <= stages
    assert (two_runs[0] / "best.pt").read_bytes() == before  # the adaptation never touches the run

    rows = drain(synthetic_images(two_runs[:1], RestoreOptions(device="cpu", adapt_bn=False), size=128))
    assert [r.name for r in rows] == list(SYNTHETIC_SPECIMENS)
    for row in rows:
        assert list(row.outputs) == ["kidney"]
        for image in (row.gt, row.input, row.outputs["kidney"]):
            assert image.shape == (64, 64) and image.min() >= 0 and image.max() <= 1
    fig = panel_figure(rows, scores=True)
    assert [ax.get_label() for ax in fig.axes] == ["GT", "input", "kidney"] * 3
    assert len(fig.axes[1].texts) == 1 and "SSIM" in fig.axes[1].texts[0].get_text()


def test_synthetic_figure_bad_input(two_runs, tmp_path):
    with pytest.raises(ValueError, match="needs at least one trained run"):
        drain(synthetic_figure([], tmp_path / "a.png"))
    with pytest.raises(DataError, match="not a run folder") as error:
        drain(synthetic_figure([two_runs[0], tmp_path / "missing"], tmp_path / "a.png"))
    assert str(tmp_path / "missing") in str(error.value)
    twin = tmp_path / "other" / "kidney"
    shutil.copytree(two_runs[0], twin)
    with pytest.raises(ValueError, match="two runs share the name 'kidney'"):
        drain(synthetic_figure([two_runs[0], twin], tmp_path / "a.png"))
    assert not (tmp_path / "a.png").exists()
    # the restore options reach the restoration (temdeblur evaluate --inference-tile): a 40 px tile is
    # refused there for the default 32 px overlap
    with pytest.raises(ValueError, match="overlap must be between 0 and inference_tile / 2 = 20 px, got 32"):
        drain(
            synthetic_figure(
                two_runs[:1], tmp_path / "a.png", RestoreOptions(device="cpu", inference_tile=40), size=128
            )
        )
