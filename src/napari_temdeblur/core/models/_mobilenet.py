"""MobileNetV2 feature extractor (Sandler et al. 2018), the DeblurGAN-v2 generator's backbone.

Written here so nothing is downloaded; module names follow torchvision's ``mobilenet_v2().features``
so that a locally stored torchvision (ImageNet) state dict loads into it unchanged
(:meth:`MobileNetV2Features.load_torchvision`). Only the first 16 stages are built: DeblurGAN-v2's
feature pyramid stops at the 160-map stage (1/32 scale).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from napari_temdeblur.core import DataError

#: (expansion t, output maps c, repeats n, first stride s) of MobileNetV2, up to the 160-map stage.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2))
#: Slices of ``features`` whose outputs feed the pyramid, at scales 1/2 ... 1/32.
PYRAMID_SLICES = ((0, 2), (2, 4), (4, 7), (7, 11), (11, 16))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to a multiple of `divisor`, never more than 10 % below `value` (torchvision's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvNormReLU6(nn.Sequential):
    """conv (no bias) -> batch norm -> ReLU6."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """1 x 1 expansion, 3 x 3 depthwise conv, linear 1 x 1 projection; residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
        super().__init__()
        hidden = c_in * expansion
        layers = [] if expansion == 1 else [ConvNormReLU6(c_in, hidden, kernel=1)]
        layers += [
            ConvNormReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Features(nn.Module):
    """The MobileNetV2 stages up to 1/32 scale, returning the five pyramid levels.

    Parameters
    ----------
    in_channels : int
        Input maps (3: the three frames take the place of RGB).
    width_mult : float
        Width multiplier (1.0 = the published network).
    """

    def __init__(self, in_channels: int = 3, width_mult: float = 1.0):
        super().__init__()
        c_prev = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvNormReLU6(in_channels, c_prev, stride=2)]
        for expansion, maps, repeats, stride in STAGES:
            c_out = make_divisible(maps * width_mult)
            for i in range(repeats):
                layers.append(InvertedResidual(c_prev, c_out, stride if i == 0 else 1, expansion))
                c_prev = c_out
        self.features = nn.Sequential(*layers)
        #: Maps of the five pyramid levels (16, 24, 32, 64, 160 at width 1).
        self.channels = [self._out_channels(end) for _, end in PYRAMID_SLICES]

    def _out_channels(self, end: int) -> int:
        return self.features[end - 1].conv[-1].num_features

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = []
        for start, end in PYRAMID_SLICES:
            for layer in self.features[start:end]:
                x = layer(x)
            levels.append(x)  # scales 1/2, 1/4, 1/8, 1/16, 1/32
        return levels

    def load_torchvision(self, path: str | Path) -> None:
        """Load ``features.*`` weights from a local torchvision MobileNetV2 state dict file.

        Stages beyond the pyramid (``features.16`` on) and the classifier are ignored. Raises
        DataError when the file cannot be read or its tensors do not fit this backbone (e.g. another
        width multiplier or a non-MobileNetV2 file).
        """
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            raise DataError(path, f"cannot read pretrained backbone weights ({exc})") from exc
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise DataError(path, "is not a state dict of MobileNetV2 weights")
        ours = self.state_dict()
        wanted = {key: value for key, value in state.items() if key in ours}
        missing = sorted(set(ours) - set(wanted))
        if missing:
            raise DataError(
                path,
                f"is not a MobileNetV2 state dict for this backbone: {len(missing)} tensors missing, e.g. {missing[0]}",
            )
        mismatched = [key for key, value in wanted.items() if value.shape != ours[key].shape]
        if mismatched:
            key = mismatched[0]
            raise DataError(
                path,
                f"tensor {key} has shape {tuple(wanted[key].shape)}, the backbone needs "
                f"{tuple(ours[key].shape)} (pretrained weights need the full width)",
            )
        self.load_state_dict(wanted)
