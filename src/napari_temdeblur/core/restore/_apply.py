"""Restoring bursts with a trained run: frame selection, windows, optional BN adaptation, tiling.

Inputs are read one at a time (``inputs[k]``, once per pass), so a lazy sequence that reads or
registers each image on access keeps memory at about one image, whatever the number of images.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, Progress, resolve_device
from napari_temdeblur.core.imaging import IntensityWindow, apply_window, centred_frames
from napari_temdeblur.core.io import BurstPair
from napari_temdeblur.core.models import Checkpoint, frames_required, load_model

from ._batchnorm import adapt_batchnorm
from ._options import RestoreOptions
from ._tiling import check_tiling, tile_layout, with_tile
from ._trust import Calibration, read_calibration, restore_with_spread

# A run's Low window "does not fit" an input when more than this share of its sample saturates ...
_SATURATION_WARNING = 0.05
# ... or when the input's brightest sample (99th percentile) stays below this part of the window.
_DIM_WARNING = 0.25
#: Pixels converted to counts at a time (8 MB of float64).
_COUNTS_BLOCK = 1 << 20


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
    spread : ndarray or None
        float32 (H, W) > 0: the heuristic spread ``u`` of :func:`restore_with_spread` (``options.trust``),
        in `image`'s units; None without trust.
    calibration : Calibration or None
        The run's calibration with ``options.trust``: the interval is ``image +- scale * spread``.
    """

    name: str
    image: np.ndarray
    counts: np.ndarray
    frames: list[int]
    centre: np.ndarray
    metadata: dict
    messages: list[str] = field(default_factory=list)
    spread: np.ndarray | None = None
    calibration: Calibration | None = None

    @property
    def interval_width(self) -> np.ndarray | None:
        """float32 (H, W): the calibrated interval's width ``2 * scale * spread`` in the run's GT window
        ([0, 1] scale, before clipping to [0, 1]); None without a calibration."""
        if self.spread is None or self.calibration is None:
            return None
        return (2.0 * self.calibration.scale * self.spread).astype(np.float32)

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi), float32 (H, W) each in [0, 1] (the run's GT window): the calibrated interval per pixel.

        Raises
        ------
        ValueError
            The image was restored without trust (``RestoreOptions.trust``).
        """
        width = self.interval_width
        if width is None:
            raise ValueError(f"{self.name}: restored without trust intervals (restore with trust=True)")
        half = width / 2
        return np.clip(self.image - half, 0.0, 1.0), np.clip(self.image + half, 0.0, 1.0)


@dataclass(frozen=True)
class ImageRestored(Progress):
    """Input number `index` restored: `result` (so a caller can save it at once and let it go)."""

    index: int = 0
    result: Restored | None = None


@dataclass(frozen=True)
class InputSkipped(Progress):
    """Input number `index` could not be read (a DataError on access); the message says why."""

    index: int = 0


def to_counts(image: np.ndarray, window: IntensityWindow) -> np.ndarray:
    """Undo an intensity window: [0, 1] -> uint16 counts (rounded, clipped to the uint16 range).

    Computed in float64 a block at a time, so that a large image needs no float64 copies of itself
    (a 4096 x 4096 image would need three of 134 MB at once)."""
    image = np.asarray(image)
    flat, counts = image.reshape(-1), np.empty(image.shape, np.uint16)
    out = counts.reshape(-1)
    for start in range(0, flat.size, _COUNTS_BLOCK):
        values = flat[start : start + _COUNTS_BLOCK].astype(np.float64) * (window.high - window.low) + window.low
        out[start : start + _COUNTS_BLOCK] = np.clip(np.rint(values), 0, np.iinfo(np.uint16).max)
    return counts


def _check_input(index: int, item: BurstPair | np.ndarray) -> tuple[str, np.ndarray]:
    """(name, (F, H, W) counts) of one input, with clear errors for bad shapes, NaNs and GT mismatches."""
    name, low = (item.name, item.low) if isinstance(item, BurstPair) else (f"image {index}", item)
    low = np.asarray(low)
    if low.ndim == 2:
        low = low[None]
    if low.ndim != 3 or low.size == 0:
        raise ValueError(f"{name}: a burst must be (frames, rows, cols), got shape {low.shape}")
    if low.dtype.kind not in "biuf":
        raise ValueError(f"{name}: the burst must hold real numbers (detector counts), got dtype {low.dtype}")
    if low.dtype.kind == "f" and not np.isfinite(low).all():
        raise ValueError(f"{name}: the burst contains NaN or infinite values; fix or crop the input image")
    if isinstance(item, BurstPair) and item.gt is not None and np.shape(item.gt) != low.shape[1:]:
        raise ValueError(f"{name}: the GT image is {np.shape(item.gt)} but the burst frames are {low.shape[1:]}")
    return name, low


def _window_notes(name: str, centre: np.ndarray, window: IntensityWindow) -> list[str]:
    """Notes when the run's Low window does not fit the centre frame (counts): too bright or too dim."""
    sample = centre[::2, ::2]  # a subsample is plenty for two proportions
    sample = sample[sample > 0]  # exact zeros are registration padding, not sample
    if not sample.size:
        return []
    windowed = apply_window(sample, window)
    saturated = np.count_nonzero(windowed >= 1.0) / sample.size
    if saturated > _SATURATION_WARNING:
        return [
            (
                f"{name}: {saturated:.0%} of the pixels exceed the run's Low window (high = {window.high:g} "
                f"counts) and are clipped to 1; the run was trained on dimmer data (try --adapt-bn)"
            )
        ]
    bright = float(np.percentile(windowed, 99))
    if bright < _DIM_WARNING:
        return [
            (
                f"{name}: the brightest sample reaches only {bright:.0%} of the run's Low window "
                f"({window.low:g}-{window.high:g} counts); the run was trained on brighter data (try --adapt-bn)"
            )
        ]
    return []


def _select_frames(name: str, available: int, trained: int, required: int | None) -> tuple[np.ndarray, list[str]]:
    if required is not None:
        if available < required:
            raise ValueError(
                f"{name}: the model takes exactly {required} frames (as channels) but the burst has "
                f"{available}; it cannot be restored with this run"
            )
        return centred_frames(available, required), []
    count = min(available, trained)
    notes = []
    if available < trained:
        notes.append(
            f"{name}: {available} frames, the run was trained with up to {trained}; "
            f"restoring with {available} (burst models accept any number of frames)"
        )
    return centred_frames(available, count), notes


class _Prepared:
    """The inputs as the network sees them, read lazily: ``[k]`` -> (name, counts, frames used, the
    counts of those frames (N, H, W), notes), or None with the reason in `skipped[k]` when reading
    raises DataError. The frames stay counts: restoration windows them tile by tile."""

    def __init__(self, inputs: Sequence, checkpoint):
        self.inputs, self.checkpoint = inputs, checkpoint
        self.skipped: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, k: int):
        try:
            name, low = _check_input(k, self.inputs[k])
        except DataError as exc:
            self.skipped[k] = str(exc)
            return None
        trained, required = self.checkpoint.frames[1], frames_required(self.checkpoint.model)
        sel, notes = _select_frames(name, len(low), trained, required)
        # adjacent frames: a slice is a view, not a copy of the burst
        return name, low, sel, low[sel[0] : sel[-1] + 1], notes


class _Windowed(Sequence):
    """The windowed bursts of :class:`_Prepared` for batch-norm adaptation (None where unreadable)."""

    def __init__(self, prepared: _Prepared):
        self.prepared = prepared

    def __len__(self) -> int:
        return len(self.prepared)

    def __getitem__(self, k: int):
        item = self.prepared[k]
        return None if item is None else apply_window(item[3], self.prepared.checkpoint.low_window)


def restore(
    run: str | Path, inputs: Sequence[BurstPair | np.ndarray], options: RestoreOptions | None = None
) -> Generator[Progress, None, int]:
    """Restore bursts with a trained run, one at a time, handing each result over in an
    :class:`ImageRestored` event and keeping none (so memory stays at about one image).

    Each burst's frames are windowed with the run's Low window; the run's frame count (the most it
    was trained with) is taken centred on the centre frame ``F // 2``. Burst models accept fewer
    frames (they are used, with a message); deblurgan needs exactly 3 (its 3 centre frames are used).
    Messages also note a Low window that does not fit the input (much of it clipped at 1, or all of
    it far below 1) and an image smaller than one tile. Callers that want every result at once run
    the generator through :func:`collect_restored`.

    Parameters
    ----------
    run : str or Path
        Run folder (``best.pt``) or checkpoint file.
    inputs : sequence of BurstPair or ndarray
        Registered bursts: BurstPair (its GT, if any, must match the frames' shape) or (F, H, W)
        arrays of detector counts (a single (H, W) frame is a 1-frame burst). Read one at a time:
        a lazy sequence may load each on access (an item raising DataError is skipped).
    options : RestoreOptions, optional
        Device, tiling and batch-norm adaptation (defaults: :class:`RestoreOptions`).

    Yields
    ------
    Progress
        ``Progress("restore", k, n)`` before input k, :class:`TileProgress` after each batch of tiles
        (where a cancel is honoured: closing the generator stops within one batch), an
        :class:`ImageRestored` per image, an :class:`InputSkipped` per input whose reading raised
        DataError (the others go on); with ``options.adapt_bn``, the adaptation's events first.

    Returns
    -------
    int
        Number of images restored.

    Raises
    ------
    DataError
        Missing, corrupt or foreign checkpoint.
    ValueError
        Bad input (shape, NaN, GT shape, too few frames for deblurgan), naming the image; tiling
        values that do not fit the network.
    """
    options = options or RestoreOptions()
    if not len(inputs):
        raise ValueError("nothing to restore: no bursts given")
    model, checkpoint = load_model(run, resolve_device(options.device))
    return (yield from restore_with(model, checkpoint, inputs, options))


def restore_with(
    model,
    checkpoint: Checkpoint,
    inputs: Sequence[BurstPair | np.ndarray],
    options: RestoreOptions,
    *,
    spread: bool = False,
) -> Generator[Progress, None, int]:
    """:func:`restore` with the run already loaded (:func:`~napari_temdeblur.core.models.load_model`),
    for callers that need the checkpoint before the inputs exist (:mod:`._stream`). `spread` computes
    :attr:`Restored.spread` without a calibration (what calibrating needs); ``options.trust`` reads
    the run's calibration first (:class:`Uncalibrated` before any image when it has none)."""
    cfg = checkpoint.model
    calibration = read_calibration(checkpoint) if options.trust else None
    spread = spread or calibration is not None
    options = with_tile(model, options)
    tile = options.inference_tile
    multiple = check_tiling(model, options)  # before any image is read or adapted to
    prepared = _Prepared(inputs, checkpoint)
    adapted = 0
    if options.adapt_bn:
        adapted = yield from adapt_batchnorm(model, _Windowed(prepared), steps=options.adapt_steps)
    total, restored = len(inputs), 0
    for k in range(total):
        yield Progress("restore", k, total, f"image {k + 1} of {total}")
        item = prepared[k]
        if item is None:
            yield InputSkipped("restore", k, total, prepared.skipped[k], index=k)
            continue
        name, low, sel, frames, messages = item
        messages = messages + _window_notes(name, low[sel[len(sel) // 2]], checkpoint.low_window)
        height, width = low.shape[1:]
        layout = [tile_layout(n, tile, options.overlap, multiple) for n in (height, width)]
        if all(len(origins) == 1 for _, _, origins in layout):  # image + context fit one tile on both axes
            messages.append(
                f"{name}: {height} x {width} px is smaller than one {tile} px tile: restored in one "
                f"pass, mirror-padded to {layout[0][0]} x {layout[1][0]} px"
            )
        window = checkpoint.low_window
        image, spread_map = yield from restore_with_spread(
            model, frames, options, stage=f"restore {name}", window=window, spread=spread
        )
        metadata = {
            "run": str(checkpoint.path),
            "model": cfg.to_dict(),
            "epoch": checkpoint.epoch,
            "frames": [int(i) for i in sel],
            "input_frames": len(low),
            "windows": {"gt": checkpoint.gt_window.to_dict(), "low": checkpoint.low_window.to_dict()},
            "tile": tile,
            "overlap": options.overlap,
            "adapted_batchnorm": adapted,
        }
        if calibration is not None:
            metadata["trust"] = {
                "method": calibration.method,
                "nominal_coverage": calibration.nominal_coverage,
                "scale": calibration.scale,
            }
        result = Restored(
            name,
            image,
            to_counts(image, checkpoint.gt_window),
            [int(i) for i in sel],
            apply_window(frames[len(sel) // 2], window),
            metadata,
            messages,
            spread_map,
            calibration,
        )
        restored += 1
        yield ImageRestored("restore", k + 1, total, name, index=k, result=result)
    return restored


def collect_restored(work: Generator[Progress, None, object]) -> Generator[Progress, None, list[Restored]]:
    """Pass on the events of `work` (:func:`restore`, :func:`restore_stream`) and return the results of
    its :class:`ImageRestored` events, in order; closing this generator closes `work`."""
    results = []
    try:
        for event in work:
            if isinstance(event, ImageRestored):
                results.append(event.result)
            yield event
    finally:
        work.close()
    return results
