"""The Burst network of Aittala & Durand (ECCV 2018), the paper's ``bu`` model.

"Burst image deblurring using permutation invariant convolutional neural networks": copies of one
UNet with tied weights process the frames of a burst; after every block each frame's features are
concatenated with their maximum over all frames (global max pooling), so information flows between
the copies while the output cannot depend on the frame order. Before the output convolutions the
copies are merged by a max over frames. Downsampling is a strided 4 x 4 convolution, upsampling a
4 x 4 transposed convolution (the source of the grid-like artefact the paper observed).

Widths follow the authors' appendix for base width ``w = 64``: encoder 64 -> 128 -> 256 -> 384,
bottleneck 384 at 1/16 scale, decoder 256 -> 192 -> 96, output convs 96 -> 64 -> 1. Every width is a
fixed multiple of ``w`` so that a tiny model has the same topology.
"""

from __future__ import annotations

import torch
from torch import nn

from ._blocks import check_input, global_max_concat, merge_frames, pad_to_multiple

#: H and W must be multiples of this (four stride-2 downsamplings).
SIZE_MULTIPLE = 16


class ConvBlock(nn.Sequential):
    """conv -> batch norm -> ELU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        padding = (kernel - 1) // 2
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding),
            nn.BatchNorm2d(c_out),
            nn.ELU(),
        )


class Down(nn.Sequential):
    """1 x 1 conv (mixes own and pooled features) then 4 x 4 stride-2 conv: (c_in, H, W) -> (c_out, H/2, W/2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(ConvBlock(c_in, c_out, 1), ConvBlock(c_out, c_out, 4, stride=2))


class Up(nn.Sequential):
    """1 x 1 conv, 3 x 3 conv, 4 x 4 transposed conv: (c_in, H, W) -> (c_out, 2H, 2W)."""

    def __init__(self, c_in: int, c_mid: int, c_out: int):
        super().__init__(
            ConvBlock(c_in, c_mid, 1),
            ConvBlock(c_mid, c_mid, 3),
            nn.ConvTranspose2d(c_mid, c_out, 4, stride=2, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ELU(),
        )


class BurstUNet(nn.Module):
    """Permutation-invariant burst UNet.

    Parameters
    ----------
    width : int
        Base width ``w`` (64 in the published network).
    """

    size_multiple = SIZE_MULTIPLE

    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        w15 = max(1, w * 3 // 2)
        # After each block, global_max_concat doubles the channels: hence the 2x inputs below.
        self.enc0 = ConvBlock(1, w, 3)
        self.enc1 = Down(2 * w, 2 * w)
        self.enc2 = Down(4 * w, 4 * w)
        self.enc3 = Down(8 * w, 6 * w)
        self.bottleneck = nn.Sequential(Down(12 * w, 6 * w), Up(6 * w, 6 * w, 6 * w))
        # Decoder inputs: previous block + its pooled copy + the skip of the same scale.
        self.dec3 = Up(12 * w + 6 * w, 6 * w, 4 * w)
        self.dec2 = Up(8 * w + 4 * w, 4 * w, 3 * w)
        self.dec1 = Up(6 * w + 2 * w, 3 * w, w15)
        self.dec0 = ConvBlock(2 * w15 + w, w15, 3)
        self.head = nn.Sequential(ConvBlock(w15, w, 3), nn.Conv2d(w, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, SIZE_MULTIPLE)
        n = x.shape[1]
        frames = x.reshape(-1, 1, *x.shape[2:])  # (B*N, 1, H, W), H and W now multiples of 16

        def exchange(t):
            return global_max_concat(t, n)

        s0 = self.enc0(frames)  # (B*N, w, H, W)
        s1 = self.enc1(exchange(s0))  # (B*N, 2w, H/2, W/2)
        s2 = self.enc2(exchange(s1))  # (B*N, 4w, H/4, W/4)
        s3 = self.enc3(exchange(s2))  # (B*N, 6w, H/8, W/8)
        y = self.bottleneck(exchange(s3))  # (B*N, 6w, H/8, W/8) via H/16
        y = self.dec3(torch.cat([exchange(y), s3], dim=1))  # (B*N, 4w, H/4, W/4)
        y = self.dec2(torch.cat([exchange(y), s2], dim=1))  # (B*N, 3w, H/2, W/2)
        y = self.dec1(torch.cat([exchange(y), s1], dim=1))  # (B*N, 1.5w, H, W)
        y = self.dec0(torch.cat([exchange(y), s0], dim=1))  # (B*N, 1.5w, H, W)
        return self.head(merge_frames(y, n))[..., :height, :width]  # (B, 1, H, W)
