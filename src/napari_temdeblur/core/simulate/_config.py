"""Configuration as data: frozen dataclasses that are saved beside every output they produced."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from napari_temdeblur.core import reject_unknown_keys, write_json


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of the simulated MiniTEM fast-stream experiment (the paper's Data section).

    Geometry is in pixels of the sharp HQ image; physics in physical units. Defaults model the
    paper's set-up: 2048 x 2048 HQ images at 15.625 nm (32 um field of view) with 50 % overlap,
    1024 x 1024 stream frames at twice the pixel size, 15 ms exposures while the stage moves up.
    """

    # geometry
    hq_size: int = 2048  #: HQ image side, px
    hq_pixel_size_nm: float = 15.625  #: HQ pixel; 2048 px -> 32 um field of view
    stream_binning: int = 2  #: stream pixel = this many HQ pixels (same field of view)
    hq_per_session: int = 8  #: sharp images per session (the paper had 7-23)
    hq_overlap: float = 0.5  #: fraction of the field of view shared by consecutive HQ images
    sessions: int = 4  #: scans per specimen, each at another place on the support grid
    # stage motion during the stream
    exposure_ms: float = 15.0
    frame_interval_ms: float = 240.0  #: time between stream frame starts
    scan_speed_um_s: float = 25.0  #: mean stage speed along the scan (vertical)
    speed_variation: float = 0.05  #: relative slow fluctuation of the stage speed
    lateral_drift_um_s: float = 0.4  #: slow sideways drift of the stage
    vibration_nm: float = 40.0  #: amplitude of each mechanical vibration component
    vibration_hz: tuple[float, float] = (40.0, 300.0)  #: frequency range of the vibration components
    jitter_nm: float = 15.0  #: irregular (random-walk) jitter within one exposure, r.m.s.
    hq_position_error_nm: float = 30.0  #: where the stage really stopped for an HQ image vs the plan
    optics_sigma_px: float = 0.7  #: Gaussian point-spread function of the optics, HQ px
    # detector (counts = gain * electrons + offset + read noise)
    hq_electrons: float = 2000.0  #: electrons per HQ pixel through empty film (long exposure)
    hq_gain: float = 10.0  #: counts per electron, HQ images
    stream_electrons: float = 40.0  #: electrons per stream pixel through empty film (15 ms, low dose)
    stream_gain: float = 125.0  #: counts per electron, stream
    detector_offset: float = 100.0  #: counts of a dark pixel
    read_noise: float = 25.0  #: Gaussian read noise, counts r.m.s.
    # support grid (metal bars image black)
    grid_pitch_um: float = 62.0
    grid_bar_um: float = 12.0
    # registered dataset layout
    burst_frames: int = 5  #: stream frames registered to each HQ image
    registration_residual_px: float = 0.2  #: r.m.s. registration error left in the dataset layout, stream px
    val_max_images: int = 3  #: at most this many HQ images of one grid cell form the validation split

    def __post_init__(self):
        positive = [f.name for f in dataclasses.fields(self) if f.name not in ("vibration_hz",)]
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"SimulationConfig.{name} must be a non-negative number, got {value!r}")
        for name in ("hq_size", "hq_per_session", "sessions", "stream_binning", "burst_frames"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"SimulationConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.hq_size % self.stream_binning:
            raise ValueError(f"hq_size {self.hq_size} must be a multiple of stream_binning {self.stream_binning}")
        if not 0 <= self.hq_overlap < 1:
            raise ValueError(f"hq_overlap must be in [0, 1), got {self.hq_overlap}")
        if self.exposure_ms > self.frame_interval_ms:
            raise ValueError(f"exposure_ms {self.exposure_ms} exceeds frame_interval_ms {self.frame_interval_ms}")
        if self.grid_bar_um >= self.grid_pitch_um:
            raise ValueError(f"grid_bar_um {self.grid_bar_um} must be below grid_pitch_um {self.grid_pitch_um}")
        low, high = self.vibration_hz
        if not 0 < low <= high:
            raise ValueError(f"vibration_hz must be (low, high) with 0 < low <= high, got {self.vibration_hz}")

    @classmethod
    def demo(cls) -> SimulationConfig:
        """A small acquisition that simulates in seconds: 512 px HQ images (8 um field of view),
        faster frames so five still overlap, and a finer support grid so the bars are in view."""
        return cls(
            hq_size=512,
            hq_per_session=6,
            frame_interval_ms=30.0,
            grid_pitch_um=20.0,
            grid_bar_um=3.0,
            val_max_images=2,
        )

    @property
    def stream_size(self) -> int:
        """Stream frame side, stream px."""
        return self.hq_size // self.stream_binning

    @property
    def stream_pixel_size_nm(self) -> float:
        return self.hq_pixel_size_nm * self.stream_binning

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SimulationConfig:
        """Build from a dict, rejecting unknown keys with their names (typos must not pass silently)."""
        reject_unknown_keys(cls, data, "simulation parameter")
        values = dict(data)
        if "vibration_hz" in values:
            values["vibration_hz"] = tuple(values["vibration_hz"])
        return cls(**values)

    def save(self, path: str | Path, **extra) -> Path:
        """Write the configuration (and any `extra` fields, e.g. the seed) as JSON."""
        return write_json(path, {"simulation": self.to_dict(), **extra})

    @classmethod
    def load(cls, path: str | Path) -> SimulationConfig:
        """Read a configuration written by :meth:`save`, or a bare parameter dict."""
        data = json.loads(Path(path).read_text())
        return cls.from_dict(data.get("simulation", data))
