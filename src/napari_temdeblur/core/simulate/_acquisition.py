"""Physics of the simulated MiniTEM acquisition: stage path, motion blur, detector.

Coordinates are HQ pixels of one session's *strip* (the rendered specimen region), rows down, columns
right. The scan moves the field of view up the strip (decreasing row), as in the paper's streams.

A stream frame is the time average of the specimen seen along the stage path during its 15 ms
exposure: a convolution with the path's footprint (the motion kernel), then binning to stream pixels
and Poisson-Gaussian detector noise. Because vibration and jitter differ between exposures, each frame
has its own kernel - the variation a burst network exploits.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from napari_temdeblur.core import Progress

from ._config import SimulationConfig
from ._specimens import render_specimen, support_grid_bars

#: Time samples per exposure when integrating the stage path.
PATH_SAMPLES = 96


@dataclass
class Exposure:
    """The stage path during one stream frame's exposure.

    Attributes
    ----------
    start_ms : float
        Start of the exposure since the stream began.
    path : numpy.ndarray
        float64 (PATH_SAMPLES, 2): field-of-view top-left (row, col) at evenly spaced times, HQ px.
    """

    start_ms: float
    path: np.ndarray

    @property
    def centroid(self) -> np.ndarray:
        """Mean position (row, col), HQ px: where a registration of the blurred frame should land."""
        return self.path.mean(axis=0)


@dataclass
class SessionPlan:
    """Where everything of one session is, before any pixel is rendered."""

    strip_shape: tuple[int, int]
    strip_origin_um: tuple[float, float]
    hq_positions: np.ndarray  # int (N, 2) top-left (row, col), HQ px, scan order
    exposures: list[Exposure]


def _um_to_px(cfg: SimulationConfig, um):
    return np.asarray(um) * 1000.0 / cfg.hq_pixel_size_nm


def _vibration(cfg: SimulationConfig, rng: np.random.Generator, components: int = 3):
    """A sum of sinusoids per axis: the stage's mechanical resonances."""
    amp = _um_to_px(cfg, cfg.vibration_nm / 1000.0) * rng.uniform(0.5, 1.0, (2, components))
    freq = rng.uniform(*cfg.vibration_hz, (2, components))
    phase = rng.uniform(0, 2 * np.pi, (2, components))

    def at(t_ms: np.ndarray) -> np.ndarray:
        t = t_ms[:, None, None] / 1000.0
        return (amp * np.sin(2 * np.pi * freq * t + phase)).sum(axis=-1)

    return at


def plan_session(cfg: SimulationConfig, rng: np.random.Generator, session: int) -> SessionPlan:
    """Lay out HQ positions and the stream's stage path for one session.

    Parameters
    ----------
    cfg : SimulationConfig
    rng : numpy.random.Generator
        Session-specific generator.
    session : int
        1-based session number; sessions sit at different places on the support grid.
    """
    px_per_ms = _um_to_px(cfg, cfg.scan_speed_um_s) / 1000.0
    frame_step = px_per_ms * cfg.frame_interval_ms
    hq_step = int(round(cfg.hq_size * (1 - cfg.hq_overlap)))
    n_hq = cfg.hq_per_session
    # HQ images go up the strip from row 0 (scan order); positions are shifted into the strip at the end
    hq_positions = np.array([[-i * hq_step, 0] for i in range(n_hq)], dtype=float)
    hq_positions += rng.normal(0, _um_to_px(cfg, cfg.hq_position_error_nm / 1000.0), (n_hq, 2))
    hq_positions = np.round(hq_positions).astype(int)
    # the stream starts and ends a few frames beyond the outer HQ images so that each gets a burst
    lead = (cfg.burst_frames / 2 + 1) * frame_step
    duration_ms = ((n_hq - 1) * hq_step + 2 * lead) / px_per_ms
    n_frames = int(np.floor(duration_ms / cfg.frame_interval_ms)) + 1

    vibration = _vibration(cfg, rng)
    w = 2 * np.pi / rng.uniform(1500, 4000)  # slow stage-speed fluctuation, rad/ms
    slow_phase = rng.uniform(0, 2 * np.pi)
    drift = rng.choice([-1.0, 1.0]) * _um_to_px(cfg, cfg.lateral_drift_um_s) / 1000.0
    jitter_step = _um_to_px(cfg, cfg.jitter_nm / 1000.0) / np.sqrt(PATH_SAMPLES)
    exposures = []
    for k in range(n_frames):
        t = k * cfg.frame_interval_ms + np.linspace(0.0, cfg.exposure_ms, PATH_SAMPLES)
        # distance travelled at speed v * (1 + a sin(w t + p)), integrated
        travelled = px_per_ms * (t - cfg.speed_variation / w * (np.cos(w * t + slow_phase) - np.cos(slow_phase)))
        path = np.stack([lead - travelled, drift * t], axis=1) + vibration(t)
        path += np.cumsum(rng.normal(0, jitter_step, (PATH_SAMPLES, 2)), axis=0)
        exposures.append(Exposure(start_ms=float(t[0]), path=path))

    # shift everything into a strip with a small margin for the blur kernels and the optics
    points = np.concatenate([hq_positions] + [e.path for e in exposures])
    low = np.floor(points.min(axis=0)) - 4
    high = np.ceil(points.max(axis=0)) + cfg.hq_size + 4
    hq_positions = hq_positions - low.astype(int)
    for exposure in exposures:
        exposure.path -= low
    strip_shape = tuple(int(v) for v in high - low)
    pitch = cfg.grid_pitch_um
    strip_origin_um = (float(rng.uniform(0, pitch)), float((session - 1) * 2.37 * pitch + rng.uniform(0, pitch)))
    return SessionPlan(strip_shape, strip_origin_um, hq_positions, exposures)


def motion_kernel(path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The footprint of a stage path, splatted bilinearly onto the pixel grid.

    Parameters
    ----------
    path : numpy.ndarray
        (S, 2) positions (row, col), HQ px.

    Returns
    -------
    kernel : numpy.ndarray
        float64 (kh, kw), sums to 1; ``kernel[a, b]`` is the time fraction spent at offset
        ``corner + (a, b)``.
    corner : numpy.ndarray
        int (2,): absolute position (row, col) of ``kernel[0, 0]``.
    """
    corner = np.floor(path.min(axis=0)).astype(int)
    rel = path - corner
    base = np.floor(rel).astype(int)
    frac = rel - base
    shape = base.max(axis=0) + 2
    kernel = np.zeros(shape)
    for dr in (0, 1):
        for dc in (0, 1):
            weight = (frac[:, 0] if dr else 1 - frac[:, 0]) * (frac[:, 1] if dc else 1 - frac[:, 1])
            np.add.at(kernel, (base[:, 0] + dr, base[:, 1] + dc), weight)
    return kernel / kernel.sum(), corner


def blurred_view(specimen: np.ndarray, kernel: np.ndarray, corner: np.ndarray, size: int) -> np.ndarray:
    """What the detector integrates during one exposure, at HQ resolution.

    ``out[i, j] = sum_ab kernel[a, b] * specimen[corner + (i + a, j + b)]`` for a size x size field of view.
    """
    kh, kw = kernel.shape
    r, c = corner
    region = specimen[r : r + size + kh - 1, c : c + size + kw - 1]
    if region.shape != (size + kh - 1, size + kw - 1):
        raise ValueError(f"exposure at {tuple(corner)} leaves the rendered strip {specimen.shape}")
    return signal.oaconvolve(region, kernel[::-1, ::-1], mode="valid")


def bin_pixels(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks (rows, cols); the camera's larger stream pixels."""
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    return image[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor).mean(axis=(1, 3))


def detect(
    transmission: np.ndarray, electrons: float, gain: float, cfg: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """Poisson-Gaussian detector: counts = gain * Poisson(electrons * transmission) + offset + read noise.

    The variance of the result grows linearly with intensity (slope = gain), which is what a
    low-dose 15 ms exposure looks like. Returns uint16 counts, clipped to the 16-bit range.
    """
    hits = rng.poisson(np.clip(transmission, 0, None) * electrons)
    counts = gain * hits + cfg.detector_offset + rng.normal(0, cfg.read_noise, transmission.shape)
    return np.clip(np.round(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)


@dataclass
class AcquiredSession:
    """Pixels and truth of one simulated session.

    Attributes
    ----------
    hq : list of numpy.ndarray
        uint16 (hq_size, hq_size) sharp images in scan order.
    stream : numpy.ndarray
        uint16 (T, stream_size, stream_size).
    plan : SessionPlan
        True positions of every HQ image and exposure.
    kernels : list of numpy.ndarray
        Motion kernel of each frame (HQ px), with `corners` their absolute positions.
    """

    hq: list[np.ndarray]
    stream: np.ndarray
    plan: SessionPlan
    kernels: list[np.ndarray]
    corners: np.ndarray


def render_strip(cfg: SimulationConfig, specimen: str, plan: SessionPlan, rng: np.random.Generator) -> np.ndarray:
    """Specimen transmission over the session's strip, on the support grid, through the optics."""
    sample = render_specimen(specimen, plan.strip_shape, cfg.hq_pixel_size_nm, rng)
    bars = support_grid_bars(
        plan.strip_shape, plan.strip_origin_um, cfg.hq_pixel_size_nm, cfg.grid_pitch_um, cfg.grid_bar_um
    )
    sample = np.where(bars, 0.0, sample).astype(np.float32)
    return ndimage.gaussian_filter(sample, cfg.optics_sigma_px)


def acquire(
    cfg: SimulationConfig, strip: np.ndarray, plan: SessionPlan, rng: np.random.Generator, stage: str = "acquire"
) -> Generator[Progress, None, AcquiredSession]:
    """Image one session: HQ images, then the stream frame by frame (one Progress event each)."""
    size = cfg.hq_size
    hq = []
    for r, c in plan.hq_positions:
        hq.append(detect(strip[r : r + size, c : c + size], cfg.hq_electrons, cfg.hq_gain, cfg, rng))
    total = len(plan.exposures)
    stream = np.empty((total, cfg.stream_size, cfg.stream_size), np.uint16)
    kernels, corners = [], []
    for k, exposure in enumerate(plan.exposures):
        kernel, corner = motion_kernel(exposure.path)
        view = bin_pixels(blurred_view(strip, kernel, corner, size), cfg.stream_binning)
        stream[k] = detect(view, cfg.stream_electrons, cfg.stream_gain, cfg, rng)
        kernels.append(kernel.astype(np.float32))
        corners.append(corner)
        yield Progress(stage, k + 1, total)
    return AcquiredSession(hq, stream, plan, kernels, np.array(corners))
