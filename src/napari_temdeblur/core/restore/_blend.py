"""The mosaic's blending: which stream positions cover the scan, and feathered blending of the restored
parts (:mod:`._parts`) at their solved positions.

Mosaic coordinates are those of ``positions.json`` (docs/data_formats.md, "Stream positions"): stream
px, mosaic pixel (r, c) at position (r, c). A part is a restored region of frame t, whose top-left lies
at ``yx = positions[t] + origin_yx`` (sub-pixel); it is resampled onto the mosaic grid by that
fraction (bicubic) and weighted by a feather that falls towards its edges, so seams fade over FEATHER px.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ._parts import Part

#: Width (stream px) over which a part's weight rises from its edge to 1.
FEATHER = 32
#: Neighbouring parts chosen to cover the scan overlap by at least this much (stream px), where they can.
MIN_OVERLAP = 2 * FEATHER
#: Mosaic pixels whose summed weight is below this show no part (0).
MIN_WEIGHT = 1e-3
#: Mosaic rows blended at a time (memory: a band of the mosaic's width, and the parts over it).
CHUNK_ROWS = 1024
#: The mosaic's sides are padded (with 0) to multiples of this, so that each pyramid level halves the
#: one before exactly (down to 64 x 64 blocks) and every level's pixel size is a power of 2 times the stream's.
PAD = 64


def burst_box(positions, position: int, count: int, frame_shape: tuple[int, int]) -> tuple[float, ...] | None:
    """(top, left, bottom, right) in mosaic coordinates of the region every placed frame of the burst of
    `position` covers (as :func:`~napari_temdeblur.core.register.positioned_burst` cuts it); None when
    they share none."""
    n = len(positions.frames)
    first = int(np.clip(position - count // 2, 0, max(n - count, 0)))
    frames = [positions.frames[t] for t in range(first, min(first + count, n)) if positions.frames[t].flag is None]
    h, w = frame_shape
    top, left = max(f.yx[0] for f in frames), max(f.yx[1] for f in frames)
    bottom, right = min(f.yx[0] for f in frames) + h, min(f.yx[1] for f in frames) + w
    return (top, left, bottom, right) if bottom > top and right > left else None


def cover_positions(positions, count: int, frame_shape: tuple[int, int], every: int | None = None) -> list[int]:
    """The stream positions to restore: every `every`-th frame, or by default as few as cover the scan.

    The default walks along the scan (the direction of the frames' mean motion) and, from each chosen
    position, takes the farthest placed position whose burst region still overlaps the chosen one's by
    MIN_OVERLAP (or, failing that, touches it; across a gap, the next one), so the restored regions
    cover every place the stream saw (in full, where it saw it with `count` frames) once, with
    overlaps for blending.

    Parameters
    ----------
    positions : StreamPositions
    count : int
        Frames per burst.
    frame_shape : (int, int)
        (h, w) of a stream frame.
    every : int, optional
        Restore frames 0, every, 2 * every, ... (the placed ones).

    Returns
    -------
    list of int
        Frame indices, in stream order.
    """
    placed = [f.index for f in positions.placed]
    if every is not None:
        return [t for t in placed if t % every == 0]
    boxes = {t: burst_box(positions, t, count, frame_shape) for t in placed}
    boxes = {t: b for t, b in boxes.items() if b is not None}
    if not boxes:
        return []
    start, end = positions.placed[0].yx, positions.placed[-1].yx
    scan = np.subtract(end, start)
    axis = int(np.argmax(np.abs(scan)))
    sign = 1.0 if scan[axis] >= 0 else -1.0

    def span(t):  # the region's extent along the scan, increasing in the scan's direction
        lo, hi = boxes[t][axis], boxes[t][axis + 2]
        return (lo, hi) if sign > 0 else (-hi, -lo)

    order = sorted(boxes, key=lambda t: (span(t)[0], -span(t)[1]))
    return sorted(greedy_cover([(*span(t), t) for t in order]))


def greedy_cover(spans: list[tuple[float, float, int]]) -> list[int]:
    """The greedy cover of :func:`cover_positions` over (lo, hi, position) sorted by lo (then by -hi):
    after the first, each next one is the farthest-reaching among those overlapping the covered
    stretch by MIN_OVERLAP, else among those touching it, else (a gap) the next one. One pass with
    two pointers (a whole grid has tens of thousands of positions): the regions starting early enough
    to overlap are consumed once, keeping the farthest-reaching; those only touching are looked at
    anew after each choice, and there are few of them (they start within MIN_OVERLAP of the reach)."""
    chosen, reach = [spans[0][2]], spans[0][1]
    i, best = 1, None  # spans[:i] start at least MIN_OVERLAP before the reach; best: the farthest of them
    while True:
        while i < len(spans) and spans[i][0] <= reach - MIN_OVERLAP:
            if best is None or spans[i][1] > best[1]:
                best = spans[i]
            i += 1
        overlapping = best is not None and best[1] > reach
        pick = best if overlapping else None
        k = i
        while k < len(spans) and spans[k][0] <= reach:
            if not overlapping and spans[k][1] > reach and (pick is None or spans[k][1] > pick[1]):
                pick = spans[k]
            k += 1
        if pick is None:  # across a gap (no region reaches over it), the next region along the scan
            pick = next((s for s in spans[k:] if s[1] > reach), None)
            if pick is None:
                return chosen
        chosen.append(pick[2])
        reach = pick[1]


def feather(shape: tuple[int, int]) -> np.ndarray:
    """float32 `shape` weights: 1 inside, falling linearly to 1 / FEATHER at the outermost pixels."""
    ramps = [np.minimum(np.minimum(np.arange(n), np.arange(n)[::-1]) + 1, FEATHER) / FEATHER for n in shape]
    return np.minimum(ramps[0][:, None], ramps[1][None, :]).astype(np.float32)


def mosaic_shape(parts: list[Part]) -> tuple[int, int]:
    """(rows, cols) of a mosaic holding every part (mosaic pixel (0, 0) at position (0, 0)), padded to
    multiples of PAD."""
    rows = max(math.floor(p.yx[0]) + p.shape[0] + 1 for p in parts)
    cols = max(math.floor(p.yx[1]) + p.shape[1] + 1 for p in parts)
    return -(-rows // PAD) * PAD, -(-cols // PAD) * PAD


def blend_rows(parts: list[Part], rows: tuple[int, int], width: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Mosaic rows r0 ... r1 - 1 of the parts' `key` ("image" or "raw") blended with feathered weights.

    Parts are added in the given order, so the same parts give the same bits.

    Returns
    -------
    values : numpy.ndarray
        float32 (r1 - r0, width); 0 where no part lies.
    covered : numpy.ndarray
        bool (r1 - r0, width), where some part lies.
    """
    r0, r1 = rows
    total = np.zeros((r1 - r0, width), np.float64)
    weight = np.zeros((r1 - r0, width), np.float64)
    for part in parts:
        y0, x0 = math.floor(part.yx[0]), math.floor(part.yx[1])
        h, w = part.shape
        if y0 + h + 1 <= r0 or y0 >= r1:
            continue
        with np.load(part.path) as data:
            values = data[key].astype(np.float32)
        ramp = feather((h, w))
        # the sub-pixel rest of the position, by resampling onto the mosaic grid (one px larger)
        shift = np.array([[1, 0, part.yx[1] - x0], [0, 1, part.yx[0] - y0]], np.float64)
        placed, placed_weight = (
            cv2.warpAffine(a, shift, (w + 1, h + 1), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
            for a in (values * ramp, ramp)
        )
        placed_weight = np.maximum(placed_weight, 0)
        top, bottom = max(y0, r0), min(y0 + h + 1, r1)
        left, right = max(x0, 0), min(x0 + w + 1, width)
        src = (slice(top - y0, bottom - y0), slice(left - x0, right - x0))
        dst = (slice(top - r0, bottom - r0), slice(left, right))
        total[dst] += placed[src]
        weight[dst] += placed_weight[src]
    covered = weight > MIN_WEIGHT
    out = np.zeros(total.shape, np.float32)
    np.divide(total, weight, out=out, where=covered, casting="unsafe")
    return out, covered
