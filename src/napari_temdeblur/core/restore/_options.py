"""How a trained run is applied: the one options object of restoration (API, CLI, docks)."""

from __future__ import annotations

from dataclasses import dataclass

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
