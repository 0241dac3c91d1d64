"""Core objects -> napari layer data (plain tuples; no napari import), shared by reader and samples.

Dataset splits open as two layers that browse together: GT ``(image, y, x)`` and Low
``(frame, image, y, x)``. napari aligns trailing axes, so the image slider moves GT and burst
together while the frame slider steps through the burst. Images of different sizes are padded with
zeros at the bottom and right; each image's valid (rows, cols) is kept in the layer metadata.

y and x are in nm where the pixel size is known (session.json; a dataset sample's sample.json), so
napari's scale bar reads nm; else in pixels. Every layer of one view must agree (napari ignores units
that differ between layers), so the layers made from one another copy their scale and units.
"""

from __future__ import annotations

import math

import numpy as np

from napari_temdeblur.core.imaging import IntensityWindow, suggest_window
from napari_temdeblur.core.io import DatasetSplit, RestoredFolder, Session

from ._kinds import LayerKind, tag

#: Frames sampled from a stream to suggest its contrast window without reading it all.
WINDOW_SAMPLE_FRAMES = 5


#: The trust layer's name after its title: what it shows and in which unit (a colour bar has no label).
TRUST_SUFFIX = " trust (interval width, 0-1 intensity)"
#: The flags layer's name after its title.
FLAGS_SUFFIX = " flags"


def trust_kwargs(title: str, data: np.ndarray, info: dict, **meta) -> dict:
    """napari kwargs of a trust layer of `title` (interval widths `data`, NaN in the padding): magma on
    0 to the widths' 99th percentile, hidden at first (Compare or the layer list shows it), tagged
    with `info` and `meta`."""
    top = float(np.nanpercentile(data, 99)) if np.isfinite(data).any() else 1.0
    return {
        "name": f"{title}{TRUST_SUFFIX}",
        "colormap": "magma",
        "contrast_limits": [0.0, max(top, 1e-6)],
        "visible": False,
        "metadata": tag(LayerKind.TRUST, **info, **meta, unit="restored layer's 0-1 intensity"),
    }


def flags_kwargs(title: str, info: dict, **meta) -> dict:
    """napari kwargs of a flags (labels) layer of `title`, tagged with `info` and `meta`."""
    return {"name": f"{title}{FLAGS_SUFFIX}", "opacity": 0.8, "metadata": tag(LayerKind.FLAGS, **info, **meta)}


def _contrast(window: IntensityWindow) -> list[float]:
    return [float(window.low), float(window.high)]


def physical(pixel_size_nm: float | None, leading: tuple[float, ...] = ()) -> dict:
    """``scale`` and ``units`` keyword arguments of a layer whose last two axes are y and x.

    Parameters
    ----------
    pixel_size_nm : float or None
        Size of one pixel in nm; None when unknown (y and x stay in pixels).
    leading : tuple of float
        Scales of the axes before y and x (frame, image: no physical unit).
    """
    size, unit = (float(pixel_size_nm), "nm") if pixel_size_nm else (1.0, "pixel")
    return {"scale": (*leading, size, size), "units": (*("pixel",) * len(leading), unit, unit)}


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
        "pixel_size_nm": split.pixel_size_nm,
    }
    title = f"{split.sample} {split.split}"
    gt_kwargs = {
        "name": f"{title} GT",
        **physical(split.pixel_size_nm, (1.0,)),
        "translate": (first, 0, 0),
        "contrast_limits": _contrast(gt_window),
        "axis_labels": ("image", "y", "x"),
        "metadata": tag(LayerKind.GT, **info, window=gt_window.to_dict(), axes="NYX"),
    }
    low_kwargs = {
        "name": f"{title} Low",
        **physical(split.pixel_size_nm, (1.0, 1.0)),
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

    y and x are in nm (each layer scaled by its pixel size), so both show the same field of view at
    the same size; the HQ layer has a scale along the first axis that spreads the N HQ images over
    the T frames: scrolling the stream shows the HQ image taken at about the same place (nominal,
    until registration says better). The HQ layer is also offset so that pixel *areas* coincide: the
    `binning` x `binning` HQ pixels averaged into one stream pixel cover exactly that stream pixel (napari
    puts pixel centres at the scaled integer coordinates, so without the offset the HQ image would sit
    1/4 stream pixel down-right of the stream for binning 2).
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
    stream_nm, hq_nm = session.meta["stream_pixel_size_nm"], session.meta["hq_pixel_size_nm"]
    corner = (hq_nm - stream_nm) / 2  # nm: HQ pixel (0, 0)'s centre from the stream pixel (0, 0)'s
    hq_kwargs = {
        "name": f"{session.name} HQ",
        **physical(hq_nm, (pitch,)),
        "translate": (0, corner, corner),
        "contrast_limits": _contrast(hq_window),
        "axis_labels": ("frame", "y", "x"),
        "metadata": tag(LayerKind.HQ, **info, names=session.hq_names, window=hq_window.to_dict()),
    }
    stream_kwargs = {
        "name": f"{session.name} stream",
        **physical(stream_nm, (1.0,)),
        "contrast_limits": _contrast(stream_window),
        "axis_labels": ("frame", "y", "x"),
        "metadata": tag(LayerKind.STREAM, **info, window=stream_window.to_dict()),
    }
    return [(session.hq, hq_kwargs, "image"), (session.stream, stream_kwargs, "image")]


def _recorded_pixel_size(images: dict, key: str) -> float | None:
    """The pixel size (nm) restore.json records for one image; None when it has none or a bad one."""
    entry = images.get(key)
    size = entry.get("pixel_size_nm") if isinstance(entry, dict) else None
    valid = isinstance(size, (int, float)) and not isinstance(size, bool) and math.isfinite(size) and size > 0
    return float(size) if valid else None


def restored_layers(
    folder: RestoredFolder, splits: dict[str, tuple[float, list[str], float | None]] | None = None
) -> list[tuple]:
    """Layer data for a ``temdeblur restore`` output folder: one layer of restored images per sub-folder.

    Parameters
    ----------
    folder : RestoredFolder
    splits : dict, optional
        ``"<Sample>/<Split>"`` -> (position of the split's first image on the image slider, its image
        names, its pixel size in nm or None), of the dataset layers opened with it
        (:func:`dataset_layers`): a sub-folder of that name (or the only one, for a restored single
        split) is laid out and scaled like the split, each image in its slot, so restored and input
        images share the slider.

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
            first, order, pixel_size_nm = split
        else:  # opened alone: the pixel size restore.json records, when every image of the group has the same
            first, order = 0.0, names
            sizes = {
                _recorded_pixel_size(folder.record["images"], f"{group}/{name}" if group else name) for name in names
            }
            pixel_size_nm = sizes.pop() if len(sizes) == 1 else None
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
        placement = {
            "axis_labels": ("y", "x") if single else ("image", "y", "x"),
            **physical(pixel_size_nm, () if single else (1.0,)),
            **({} if single else {"translate": (first, 0, 0)}),
        }
        layers.append(
            (
                data[0] if single else data,
                {
                    "name": f"{title} restored",
                    "contrast_limits": _contrast(window),
                    **placement,
                    "metadata": tag(LayerKind.RESTORED, **info),
                },
                "image",
            )
        )
        layers += _extra_layers(folder.extras.get(group, {}), order, (rows, cols), title, placement, info)
    return layers


def _extra_layers(extras: dict, order: list[str], shape: tuple[int, int], title: str, placement: dict, info: dict):
    """The trust (interval widths, hidden at first, NaN in the padding) and flags (labels) layers of a
    restored group, placed like its restored layer, when every image of the group has them."""
    layers = []
    for kind, fill, dtype in (("trust", np.nan, np.float32), ("flags", 0, np.uint8)):
        items = extras.get(kind, [])
        if len(items) != len(order):  # restored without --trust / --flags, or only some images
            continue
        data = np.full((len(order), *shape), fill, dtype)
        for name, image in items:
            data[order.index(name), : image.shape[0], : image.shape[1]] = image
        data = data[0] if len(order) == 1 else data
        if kind == "trust":
            layers.append((data, {**trust_kwargs(title, data, info), **placement}, "image"))
        else:
            layers.append((data, {**flags_kwargs(title, info), **placement}, "labels"))
    return layers
