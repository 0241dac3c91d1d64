"""Core objects -> napari layer data (plain tuples; no napari import), shared by reader and samples.

Dataset splits open as two layers that browse together: GT ``(image, y, x)`` and Low
``(frame, image, y, x)``. napari aligns trailing axes, so the image slider moves GT and burst
together while the frame slider steps through the burst. Images of different sizes are padded with
zeros at the bottom and right; each image's valid (rows, cols) is kept in the layer metadata.
"""

from __future__ import annotations

import numpy as np

from napari_temdeblur.core.imaging import IntensityWindow, suggest_window
from napari_temdeblur.core.io import DatasetSplit, RestoredFolder, Session

from ._kinds import LayerKind, tag

#: Frames sampled from a stream to suggest its contrast window without reading it all.
WINDOW_SAMPLE_FRAMES = 5


def _contrast(window: IntensityWindow) -> list[float]:
    return [float(window.low), float(window.high)]


def split_layers(
    split: DatasetSplit, gt_window: IntensityWindow, low_window: IntensityWindow, first: int = 0
) -> list[tuple]:
    """Layer data for one dataset split.

    Parameters
    ----------
    split : DatasetSplit
        With at least one pair; all pairs have the same number of frames.
    gt_window, low_window : IntensityWindow
        Contrast windows (the dataset's, so every split of a sample looks the same).
    first : int
        Position of the split's first image on the viewer's image slider (the layers' translate).

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
        "translate": (first, 0, 0),
        "contrast_limits": _contrast(gt_window),
        "axis_labels": ("image", "y", "x"),
        "metadata": tag(LayerKind.GT, **info, window=gt_window.to_dict(), axes="NYX"),
    }
    low_kwargs = {
        "name": f"{title} Low",
        "translate": (0, first, 0, 0),
        "contrast_limits": _contrast(low_window),
        "axis_labels": ("frame", "image", "y", "x"),
        "metadata": tag(LayerKind.LOW, **info, window=low_window.to_dict(), axes="FNYX"),
    }
    return [(gt, gt_kwargs, "image"), (low, low_kwargs, "image")]


def dataset_layers(splits: list[DatasetSplit]) -> list[tuple]:
    """Layer data for every split, with one GT and one Low window per sample (the paper's per-dataset window).

    The splits follow one another on the image slider (Train 0-12, Val 13-14, Test 15-20, then the next
    sample's), so every slider position shows the images of exactly one split: browsing one never
    shows another's images or an empty slot.
    """
    layers, first = [], 0
    for sample in dict.fromkeys(s.sample for s in splits):
        mine = [s for s in splits if s.sample == sample and s.pairs]
        if not mine:
            continue
        gt_window = suggest_window([p.gt for s in mine for p in s.pairs])
        low_window = suggest_window([p.low for s in mine for p in s.pairs])
        for split in mine:
            layers += split_layers(split, gt_window, low_window, first)
            first += len(split.pairs)
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


def restored_layers(folder: RestoredFolder, splits: dict[str, tuple[float, list[str]]] | None = None) -> list[tuple]:
    """Layer data for a ``temdeblur restore`` output folder: one layer of restored images per sub-folder.

    Parameters
    ----------
    folder : RestoredFolder
    splits : dict, optional
        ``"<Sample>/<Split>"`` -> (position of the split's first image on the image slider, its image
        names), of the dataset layers opened with it (:func:`dataset_layers`): a sub-folder of that
        name (or the only one, for a restored single split) is laid out like the split, each image in
        its slot, so restored and input images share the slider.

    Returns
    -------
    list of (data, kwargs, "image")
        uint16 (N, H, W) counts (zero-padded to the largest image; ``valid_shapes`` in the metadata), or
        (H, W) for a single image, shown through the run's GT window; the metadata holds the image
        names and restore.json (run, model, windows, tiling, per-image frames).
    """
    window = IntensityWindow.from_dict(folder.record["windows"]["gt"])
    splits = splits or {}
    layers = []
    for group, images in folder.groups.items():
        names = [name for name, _ in images]
        split = splits.get(group) or (next(iter(splits.values())) if not group and len(splits) == 1 else None)
        if split is not None and set(names) <= set(split[1]):
            first, order = split
        else:
            first, order = 0.0, names
        shapes = {name: image.shape for name, image in images}
        rows, cols = max(s[0] for s in shapes.values()), max(s[1] for s in shapes.values())
        data = np.zeros((len(order), rows, cols), np.uint16)
        for name, image in images:
            data[order.index(name), : image.shape[0], : image.shape[1]] = image
        title = " ".join([folder.path.name, *group.split("/")]) if group else folder.path.name
        info = {
            "title": title,
            "path": str(folder.path),
            "names": list(order),
            "valid_shapes": [list(shapes.get(name, (0, 0))) for name in order],
            "window": window.to_dict(),
            "restore_record": folder.record,
            "skipped": list(folder.skipped),
        }
        single = len(order) == 1
        layers.append(
            (
                data[0] if single else data,
                {
                    "name": f"{title} restored",
                    "contrast_limits": _contrast(window),
                    "axis_labels": ("y", "x") if single else ("image", "y", "x"),
                    **({} if single else {"translate": (first, 0, 0)}),
                    "metadata": tag(LayerKind.RESTORED, **info),
                },
                "image",
            )
        )
    return layers
