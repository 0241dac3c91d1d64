"""The paper's batch-norm statistics adaptation to a new sample type.

Wieslander et al. 2021, synthetic-image experiment: "approximately 20 forward passes to update the
running mean and variance in the batch normalization layers (no backward pass, i.e., no updating of
the weights)".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Sequence

import numpy as np
import torch
from torch import nn

from napari_temdeblur.core import Progress
from napari_temdeblur.core.imaging import (
    centred_frames,
    sample_mask,
    valid_crop_origins,
)

from ._tiling import model_device


def _crops(burst: np.ndarray, size: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` random float32 (N, s, s) crops of one burst, s = min(size, H, W), on the sample where a
    crop of pure sample exists (no grid bar, no padding), anywhere otherwise."""
    size = min(size, *burst.shape[1:])
    valid = valid_crop_origins(sample_mask(burst), size)
    if len(valid):
        origins = valid[rng.integers(len(valid), size=count)]
    else:  # no crop of pure sample: anywhere is better than nothing
        origins = np.stack([rng.integers(0, n - size + 1, size=count) for n in burst.shape[1:]], axis=1)
    return [np.array(burst[:, y : y + size, x : x + size], dtype=np.float32) for y, x in origins]


def adapt_batchnorm(
    model: nn.Module,
    bursts: Sequence[np.ndarray],
    *,
    steps: int = 20,
    crop: int = 128,
    batch: int = 4,
    seed: int = 0,
    stage: str = "adapt batch norm",
) -> Generator[Progress, None, int]:
    """Re-estimate the running mean and variance of every batch-norm layer on new data (a generator:
    ``drain(adapt_batchnorm(...))`` returns the count).

    The paper's adaptation to a new sample type: about 20 forward passes with batch norm in training
    mode, no backward pass and no weight update. Here the running statistics are reset and then set to
    the plain average over the `steps` passes (``momentum=None``), so the result depends only on the new
    data and not on how far an exponential average got. Only the batch-norm layers are put in training
    mode: dropout stays off. The model is left in eval mode with its original momenta, also when the
    generator is closed early (then with the statistics of the passes done so far).

    Memory is bounded by the crops, not the data: the ``steps * batch`` crops are assigned to images
    first, then each image that gets one is read (``bursts[k]``, once, so `bursts` may be a lazy
    sequence that loads or registers an image on access) and released once its crops are cut.

    Parameters
    ----------
    model : torch.nn.Module
        Network; modified in place (running statistics only).
    bursts : sequence of ndarray or None
        (N, H, W) bursts in [0, 1] of the new data. Bursts of different N are cut to the smallest N
        (centred frames), as one batch holds one N. None items (images that could not be read) are
        passed over.
    steps : int
        Forward passes.
    crop : int
        Crop side in px, rounded down to the network's ``size_multiple`` and to the smallest image.
    batch : int
        Crops per pass.
    seed : int
        Seed of the crop positions.
    stage : str
        Stage of the progress events.

    Yields
    ------
    Progress
        One per image read, one per forward pass.

    Returns
    -------
    int
        Number of batch-norm layers adapted.
    """
    if steps < 1 or batch < 1:
        raise ValueError(f"steps and batch must be >= 1, got steps={steps}, batch={batch}")
    if not len(bursts):
        raise ValueError("batch-norm adaptation needs at least one burst")
    if not getattr(model, "adaptable", True):
        raise ValueError(
            "batch-norm adaptation needs the network's weights, which an exported (ONNX) model or bioimage.io "
            "package does not expose: restore without it, or with the run folder"
        )
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    multiple = int(getattr(model, "size_multiple", 1))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(bursts), size=(steps, batch))
    wanted = Counter(picks.ravel().tolist())
    total = len(wanted) + steps
    crops = {}
    for done, k in enumerate(sorted(wanted)):
        yield Progress(stage, done, total, f"crops from image {k + 1} of {len(bursts)}")
        burst = bursts[k]
        if burst is not None:
            crops[k] = _crops(np.asarray(burst), crop, wanted[k], rng)
        del burst  # released before the next image is read
    if not crops:
        raise ValueError("batch-norm adaptation: none of the images could be read")
    side = min(min(c[0].shape[1:]) for c in crops.values()) // multiple * multiple
    if side < multiple:
        smallest = min(min(c[0].shape[1:]) for c in crops.values())
        raise ValueError(f"images of {smallest} px are too small for batch-norm adaptation (need {multiple} px)")
    frames = min(len(c[0]) for c in crops.values())
    momenta = [m.momentum for m in norms]
    device = model_device(model)
    try:
        model.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes
            m.train()
        for step in range(steps):
            # a top-left part of a crop of pure sample is pure sample too
            chunk = [crops[k].pop() for k in picks[step] if k in crops]
            if not chunk:
                continue
            chunk = np.stack([c[centred_frames(len(c), frames), :side, :side] for c in chunk])
            with torch.no_grad():
                model(torch.from_numpy(chunk).to(device))
            yield Progress(stage, len(wanted) + step + 1, total, f"pass {step + 1} of {steps}")
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return len(norms)
