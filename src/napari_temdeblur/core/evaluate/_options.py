"""What an evaluation scores and how: the one options object of ``evaluate`` (API, CLI, Restore dock)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from napari_temdeblur.core import check_int, option
from napari_temdeblur.core.imaging import TOP_HALF_ROWS
from napari_temdeblur.core.restore import RestoreOptions


@dataclass(frozen=True)
class EvaluateOptions:
    """The evaluation protocol's choices (docs/evaluation.md).

    Attributes
    ----------
    split : str
        The split evaluated (ignored with `cross_validation`).
    baselines : bool
        Add the classical baselines (frame mean, Wiener, Richardson-Lucy with the motion PSF fitted
        to each image's GT: an upper bound).
    score_tile : int
        Side of the evaluation tiles, px (the paper's 128); ``evaluate`` needs at least the SSIM window.
    all_rows : bool
        Score tiles in all rows; by default only tiles starting in the top half of each image
        (:data:`~napari_temdeblur.core.imaging.TOP_HALF_ROWS`), as the paper: the sharp images' fields
        of view overlap by half.
    cross_validation : bool
        Score each run on every image (all splits) of the sessions it held out (its config.json
        ``data.held_out_sessions``; for a run without that record, the sessions it never saw).
    uncertainty : bool
        Also score each run's calibrated trust intervals on the same tiles (coverage, width, and the
        Spearman correlation of width and error over tiles); every run must be calibrated.
    keep_examples : int
        Keep the first this many scored images with every output, for figures.
    restore : RestoreOptions
        How the runs restore the images (device, inference tile, batch-norm adaptation, ...).
    """

    split: str = option("Test", "split to evaluate")
    baselines: bool = option(False, "add frame-mean, wiener and richardson-lucy (motion PSF fitted per image)")
    score_tile: int = option(128, "side of the evaluation tiles, px (the paper's 128)", metavar="PX")
    all_rows: bool = option(False, "score tiles in all rows (default: the top half of each image, as the paper)")
    cross_validation: bool = option(
        False, "score each run on all images of the sessions it held out (train with --hold-out)"
    )
    uncertainty: bool = option(
        False, "also score each run's trust intervals: coverage, width, width-error correlation (calibrated runs)"
    )
    keep_examples: int = 1
    restore: RestoreOptions = dataclasses.field(default_factory=RestoreOptions)

    def __post_init__(self) -> None:
        check_int("score_tile", self.score_tile)
        check_int("keep_examples", self.keep_examples, minimum=0)
        if not isinstance(self.restore, RestoreOptions):
            raise ValueError(f"restore must be a RestoreOptions, got {type(self.restore).__name__}")

    @property
    def keep_rows_fraction(self) -> float | None:
        """Share of each image's rows whose tiles are scored; None: all."""
        return None if self.all_rows else TOP_HALF_ROWS
