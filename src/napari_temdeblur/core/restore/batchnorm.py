"""The paper's batch-norm statistics adaptation to a new sample type.

Wieslander et al. 2021, synthetic-image experiment: "approximately 20 forward passes to update the
running mean and variance in the batch normalization layers (no backward pass, i.e., no updating of
the weights)".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..preprocess import sample_mask, valid_crop_origins
from .tiling import model_device


def adapt_batchnorm(
    model: nn.Module,
    bursts: Sequence[np.ndarray],
    *,
    steps: int = 20,
    crop: int = 128,
    batch: int = 4,
    seed: int = 0,
) -> int:
    """Re-estimate the running mean and variance of every batch-norm layer on new data.

    The paper's adaptation to a new sample type: about 20 forward passes with batch norm in training
    mode, no backward pass and no weight update. Here the running statistics are reset and then set to
    the plain average over the `steps` passes (``momentum=None``), so the result depends only on the new
    data and not on how far an exponential average got. Only the batch-norm layers are put in training
    mode: dropout stays off. The model is left in eval mode with its original momenta.

    Parameters
    ----------
    model : torch.nn.Module
        Network; modified in place (running statistics only).
    bursts : sequence of ndarray
        (N, H, W) bursts in [0, 1] of the new data, all with the same N. Crops fall on the sample
        (no grid bar, no padding) where such a crop exists, anywhere otherwise.
    steps : int
        Forward passes.
    crop : int
        Crop side in px, rounded down to the network's ``size_multiple`` and to the smallest image.
    batch : int
        Crops per pass.
    seed : int
        Seed of the crop positions.

    Returns
    -------
    int
        Number of batch-norm layers adapted.
    """
    if steps < 1 or batch < 1:
        raise ValueError(f"steps and batch must be >= 1, got steps={steps}, batch={batch}")
    if not bursts:
        raise ValueError("batch-norm adaptation needs at least one burst")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    multiple = int(getattr(model, "size_multiple", 1))
    smallest = min(min(b.shape[1:]) for b in bursts)
    crop = min(crop, smallest) // multiple * multiple
    if crop < multiple:
        raise ValueError(f"images of {smallest} px are too small for batch-norm adaptation (need {multiple} px)")
    rng = np.random.default_rng(seed)
    origins = []
    for burst in bursts:
        valid = valid_crop_origins(sample_mask(np.asarray(burst)), crop)
        if not len(valid):  # no crop of pure sample: anywhere is better than nothing
            grid = np.mgrid[: burst.shape[1] - crop + 1, : burst.shape[2] - crop + 1]
            valid = grid.reshape(2, -1).T
        origins.append(valid)
    momenta = [m.momentum for m in norms]
    device = model_device(model)
    try:
        model.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes
            m.train()
        with torch.no_grad():
            for _ in range(steps):
                picks = rng.integers(0, len(bursts), size=batch)
                crops = []
                for k in picks:
                    y, x = origins[k][rng.integers(len(origins[k]))]
                    crops.append(np.asarray(bursts[k][:, y:y + crop, x:x + crop], dtype=np.float32))
                model(torch.from_numpy(np.stack(crops)).to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return len(norms)
