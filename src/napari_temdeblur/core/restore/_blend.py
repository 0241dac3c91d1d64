"""The mosaic's blending: which stream positions cover the scan, and feathered blending of the restored
parts (:mod:`._parts`) at their solved positions.

Mosaic coordinates are those of ``positions.json`` (docs/data_formats.md, "Stream positions"): stream
px, mosaic pixel (r, c) at position (r, c). A part is a restored region of frame t, whose top-left lies
at ``yx = positions[t] + origin_yx`` (sub-pixel); it is resampled onto the mosaic grid by that
fraction (bicubic) and weighted by a feather that falls towards its edges, so seams fade over FEATHER px.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from napari_temdeblur.core.register import burst_frames

from ._parts import Part

#: Width (stream px) over which a part's weight rises from its edge to 1.
FEATHER = 32
#: Neighbouring parts chosen to cover the scan overlap by at least this much (stream px), where they can.
MIN_OVERLAP = 2 * FEATHER
#: Uncovered ground (stream px along the scan) a restored position must add to be worth restoring.
GAP_PX = 2.0
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
    indices, _ = burst_frames(position, n, min(count, n))
    frames = [positions.frames[t] for t in indices if positions.frames[t].flag is None]
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
    spans = scan_spans(positions, count, frame_shape, placed)
    if not spans:
        return []
    order = sorted(spans, key=lambda t: (spans[t][0], -spans[t][1]))
    return sorted(greedy_cover([(*spans[t], t) for t in order]))


def scan_spans(positions, count: int, frame_shape: tuple[int, int], candidates) -> dict[int, tuple[float, float]]:
    """Position -> (lo, hi): the extent of its burst region (:func:`burst_box`) along the scan (the axis
    of the placed frames' overall motion), increasing in the scan's direction; candidates whose burst
    shares no region are left out."""
    boxes = {t: burst_box(positions, t, count, frame_shape) for t in candidates}
    boxes = {t: b for t, b in boxes.items() if b is not None}
    if not boxes:
        return {}
    scan = np.subtract(positions.placed[-1].yx, positions.placed[0].yx)
    axis = int(np.argmax(np.abs(scan)))
    if scan[axis] >= 0:
        return {t: (b[axis], b[axis + 2]) for t, b in boxes.items()}
    return {t: (-b[axis + 2], -b[axis]) for t, b in boxes.items()}


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


def uncovered(span: tuple[float, float], covered: list[tuple[float, float]], limit: float = math.inf) -> float:
    """Length of `span` (lo, hi), cut at `limit`, that the merged, sorted intervals `covered` leave out."""
    lo, hi = span[0], min(span[1], limit)
    free = max(0.0, hi - lo)
    for a, b in covered:
        free -= max(0.0, min(b, hi) - max(a, lo))
    return free


def merged(spans) -> list[tuple[float, float]]:
    """The union of (lo, hi) intervals as sorted, disjoint intervals."""
    out: list[list[float]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


def next_live_position(spans: dict, restored: set, final: bool = False) -> int | None:
    """The next stream position to restore while frames arrive (docs/live.md, "Which positions").

    At the front of the scan, nothing is restored while the newest restorable position still overlaps
    the restored regions by MIN_OVERLAP; once it does not, the farthest-reaching position that does is
    restored, as :func:`greedy_cover` walks, or, when the newest leaves a gap (restoration fell behind),
    the newest itself, so the restored front never falls further behind. With no need at the front
    (spare time), the positions of the scan's greedy cover that would fill a gap behind the front of
    more than GAP_PX, newest first; with `final` (the stream has stopped), the gaps up to the end too.

    Parameters
    ----------
    spans : dict of int -> (float, float)
        The restorable positions' burst regions along the scan (:func:`scan_spans`).
    restored : set of int
        Positions restored already.
    final : bool

    Returns
    -------
    int or None
        None: nothing to restore now.
    """
    if not spans:
        return None
    done = [spans[t] for t in restored if t in spans]
    newest = max(spans)
    if not done:
        return newest
    reach = max(hi for _, hi in done)
    lo, hi = spans[newest]
    if not final and hi > reach and lo > reach - MIN_OVERLAP and newest not in restored:
        if lo > reach:
            return newest
        reaching = [t for t, (a, b) in spans.items() if a <= reach - MIN_OVERLAP and b > reach and t not in restored]
        return max(reaching, key=lambda t: (spans[t][1], t)) if reaching else newest
    covered = merged(done)
    order = sorted(spans, key=lambda t: (spans[t][0], -spans[t][1]))
    for t in sorted(greedy_cover([(*spans[t], t) for t in order]), reverse=True):
        if t not in restored and uncovered(spans[t], covered, math.inf if final else reach) > GAP_PX:
            return t
    return None


@functools.lru_cache(maxsize=8)
def feather(shape: tuple[int, int]) -> np.ndarray:
    """float32 `shape` weights: 1 inside, falling linearly to 1 / FEATHER at the outermost pixels.

    Read-only and kept per shape: the parts of a mosaic share a few shapes, and every band of rows a
    part reaches into weighs it again.
    """
    ramps = [np.minimum(np.minimum(np.arange(n), np.arange(n)[::-1]) + 1, FEATHER) / FEATHER for n in shape]
    weights = np.minimum(ramps[0][:, None], ramps[1][None, :]).astype(np.float32)
    weights.setflags(write=False)
    return weights


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
