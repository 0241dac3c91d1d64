"""Restoring bursts with a trained run: frame selection, windows, optional BN adaptation, tiling."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checkpoint import load_model
from ..dataset import BurstPair
from ..intensity import IntensityWindow, apply_window
from ..models import frames_required
from ..progress import Progress
from ..train.devices import resolve_device
from ..training_data import centred_frames
from .batchnorm import adapt_batchnorm
from .tiling import restore_burst

# A run's Low window "does not fit" an input when more than this share of its sample saturates.
_SATURATION_WARNING = 0.05


@dataclass
class Restored:
    """One restored image.

    Attributes
    ----------
    name : str
    image : ndarray
        float32 (H, W) in [0, 1] (the run's GT window).
    counts : ndarray
        uint16 (H, W): `image` in GT detector counts (the run's GT window undone).
    frames : list of int
        Indices of the input frames used, centred on the burst's centre frame.
    centre : ndarray
        float32 (H, W): the centre input frame in [0, 1] (the run's Low window), for comparison.
    metadata : dict
        run, model, checkpoint epoch, frames, windows, tiling, adapted batch norm: JSON-ready.
    messages : list of str
        Notes for the user (fewer frames than trained with, a window that does not fit, ...).
    """

    name: str
    image: np.ndarray
    counts: np.ndarray
    frames: list[int]
    centre: np.ndarray
    metadata: dict
    messages: list[str] = field(default_factory=list)


def to_counts(image: np.ndarray, window: IntensityWindow) -> np.ndarray:
    """Undo an intensity window: [0, 1] -> uint16 counts (rounded, clipped to the uint16 range)."""
    counts = np.asarray(image, dtype=np.float64) * (window.high - window.low) + window.low
    return np.clip(np.rint(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def _check_input(index: int, item: BurstPair | np.ndarray) -> tuple[str, np.ndarray]:
    """(name, (F, H, W) counts) of one input, with clear errors for bad shapes, NaNs and GT mismatches."""
    name, low = (item.name, item.low) if isinstance(item, BurstPair) else (f"image {index}", item)
    low = np.asarray(low)
    if low.ndim == 2:
        low = low[None]
    if low.ndim != 3 or low.size == 0:
        raise ValueError(f"{name}: a burst must be (frames, rows, cols), got shape {low.shape}")
    if low.dtype.kind == "f" and not np.isfinite(low).all():
        raise ValueError(f"{name}: the burst contains NaN or infinite values; fix or crop the input image")
    if isinstance(item, BurstPair) and item.gt is not None and np.shape(item.gt) != low.shape[1:]:
        raise ValueError(f"{name}: the GT image is {np.shape(item.gt)} but the burst frames are {low.shape[1:]}")
    return name, low


def _select_frames(name: str, available: int, trained: int, required: int | None) -> tuple[np.ndarray, list[str]]:
    if required is not None:
        if available < required:
            raise ValueError(f"{name}: the model takes exactly {required} frames but the burst has {available}")
        return centred_frames(available, required), []
    count = min(available, trained)
    notes = []
    if available < trained:
        notes.append(f"{name}: {available} frames, the run was trained with up to {trained}; "
                     f"restoring with {available} (burst models accept any number of frames)")
    return centred_frames(available, count), notes


def restore(
    run: str | Path,
    inputs: Sequence[BurstPair | np.ndarray],
    *,
    device: str = "auto",
    tile: int = 128,
    overlap: int = 32,
    batch: int = 1,
    adapt_bn: bool = False,
    adapt_steps: int = 20,
) -> Generator[Progress, None, list[Restored]]:
    """Restore bursts with a trained run: a generator of progress events returning the results.

    Each burst's frames are windowed with the run's Low window; the run's frame count (the most it
    was trained with) is taken centred on the centre frame ``F // 2``. Burst models accept fewer
    frames (they are used, with a message); deblurgan needs exactly 3.

    Parameters
    ----------
    run : str or Path
        Run folder (``best.pt``) or checkpoint file.
    inputs : sequence of BurstPair or ndarray
        Registered bursts: BurstPair (its GT, if any, must match the frames' shape) or (F, H, W)
        arrays of detector counts (a single (H, W) frame is a 1-frame burst).
    device : str
        "auto", "cpu", "cuda", ... (see :func:`napari_temdeblur.core.train.resolve_device`).
    tile, overlap, batch : int
        Tiling of :func:`restore_burst`.
    adapt_bn : bool
        First adapt the batch-norm statistics to these inputs (:func:`adapt_batchnorm`); the run's
        files are not changed.
    adapt_steps : int
        Forward passes of the adaptation.

    Returns
    -------
    list of Restored
        In input order.

    Raises
    ------
    DataError
        Missing, corrupt or foreign checkpoint.
    ValueError
        Bad input (shape, NaN, GT shape, too few frames for deblurgan), naming the image.
    """
    checked = [_check_input(i, item) for i, item in enumerate(inputs)]
    if not checked:
        raise ValueError("nothing to restore: no bursts given")
    model, checkpoint = load_model(run, resolve_device(device))
    cfg = checkpoint.model
    selections = [_select_frames(name, len(low), checkpoint.frames[1], frames_required(cfg)) for name, low in checked]

    def windowed(k: int) -> np.ndarray:  # one image at a time, so a long list never sits in memory twice
        sel = selections[k][0]  # adjacent frames: a slice is a view, not a copy of the burst
        return apply_window(checked[k][1][sel[0]:sel[-1] + 1], checkpoint.low_window)

    total = len(checked) + int(adapt_bn)
    adapted = 0
    if adapt_bn:
        yield Progress("adapt batch norm", 0, total, f"{adapt_steps} passes on {len(checked)} image(s)")
        fewest = min(len(sel) for sel, _ in selections)
        usable = [windowed(k) for k, (sel, _) in enumerate(selections) if len(sel) == fewest]  # one N per batch
        adapted = adapt_batchnorm(model, usable, steps=adapt_steps)
        del usable
    results = []
    for k, ((name, low), (sel, notes)) in enumerate(zip(checked, selections)):
        yield Progress("restore", k + int(adapt_bn), total, f"{name} ({len(sel)} frames)")
        frames = windowed(k)
        messages = list(notes)
        nonzero = np.count_nonzero(frames > 0)  # exact zeros are registration padding, not sample
        saturated = np.count_nonzero(frames >= 1.0) / max(nonzero, 1)
        if saturated > _SATURATION_WARNING:
            messages.append(f"{name}: {saturated:.0%} of the pixels exceed the run's Low window "
                            f"(high = {checkpoint.low_window.high:g} counts); the run was trained on dimmer data")
        image = restore_burst(model, frames, tile=tile, overlap=overlap, batch=batch)
        metadata = {
            "run": str(checkpoint.path), "model": cfg.to_dict(), "epoch": checkpoint.epoch,
            "frames": [int(i) for i in sel], "input_frames": len(low),
            "windows": {"gt": checkpoint.gt_window.to_dict(), "low": checkpoint.low_window.to_dict()},
            "tile": tile, "overlap": overlap, "adapted_batchnorm": adapted,
        }
        results.append(Restored(name, image, to_counts(image, checkpoint.gt_window), [int(i) for i in sel],
                                frames[len(sel) // 2], metadata, messages))
    yield Progress("restore", total, total)
    return results
