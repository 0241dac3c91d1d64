"""How a trained run is applied: the one options object of restoration (API, CLI, docks)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from napari_temdeblur.core import DEVICE_HELP, check_int, option


@dataclass(frozen=True)
class RestoreOptions:
    """Where and how a network restores images; :func:`restore`, :func:`restore_stream`, ``evaluate``,
    the figures, the Restore dock and ``temdeblur restore / evaluate`` all take this one object.

    Attributes
    ----------
    device : str
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
    inference_tile : int or None
        Side of the tiles the network sees, px; a multiple of the network's size multiple. None: the
        network's own (its class attribute ``inference_tile``, else 128, which keeps the paper's
        published widths under 2 GB on a CPU; fast-burst takes 1088, a 1024 px frame with its overlap
        in one pass). Larger tiles are
        faster where memory allows.
    overlap : int
        Overlap between neighbouring tiles, px, ``0 <= overlap <= inference_tile // 2``.
    batch : int
        Tiles per forward pass.
    adapt_bn : bool
        First adapt the batch-norm statistics to the inputs (a new sample type); the run is unchanged.
    adapt_steps : int
        Forward passes of that adaptation (the paper's ~20).
    trust : bool
        Also compute each pixel's calibrated interval (one more pass of the network; the run needs a
        calibration.json, docs/trust.md).
    flags : bool
        Also mark where the restored image disagrees with its frames beyond their noise
        (:func:`napari_temdeblur.core.flags.hallucination_flags`, docs/flags.md).
    streak_px : float or None
        For the flags: the stage travel during one exposure, stream px (scan speed x exposure /
        stream pixel size; the MiniTEM's 25 um/s x 15 ms / 31.25 nm = 12); each frame's own is fitted
        within 2 px of it. None: fitted from the restored image alone (a blurred restoration then
        matches a shorter streak and its missing detail goes unflagged).
    """

    device: str = option("auto", DEVICE_HELP)
    inference_tile: int | None = option(
        None,
        "side of the tiles the network sees, px (default: the model's own: 128 keeps the paper's full-width "
        "models under 2 GB on a CPU, fast-burst takes 1088; larger tiles are faster where memory allows)",
        metavar="PX",
    )
    overlap: int = option(32, "overlap between tiles, px", metavar="PX")
    batch: int = option(1, "tiles per forward pass (more is faster on a GPU, costs memory)")
    adapt_bn: bool = option(
        False, "first adapt the batch-norm statistics to the input (for a new sample type; the run is unchanged)"
    )
    adapt_steps: int = option(20, "forward passes of the batch-norm adaptation")
    trust: bool = option(
        False, "also give each pixel its calibrated interval (the run must be calibrated: temdeblur calibrate)"
    )
    flags: bool = option(
        False,
        "also flag where the restored image holds detail its frames contradict (re-blurred with each frame's "
        "motion, compared beyond the noise; docs/flags.md)",
    )
    streak_px: float | None = option(
        None,
        "for --flags: the stage travel during one exposure, stream px (scan speed x exposure / pixel size; "
        "default: fitted from the restored image)",
        metavar="PX",
    )

    def __post_init__(self) -> None:
        check_int("inference_tile", self.inference_tile, optional=True)
        check_int("overlap", self.overlap, minimum=0)
        check_int("batch", self.batch)
        check_int("adapt_steps", self.adapt_steps)
        if self.streak_px is not None and not (isinstance(self.streak_px, (int, float)) and 0 <= self.streak_px < 1e4):
            raise ValueError(f"streak_px must be a length in px from 0, got {self.streak_px!r}")


def _seconds_or_none(text: str) -> float | None:
    value = float(text)
    if not value > 0:
        raise ValueError(f"expected a positive number of seconds, got {text!r}")
    return value


@dataclass(frozen=True)
class LiveOptions:
    """How :func:`live` watches a session and when it writes (docs/live.md).

    Attributes
    ----------
    idle_timeout : float or None
        Stop (and finish) after this many seconds without a new frame; None: run until stopped.
    poll : float
        Seconds between looks at the stream folder when there is nothing to do.
    grace : float
        Seconds a frame file may stay unreadable (being written) before it is skipped.
    rebuild_every : float
        Rebuild OUT/mosaic.ome.zarr at most this often (seconds of wall time) while frames arrive,
        when new positions were restored; always at the end.
    neighbours : int
        Each frame is matched to the 1 ... `neighbours` frames before it (1-5).
    leave_gaps : bool
        At the end, do not restore the positions skipped while restoration was behind the stream.
    restore : RestoreOptions
        Device and tiling (batch-norm adaptation is refused, as for a mosaic).
    """

    idle_timeout: float | None = option(
        None,
        "stop after this many seconds without a new frame, then finish (default: until interrupted)",
        metavar="S",
        parse=_seconds_or_none,
    )
    poll: float = option(0.05, "seconds between looks at the stream folder when idle", metavar="S")
    grace: float = option(
        10.0, "seconds a frame file may stay unreadable (being written) before it is skipped", metavar="S"
    )
    rebuild_every: float = option(
        20.0, "rebuild the OME-Zarr mosaic at most this often while frames arrive (and at the end)", metavar="S"
    )
    neighbours: int = option(3, "match each frame to this many frames before it (1-5)", metavar="N")
    leave_gaps: bool = option(
        False, "at the end, do not restore the positions skipped while restoration was behind the stream"
    )
    restore: RestoreOptions = dataclasses.field(default_factory=RestoreOptions)

    def __post_init__(self) -> None:
        for name in ("poll", "grace", "rebuild_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.idle_timeout is not None and not self.idle_timeout > 0:
            raise ValueError(f"idle_timeout must be positive seconds or None, got {self.idle_timeout!r}")
        check_int("neighbours", self.neighbours, maximum=5)
        if not isinstance(self.restore, RestoreOptions):
            raise ValueError(f"restore must be a RestoreOptions, got {type(self.restore).__name__}")
        if self.restore.adapt_bn:
            raise ValueError("live restoration runs without batch-norm adaptation (each position alone)")


@dataclass(frozen=True)
class CalibrateOptions:
    """How a run's trust intervals are calibrated (:func:`calibrate`, ``temdeblur calibrate``, training's end).

    Attributes
    ----------
    coverage : float
        Nominal coverage of the intervals, in (0, 1): the share of pixels whose truth they should hold.
    split : str
        The split of the data calibrated on: images with truth the run was not trained on.
    pixels : int
        At most this many calibration pixels, drawn evenly from the images' sample masks (seeded).
    seed : int
        Seed of that draw.
    restore : RestoreOptions
        How the run restores the calibration images (device, tiling).
    """

    coverage: float = option(0.9, "nominal coverage of the intervals, between 0 and 1", metavar="P")
    split: str = option("Val", "split of DATA to calibrate on (images with truth the run was not trained on)")
    pixels: int = option(100_000, "at most this many calibration pixels, drawn from the images' sample")
    seed: int = option(0, "seed of the pixel draw")
    restore: RestoreOptions = field(default_factory=RestoreOptions)

    def __post_init__(self) -> None:
        if isinstance(self.coverage, bool) or not isinstance(self.coverage, (int, float)) or not 0 < self.coverage < 1:
            raise ValueError(f"coverage must be a number between 0 and 1, got {self.coverage!r}")
        check_int("pixels", self.pixels, minimum=10)
        check_int("seed", self.seed, minimum=0)
