"""Tiled inference: a network applied to a burst of any size in overlapping, blended tiles.

Images are (row, col); bursts are (frame, row, col).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from napari_temdeblur.core import Progress
from napari_temdeblur.core.imaging import IntensityWindow, apply_window

from ._options import RestoreOptions


@dataclass(frozen=True)
class TileProgress(Progress):
    """A batch of tiles of one image restored: ``done`` of ``total`` tiles of this image.

    Yielded after every forward pass, so a cancel (GeneratorExit at the yield) stops within one batch
    of tiles, even in an image of thousands of tiles.
    """


def _reflect_index(length: int, before: int, size: int) -> np.ndarray:
    """Indices into an axis of `size` pixels for a window of `length` starting `before` pixels early.

    Positions outside the axis are mirrored (numpy's ``reflect`` mode, repeated for long pads), so
    tiles are cut from the unpadded array without ever allocating a padded copy of the burst.
    """
    index = np.arange(-before, length - before)
    if size == 1:
        return np.zeros(length, dtype=np.intp)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    return np.where(index >= size, period - index, index).astype(np.intp)


def tile_layout(size: int, tile: int, overlap: int, multiple: int) -> tuple[int, int, list[int]]:
    """(padded length, tile length, tile origins) along one axis; the padding is centred on the image.

    ``overlap // 2`` mirrored context is added on both sides so border pixels see the same kind of
    surroundings as interior ones, then the total is rounded up to a multiple of the network's stride.
    """
    need = size + 2 * (overlap // 2)
    if need <= tile:
        length = -(-need // multiple) * multiple
        return length, length, [0]
    length = -(-need // multiple) * multiple
    step = tile - overlap
    origins = list(range(0, length - tile, step)) + [length - tile]
    return length, tile, origins


def _profile(tile: int, overlap: int, before: bool, after: bool) -> np.ndarray:
    """Blending weight along one tile axis: 0 for ``overlap // 4`` px at an edge shared with a neighbour
    tile, a raised-cosine ramp over the middle of the overlap, 1 elsewhere.

    The zero guard keeps every pixel's result away from the tile edges where the network saw no context.
    """
    weight = np.ones(tile, dtype=np.float32)
    guard = overlap // 4
    ramp = overlap - 2 * guard
    if ramp <= 0:
        return weight
    edge = np.zeros(guard + ramp, dtype=np.float32)
    edge[guard:] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    if before:
        weight[: guard + ramp] = edge
    if after:
        weight[tile - guard - ramp :] = np.minimum(weight[tile - guard - ramp :], edge[::-1])
    return weight


def model_device(model: nn.Module) -> torch.device:
    """The device holding the model's parameters (the CPU for an exported model, which has none)."""
    parameter = next(iter(model.parameters()), None)
    return torch.device("cpu") if parameter is None else parameter.device


#: The inference tile of a network that names none (``inference_tile`` class attribute).
DEFAULT_TILE = 128


def with_tile(model: nn.Module, options: RestoreOptions) -> RestoreOptions:
    """`options` with its inference tile chosen: the one given, else the network's own
    (``inference_tile`` class attribute, :data:`DEFAULT_TILE` when it has none)."""
    if options.inference_tile is not None:
        return options
    return dataclasses.replace(options, inference_tile=int(getattr(model, "inference_tile", DEFAULT_TILE)))


def check_tiling(model: nn.Module, options: RestoreOptions) -> int:
    """Check the tiling of `options` for `model`; returns its ``size_multiple``. ValueError naming the value."""
    multiple = int(getattr(model, "size_multiple", 1))
    tile, overlap = options.inference_tile, options.overlap
    if tile < multiple or tile % multiple:
        raise ValueError(f"inference_tile must be a positive multiple of {multiple} for this network, got {tile}")
    if not 0 <= overlap <= tile // 2:
        raise ValueError(f"overlap must be between 0 and inference_tile / 2 = {tile // 2} px, got {overlap}")
    return multiple


def restore_burst(
    model: nn.Module,
    burst: np.ndarray,
    options: RestoreOptions | None = None,
    *,
    stage: str = "restore",
    window: IntensityWindow | None = None,
) -> Generator[TileProgress, None, np.ndarray]:
    """Restore one registered burst with `model`, tile by tile, as a generator of :class:`TileProgress`
    (``drain(restore_burst(...))`` returns the image).

    The burst is cut into ``inference_tile`` x ``inference_tile`` tiles overlapping by ``overlap`` px
    (mirror-padded at the image border and up to a multiple of the network's ``size_multiple``),
    restored ``batch`` tiles at a time in eval mode without gradients, and blended with
    :func:`_profile` weights. An image smaller than one tile is restored as a single padded tile.

    Pixels equal untiled inference (to float rounding) when the network's receptive radius is at most
    ``overlap // 4``, except within that radius of the image border, which tiles mirror-pad while a
    plain pass pads as the network does. The UNets of this package see much farther, so for them tiles
    differ from an untiled pass by the context beyond the tile; the ramp blends that without seams, and
    a larger tile makes it smaller.

    Parameters
    ----------
    model : torch.nn.Module
        (B, N, h, w) -> (B, 1, h, w) network; its class attribute ``size_multiple`` (default 1) is the
        stride h and w must be multiples of.
    burst : ndarray
        (N, H, W) frames in [0, 1], the centre frame at ``N // 2``; any real dtype (cast per tile). With
        `window`, detector counts instead.
    options : RestoreOptions, optional
        ``inference_tile`` (a multiple of the network's ``size_multiple``), ``overlap``
        (``0 <= overlap <= inference_tile // 2``) and ``batch`` (tiles per forward pass) are used.
    stage : str
        Stage of the progress events (e.g. ``"restore sess2_im5"``).
    window : IntensityWindow, optional
        Map each tile of counts to [0, 1] through this window as it is cut
        (:func:`~napari_temdeblur.core.imaging.apply_window`, the same values as windowing the whole
        burst first), so that a large burst is never held as floats: a 4096 x 4096 x 5 burst of uint16
        counts would need another 335 MB.

    Yields
    ------
    TileProgress
        After each forward pass (the place where a cancel is honoured).

    Returns
    -------
    ndarray
        float32 (H, W), clipped to [0, 1].
    """
    (image,) = yield from restore_passes(model, burst, options, stage=stage, window=window)
    return image


def restore_passes(
    model: nn.Module,
    burst: np.ndarray,
    options: RestoreOptions | None = None,
    *,
    stage: str = "restore",
    window: IntensityWindow | None = None,
    mirrored: bool = False,
) -> Generator[TileProgress, None, tuple[np.ndarray, ...]]:
    """:func:`restore_burst`, and with `mirrored` also each tile restored mirrored left-right (a second
    forward pass on the same tiles, its output mirrored back), blended alike: a test-time variation for
    the trust intervals that cuts, pads and windows the burst once for both passes.

    Returns
    -------
    tuple of ndarray
        ``(image,)``, or ``(image, mirrored_image)`` with `mirrored`; float32 (H, W) each, in [0, 1].
    """
    if not hasattr(burst, "shape"):
        burst = np.asarray(burst)
    if burst.ndim != 3 or min(burst.shape) < 1:
        raise ValueError(f"a burst must be (frames, rows, cols), got shape {tuple(burst.shape)}")
    options = with_tile(model, options or RestoreOptions())
    multiple = check_tiling(model, options)
    tile, overlap, batch = options.inference_tile, options.overlap, options.batch
    device = model_device(model)  # tiles go where the model is
    _, height, width = burst.shape
    (len_y, tile_y, origins_y), (len_x, tile_x, origins_x) = (
        tile_layout(height, tile, overlap, multiple),
        tile_layout(width, tile, overlap, multiple),
    )
    top, left = (len_y - height) // 2, (len_x - width) // 2
    rows, cols = _reflect_index(len_y, top, height), _reflect_index(len_x, left, width)
    passes = 2 if mirrored else 1
    out = [np.zeros((height, width), dtype=np.float32) for _ in range(passes)]  # apart: each freed alone
    weights = np.zeros((height, width), dtype=np.float32)
    tiles = [(y, x) for y in origins_y for x in origins_x]
    model.eval()
    for start in range(0, len(tiles), batch):
        chunk = tiles[start : start + batch]
        inputs = np.stack([burst[:, rows[y : y + tile_y, None], cols[None, x : x + tile_x]] for y, x in chunk])
        if window is not None:
            inputs = apply_window(inputs, window)
        inputs = inputs.astype(np.float32, copy=False)
        with torch.inference_mode():  # not held across the yield: the consumer may run torch code meanwhile
            preds = [model(torch.from_numpy(inputs).to(device))[:, 0].float().cpu().numpy()]
            if mirrored:  # two calls, not one batch of two: on the CPU a batch of two is slower
                flipped = model(torch.from_numpy(np.ascontiguousarray(inputs[..., ::-1])).to(device))
                preds.append(flipped[:, 0].float().cpu().numpy()[..., ::-1])
        for k, (y, x) in enumerate(chunk):
            weight = np.outer(
                _profile(tile_y, overlap, y > 0, y + tile_y < len_y),
                _profile(tile_x, overlap, x > 0, x + tile_x < len_x),
            )
            # the part of the tile inside the image, in image and in tile coordinates
            y0, y1 = max(y - top, 0), min(y + tile_y - top, height)
            x0, x1 = max(x - left, 0), min(x + tile_x - left, width)
            if y0 >= y1 or x0 >= x1:
                continue
            ty, tx = slice(y0 + top - y, y1 + top - y), slice(x0 + left - x, x1 + left - x)
            for n in range(passes):
                out[n][y0:y1, x0:x1] += preds[n][k][ty, tx] * weight[ty, tx]
            weights[y0:y1, x0:x1] += weight[ty, tx]
        yield TileProgress(stage, min(start + batch, len(tiles)), len(tiles))
    for image in out:
        image /= weights
        np.clip(image, 0.0, 1.0, out=image)
    return tuple(out)
