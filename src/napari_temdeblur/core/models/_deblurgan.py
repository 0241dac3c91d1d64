"""A DeblurGAN-v2 style generator and its two discriminators (Kupyn et al., ICCV 2019), ``deblurgan``.

As the paper used it: three adjacent registered frames are stacked as the input channels (where RGB
would go) and the output is one grey image. The generator is DeblurGAN-v2's FPN-MobileNet: a
MobileNetV2 backbone gives features at 1/2 ... 1/32 scale, a feature pyramid merges them top-down,
four heads are upsampled to 1/4 scale and fused, then two smoothing convs and upsampling bring the
result to full size; the output is ``tanh`` of a residual added to the centre frame, in [-1, 1]
internally ([0, 1] in and out). The backbone starts from random weights unless a local torchvision
MobileNetV2 state dict is given (ImageNet weights cannot be downloaded here).

The discriminators are pix2pix PatchGANs on the grey image: a 3-layer "patch" discriminator (70 px
receptive field) and a 5-layer "full" one whose receptive field covers a whole 128 px crop, as in
DeblurGAN-v2's double GAN. Both use instance norm, as DeblurGAN-v2's configuration.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import check_input, pad_to_multiple
from ._mobilenet import MobileNetV2Features

#: H and W must be multiples of this (the backbone reaches 1/32 scale).
SIZE_MULTIPLE = 32
FRAMES = 3
#: FPN width of the published generator; the backbone width multiplier is ``width / FPN_WIDTH``.
FPN_WIDTH = 128


def _upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="nearest")


class ConvNormReLU(nn.Sequential):
    """3 x 3 conv -> instance norm -> ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Conv2d(c_in, c_out, 3, padding=1), nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True))


class FPNHead(nn.Sequential):
    """Two 3 x 3 conv + ReLU on one pyramid level."""

    def __init__(self, c_in: int, c_mid: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_mid, 3, padding=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_mid, c_out, 3, padding=1, bias=False),
            nn.ReLU(inplace=True),
        )


class FeaturePyramid(nn.Module):
    """Backbone levels -> lateral 1 x 1 convs -> top-down sum with nearest upsampling."""

    def __init__(self, backbone: MobileNetV2Features, width: int):
        super().__init__()
        self.backbone = backbone
        c0, *c_rest = backbone.channels
        self.lateral0 = nn.Conv2d(c0, width // 2, 1, bias=False)
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1, bias=False) for c in c_rest)
        self.top_down = nn.ModuleList(ConvNormReLU(width, width) for _ in range(len(c_rest) - 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        enc0, *enc = self.backbone(x)  # scales 1/2; 1/4, 1/8, 1/16, 1/32
        maps = [self.laterals[-1](enc[-1])]  # (B, width, H/32, W/32)
        for lateral, top_down, level in zip(self.laterals[-2::-1], self.top_down, enc[-2::-1]):
            maps.append(top_down(lateral(level) + _upsample(maps[-1], 2)))
        # [(B, width/2, H/2, W/2), (B, width, H/4, W/4), ..., (B, width, H/32, W/32)]
        return [self.lateral0(enc0), *maps[::-1]]


class DeblurGANGenerator(nn.Module):
    """FPN-MobileNet generator: (B, 3, H, W) frames in [0, 1] -> (B, 1, H, W).

    Parameters
    ----------
    width : int
        FPN width (128 published); heads use width / 2, the last smoothing conv width / 4, and the
        backbone's width multiplier is ``width / 128``.
    backbone_weights : str or Path or None
        Local torchvision MobileNetV2 state dict to start the backbone from (full width only).
    """

    size_multiple = SIZE_MULTIPLE
    frames = FRAMES

    def __init__(self, width: int = FPN_WIDTH, backbone_weights: str | Path | None = None):
        super().__init__()
        backbone = MobileNetV2Features(in_channels=FRAMES, width_mult=width / FPN_WIDTH)
        if backbone_weights is not None:
            backbone.load_torchvision(backbone_weights)
        self.fpn = FeaturePyramid(backbone, width)
        half = width // 2
        self.heads = nn.ModuleList(FPNHead(width, half, half) for _ in range(4))
        self.smooth = ConvNormReLU(4 * half, half)
        self.smooth2 = ConvNormReLU(half, half // 2)
        self.final = nn.Conv2d(half // 2, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, frames=FRAMES)
        height, width = x.shape[-2:]
        x = 2 * pad_to_multiple(x, SIZE_MULTIPLE) - 1  # DeblurGAN-v2 works in [-1, 1]
        map0, *maps = self.fpn(x)
        # Each head's output upsampled to 1/4 scale: 4 x (B, width/2, H/4, W/4)
        fused = [_upsample(head(m), 2**i) if i else head(m) for i, (head, m) in enumerate(zip(self.heads, maps))]
        y = self.smooth(torch.cat(fused[::-1], dim=1))  # (B, width/2, H/4, W/4)
        y = self.smooth2(_upsample(y, 2) + map0)  # (B, width/4, H/2, W/2)
        y = self.final(_upsample(y, 2))  # (B, 1, H, W)
        restored = torch.clamp(torch.tanh(y) + x[:, FRAMES // 2 : FRAMES // 2 + 1], -1, 1)
        return ((restored + 1) / 2)[..., :height, :width]


class PatchDiscriminator(nn.Sequential):
    """pix2pix PatchGAN: stride-2 4 x 4 convs with doubling widths (capped at 8x), then two stride-1 convs.

    (B, 1, H, W) -> (B, 1, h, w) unbounded scores (least-squares GAN: no sigmoid).
    """

    def __init__(self, width: int = 64, layers: int = 3):
        blocks: list[nn.Module] = [nn.Conv2d(1, width, 4, stride=2, padding=2), nn.LeakyReLU(0.2, inplace=True)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < layers else 1
            blocks += [
                nn.Conv2d(width * prev, width * mult, 4, stride=stride, padding=2),
                nn.InstanceNorm2d(width * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        blocks.append(nn.Conv2d(width * mult, 1, 4, stride=1, padding=2))
        super().__init__(*blocks)


def build_discriminators(width: int = 64) -> nn.ModuleDict:
    """DeblurGAN-v2's double GAN: {"patch": 3-layer PatchGAN, "full": 5-layer PatchGAN}."""
    return nn.ModuleDict({"patch": PatchDiscriminator(width, layers=3), "full": PatchDiscriminator(width, layers=5)})
