"""Core objects -> napari layer data (plain tuples; no napari import), shared by reader and samples.

Dataset splits open as two layers that browse together: GT ``(image, y, x)`` and Low
``(frame, image, y, x)``. napari aligns trailing axes, so the image slider moves GT and burst
together while the frame slider steps through the burst. Images of different sizes are padded with
zeros at the bottom and right; each image's valid (rows, cols) is kept in the layer metadata.
"""

from __future__ import annotations

import numpy as np

from napari_temdeblur.core.imaging import IntensityWindow, suggest_window
from napari_temdeblur.core.io import DatasetSplit, Session

from ._kinds import LayerKind, tag

#: Frames sampled from a stream to suggest its contrast window without reading it all.
WINDOW_SAMPLE_FRAMES = 5


def _contrast(window: IntensityWindow) -> list[float]:
    return [float(window.low), float(window.high)]


def split_layers(split: DatasetSplit, gt_window: IntensityWindow, low_window: IntensityWindow) -> list[tuple]:
    """Layer data for one dataset split.

    Parameters
    ----------
    split : DatasetSplit
        With at least one pair; all pairs have the same number of frames.
    gt_window, low_window : IntensityWindow
        Contrast windows (the dataset's, so every split of a sample looks the same).

    Returns
    -------
    list of (data, kwargs, "image")
        GT uint16 (N, H, W) and Low uint16 (F, N, H, W), H and W the largest image size.
    """
    pairs = split.pairs
    rows = max(p.gt.shape[0] for p in pairs)
    cols = max(p.gt.shape[1] for p in pairs)
    frames = len(pairs[0].low)
    gt = np.zeros((len(pairs), rows, cols), np.uint16)
    low = np.zeros((frames, len(pairs), rows, cols), np.uint16)
    for i, pair in enumerate(pairs):
        h, w = pair.gt.shape
        gt[i, :h, :w] = pair.gt
        low[:, i, :h, :w] = pair.low
    info = {
        "sample": split.sample,
        "split": split.split,
        "path": str(split.path),
        "names": [p.name for p in pairs],
        "sessions": [p.session for p in pairs],
        "valid_shapes": [list(p.gt.shape) for p in pairs],
        "skipped": list(split.skipped),
    }
    title = f"{split.sample} {split.split}"
    gt_kwargs = {
        "name": f"{title} GT",
        "contrast_limits": _contrast(gt_window),
        "axis_labels": ("image", "y", "x"),
        "metadata": tag(LayerKind.GT, **info, window=gt_window.to_dict(), axes="NYX"),
    }
    low_kwargs = {
        "name": f"{title} Low",
        "contrast_limits": _contrast(low_window),
        "axis_labels": ("frame", "image", "y", "x"),
        "metadata": tag(LayerKind.LOW, **info, window=low_window.to_dict(), axes="FNYX"),
    }
    return [(gt, gt_kwargs, "image"), (low, low_kwargs, "image")]


def dataset_layers(splits: list[DatasetSplit]) -> list[tuple]:
    """Layer data for every split, with one GT and one Low window per sample (the paper's per-dataset window)."""
    layers = []
    for sample in dict.fromkeys(s.sample for s in splits):
        mine = [s for s in splits if s.sample == sample and s.pairs]
        if not mine:
            continue
        gt_window = suggest_window([p.gt for s in mine for p in s.pairs])
        low_window = suggest_window([p.low for s in mine for p in s.pairs])
        for split in mine:
            layers += split_layers(split, gt_window, low_window)
    return layers


def session_layers(session: Session) -> list[tuple]:
    """Layer data for an acquisition session: HQ stack and stream, both lazy.

    The stream is in stream pixels. HQ images get scale 1/binning in y and x so both show the same
    field of view at the same size, and a scale along the first axis that spreads the N HQ images over
    the T frames: scrolling the stream shows the HQ image taken at about the same place (nominal,
    until registration says better). The HQ layer is also offset so that pixel *areas* coincide: the
    `binning` x `binning` HQ pixels averaged into one stream pixel cover exactly that stream pixel (napari
    puts pixel centres at integer world coordinates, so without the offset the HQ image would sit 1/4
    stream pixel down-right of the stream for binning 2).
    """
    n_hq, n_frames = session.hq.shape[0], session.stream.shape[0]
    pitch = (n_frames - 1) / (n_hq - 1) if n_hq > 1 else 1.0
    sample_frames = np.linspace(0, n_frames - 1, min(WINDOW_SAMPLE_FRAMES, n_frames)).round().astype(int)
    stream_window = suggest_window([np.asarray(session.stream[int(t)]) for t in sample_frames])
    hq_window = suggest_window([np.asarray(session.hq[i]) for i in (0, n_hq - 1)])
    info = {
        "session": session.name,
        "path": str(session.path),
        "session_meta": session.meta,
    }
    hq_kwargs = {
        "name": f"{session.name} HQ",
        "scale": (pitch, 1 / session.binning, 1 / session.binning),
        "translate": (0, (1 / session.binning - 1) / 2, (1 / session.binning - 1) / 2),
        "contrast_limits": _contrast(hq_window),
        "axis_labels": ("frame", "y", "x"),
        "metadata": tag(LayerKind.HQ, **info, names=session.hq_names, window=hq_window.to_dict()),
    }
    stream_kwargs = {
        "name": f"{session.name} stream",
        "contrast_limits": _contrast(stream_window),
        "axis_labels": ("frame", "y", "x"),
        "metadata": tag(LayerKind.STREAM, **info, window=stream_window.to_dict()),
    }
    return [(session.hq, hq_kwargs, "image"), (session.stream, stream_kwargs, "image")]
