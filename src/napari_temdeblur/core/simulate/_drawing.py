"""Generic drawing helpers for the specimen renderers: canvas, noise fields, profiles, ellipses, lines.

Lengths are in nanometres on a :class:`_Canvas`, whose pixel (r, c) is sampled at its centre
((r + 0.5) * px, (c + 0.5) * px); noise fields live on grids fixed in nanometres, so what a generator
draws never depends on the pixel size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special
from scipy.spatial import cKDTree

_BAND_PIXELS = 1 << 20  # per-pixel work runs in row bands of about this many pixels to bound memory


@dataclass(frozen=True)
class _Canvas:
    shape: tuple[int, int]
    px: float  # pixel size, nm

    @property
    def extent(self) -> tuple[float, float]:
        return self.shape[0] * self.px, self.shape[1] * self.px

    @property
    def area_um2(self) -> float:
        return self.extent[0] * self.extent[1] * 1e-6

    def centres(self, axis: int) -> np.ndarray:
        return ((np.arange(self.shape[axis]) + 0.5) * self.px).astype(np.float32)

    def bands(self) -> Iterator[slice]:
        step = max(1, _BAND_PIXELS // self.shape[1])
        for r0 in range(0, self.shape[0], step):
            yield slice(r0, min(r0 + step, self.shape[0]))

    def uniform_points(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform((0, 0), self.extent, (n, 2))


@dataclass(frozen=True)
class _Field:
    """Smooth random field stored on a coarse grid fixed in nanometres (node j at (j - pad) * step)."""

    grid: np.ndarray
    step: float
    pad: int

    def at(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        coords = [np.asarray(y) / self.step + self.pad, np.asarray(x) / self.step + self.pad]
        return ndimage.map_coordinates(self.grid, coords, order=1, mode="nearest")

    def image(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Field on the tensor grid ``y`` x ``x`` (1-D, nm), by separable linear interpolation."""
        iy, fy = self._axis(y, 0)
        ix, fx = self._axis(x, 1)
        rows = self.grid[iy] * (1 - fy)[:, None] + self.grid[iy + 1] * fy[:, None]
        # np.take keeps C order, where rows[:, ix] would return a transposed layout that slows later maths.
        return np.take(rows, ix, axis=1) * (1 - fx) + np.take(rows, ix + 1, axis=1) * fx

    def _axis(self, t: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
        g = np.clip(t / self.step + self.pad, 0, self.grid.shape[axis] - 1.001)
        i = g.astype(np.intp)
        return i, (g - i).astype(np.float32)


def _noise(cv: _Canvas, scale_nm: float, rng: np.random.Generator) -> _Field:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``scale_nm``.

    The white noise lives on a grid of ``scale_nm / 2`` spacing in nanometres, not pixels, which keeps the
    field (and every later draw) independent of the pixel size and costs far less than a per-pixel filter.
    """
    step = max(scale_nm / 2, cv.px / 2)
    sigma = scale_nm / step
    pad = math.ceil(3 * sigma) + 2  # keeps the wrap-around of the filter outside the image
    n = [math.ceil(e / step) + 2 * pad for e in cv.extent]
    white = rng.standard_normal(n, dtype=np.float32)
    # Gaussian-filtered unit white noise has std 1 / (2 sqrt(pi) sigma) in 2-D.
    grid = ndimage.gaussian_filter(white, sigma, mode="wrap", truncate=3.0, output=white)
    grid *= np.float32(2 * math.sqrt(math.pi) * sigma)
    return _Field(grid, step, pad)


def _children(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """Independent streams per component, so one component's draws never shift another's."""
    return [np.random.default_rng(s) for s in rng.integers(0, 2**63, size=n)]


def _pixel_sigma(sigma_nm: float, px: float) -> float:
    """Blur of a feature after integration over a square pixel (box variance px^2 / 12)."""
    return math.sqrt(sigma_nm**2 + px**2 / 12)


def _edge(d: np.ndarray, sigma: float) -> np.ndarray:
    """Fraction covered by a region whose boundary lies at signed distance ``d`` (< 0 inside)."""
    return 0.5 * special.erfc(d / np.float32(math.sqrt(2) * sigma))


def _gauss_line(d: np.ndarray, sigma_nm: np.ndarray | float, px: float) -> np.ndarray:
    """Pixel-integrated Gaussian line profile of peak 1 (area preserved when the line is subpixel)."""
    s2 = sigma_nm**2 + px**2 / 12
    return np.sqrt(sigma_nm**2 / s2) * np.exp(-0.5 * d * d / s2)


def _bar(d: np.ndarray, width: np.ndarray | float, sigma: float) -> np.ndarray:
    """Flat-topped bar of ``width`` centred at d = 0 with Gaussian-blurred edges."""
    k = np.float32(1 / (math.sqrt(2) * sigma))
    return 0.5 * (special.erf((d + width / 2) * k) - special.erf((d - width / 2) * k))


@dataclass(frozen=True)
class _Patch:
    """Flattened pixels near a batch of ellipses, one entry per (ellipse, pixel) pair."""

    item: np.ndarray  # which ellipse each covered pixel belongs to
    flat: np.ndarray  # flat pixel index into the image
    y: np.ndarray  # pixel centre, nm
    x: np.ndarray
    d: np.ndarray  # signed distance to the outline, nm, negative inside
    phi: np.ndarray  # polar angle around the centre, in the ellipse's normalised frame


def _ellipse_patches(
    cv: _Canvas,
    centres: np.ndarray,
    semi: np.ndarray,
    angles: np.ndarray,
    reach_nm: float,
    wobble: np.ndarray | None = None,
    budget: int = 1 << 21,
) -> Iterator[_Patch]:
    """Pixels within ``reach_nm`` outside each ellipse, with their signed distance to its outline.

    ``centres`` (n, 2) and ``semi`` (n, 2) are (y, x) and (a, b) in nm; ``angles`` orient axis a from the
    column axis towards the row axis. ``wobble`` (n, k, 2) holds amplitude and phase of harmonics 2..k+1
    of the radius, which makes outlines irregular. Patches are cut in chunks of about ``budget`` pixels.
    """
    if len(centres) == 0:
        return
    f32 = np.float32
    centres, a, b = centres.astype(f32), semi[:, 0].astype(f32), semi[:, 1].astype(f32)
    cos, sin = np.cos(angles).astype(f32), np.sin(angles).astype(f32)
    grow = 1 + (np.zeros(len(a), f32) if wobble is None else wobble[..., 0].sum(axis=1))
    # Normalised radius beyond which a pixel is farther than reach_nm outside the outline.
    limit = (grow + (reach_nm + cv.px) / np.minimum(a, b)).astype(f32)
    # Half extents (y, x) of the rotated ellipse's bounding box; patches come in a few sizes and never
    # exceed the image, so a large ellipse over a small image costs no more than the image.
    half = np.stack([np.hypot(a * sin, b * cos), np.hypot(a * cos, b * sin)], 1) * grow[:, None] + reach_nm
    visible = np.all((centres + half > 0) & (centres - half < np.asarray(cv.extent)), axis=1)
    shape = np.asarray(cv.shape)
    sizes = np.minimum(8 * np.ceil((2 * half / cv.px + 3) / 8).astype(int), shape)
    harmonics = np.arange(2, 2 + (0 if wobble is None else wobble.shape[1]), dtype=f32)
    for size in np.unique(sizes[visible], axis=0):
        members = np.flatnonzero(visible & (sizes == size).all(axis=1))
        for ids in np.array_split(members, math.ceil(len(members) * size.prod() / budget)):
            # Shifting a clipped patch into the image keeps every pixel of the ellipse that lies inside.
            r0 = np.clip(np.rint(centres[ids] / cv.px - size / 2).astype(int), 0, shape - size)
            rr = r0[:, 0, None, None] + np.arange(size[0])[None, :, None]
            cc = r0[:, 1, None, None] + np.arange(size[1])[None, None, :]
            dy = ((rr + 0.5) * cv.px).astype(f32) - centres[ids, 0, None, None]
            dx = ((cc + 0.5) * cv.px).astype(f32) - centres[ids, 1, None, None]
            c, s = cos[ids, None, None], sin[ids, None, None]
            u, v = (dx * c + dy * s) / a[ids, None, None], (dy * c - dx * s) / b[ids, None, None]
            rho = np.hypot(u, v)
            keep = rho < limit[ids, None, None]
            item = np.broadcast_to(ids[:, None, None], keep.shape)[keep]
            rr, cc = np.broadcast_to(rr, keep.shape)[keep], np.broadcast_to(cc, keep.shape)[keep]
            u, v, rho = u[keep], v[keep], rho[keep]
            phi = np.arctan2(v, u)
            radius = np.ones_like(rho)
            if wobble is not None:
                w = wobble[item].astype(f32)
                radius += (w[..., 0] * np.cos(harmonics * phi[:, None] + w[..., 1])).sum(axis=-1)
            # First-order distance: rho is 1-homogeneous, so |grad rho| = |(u/a, v/b)| / rho.
            grad = np.hypot(u / a[item], v / b[item]) / np.maximum(rho, f32(1e-6))
            d = (rho - radius) / np.maximum(grad, f32(1e-9))
            y, x = ((rr + 0.5) * cv.px).astype(f32), ((cc + 0.5) * cv.px).astype(f32)
            yield _Patch(item, rr * cv.shape[1] + cc, y, x, d, phi)


def _add_ellipses(
    out: np.ndarray,
    cv: _Canvas,
    centres: np.ndarray,
    semi: np.ndarray,
    angles: np.ndarray,
    values: np.ndarray,
    edge_nm: float,
    wobble: np.ndarray | None = None,
) -> None:
    """Add ``values`` times each (anti-aliased) ellipse's coverage to the image ``out`` in place."""
    sigma = _pixel_sigma(edge_nm, cv.px)
    for p in _ellipse_patches(cv, centres, semi, angles, 4 * sigma, wobble):
        np.add.at(out.reshape(-1), p.flat, values[p.item] * _edge(p.d, sigma))


def _wobble(rng: np.random.Generator, n: int, strength: float, k: int = 4) -> np.ndarray:
    amp = strength * rng.uniform(0, 1, (n, k)) / np.arange(1, k + 1)
    return np.stack([amp, rng.uniform(0, 2 * np.pi, (n, k))], axis=-1)


def _draw_polylines(cv: _Canvas, curves: np.ndarray, amp: np.ndarray, sigma_nm: float) -> np.ndarray:
    """Image of Gaussian-profile lines (peak ``amp``, std ``sigma_nm``) along polylines (n, m, 2) in nm.

    Each line is sampled every half pixel; the samples' mass is splatted bilinearly and blurred, which
    keeps the line integral (so the look after pixel integration) the same at every pixel size.
    """
    out = np.zeros(cv.shape, np.float32)
    length = np.hypot(*np.moveaxis(np.diff(curves, axis=1), -1, 0)).sum(axis=1)
    for ids in np.array_split(np.arange(len(curves)), math.ceil(2 * length.sum() / cv.px / 2**20) or 1):
        _splat_polylines(out, cv, curves[ids], amp[ids] * math.sqrt(2 * math.pi) * sigma_nm)
    # The bilinear splat already blurs with variance px^2 / 6; pixel integration wants px^2 / 12 extra.
    residual = math.sqrt(max(sigma_nm**2 - cv.px**2 / 12, (0.3 * cv.px) ** 2)) / cv.px
    return ndimage.gaussian_filter(out, residual, truncate=3.0, output=out)


def _splat_polylines(out: np.ndarray, cv: _Canvas, curves: np.ndarray, density: np.ndarray) -> None:
    """Add the mass of polylines (n, m, 2) in nm, ``density`` per nm of length, to ``out`` bilinearly."""
    p0 = curves[:, :-1].reshape(-1, 2)
    seg = np.diff(curves, axis=1).reshape(-1, 2)
    density = np.repeat(density, curves.shape[1] - 1)
    # Only segments that touch the image are sampled, so off-image parts of long curves cost nothing.
    low, high = np.minimum(p0, p0 + seg), np.maximum(p0, p0 + seg)
    near = np.all((high > -cv.px) & (low < np.add(cv.extent, cv.px)), axis=1)
    p0, seg, density = p0[near], seg[near], density[near]
    length = np.hypot(seg[:, 0], seg[:, 1])
    k = np.maximum(np.ceil(length / (cv.px / 2)).astype(int), 1)
    s = np.repeat(np.arange(len(seg)), k)
    t = (np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k) + 0.5) / k[s]
    pts = (p0[s] + t[:, None] * seg[s]) / cv.px - 0.5  # fractional pixel-centre index
    mass = (density * length / k)[s] / cv.px**2
    base = np.floor(pts).astype(int)
    frac = pts - base
    for oy in (0, 1):
        for ox in (0, 1):
            r, c = base[:, 0] + oy, base[:, 1] + ox
            w = mass * np.abs(1 - oy - frac[:, 0]) * np.abs(1 - ox - frac[:, 1])
            ok = (r >= 0) & (r < cv.shape[0]) & (c >= 0) & (c < cv.shape[1])
            np.add.at(out.reshape(-1), r[ok] * cv.shape[1] + c[ok], w[ok].astype(np.float32))


def _random_curves(
    rng: np.random.Generator, starts: np.ndarray, lengths: np.ndarray, bend: float, m: int = 48
) -> np.ndarray:
    """Smoothly bending polylines (n, m, 2) in nm from ``starts`` (n, 2); larger ``bend`` turns more.

    The heading follows smoothed random turns normalised so that each curve turns by about
    ``bend / 2`` radians (rms) end to end, whatever its length.
    """
    n = len(starts)
    turns = ndimage.gaussian_filter1d(rng.normal(0, 1, (n, m - 1)), 4, axis=1)
    turns *= bend / np.sqrt(np.mean(turns**2, axis=1, keepdims=True)) / m
    theta = rng.uniform(0, 2 * np.pi, (n, 1)) + np.cumsum(turns, axis=1)
    ds = (lengths / (m - 1))[:, None]
    steps = np.stack([np.sin(theta) * ds, np.cos(theta) * ds], axis=-1)
    return np.concatenate([starts[:, None], starts[:, None] + np.cumsum(steps, axis=1)], axis=1)


def _log_uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(low), math.log(high), n))


def _non_overlapping(centres: np.ndarray, radii: np.ndarray, gap: float) -> np.ndarray:
    """Indices of a greedy subset of disks, in draw order, that keep ``gap`` nm apart."""
    clash = [[] for _ in centres]
    for i, j in cKDTree(centres).query_pairs(2 * radii.max() + gap if len(radii) else 0):
        if np.hypot(*(centres[i] - centres[j])) < radii[i] + radii[j] + gap:
            clash[max(i, j)].append(min(i, j))
    kept = np.zeros(len(centres), bool)
    for i, earlier in enumerate(clash):
        kept[i] = not kept[earlier].any()
    return np.flatnonzero(kept)
