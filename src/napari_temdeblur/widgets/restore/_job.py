"""The restore dock's work, without Qt: layers -> bursts -> :func:`core.restore.restore` -> scores.

Scores are those of ``temdeblur evaluate`` (:mod:`napari_temdeblur.core.evaluate`, docs/evaluation.md)
for the images restored together, through the same functions: GT and Low windows suggested over
those images (``sample_windows``), the input = the centre registered frame ``F // 2``, the restored
counts (:attr:`Restored.counts`) re-windowed by the GT window, SSIM and PSNR
(:func:`~napari_temdeblur.core.imaging.tile_scores`) over the regular tiles lying wholly on the
sample of the GT and of every frame (no grid bars, no registration padding), by default in the top
half of each image as the paper did (``prepare``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_temdeblur.core import Progress, resolve_device
from napari_temdeblur.core.evaluate import (
    EvalImage,
    MethodScores,
    prepare,
    sample_windows,
    score,
)
from napari_temdeblur.core.imaging import (
    TOP_HALF_ROWS,
    WINDOW,
    IntensityWindow,
    apply_window,
    evaluation_tiles,
    largest_fitting_tile,
    ssim_map,
    suggest_window,
)
from napari_temdeblur.core.io import BurstPair
from napari_temdeblur.core.models import load_model
from napari_temdeblur.core.restore import (
    Restored,
    RestoreOptions,
    Uncalibrated,
    collect_restored,
    read_calibration,
    restore_with,
)
from napari_temdeblur.layers import BurstLayers, LayerKind, find_bursts, kind_of, layer_info

#: Score tiles tried, largest first, when none of the size asked for fits: multiples of this, px.
SCORE_TILE_STEP = 16
#: Header of the score table's CSV (means over each image's tiles; PSNR in dB).
CSV_COLUMNS = ("image", "tiles", "input_ssim", "restored_ssim", "input_psnr", "restored_psnr")


@dataclass(frozen=True)
class ImageScores:
    """Per-tile SSIM and PSNR (dB) of one image's input and restored output against its GT.

    The tiles may be none (no tile lies wholly on the sample), and then every mean is NaN.
    """

    name: str
    input: MethodScores
    restored: MethodScores

    @property
    def tiles(self) -> int:
        return self.input.tiles

    def means(self) -> tuple[float, float, float, float]:
        """Mean (input SSIM, restored SSIM, input PSNR, restored PSNR) over the tiles (NaN for none)."""
        arrays = (self.input.ssim, self.restored.ssim, self.input.psnr, self.restored.psnr)
        return tuple(float(a.mean()) if len(a) else math.nan for a in arrays)

    @classmethod
    def pooled(cls, name: str, scores: Sequence[ImageScores]) -> ImageScores:
        """All images' tiles together (the pooled mean that ``temdeblur evaluate`` reports)."""
        return cls(
            name, MethodScores.concat([s.input for s in scores]), MethodScores.concat([s.restored for s in scores])
        )


def score_image(image: EvalImage, restored: np.ndarray) -> tuple[ImageScores, np.ndarray]:
    """Score one image's input and restored output on its evaluation tiles.

    Parameters
    ----------
    image : EvalImage
        The windowed pair and its tiles (:func:`~napari_temdeblur.core.evaluate.prepare`).
    restored : ndarray
        (H, W) restored image in [0, 1], in the GT window of `image`.

    Returns
    -------
    scores : ImageScores
    ssim_map : ndarray
        float32 (H - 10, W - 10): SSIM of `restored` against the GT in the 11 x 11 window centred on
        each pixel (i + 5, j + 5) (:func:`~napari_temdeblur.core.imaging.ssim_map`); NaN where that
        pixel is not sample (grid bars, registration padding: there two blank images look alike).
    """
    scores = ImageScores(image.name, score(image.input, image), score(restored, image))
    margin = WINDOW // 2
    sample = image.mask[margin:-margin, margin:-margin]
    return scores, np.where(sample, ssim_map(restored, image.gt), np.nan).astype(np.float32)


@dataclass
class Selection:
    """What the dock restores: bursts cut from layers and where each goes in the result layers.

    Attributes
    ----------
    title : str
        Stem of the result layers' names (``"Kidney Test"`` -> ``"Kidney Test restored"``).
    pairs : list of BurstPair
        Low (F, h, w) counts; GT (h, w) counts or None when no GT layer was chosen.
    slots : list of int
        Index of each pair along the layers' image axis (0 when not stacked).
    shape : tuple of int
        (N, H, W) of the stacked layers, or (H, W) for a single image.
    placement : (tuple of float, tuple of float, tuple of str)
        (scale, translate, units) of the burst layer without its frame axis, one value per axis of
        `shape`, so that the result layers show image i where the burst shows it (a dataset's splits
        sit one after another on the image slider; registered bursts sit beside their session), in
        the same units (napari ignores units that differ between layers).
    """

    title: str
    pairs: list[BurstPair]
    slots: list[int]
    shape: tuple[int, ...]
    placement: tuple[tuple[float, ...], tuple[float, ...], tuple[str, ...]] | None = None

    @property
    def stacked(self) -> bool:
        return len(self.shape) == 3


def select(low: Any, gt: Any | None, layers: Sequence[Any]) -> Selection:
    """Cut the bursts of a Low layer (F, N, H, W) or (F, H, W), with an optional GT layer.

    The Low layer's GT partner (:func:`find_bursts`), when one is open, gives the image names, valid
    sizes and real frame counts even if no GT is to be scored.

    Raises
    ------
    ValueError
        A layer that is not a burst, or a GT layer whose shape does not fit the burst.
    """
    data = low.data
    if data.ndim not in (3, 4):
        raise ValueError(
            f"layer '{low.name}' {data.shape} is not a burst: expected (frame, y, x) or (frame, image, y, x)"
        )
    partner = next((b for b in find_bursts(layers) if b.low == low), None)
    title = partner.title if partner is not None else low.name.removesuffix(" Low")
    shape = tuple(data.shape[1:])
    if gt is not None or partner is not None:
        burst = BurstLayers(title, gt if gt is not None else partner.gt, low)
        pairs = burst.pairs()
        names = layer_info(burst.gt).get("names") or [f"{title} #{i}" for i in range(burst.gt.data.shape[0])]
        slots = [names.index(p.name) if data.ndim == 4 else 0 for p in pairs]
        if gt is None:
            pairs = [BurstPair(p.name, None, p.low) for p in pairs]
    elif data.ndim == 3:
        pairs, slots = [BurstPair(title, None, np.asarray(data))], [0]
    else:
        names = layer_info(low).get("names") or [f"{title} #{i}" for i in range(data.shape[1])]
        pairs = [BurstPair(n, None, np.asarray(data[:, i])) for i, n in enumerate(names)]
        slots = list(range(len(pairs)))
    if not pairs:
        raise ValueError(f"layer '{low.name}' holds no registered burst (all images are empty)")
    placement = (
        tuple(map(float, low.scale[1:])),
        tuple(map(float, low.translate[1:])),
        tuple(str(u) for u in low.units[1:]),
    )
    return Selection(title, pairs, slots, shape, placement)


#: Plugin layers that are never bursts to restore / GT images: session layers and the dock's own results.
_NOT_EITHER = {
    LayerKind.HQ,
    LayerKind.STREAM,
    LayerKind.RESTORED,
    LayerKind.INPUT,
    LayerKind.SSIM_MAP,
    LayerKind.TRUST,
    LayerKind.FLAGS,
}
_NOT_BURSTS, _NOT_GT = _NOT_EITHER | {LayerKind.GT}, _NOT_EITHER | {LayerKind.LOW}


def _grey_image(layer: Any, ndims: tuple[int, ...], excluded: set[LayerKind]) -> bool:
    data = getattr(layer, "data", None)
    return getattr(data, "ndim", 0) in ndims and not getattr(layer, "rgb", False) and kind_of(layer) not in excluded


def burst_layer_names(layers: Sequence[Any]) -> list[str]:
    """Layers that can be restored: grey (frame, y, x) or (frame, image, y, x) images that are not
    GT halves of a burst dataset, session HQ / stream layers or the dock's own results."""
    gts = [b.gt for b in find_bursts(layers)]
    return [
        layer.name for layer in layers if _grey_image(layer, (3, 4), _NOT_BURSTS) and not any(layer == gt for gt in gts)
    ]


def gt_layer_names(layers: Sequence[Any]) -> list[str]:
    """Layers that can be a GT: grey (y, x) or (image, y, x) images that are not bursts or results."""
    return [layer.name for layer in layers if _grey_image(layer, (2, 3), _NOT_GT)]


@dataclass
class RestoreResult:
    """Everything the dock shows after a restore; images are float32 [0, 1], one per pair.

    Attributes
    ----------
    selection : Selection
    restored : list of Restored
        The core's results (run's GT window, counts, metadata, messages).
    images : list of ndarray
        (h, w) restored images: in the scoring GT window with GT, else :attr:`Restored.image`.
    inputs : list of ndarray
        (h, w) centre input frames in `low_window`.
    low_window, gt_window : IntensityWindow
        Windows of the inputs and of the GT (None without GT).
    scores : list of ImageScores or None
        None without GT.
    ssim_maps : list of ndarray or None
        (h - 10, w - 10) per image, NaN off the sample; None without GT.
    score_tile : int
        Side of the score tiles, px.
    top_half : bool
        Whether only tiles in the top half of each image were scored.
    requested_tile : int or None
        The score tile asked for when no tile of it lay on the sample of any image, so that the images
        were scored on `score_tile`, the largest that fits (or not at all, `score_tile` 0); None when
        the tile asked for was used.
    trust : list of ndarray or None
        (h, w) width of each pixel's calibrated interval, in the [0, 1] scale of `images`; None
        without trust (not asked for, or an uncalibrated run: then `trust_note` says so).
    trust_note : str or None
        Why there is no trust layer although one was asked for (how to calibrate the run).
    """

    selection: Selection
    restored: list[Restored]
    images: list[np.ndarray]
    inputs: list[np.ndarray]
    low_window: IntensityWindow
    gt_window: IntensityWindow | None = None
    scores: list[ImageScores] | None = None
    ssim_maps: list[np.ndarray] | None = None
    score_tile: int = 128
    top_half: bool = True
    requested_tile: int | None = None
    trust: list[np.ndarray] | None = None
    trust_note: str | None = None

    @property
    def scored(self) -> bool:
        """Whether any image has scores (a GT and at least one tile on its sample)."""
        return bool(self.scores) and any(s.tiles for s in self.scores)


def restore_job(
    run: str | Path, selection: Selection, options: RestoreOptions, *, score_tile: int = 128, top_half: bool = True
) -> Generator[Progress, None, RestoreResult]:
    """Restore a selection with the run (:func:`core.restore.restore_with`), then score it.

    A generator of progress events returning a :class:`RestoreResult`; closing it (a cancel) stops
    at the next event. `score_tile` and `top_half` are evaluate's ``score_tile`` and ``not all_rows``
    (:class:`~napari_temdeblur.core.evaluate.EvaluateOptions`): ``keep_rows_fraction`` is
    ``TOP_HALF_ROWS``, or None for all rows.
    """
    pairs, note = selection.pairs, None
    model, checkpoint = load_model(run, resolve_device(options.device))
    if options.trust:
        try:
            read_calibration(checkpoint)
        except Uncalibrated as exc:  # trust is on by default: an uncalibrated run restores without it
            note, options = str(exc), dataclasses.replace(options, trust=False)
    restored = yield from collect_restored(restore_with(model, checkpoint, pairs, options))
    if any(p.gt is None for p in pairs):
        low_window = suggest_window([p.low for p in pairs])
        inputs = [apply_window(p.low[len(p.low) // 2], low_window) for p in pairs]
        result = RestoreResult(selection, restored, [r.image for r in restored], inputs, low_window)
        return _with_trust(result, note)
    windows = sample_windows(pairs)
    keep_rows = TOP_HALF_ROWS if top_half else None
    # Which tiles lie on each image's sample, before scoring any: one image's windowed pair at a time.
    masks = []
    for k, pair in enumerate(pairs):
        yield Progress("finding the sample", k, len(pairs), pair.name)
        masks.append(prepare(selection.title, pair, windows, score_tile=score_tile, keep_rows_fraction=keep_rows).mask)
    requested = None
    if not any(len(evaluation_tiles(m, size=score_tile, keep_rows_fraction=keep_rows)) for m in masks):
        # Small or barred images (the demo's strips) hold no tile of the size asked for: score them on
        # the largest that fits, and say so, rather than show a table of blanks.
        requested = score_tile
        score_tile = largest_fitting_tile(masks, below=score_tile, step=SCORE_TILE_STEP, keep_rows_fraction=keep_rows)
    result = RestoreResult(
        selection, restored, [], [], windows["low"], windows["gt"], [], [], score_tile or 0, top_half, requested
    )
    for k, (pair, out) in enumerate(zip(pairs, restored)):
        yield Progress("scoring", k, len(pairs), pair.name)
        image = prepare(
            selection.title, pair, windows, score_tile=score_tile or requested, keep_rows_fraction=keep_rows
        )
        if not score_tile:  # not even the smallest tile fits: no tiles, so no scores
            image = dataclasses.replace(image, origins=image.origins[:0])
        output = apply_window(out.counts, windows["gt"])
        scores, smap = score_image(image, output)
        result.images.append(output)
        result.inputs.append(image.input)
        result.scores.append(scores)
        result.ssim_maps.append(smap)
    yield Progress("scoring", len(pairs), len(pairs))
    return _with_trust(result, note)


def _with_trust(result: RestoreResult, note: str | None) -> RestoreResult:
    """`result` with the interval widths in the scale of its images (with a GT, the scoring GT window)."""
    result.trust_note = note
    if result.restored and result.restored[0].interval_width is not None:
        result.trust = []
        for restored in result.restored:
            run, window = restored.metadata["windows"]["gt"], result.gt_window
            factor = 1.0 if window is None else (run["high"] - run["low"]) / (window.high - window.low)
            result.trust.append(restored.interval_width * np.float32(factor))
    return result
