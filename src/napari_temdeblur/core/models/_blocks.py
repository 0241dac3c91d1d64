"""Pieces shared by the burst networks: input checks and the cross-frame (burst) operations.

A burst network runs one set of weights on every frame. Frames are carried in the batch axis as
(B * N, C, H, W) so that ordinary 2-D layers apply per frame; the helpers below move between that
layout and (B, N, C, H, W) for the operations that mix frames.
"""

from __future__ import annotations

import torch


def check_input(x: torch.Tensor, multiple: int, frames: int | None = None) -> None:
    """Raise ValueError unless `x` is a float (B, N, H, W) burst whose H, W are multiples of `multiple`.

    Parameters
    ----------
    x : Tensor
        The network input.
    multiple : int
        Required divisor of H and W (2 ** number of downsamplings).
    frames : int or None
        Exact number of frames required, or None for any N >= 1.
    """
    if x.ndim != 4:
        raise ValueError(f"expected a (B, N, H, W) burst, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a float burst with values in [0, 1], got dtype {x.dtype}")
    n, height, width = x.shape[1:]
    if n < 1:
        raise ValueError("the burst has no frames")
    if frames is not None and n != frames:
        raise ValueError(f"this model takes exactly {frames} frames, got {n}")
    if height % multiple or width % multiple:
        raise ValueError(
            f"image size {height} x {width} is not a multiple of {multiple}; crop or pad it to a multiple of {multiple}"
        )


def global_max_concat(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Concatenate each frame's features with their maximum over all frames of its burst.

    (B * N, C, H, W) -> (B * N, 2C, H, W). The max is symmetric in the frames, so a network built of
    per-frame layers and this exchange is permutation-invariant in the frames.
    """
    pooled = merge_frames(x, frames)  # (B, C, H, W)
    pooled = pooled.repeat_interleave(frames, dim=0)  # (B * N, C, H, W)
    return torch.cat([x, pooled], dim=1)


def merge_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Max over the frames of each burst: (B * N, C, H, W) -> (B, C, H, W)."""
    return x.unflatten(0, (-1, frames)).amax(dim=1)
