"""The evaluated images: read by sample, windowed per sample, tiled on the sample mask."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError
from napari_temdeblur.core.imaging import (
    IntensityWindow,
    evaluation_tiles,
    suggest_window,
    tile_scores,
    window_pair,
)
from napari_temdeblur.core.io import BurstPair, find_splits, read_dataset

from ._results import MethodScores, TileTrust


@dataclass
class EvalImage:
    """One evaluated pair.

    Attributes
    ----------
    sample : str
    pair : BurstPair
        The raw uint16 counts (what a run restores through its own windows).
    gt : ndarray
        float32 (H, W) in [0, 1], the sample's evaluation GT window.
    low : ndarray
        float32 (F, H, W) in [0, 1], the sample's evaluation Low window.
    mask : ndarray
        bool (H, W): sample in the GT and in every frame (no grid bar, no registration padding).
    origins : ndarray
        int64 (K, 2) (row, col) corners of the evaluation tiles.
    score_tile : int
        Side of the evaluation tiles, px.
    """

    sample: str
    pair: BurstPair
    gt: np.ndarray
    low: np.ndarray
    mask: np.ndarray
    origins: np.ndarray
    score_tile: int

    @property
    def name(self) -> str:
        return self.pair.name

    @property
    def input(self) -> np.ndarray:
        """The unrestored input: the centre registered frame ``F // 2``, float32 (H, W) in [0, 1]."""
        return self.low[len(self.low) // 2]


def read_samples(data: Sequence[str | Path], split: str | None) -> tuple[dict[str, list[BurstPair]], list[str]]:
    """The pairs of one split (all splits when `split` is None) of dataset folders, by sample.

    Returns
    -------
    pairs : dict
        Sample name -> pairs in reading order; samples sorted by name.
    skipped : list of str
        Pairs the dataset reader could not use, with the reason.

    Raises
    ------
    DataError
        A folder that is not a dataset, or no `split` split in any of them.
    ValueError
        No folder given, or one image read twice (a folder given twice, or a root and its sample).
    """
    if not data:
        raise ValueError("no dataset folder given")
    found: dict[str, list[BurstPair]] = {}
    origin: dict[tuple[str, str], Path] = {}
    skipped: list[str] = []
    available: set[str] = set()
    for path in map(Path, data):
        available.update(name for _, name, _ in find_splits(path))
        for part in read_dataset(path, None if split is None else [split]):
            skipped += part.skipped
            for pair in part.pairs:
                key = (part.sample, pair.name)
                if key in origin:
                    raise ValueError(
                        f"image {part.sample}/{pair.name} is read twice, from {origin[key]} and "
                        f"{part.path}; give each dataset folder once"
                    )
                origin[key] = part.path
                found.setdefault(part.sample, []).append(pair)
    if not found:
        where = ", ".join(map(str, data))
        raise DataError(
            where,
            f"no readable {split} split here (splits found: {', '.join(sorted(available))}); choose one with --split",
        )
    return dict(sorted(found.items())), skipped


def sample_windows(pairs: Sequence[BurstPair]) -> dict[str, IntensityWindow]:
    """``{"gt", "low"}`` windows of one sample, suggested over all of its evaluated images."""
    return {"gt": suggest_window([p.gt for p in pairs]), "low": suggest_window([p.low for p in pairs])}


def prepare(
    sample: str,
    pair: BurstPair,
    windows: dict[str, IntensityWindow],
    *,
    score_tile: int,
    keep_rows_fraction: float | None,
) -> EvalImage:
    """Window a pair and find its evaluation tiles: regular `score_tile` x `score_tile` tiles lying
    entirely on the sample of the GT and of every frame (no grid bar, no registration padding)."""
    gt, low, mask = window_pair(pair, windows["gt"], windows["low"])
    origins = evaluation_tiles(mask, size=score_tile, keep_rows_fraction=keep_rows_fraction)
    return EvalImage(sample, pair, gt, low, mask, origins, score_tile)


def score(
    output: np.ndarray,
    image: EvalImage,
    interval: tuple[np.ndarray, np.ndarray] | None = None,
    nominal_coverage: float = math.nan,
) -> MethodScores:
    """SSIM and PSNR of `output` ((H, W) in [0, 1], the evaluation's GT window) against the image's GT
    on its evaluation tiles: the one scoring of ``evaluate`` and the Restore dock. With `interval`
    ((lo, hi), (H, W) each in the same window), also its :class:`TileTrust` on the same tiles."""
    scores = MethodScores(*tile_scores(output, image.gt, image.origins, size=image.score_tile))
    if interval is not None:
        lo, hi = interval
        size, tiles = image.score_tile, []
        for y, x in image.origins:
            part = (slice(y, y + size), slice(x, x + size))
            gt = image.gt[part]
            inside = (lo[part] <= gt) & (gt <= hi[part])
            tiles.append((inside.mean(), (hi[part] - lo[part]).mean(), np.abs(output[part] - gt).mean()))
        columns = np.array(tiles, np.float64).reshape(-1, 3).T
        scores.trust = TileTrust(*columns, nominal_coverage=float(nominal_coverage))
    return scores
