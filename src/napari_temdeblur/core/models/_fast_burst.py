"""``fast-burst``: the plugin's default network, built for speed per unit of quality on a laptop CPU.

Blocks from NAFNet (Chen et al. 2022, "Simple Baselines for Image Restoration"): layer norm, a
depthwise 3 x 3 conv between pointwise convs, SimpleGate (half the channels times the other half)
instead of a nonlinear activation, simplified channel attention, and learnt residual scales that start
at zero (so an untrained block passes its input on). Arranged as a UNet that never works at full
resolution: the frames are pixel-unshuffled by 2 (each 2 x 2 block of pixels becomes 4 channels), so
the widest maps hold a quarter of the pixels and the three levels below 1/16, 1/64 and 1/256 of them.

Burst fusion keeps the paper's idea (Aittala & Durand): every frame passes the same shallow encoder (a
3 x 3 conv) and the frames are merged by their maximum and mean, so the network takes any number of
frames in any order. It predicts a residual on the frames' mean and crops its input's padding back off.

::

    (B, N, H, W) --pad to 16-> unshuffle 2 --> per-frame conv --> max & mean over N --> 1x1 fuse   (c,   H/2)
        skip ----------------------------------------------------------------------------------> (c,   H/2)
        down --> NAF block --> down --> NAF block --> down --> NAF block (middle)                (8c,  H/16)
        up   --> + skip --> NAF block --> up --> + skip --> NAF block --> up --> + skip          (c,   H/2)
        3x3 conv --> shuffle 2 --> + mean of the frames --> crop                                  (1,   H)

Widths, depths and the shuffle factor were chosen by measurement (docs/models.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import check_input, pad_to_multiple

#: Pixel-unshuffle factor at the input (and shuffle at the output).
SHUFFLE = 2
#: NAF blocks per level below the first (the first, at H/2, has none: it only carries the skip).
BLOCKS = (1, 1)
#: Downsamplings after the unshuffle.
LEVELS = len(BLOCKS) + 1
SIZE_MULTIPLE = SHUFFLE * 2**LEVELS


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel of a (B, C, H, W) map, with a per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


class NAFBlock(nn.Module):
    """NAFNet's block: (B, c, H, W) -> (B, c, H, W), two gated residual branches."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.norm1, self.norm2 = LayerNorm2d(c), LayerNorm2d(c)
        self.expand = nn.Conv2d(c, 2 * c, 1)
        self.depthwise = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.attention = nn.Conv2d(c, c, 1)  # simplified channel attention: from the pooled map
        self.project = nn.Conv2d(c, c, 1)
        self.ffn_expand = nn.Conv2d(c, 2 * c, 1)
        self.ffn_project = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    @staticmethod
    def gate(x: torch.Tensor) -> torch.Tensor:
        """SimpleGate: (B, 2c, H, W) -> (B, c, H, W), one half times the other."""
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.depthwise(self.expand(self.norm1(x))))
        y = y * self.attention(F.adaptive_avg_pool2d(y, 1))
        x = x + self.project(y) * self.beta
        return x + self.ffn_project(self.gate(self.ffn_expand(self.norm2(x)))) * self.gamma


class FastBurstNet(nn.Module):
    """(B, N, H, W) burst in [0, 1] -> (B, 1, H, W) restored image, any N >= 1, any H, W.

    Parameters
    ----------
    width : int
        Channels at half resolution (16); each level below doubles them.
    """

    size_multiple = SIZE_MULTIPLE
    #: Restore in tiles this large by default: a 1024 px frame with its 32 px tile overlap in one pass
    #: (about 0.25 GB of activations on a CPU); smaller tiles redo more work on their overlaps.
    inference_tile = 1088

    def __init__(self, width: int = 16):
        super().__init__()
        c = width
        self.encode_frame = nn.Conv2d(SHUFFLE**2, c, 3, padding=1)  # shared by every frame
        self.fuse = nn.Conv2d(2 * c, c, 1)  # max and mean over the frames -> c
        self.down, self.encoder = nn.ModuleList(), nn.ModuleList()
        for blocks in BLOCKS:
            self.down.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
            self.encoder.append(nn.Sequential(*(NAFBlock(c) for _ in range(blocks))))
        self.down.append(nn.Conv2d(c, 2 * c, 2, stride=2))
        self.middle = NAFBlock(2 * c)
        self.up, self.decoder = nn.ModuleList(), nn.ModuleList()
        c *= 2
        for blocks in (*reversed(BLOCKS), 0):
            self.up.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1), nn.PixelShuffle(2)))  # 2c channels -> c/2 at 2x
            c //= 2
            self.decoder.append(nn.Sequential(*(NAFBlock(c) for _ in range(blocks))))
        self.head = nn.Conv2d(c, SHUFFLE**2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, SIZE_MULTIPLE)
        b, n = x.shape[:2]
        frames = F.pixel_unshuffle(x.reshape(b * n, 1, *x.shape[2:]), SHUFFLE)  # (B*N, 4, H/2, W/2)
        features = self.encode_frame(frames).unflatten(0, (b, n))  # (B, N, c, H/2, W/2)
        y = self.fuse(torch.cat([features.amax(dim=1), features.mean(dim=1)], dim=1))  # (B, c, H/2, W/2)
        skips = [y]
        for down, encoder in zip(self.down, self.encoder):
            y = encoder(down(y))
            skips.append(y)
        y = self.middle(self.down[-1](y))  # (B, 8c, H/16, W/16)
        for up, decoder, skip in zip(self.up, self.decoder, reversed(skips)):
            y = decoder(up(y) + skip)
        residual = F.pixel_shuffle(self.head(y), SHUFFLE)  # (B, 1, H, W)
        return (x.mean(dim=1, keepdim=True) + residual)[..., :height, :width]
