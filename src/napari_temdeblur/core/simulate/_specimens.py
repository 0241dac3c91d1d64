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
from collections.abc import Callable

import numpy as np

from ._drawing import (
    _add_ellipses,
    _bar,
    _Canvas,
    _children,
    _draw_polylines,
    _log_uniform,
    _noise,
    _non_overlapping,
    _pixel_sigma,
    _wobble,
)
from ._kidney import _kidney

SPECIMENS: tuple[str, ...] = ("kidney", "grid", "spots", "lines", "crosslines")

GRATING_PERIOD_NM = 1e6 / 2160  # cross-grating replica with 2160 lines/mm


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
    _add_ellipses(
        mass, cv, cv.uniform_points(r[3], n), semi, angles, r[3].uniform(0.8, 2.0, n), 20, _wobble(r[3], n, 0.3)
    )
    # A few holes torn in the replica leave bare support film.
    n = r[3].poisson(cv.area_um2 / 500)
    a = r[3].uniform(300, 1500, n)
    holes = np.zeros(cv.shape, np.float32)
    semi = np.stack([a, a * r[3].uniform(0.3, 0.8, n)], 1)
    _add_ellipses(
        holes, cv, cv.uniform_points(r[3], n), semi, r[3].uniform(0, np.pi, n), np.ones(n), 20, _wobble(r[3], n, 0.4)
    )
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


_RENDERERS: dict[str, Callable[[_Canvas, np.random.Generator], np.ndarray]] = {
    "kidney": _kidney,
    "grid": _grid,
    "spots": _spots,
    "lines": lambda cv, rng: _parallel_lines(cv, rng, 1),
    "crosslines": lambda cv, rng: _parallel_lines(cv, rng, 2),
}


# --- public API -------------------------------------------------------------------------------------


def render_specimen(kind: str, shape: tuple[int, int], pixel_size_nm: float, rng: np.random.Generator) -> np.ndarray:
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
