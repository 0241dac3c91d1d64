"""What a registration starts from and how it runs: the settings of matching, ECC and quality control,
and a user's initial guesses (the dock's drags, the command line's ``--init`` file).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, option, reject_unknown_keys
from napari_temdeblur.core.io import read_json

MOTIONS = ("translation", "euclidean", "affine")


@dataclass(frozen=True)
class RegistrationSettings:
    """Parameters of frame matching, ECC refinement and quality control.

    Attributes
    ----------
    frames : int
        Stream frames registered per HQ image (3-8), centred on the best-matching frame.
    motion : {"translation", "euclidean", "affine"}
        ECC motion model.
    gauss_filt_size : int or None
        Odd size (full-resolution px) of the Gaussian pre-filter ECC applies to both images (OpenCV's
        ``gaussFiltSize``; scaled down on coarse pyramid levels). None: the frame's shorter side / 48,
        within 5-31 (21 for 1024 px frames, OpenCV's default 5 for 256 px ones). Fine detail is where
        the true, uneven streaks differ most from the uniform streak model, so on large frames
        smoothing it away lowers the error against the streak centre (full-size sessions, 5 -> 21,
        mean error: kidney 0.10 -> 0.07 px, calibration grid 0.19-0.35 -> 0.16-0.20 px); small frames
        have too little detail to spare.
    iterations : int
        Maximum ECC iterations per pyramid level.
    epsilon : float
        ECC stops when the correlation coefficient changes by less than this between iterations.
    min_correlation : float
        Frames whose final correlation coefficient (sample pixels only) is below this are left out.
    match_downsample : int
        The frame matcher compares images downsampled by this factor.
    pyramid_levels : int
        Coarser ECC levels (each halving the images) run before full resolution, so that a start a
        few pixels off (a hand drag) still converges.
    max_disagreement_px : float
        Stream px. A frame whose registration disagrees by more than this with the stage motion that
        frame matching and the rest of its burst show is left out, and so is a burst started by the
        user that sits this far from frame matching's estimate (on a grating: locked one period off).
        Keep it well below the grating period (14.8 px for the 463 nm calibration grating) and above
        the matcher's error (a few px).
    streak : bool
        Blur the HQ image along the scan by the exposure's motion streak before ECC, so the
        registration lands on the centre of the streak (timing read from session.json).
    """

    frames: int = option(5, "frames per HQ image, 3-8")
    motion: str = option("translation", "ECC motion model", choices=MOTIONS)
    gauss_filt_size: int | None = None
    iterations: int = 100
    epsilon: float = 1e-5
    min_correlation: float = option(0.5, "frames correlating less are left out")
    match_downsample: int = 4
    pyramid_levels: int = 2
    max_disagreement_px: float = 8.0
    streak: bool = True

    def __post_init__(self):
        if not (isinstance(self.frames, int) and 3 <= self.frames <= 8):
            raise ValueError(f"frames must be an integer from 3 to 8, got {self.frames!r}")
        if self.motion not in MOTIONS:
            raise ValueError(f"motion must be one of {', '.join(MOTIONS)}, got {self.motion!r}")
        size = self.gauss_filt_size
        if size is not None and not (isinstance(size, int) and size >= 1 and size % 2):
            raise ValueError(f"gauss_filt_size must be a positive odd integer or None (auto), got {size!r}")
        for name in ("iterations", "match_downsample"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.pyramid_levels, int) and 0 <= self.pyramid_levels <= 5):
            raise ValueError(f"pyramid_levels must be an integer from 0 to 5, got {self.pyramid_levels!r}")
        if not 0 < self.epsilon < 1:
            raise ValueError(f"epsilon must be in (0, 1), got {self.epsilon!r}")
        if not -1 <= self.min_correlation < 1:
            raise ValueError(f"min_correlation must be in [-1, 1), got {self.min_correlation!r}")
        if not self.max_disagreement_px > 0:
            raise ValueError(f"max_disagreement_px must be positive, got {self.max_disagreement_px!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RegistrationSettings:
        """Build from a dict, rejecting unknown keys by name."""
        reject_unknown_keys(cls, data, "registration setting")
        return cls(**data)


@dataclass(frozen=True)
class InitialGuess:
    """A user's starting point for one HQ image: a stream frame and where the HQ origin lies in it.

    Attributes
    ----------
    frame : int
        Stream frame index.
    translation_yx : (float, float)
        (ty, tx), stream px, napari (row, col) order.
    """

    frame: int
    translation_yx: tuple[float, float]


def read_init_file(path: str | Path) -> dict[str, InitialGuess]:
    """Read ``{"<hq name>": {"frame": t, "translation_yx": [dy, dx]}, ...}`` (the CLI's ``--init``).

    Raises
    ------
    DataError
        Unreadable file, not JSON, or an entry without an integer frame and two finite numbers.
    """
    path = Path(path)
    data = read_json(path)
    guesses = {}
    for name, entry in data.items():
        frame = entry.get("frame") if isinstance(entry, dict) else None
        t = entry.get("translation_yx") if isinstance(entry, dict) else None
        ok_t = (
            isinstance(t, list)
            and len(t) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in t)
        )
        if not (isinstance(frame, int) and not isinstance(frame, bool) and frame >= 0 and ok_t):
            raise DataError(
                path, f'entry {name!r} must be {{"frame": <index >= 0>, "translation_yx": [dy, dx]}}, got {entry!r}'
            )
        guesses[name] = InitialGuess(frame, (float(t[0]), float(t[1])))
    return guesses
