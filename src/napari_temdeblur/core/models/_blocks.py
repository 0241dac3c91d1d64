"""Pieces shared by the networks: input checks, padding to a size multiple, and the cross-frame (burst)
operations.

A burst network runs one set of weights on every frame. Frames are carried in the batch axis as
(B * N, C, H, W) so that ordinary 2-D layers apply per frame; the helpers below move between that
layout and (B, N, C, H, W) for the operations that mix frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_input(x: torch.Tensor, frames: int | None = None) -> None:
    """Raise ValueError unless `x` is a float (B, N, H, W) burst (of exactly `frames` frames if given).

    Parameters
    ----------
    x : Tensor
        The network input.
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
    if height < 1 or width < 1:
        raise ValueError(f"the burst's frames are empty ({height} x {width} px)")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Mirror-pad (B, N, H, W) at the bottom and right up to multiples of `multiple` (2 ** downsamplings),
    as NAFNet's ``check_image_size``, so a network takes any size; crop its output to (H, W) after.

    Mirroring (edge replication for an image too small to mirror) keeps the padding image-like.
    """
    height, width = x.shape[-2:]
    pad = (0, -width % multiple, 0, -height % multiple)  # (left, right, top, bottom)
    if not any(pad):
        return x
    mode = "reflect" if pad[1] < width and pad[3] < height else "replicate"
    return F.pad(x, pad, mode=mode)


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
