"""Kidney tissue section: tubule cells with membranes, nuclei and organelles; interstitium; lumens."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ._drawing import (
    _add_ellipses,
    _Canvas,
    _children,
    _draw_polylines,
    _edge,
    _ellipse_patches,
    _Field,
    _gauss_line,
    _log_uniform,
    _noise,
    _non_overlapping,
    _pixel_sigma,
    _random_curves,
    _wobble,
)

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


def _voronoi(seeds: np.ndarray, table: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
