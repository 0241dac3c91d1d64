"""The paper's Burst Dense UNet (Wieslander et al. 2021, Fig 6b): ``bdu-t`` and ``bdu-uc``.

The burst structure of :mod:`._burst_unet` (one set of weights per frame, frames exchanging
information through global max pooling, merged by a max before the output) with the UNet's conv
layers replaced by FC-DenseNet ("Tiramisu", Jegou et al. 2017) dense blocks:

* a dense block is ``layers`` conv blocks (BN - ReLU - 3 x 3 conv - dropout), each seeing the block
  input and every earlier layer's ``growth_rate`` new maps;
* the contracting path has 4 dense blocks at scales 1, 1/2, 1/4, 1/8 with a 2 x 2 spatial max pool
  (transition down) between them; after each block its new maps are pooled across frames and the
  result is concatenated onto every frame (global max pooling in the encoder only, as the paper);
* the expanding path has 4 dense blocks at scales 1/8, 1/4, 1/2, 1 with a transition up before each
  of the last three: a 3 x 3 stride-2 transposed conv (``bdu-t``) or nearest-neighbour upsampling
  followed by a 3 x 3 conv (``bdu-uc``), applied, as in Tiramisu, to the previous block's new maps
  only, then concatenated with the encoder skip of that scale.

The paper does not give the growth rate; we use 16 with a 48-map stem (Tiramisu's FC-DenseNet103
settings) and dropout 0.2, all exposed through :class:`napari_temdeblur.core.models.ModelConfig`.
Only the new maps of a block are pooled across frames, so widths grow by ``2 * layers * growth``
per level instead of doubling.
"""

from __future__ import annotations

import torch
from torch import nn

from ._blocks import check_input, global_max_concat, merge_frames, pad_to_multiple

#: H and W must be multiples of this (three 2 x 2 max pools).
SIZE_MULTIPLE = 8
LEVELS = 4


class DenseLayer(nn.Sequential):
    """BN -> ReLU -> 3 x 3 conv -> dropout: (c_in, H, W) -> (growth, H, W)."""

    def __init__(self, c_in: int, growth: int, dropout: float):
        super().__init__(
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
            nn.Conv2d(c_in, growth, 3, padding=1),
            nn.Dropout(dropout),
        )


class DenseBlock(nn.Module):
    """Densely connected layers; returns only their new maps: (c_in, H, W) -> (layers * growth, H, W)."""

    def __init__(self, c_in: int, growth: int, layers: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(c_in + i * growth, growth, dropout) for i in range(layers))
        self.out_channels = layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            new.append(layer(torch.cat([x, *new], dim=1)))
        return torch.cat(new, dim=1)


class TransitionUp(nn.Sequential):
    """Double the resolution: transposed conv (``transposed``) or nearest upsampling + conv."""

    def __init__(self, channels: int, transposed: bool):
        if transposed:
            layers = [nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1)]
        else:
            layers = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1)]
        super().__init__(*layers)


class BurstDenseUNet(nn.Module):
    """Permutation-invariant burst network on an FC-DenseNet UNet.

    Parameters
    ----------
    width : int
        Maps of the 3 x 3 stem conv applied to each frame (48).
    growth_rate : int
        New maps per dense layer (16).
    layers_per_block : int
        Dense layers per block (4, as the paper).
    dropout : float
        Dropout probability after each dense layer (0.2).
    transposed : bool
        Transition up by transposed conv (``bdu-t``) instead of upsampling + conv (``bdu-uc``).
    """

    size_multiple = SIZE_MULTIPLE

    def __init__(
        self,
        width: int = 48,
        growth_rate: int = 16,
        layers_per_block: int = 4,
        dropout: float = 0.2,
        transposed: bool = False,
    ):
        super().__init__()
        layers = layers_per_block
        block_maps = growth_rate * layers
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.down = nn.ModuleList()
        skip_channels = []
        channels = width
        for _ in range(LEVELS):
            self.down.append(DenseBlock(channels, growth_rate, layers, dropout))
            channels += 2 * block_maps  # own new maps + their max over frames
            skip_channels.append(channels)
        self.pool = nn.MaxPool2d(2)
        # The bottom expanding block reads the last contracting block; the others read TU + skip.
        self.up = nn.ModuleList([DenseBlock(channels, growth_rate, layers, dropout)])
        self.transitions = nn.ModuleList()
        for skip in reversed(skip_channels[:-1]):
            self.transitions.append(TransitionUp(block_maps, transposed))
            self.up.append(DenseBlock(block_maps + skip, growth_rate, layers, dropout))
        head_in = block_maps + skip_channels[0] + block_maps  # last block keeps its input, as Tiramisu
        self.head = nn.Sequential(nn.BatchNorm2d(head_in), nn.ReLU(), nn.Conv2d(head_in, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, SIZE_MULTIPLE)
        n = x.shape[1]
        y = self.stem(x.reshape(-1, 1, *x.shape[2:]))  # (B*N, width, H, W)
        skips = []
        for level, block in enumerate(self.down):
            if level:
                y = self.pool(y)  # transition down: (B*N, c, H/2^level, W/2^level)
            new = global_max_concat(block(y), n)  # (B*N, 2 * layers * growth, ...)
            y = torch.cat([y, new], dim=1)
            skips.append(y)
        new = self.up[0](y)  # (B*N, layers * growth, H/8, W/8)
        for transition, block, skip in zip(self.transitions, self.up[1:], reversed(skips[:-1])):
            y = torch.cat([transition(new), skip], dim=1)  # (B*N, layers * growth + skip, 2x scale)
            new = block(y)
        y = torch.cat([y, new], dim=1)  # (B*N, head_in, H, W)
        return self.head(merge_frames(y, n))[..., :height, :width]  # (B, 1, H, W)
