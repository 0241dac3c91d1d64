"""A registered burst as the networks and the scores see it: windowed to [0, 1], with its sample mask,
and the frames centred on its centre frame.

Images are (row, col); bursts are (frame, row, col), the centre frame at ``F // 2``.
"""

from __future__ import annotations

import numpy as np

from napari_temdeblur.core.io import BurstPair

from ._intensity import IntensityWindow, apply_window
from ._preprocess import sample_mask


def window_pair(
    pair: BurstPair, gt_window: IntensityWindow, low_window: IntensityWindow
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A pair in [0, 1] and its sample, as training, validation and evaluation see it.

    Returns
    -------
    gt : ndarray
        float32 (H, W) in [0, 1] (`gt_window`).
    low : ndarray
        float32 (F, H, W) in [0, 1] (`low_window`).
    mask : ndarray
        bool (H, W): sample in the GT and in every frame (no grid bar, no registration padding).
    """
    gt = apply_window(pair.gt, gt_window)
    low = apply_window(pair.low, low_window)
    return gt, low, sample_mask(np.concatenate([gt[None], low]))


def centred_frames(available: int, count: int) -> np.ndarray:
    """Indices of `count` adjacent frames centred on the burst's centre frame ``available // 2``."""
    if count > available:
        raise ValueError(f"{count} frames requested but the bursts have only {available}")
    start = available // 2 - count // 2
    return np.arange(start, start + count)
