"""Ground-truth specimen textures for the TEM stream simulator.

A specimen is a map of electron transmission in [0, 1], sampled at pixel centres: pixel (r, c) covers
the square whose centre lies at ((r + 0.5) * px, (c + 0.5) * px) nanometres. All geometry is defined in
nanometres and drawn from the generator independently of the pixel size, so one seed renders the same
physical specimen at the HQ pixel (15.625 nm) and at the stream pixel (31.25 nm).

Stained material is modelled as a projected mass thickness ``D`` and turned into transmission with
Beer-Lambert, ``T = exp(-D)``: overlapping structures darken the way they do in a TEM, and T never
reaches 0, which stays reserved for the opaque bars of the support grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special
from scipy.spatial import cKDTree

SPECIMENS: tuple[str, ...] = ("kidney", "grid", "spots", "lines", "crosslines")

GRATING_PERIOD_NM = 1e6 / 2160  # cross-grating replica with 2160 lines/mm
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


# --- kidney tissue section -------------------------------------------------------------------------

_CELL_SPACING_NM = 8000.0  # jittered seed lattice: polygonal cells of about 5-15 um
_NODE_NM = 1000.0  # coarse grid on which each pixel's candidate cell seeds are looked up
_WARP_MARGIN_NM = 3000.0  # beyond the largest boundary displacement of the warp fields
_INTERSTITIUM_LEVEL = 1.1  # threshold on a unit-variance field: about 14 % of the area


def _cell_seeds(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Jittered, row-staggered lattice of cell centres (n, 2) in nm, extending past the image."""
    margin = 1.5 * _CELL_SPACING_NM
    ny, nx = (math.ceil((e + 2 * margin) / _CELL_SPACING_NM) for e in cv.extent)
    i, j = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    lattice = np.stack([i + 0.5, j + 0.5 + 0.5 * (i % 2)], axis=-1).reshape(-1, 2)
    return (lattice + rng.uniform(-0.42, 0.42, lattice.shape)) * _CELL_SPACING_NM - margin


def _seed_table(cv: _Canvas, seeds: np.ndarray) -> np.ndarray:
    """The 4 nearest seeds of each 1 um node; a pixel's two nearest seeds are among its node's four.

    With cells about 8x larger than a node, that fails only where four seeds are nearly equidistant,
    right at a cell corner, and then picks an almost identical boundary.
    """
    n = [math.ceil((e + 2 * _WARP_MARGIN_NM) / _NODE_NM) for e in cv.extent]
    iy, ix = np.meshgrid(*(np.arange(k) for k in n), indexing="ij")
    nodes = (np.stack([iy, ix], axis=-1).reshape(-1, 2) + 0.5) * _NODE_NM - _WARP_MARGIN_NM
    _, idx = cKDTree(seeds).query(nodes, k=4)
    return idx.astype(np.int32).reshape(n[0], n[1], 4)


def _voronoi(
    seeds: np.ndarray, table: np.ndarray, y: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest seed (cell label) and distance (nm) to the nearest cell boundary at points ``y, x``."""
    iy = np.clip(((y + _WARP_MARGIN_NM) / _NODE_NM).astype(np.intp), 0, table.shape[0] - 1)
    ix = np.clip(((x + _WARP_MARGIN_NM) / _NODE_NM).astype(np.intp), 0, table.shape[1] - 1)
    node = iy * table.shape[1] + ix
    candidates = table.reshape(-1, table.shape[2])
    sy, sx = seeds[:, 0].astype(np.float32), seeds[:, 1].astype(np.float32)
    # Running nearest and second-nearest over the candidates, one 2-D array at a time.
    d1 = np.full(y.shape, np.inf, np.float32)
    d2 = d1.copy()
    i1 = np.zeros(y.shape, np.int32)
    i2 = i1.copy()
    for k in range(candidates.shape[1]):
        c = candidates[node, k]
        d = (y - sy[c]) ** 2 + (x - sx[c]) ** 2
        first, second = d < d1, d < d2
        d2 = np.where(first, d1, np.where(second, d, d2))
        i2 = np.where(first, i1, np.where(second, c, i2))
        d1 = np.where(first, d, d1)
        i1 = np.where(first, c, i1)
    # Exact distance to the bisector between the two nearest seeds: the local cell boundary.
    return i1, (d2 - d1) / (2 * np.hypot(sy[i1] - sy[i2], sx[i1] - sx[i2]))


def _kidney_nuclei(
    cv: _Canvas, rng: np.random.Generator, seeds: np.ndarray, shift: np.ndarray, fibroblast: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and mass thickness of the nuclei: mottled chromatin, dark envelope, nucleoli."""
    n = len(seeds)
    spacing = cKDTree(seeds).query(seeds, k=2)[0][:, 1]
    present = rng.random(n) < np.where(fibroblast, 0.3, 0.75)
    a = np.minimum(rng.uniform(1500, 3000, n), 0.4 * spacing)
    # Interstitial (fibroblast-like) nuclei are thin and elongated; epithelial ones are rounder.
    semi = np.stack([a, a * np.where(fibroblast, rng.uniform(0.25, 0.45, n), rng.uniform(0.6, 0.95, n))], 1)
    angles = rng.uniform(0, np.pi, n)
    centres = seeds - shift + rng.normal(0, 300, (n, 2))
    wobble = _wobble(rng, n, 0.12)
    chromatin = (_noise(cv, 150, rng), _noise(cv, 450, rng))
    # Nucleoli: dense round bodies well inside the nucleus (within 0.4 of its minor semi-axis).
    has_nucleolus = present & (rng.random(n) < 0.5)
    nucleolus_centres = centres + rng.uniform(-0.4, 0.4, (n, 2)) * semi[:, 1:]
    nucleolus_semi = np.repeat(rng.uniform(300, 650, (n, 1)), 2, 1)
    nucleolus_mass = rng.uniform(0.3, 0.5, n)

    cover = np.zeros(cv.shape, np.float32)
    mass = np.zeros(cv.shape, np.float32)
    sigma = _pixel_sigma(20, cv.px)
    keep = np.flatnonzero(present)
    for p in _ellipse_patches(cv, centres[keep], semi[keep], angles[keep], 4 * sigma + 100, wobble[keep]):
        inside = _edge(p.d, sigma)
        mottle = 0.6 * chromatin[0].at(p.y, p.x) + 0.8 * chromatin[1].at(p.y, p.x)
        clumps = 1 / (1 + np.exp(-4 * (mottle - 0.4)))
        # Heterochromatin lines the inside of the envelope, decaying over ~250 nm.
        dense = 0.45 + 0.35 * clumps + 0.25 * np.exp(np.minimum(p.d, 0) / 250)
        np.add.at(cover.reshape(-1), p.flat, inside)
        np.add.at(mass.reshape(-1), p.flat, inside * dense + 0.35 * _gauss_line(p.d + 30, 20, cv.px))
    k = np.flatnonzero(has_nucleolus)
    _add_ellipses(
        mass, cv, nucleolus_centres[k], nucleolus_semi[k], angles[k], nucleolus_mass[k], 40, _wobble(rng, len(k), 0.2)
    )
    return np.minimum(cover, 1), mass


def _kidney_organelles(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Mass thickness of cytoplasmic content: fine membranes, granules, elongated mitochondria."""
    # Short, curved membranes of the endoplasmic reticulum and vesicles; drawn first so that the
    # blurred line image can take the other organelles in place.
    n = rng.poisson(0.4 * cv.area_um2)
    curves = _random_curves(rng, cv.uniform_points(rng, n), rng.uniform(300, 1500, n), 2.5)
    out = _draw_polylines(cv, curves, rng.uniform(0.1, 0.25, n), 15)

    n = rng.poisson(0.5 * cv.area_um2)
    a = _log_uniform(rng, 50, 250, n)
    dark = rng.choice([0.45, 0.85, 1.55], n, p=[0.7, 0.2, 0.1]) * rng.uniform(0.8, 1.2, n)
    semi = np.stack([a, a * rng.uniform(0.6, 1, n)], 1)
    _add_ellipses(out, cv, cv.uniform_points(rng, n), semi, rng.uniform(0, np.pi, n), dark, 15)

    # Mitochondria align with their neighbours, as in tubule cells, following a smooth orientation field;
    # their matrix is mottled and their outer membrane slightly darker.
    n = rng.poisson(0.35 * cv.area_um2)
    centres = cv.uniform_points(rng, n)
    angles = np.pi * _noise(cv, 6000, rng).at(centres[:, 0], centres[:, 1]) + rng.normal(0, 0.25, n)
    semi = np.stack([rng.uniform(350, 1000, n), rng.uniform(125, 200, n)], 1)
    amp = rng.uniform(0.2, 0.45, n)
    matrix = _noise(cv, 80, rng)
    sigma = _pixel_sigma(20, cv.px)
    for p in _ellipse_patches(cv, centres, semi, angles, 4 * sigma, _wobble(rng, n, 0.05)):
        texture = 1 + 0.3 * matrix.at(p.y, p.x)
        value = amp[p.item] * _edge(p.d, sigma) * texture + 0.12 * _gauss_line(p.d + 15, 12, cv.px)
        np.add.at(out.reshape(-1), p.flat, value)
    return out


def _kidney_fibres(cv: _Canvas, rng: np.random.Generator, interstitium: _Field) -> np.ndarray:
    """Mass thickness of curved collagen-like bundles of parallel fibrils, started in the interstitium."""
    starts = cv.uniform_points(rng, rng.poisson(0.3 * cv.area_um2))
    starts = starts[interstitium.at(starts[:, 0], starts[:, 1]) > _INTERSTITIUM_LEVEL - 0.3]
    n, m = len(starts), 48
    spines = _random_curves(rng, starts, rng.uniform(3000, 10000, n), 2.0, m)
    per_bundle = rng.integers(3, 10, n)
    bundle = np.repeat(np.arange(n), per_bundle)
    rank = np.arange(len(bundle)) - np.repeat(np.cumsum(per_bundle) - per_bundle, per_bundle)
    spacing = rng.uniform(70, 130, n)[bundle]
    offset = (rank - (per_bundle[bundle] - 1) / 2) * spacing
    wiggle = ndimage.gaussian_filter1d(rng.normal(0, 1, (len(bundle), m)), 3, axis=1) * 150
    tangent = np.gradient(spines, axis=1)[bundle]
    tangent /= np.linalg.norm(tangent, axis=-1, keepdims=True)
    normal = np.stack([tangent[..., 1], -tangent[..., 0]], -1)
    fibrils = spines[bundle] + normal * (offset[:, None] + wiggle)[..., None]
    amp = rng.uniform(0.3, 0.45, len(bundle))
    thick = rng.random(len(bundle)) < 0.4
    out = _draw_polylines(cv, fibrils[~thick], amp[~thick], 25)
    out += _draw_polylines(cv, fibrils[thick], amp[thick], 50)
    return out


def _kidney_lumens(cv: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of the lumens and mass of their linings.

    Lumens are empty, bright spaces lined by a thin dark rim; tubular ones carry a brush border of
    microvilli, fine lines about 120 nm apart reaching from the rim into the lumen.
    """
    n = rng.poisson(cv.area_um2 / 300)
    a = rng.uniform(1000, 4000, n)
    semi = np.stack([a, a * rng.uniform(0.4, 0.9, n)], 1)
    centres, angles, wobble = cv.uniform_points(rng, n), rng.uniform(0, np.pi, n), _wobble(rng, n, 0.25)
    brush = 0.3 * (rng.random(n) < 0.6)
    depth = np.minimum(rng.uniform(600, 1200, n), 0.4 * semi[:, 1])  # never converging to the centre
    villi = np.rint(np.pi * semi.sum(1) / 120)
    # Overlapping lumens would show each other's rims inside; keep them apart.
    keep = _non_overlapping(centres, a * (1 + wobble[..., 0].sum(axis=1)), gap=500)
    cover = np.zeros(cv.shape, np.float32)
    lining = np.zeros(cv.shape, np.float32)
    sigma = _pixel_sigma(25, cv.px)
    for p in _ellipse_patches(cv, centres[keep], semi[keep], angles[keep], 200, wobble[keep]):
        i = keep[p.item]
        inside = _edge(p.d, sigma)
        fringe = inside * _edge(-p.d - depth[i], 60) * np.cos(villi[i] * p.phi / 2) ** 8
        np.add.at(cover.reshape(-1), p.flat, inside)
        np.add.at(lining.reshape(-1), p.flat, 0.35 * _gauss_line(p.d - 50, 35, cv.px) + brush[i] * fringe)
    return np.minimum(cover, 1, out=cover), lining


def _kidney(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Tubule cells with membranes, nuclei and organelles; interstitium with fibres; lumens."""
    r = _children(rng, 8)
    seeds = _cell_seeds(cv, r[0])
    table = _seed_table(cv, seeds)
    tone = r[0].normal(0, 0.05, len(seeds)).astype(np.float32)
    membrane_sigma = (r[0].uniform(50, 100, len(seeds)) / 2.355).astype(np.float32)  # FWHM 50-100 nm
    warp = [_noise(cv, s, r[1]) for s in (1500, 1500, 350, 350)]
    # Band-limited cytoplasm texture from cell-scale shading down to the fine granularity of ribosomes.
    cytoplasm = [(_noise(cv, s, r[2]), w) for s, w in ((2500, 0.05), (700, 0.03), (200, 0.03), (60, 0.035))]
    inter = _noise(cv, 4000, r[3])
    inter_grad = [_Field(g, inter.step, inter.pad) for g in np.gradient(inter.grid, inter.step)]

    y, x = cv.centres(0), cv.centres(1)
    mass = np.empty(cv.shape, np.float32)
    cellular = np.empty(cv.shape, np.float32)  # 1 in the tubules, 0 in the interstitial space
    edge = _pixel_sigma(30, cv.px)
    for rows in cv.bands():
        yb = y[rows]
        # Warping the coordinates makes the Voronoi membranes wavy, like interdigitating cell borders.
        yw = yb[:, None] + 400 * warp[0].image(yb, x) + 100 * warp[2].image(yb, x)
        xw = x[None, :] + 400 * warp[1].image(yb, x) + 100 * warp[3].image(yb, x)
        label, dist = _voronoi(seeds, table, yw, xw)
        cells = 0.42 + tone[label] + sum(w * f.image(yb, x) for f, w in cytoplasm)
        cells += 0.3 * _gauss_line(dist, membrane_sigma[label], cv.px)
        slope = np.hypot(inter_grad[0].image(yb, x), inter_grad[1].image(yb, x))
        d = (inter.image(yb, x) - _INTERSTITIUM_LEVEL) / np.maximum(slope, 1e-9)  # nm, < 0 in the tubules
        cellular[rows] = _edge(d, edge)
        matrix = 0.28 + 0.03 * cytoplasm[0][0].image(yb, x) + 0.03 * cytoplasm[3][0].image(yb, x)
        # The tubule's basement membrane runs just outside the interstitial space.
        mass[rows] = matrix + cellular[rows] * (cells - matrix) + 0.3 * _gauss_line(d + 60, 45, cv.px)

    shift = np.stack([400 * warp[i].at(seeds[:, 0], seeds[:, 1]) for i in (0, 1)], 1)
    fibroblast = inter.at(seeds[:, 0], seeds[:, 1]) > _INTERSTITIUM_LEVEL
    del warp, cytoplasm, inter_grad  # the fine texture grids are as large as the image
    organelles = _kidney_organelles(cv, r[5])
    organelles *= cellular
    mass += organelles
    del organelles
    cover, nuclei = _kidney_nuclei(cv, r[4], seeds, shift, fibroblast)
    mass *= np.subtract(1, cover, out=cover)  # a nucleus displaces the cytoplasm around it
    mass += nuclei
    del cover, nuclei
    fibres = _kidney_fibres(cv, r[6], inter)
    fibres *= np.subtract(1, cellular, out=cellular)
    mass += fibres
    del fibres, cellular
    lumen, lining = _kidney_lumens(cv, r[7])
    mass *= 1 - lumen
    mass += 0.03 * lumen + lining
    # Beer-Lambert, over a thin support film and resin that every pixel sees.
    np.maximum(mass, 0, out=mass)
    mass += 0.04
    return np.exp(np.negative(mass, out=mass), out=mass)


# --- calibration grating replica --------------------------------------------------------------------


def _grid(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Slightly rotated cross-grating replica with line-to-line variation, dust and torn holes."""
    r = _children(rng, 4)
    theta = r[0].choice([-1, 1]) * math.radians(r[0].uniform(3, 10))
    cos, sin = math.cos(theta), math.sin(theta)
    period = GRATING_PERIOD_NM
    # Near-vertical ridges (across x) are pronounced, near-horizontal ones thin and faint.
    families = []
    for cy, cx, width, amp in ((sin, cos, 0.42, 0.55), (cos, -sin, 0.2, 0.2)):
        reach = abs(cy) * cv.extent[0] + abs(cx) * cv.extent[1]
        first = math.floor(-reach / period) - 2
        n = math.ceil(2 * reach / period) + 4
        widths = (width * period * (1 + 0.06 * r[0].standard_normal(n))).astype(np.float32)
        amps = (amp * (1 + 0.08 * r[0].standard_normal(n))).astype(np.float32)
        families.append((cy, cx, first, widths, amps, r[0].uniform(0, period), _noise(cv, 3000, r[1])))
    contrast, shading, grain = _noise(cv, 5000, r[2]), _noise(cv, 8000, r[2]), _noise(cv, 90, r[2])

    y, x = cv.centres(0), cv.centres(1)
    mass = np.empty(cv.shape, np.float32)
    edge = _pixel_sigma(30, cv.px)
    for rows in cv.bands():
        band = 0.22 + 0.03 * shading.image(y[rows], x) + 0.012 * grain.image(y[rows], x)
        gain = 1 + 0.06 * contrast.image(y[rows], x)
        for cy, cx, first, widths, amps, phase, wobble in families:
            # A slowly varying shift keeps the ridges from being perfectly straight.
            coord = cy * y[rows, None] + cx * x[None, :] + phase + 12 * wobble.image(y[rows], x)
            k = np.rint(coord / period).astype(np.intp)
            line = k - first
            band += amps[line] * gain * _bar(coord - k * period, widths[line], edge)
        mass[rows] = band

    n = r[3].poisson(cv.area_um2 / 50)
    a = _log_uniform(r[3], 60, 1000, n)
    semi = np.stack([a, a * r[3].uniform(0.5, 1, n)], 1)
    angles = r[3].uniform(0, np.pi, n)
    _add_ellipses(mass, cv, cv.uniform_points(r[3], n), semi, angles, r[3].uniform(0.8, 2.0, n), 20,
                  _wobble(r[3], n, 0.3))
    # A few holes torn in the replica leave bare support film.
    n = r[3].poisson(cv.area_um2 / 500)
    a = r[3].uniform(300, 1500, n)
    holes = np.zeros(cv.shape, np.float32)
    semi = np.stack([a, a * r[3].uniform(0.3, 0.8, n)], 1)
    _add_ellipses(holes, cv, cv.uniform_points(r[3], n), semi, r[3].uniform(0, np.pi, n), np.ones(n), 20,
                  _wobble(r[3], n, 0.4))
    np.minimum(holes, 1, out=holes)
    mass -= holes * (mass - 0.05)  # bare film where the replica is torn away
    return np.exp(np.negative(mass, out=mass), out=mass)


# --- the paper's synthetic test images (its Fig 3) --------------------------------------------------

_SYNTHETIC_PERIOD_NM = 1500.0
_SYNTHETIC_WIDTH_NM = 250.0


def _parallel_lines(cv: _Canvas, rng: np.random.Generator, directions: int) -> np.ndarray:
    """Dark straight lines at an angle on a bright blank image; two directions cross as squares."""
    theta = rng.choice([-1, 1]) * math.radians(rng.uniform(15, 40))
    phases = rng.uniform(0, _SYNTHETIC_PERIOD_NM, directions)
    y, x = cv.centres(0)[:, None], cv.centres(1)[None, :]
    out = np.empty(cv.shape, np.float32)
    edge = _pixel_sigma(10, cv.px)
    for rows in cv.bands():
        ink = np.zeros((rows.stop - rows.start, cv.shape[1]), np.float32)
        for i, phase in enumerate(phases):
            a = theta + i * np.pi / 2
            coord = math.cos(a) * x + math.sin(a) * y[rows] + phase
            d = coord - _SYNTHETIC_PERIOD_NM * np.rint(coord / _SYNTHETIC_PERIOD_NM)
            ink = np.maximum(ink, _bar(d, _SYNTHETIC_WIDTH_NM, edge))
        out[rows] = 0.95 - 0.75 * ink
    return out


def _spots(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    """Bent lines in several directions and bright and dark disks on a mid-grey background."""
    out = np.full(cv.shape, 0.5, np.float32)
    for sigma in (60, 120):
        n = rng.poisson(cv.area_um2 / 80)
        ends = cv.uniform_points(rng, n)
        angle, length = rng.uniform(0, 2 * np.pi, n), rng.uniform(4000, 12000, n)
        tips = ends + length[:, None] * np.stack([np.sin(angle), np.cos(angle)], 1)
        normal = np.stack([np.cos(angle), -np.sin(angle)], 1)
        control = (ends + tips) / 2 + rng.uniform(-0.4, 0.4, (n, 1)) * length[:, None] * normal
        t = np.linspace(0, 1, 48)[None, :, None]  # quadratic Bezier curves
        curves = (1 - t) ** 2 * ends[:, None] + 2 * t * (1 - t) * control[:, None] + t**2 * tips[:, None]
        out += _draw_polylines(cv, curves, rng.choice([-0.35, 0.35], n) * rng.uniform(0.6, 1, n), sigma)
    np.clip(out, 0.02, 1, out=out)

    n = rng.poisson(cv.area_um2 / 15)
    centres = cv.uniform_points(rng, n)
    radii = _log_uniform(rng, 150, 1200, n)
    values = np.where(rng.random(n) < 0.5, rng.uniform(0.05, 0.3, n), rng.uniform(0.7, 0.98, n))
    keep = _non_overlapping(centres, radii, gap=100)
    semi = np.repeat(radii[keep, None], 2, 1)
    cover = np.zeros(cv.shape, np.float32)
    paint = np.zeros(cv.shape, np.float32)
    _add_ellipses(cover, cv, centres[keep], semi, np.zeros(len(semi)), np.ones(len(semi)), 10)
    _add_ellipses(paint, cv, centres[keep], semi, np.zeros(len(semi)), values[keep], 10)
    np.minimum(cover, 1, out=cover)
    out -= cover * out  # spots are painted over the lines
    out += paint
    return out


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


_RENDERERS: dict[str, Callable[[_Canvas, np.random.Generator], np.ndarray]] = {
    "kidney": _kidney,
    "grid": _grid,
    "spots": _spots,
    "lines": lambda cv, rng: _parallel_lines(cv, rng, 1),
    "crosslines": lambda cv, rng: _parallel_lines(cv, rng, 2),
}


# --- public API -------------------------------------------------------------------------------------


def render_specimen(
    kind: str, shape: tuple[int, int], pixel_size_nm: float, rng: np.random.Generator
) -> np.ndarray:
    """Render a specimen's ground-truth electron transmission.

    Parameters
    ----------
    kind : str
        One of :data:`SPECIMENS`: ``"kidney"`` (tissue section), ``"grid"`` (cross-grating replica with
        2160 lines/mm), or the paper's synthetic test images ``"spots"``, ``"lines"``, ``"crosslines"``.
    shape : tuple of int
        Output shape (rows, cols) in pixels.
    pixel_size_nm : float
        Pixel size in nanometres. Feature sizes are physical, so a smaller pixel renders the same
        specimen more finely (15.625 nm: a 2048 px image spans 32 um).
    rng : numpy.random.Generator
        Source of randomness; the same generator state gives the same image bit for bit.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``shape``, axes (rows, cols), with transmission in [0, 1]: 1 is empty
        support film, darker is denser material. Support-grid bars are not included (see
        :func:`support_grid_bars`).

    Raises
    ------
    ValueError
        For an unknown ``kind``, a shape that is not two positive integers, or a non-positive pixel size.
    """
    if kind not in _RENDERERS:
        raise ValueError(f"unknown specimen kind {kind!r}; expected one of {', '.join(SPECIMENS)}")
    if len(shape) != 2 or any(int(n) != n or n <= 0 for n in shape):
        raise ValueError(f"shape must be two positive integers (rows, cols), got {shape!r}")
    if not (math.isfinite(pixel_size_nm) and pixel_size_nm > 0):
        raise ValueError(f"pixel_size_nm must be positive and finite, got {pixel_size_nm!r}")
    image = _RENDERERS[kind](_Canvas((int(shape[0]), int(shape[1])), float(pixel_size_nm)), rng)
    image = image.astype(np.float32, copy=False)
    return np.clip(image, 0, 1, out=image)


def support_grid_bars(
    shape: tuple[int, int],
    origin_um: tuple[float, float],
    pixel_size_nm: float,
    pitch_um: float,
    bar_um: float,
) -> np.ndarray:
    """Mask of the metal bars of a square-mesh TEM support grid.

    Parameters
    ----------
    shape : tuple of int
        Output shape (rows, cols) in pixels.
    origin_um : tuple of float
        Stage position (y, x) in micrometres of pixel (0, 0); pixel (r, c) sits at
        ``(origin_um[0] + r * px, origin_um[1] + c * px)`` with ``px = pixel_size_nm / 1000``.
    pixel_size_nm : float
        Pixel size in nanometres.
    pitch_um : float
        Mesh period in micrometres (bar plus hole).
    bar_um : float
        Bar width in micrometres; bars occupy ``[k * pitch, k * pitch + bar)`` along both axes.

    Returns
    -------
    numpy.ndarray
        bool array of shape ``shape``, axes (rows, cols): True where a bar is, i.e. where
        ``y mod pitch < bar`` or ``x mod pitch < bar``.

    Raises
    ------
    ValueError
        For non-positive sizes or a bar at least as wide as the pitch.
    """
    if len(shape) != 2 or any(int(n) != n or n <= 0 for n in shape):
        raise ValueError(f"shape must be two positive integers (rows, cols), got {shape!r}")
    for name, value in (("pixel_size_nm", pixel_size_nm), ("pitch_um", pitch_um), ("bar_um", bar_um)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
    if bar_um >= pitch_um:
        raise ValueError(f"bar_um ({bar_um!r}) must be smaller than pitch_um ({pitch_um!r})")
    px = pixel_size_nm / 1000
    y = origin_um[0] + np.arange(int(shape[0])) * px
    x = origin_um[1] + np.arange(int(shape[1])) * px
    return (np.mod(y, pitch_um) < bar_um)[:, None] | (np.mod(x, pitch_um) < bar_um)[None, :]
