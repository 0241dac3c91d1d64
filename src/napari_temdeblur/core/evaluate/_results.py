"""What an evaluation returns: per-tile scores per method, pooled, per sample and per fold."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import spearmanr

from napari_temdeblur.core.imaging import IntensityWindow

#: Format tag of the JSON written by ``temdeblur evaluate --json``.
EVALUATION_FORMAT = "temdeblur-evaluation/1"
#: Method key of the unrestored input: the centre registered frame, always evaluated.
INPUT = "input"


@dataclass
class MethodScores:
    """SSIM and PSNR of one method on each evaluation tile.

    Attributes
    ----------
    ssim : ndarray
        float64 (K,), one value per tile.
    psnr : ndarray
        float64 (K,), dB, one value per tile (same tile order as `ssim`).
    trust : TileTrust or None
        The run's trust intervals on the same tiles (``evaluate --uncertainty``); None otherwise.
    """

    ssim: np.ndarray
    psnr: np.ndarray
    trust: TileTrust | None = None

    @classmethod
    def concat(cls, parts: Sequence[MethodScores]) -> MethodScores:
        """Pool the tiles of several evaluations (e.g. images) into one (trust when every part has it)."""
        if not parts:
            return cls(np.empty(0), np.empty(0))
        trusts = [p.trust for p in parts]
        trust = TileTrust.concat(trusts) if all(t is not None for t in trusts) else None
        return cls(np.concatenate([p.ssim for p in parts]), np.concatenate([p.psnr for p in parts]), trust)

    @property
    def tiles(self) -> int:
        return len(self.ssim)

    def summary(self) -> dict[str, float]:
        """``{"ssim_mean", "ssim_std", "psnr_mean", "psnr_std"}`` over the tiles (population std, ddof 0)."""
        with np.errstate(invalid="ignore"):  # identical tiles: PSNR inf, whose std is NaN
            summary = {
                "ssim_mean": float(np.mean(self.ssim)),
                "ssim_std": float(np.std(self.ssim)),
                "psnr_mean": float(np.mean(self.psnr)),
                "psnr_std": float(np.std(self.psnr)),
            }
        return summary if self.trust is None else {**summary, **self.trust.summary()}


@dataclass
class TileTrust:
    """A run's per-pixel intervals on each evaluation tile (docs/trust.md).

    Attributes
    ----------
    coverage : ndarray
        float64 (K,): share of the tile's GT pixels inside their interval.
    width : ndarray
        float64 (K,): mean interval width (hi - lo, clipped to [0, 1]) over the tile, in the evaluation's
        GT window ([0, 1] scale).
    error : ndarray
        float64 (K,): mean absolute error of the restoration over the tile, same scale.
    nominal_coverage : float
        The coverage the run was calibrated for.
    """

    coverage: np.ndarray
    width: np.ndarray
    error: np.ndarray
    nominal_coverage: float

    @classmethod
    def concat(cls, parts: Sequence[TileTrust]) -> TileTrust:
        nominal = {p.nominal_coverage for p in parts}
        return cls(
            *(np.concatenate([getattr(p, name) for p in parts]) for name in ("coverage", "width", "error")),
            nominal.pop() if len(nominal) == 1 else math.nan,
        )

    def summary(self) -> dict[str, float]:
        """``coverage`` (all tiles' pixels; the tiles are equal), ``nominal_coverage``,
        ``interval_width_mean`` and ``uncertainty_error_spearman`` (over tiles; NaN for fewer than 3)."""
        rho = spearmanr(self.width, self.error)[0] if len(self.width) > 2 else math.nan
        return {
            "coverage": float(np.mean(self.coverage)) if len(self.coverage) else math.nan,
            "nominal_coverage": float(self.nominal_coverage),
            "interval_width_mean": float(np.mean(self.width)) if len(self.width) else math.nan,
            "uncertainty_error_spearman": float(rho),
        }


@dataclass
class Fold:
    """Cross-validation: one run scored on the images of one session it held out (all splits)."""

    run: str
    sample: str
    session: int
    tiles: int
    methods: dict[str, MethodScores]


@dataclass
class Example:
    """One evaluated image with every method's output, for figures; all (H, W) float32 in [0, 1].

    ``gt`` and every output are in the evaluation's GT window of the sample; ``input`` (the centre
    registered frame) is in its Low window.
    """

    name: str
    sample: str
    gt: np.ndarray
    input: np.ndarray
    outputs: dict[str, np.ndarray]


@dataclass
class Evaluation:
    """Result of :func:`napari_temdeblur.core.evaluate.evaluate`.

    Attributes
    ----------
    dataset : str
        The evaluated folder(s), comma-separated.
    split : str
        The split evaluated ("Test"), or "held-out sessions" for cross-validation.
    tiles : int
        Evaluation tiles pooled over all samples (and folds).
    methods : dict
        Method key -> :class:`MethodScores` pooled over all samples ("input" first, then baselines,
        then runs in the order given).
    samples : dict
        Sample name -> ``{"tiles": int, "methods": {key: MethodScores}}``.
    folds : list of Fold
        Cross-validation rows (empty otherwise).
    examples : list of Example
    windows : dict
        Sample name -> ``{"gt": IntensityWindow, "low": IntensityWindow}`` used for scoring.
    tile_size : int
        Tile side, px.
    keep_rows_fraction : float or None
        Share of each image's rows whose tiles were kept (0.5: the top half, as the paper).
    messages : list of str
        Images skipped and notes from restoration.
    """

    dataset: str
    split: str
    tiles: int
    methods: dict[str, MethodScores]
    samples: dict[str, dict]
    folds: list[Fold] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    windows: dict[str, dict[str, IntensityWindow]] = field(default_factory=dict)
    tile_size: int = 128
    keep_rows_fraction: float | None = None
    messages: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The ``temdeblur-evaluation/1`` schema (docs/design.md, File formats): ``dataset``, ``split``,
        ``tiles``, ``methods`` with "input" always, plus ``samples``, ``folds`` (cross-validation only),
        ``windows`` and the tiling used.

        Strict JSON: a mean or std that is not finite (PSNR of a tile identical to its GT is
        infinite) is None."""
        out = {
            "format": EVALUATION_FORMAT,
            "dataset": self.dataset,
            "split": self.split,
            "tiles": self.tiles,
            "methods": _summaries(self.methods),
            "samples": {
                name: {"tiles": s["tiles"], "methods": _summaries(s["methods"])} for name, s in self.samples.items()
            },
            "windows": {name: {kind: w.to_dict() for kind, w in ws.items()} for name, ws in self.windows.items()},
            "tile_size": self.tile_size,
            "keep_rows_fraction": self.keep_rows_fraction,
            "messages": list(self.messages),
        }
        if self.folds:
            out["folds"] = [
                {
                    "run": f.run,
                    "sample": f.sample,
                    "session": f.session,
                    "tiles": f.tiles,
                    "methods": _summaries(f.methods),
                }
                for f in self.folds
            ]
        return out


def _summaries(methods: dict[str, MethodScores]) -> dict[str, dict[str, float | None]]:
    # strict JSON: a PSNR of identical tiles is infinite (and its std NaN); JSON has no such numbers
    return {
        key: {name: value if np.isfinite(value) else None for name, value in scores.summary().items()}
        for key, scores in methods.items()
    }
