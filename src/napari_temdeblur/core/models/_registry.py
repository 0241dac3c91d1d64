"""The paper's models, built by name from configuration data, and their training recipes.

============  ==========================================================  ==================================
name          network                                                     recipe (Adam)
============  ==========================================================  ==================================
bu            Burst UNet of Aittala & Durand (:mod:`.nets.burst_unet`)     lr 0.003, x0.99/epoch, L1 + gradient
bdu-t         Burst Dense UNet, transposed-conv transition up             lr 0.001 fixed, L1 + gradient
bdu-uc        Burst Dense UNet, nearest upsampling + conv                 lr 0.001 fixed, L1 + gradient
bdu-uc-ssim   bdu-uc network                                              lr 0.001 fixed, L1 + 1 - SSIM
deblurgan     DeblurGAN-v2 FPN-MobileNet, 3 frames as channels            lr 0.001 fixed, MSE + RaGAN-LS
============  ==========================================================  ==================================

Every model maps a float (B, N, H, W) burst in [0, 1] (centre frame ``x[:, N // 2]``) to a
(B, 1, H, W) image; H and W must be multiples of :func:`size_multiple`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from napari_temdeblur.core import reject_unknown_keys

from ._burst_dense_unet import BurstDenseUNet
from ._burst_unet import BurstUNet
from ._deblurgan import DeblurGANGenerator
from ._deblurgan import build_discriminators as _build_discriminators

__all__ = [
    "MODEL_NAMES",
    "MODEL_CLASSES",
    "ModelConfig",
    "build_model",
    "size_multiple",
    "frames_required",
    "Recipe",
    "recipe",
    "build_discriminators",
    "count_parameters",
]

#: name -> network class. ``bdu-uc-ssim`` is the ``bdu-uc`` network; only its recipe differs.
MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "bu": BurstUNet,
    "bdu-t": BurstDenseUNet,
    "bdu-uc": BurstDenseUNet,
    "bdu-uc-ssim": BurstDenseUNet,
    "deblurgan": DeblurGANGenerator,
}
MODEL_NAMES = ("bu", "bdu-t", "bdu-uc", "bdu-uc-ssim", "deblurgan")
_DENSE = ("bdu-t", "bdu-uc", "bdu-uc-ssim")
#: Published widths: bu base width, bdu stem maps, deblurgan FPN maps.
_FULL_WIDTH = {"bu": 64, "bdu-t": 48, "bdu-uc": 48, "bdu-uc-ssim": 48, "deblurgan": 128}
#: Test widths: every model well under 50 k parameters, same topology as the full one.
_TINY = {
    "bu": {"width": 3},
    "bdu-t": {"width": 8, "growth_rate": 2},
    "bdu-uc": {"width": 8, "growth_rate": 2},
    "bdu-uc-ssim": {"width": 8, "growth_rate": 2},
    "deblurgan": {"width": 12, "disc_width": 2},
}


def _check_name(name: str) -> None:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


@dataclass(frozen=True)
class ModelConfig:
    """What is needed to rebuild a model; saved with every checkpoint.

    Attributes
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    width : int or None
        Main width; None = the published one. ``bu``: base width w (encoder w, 2w, 4w, 6w =
        64, 128, 256, 384); ``bdu-*``: maps of the stem conv (48); ``deblurgan``: FPN maps (128; the
        MobileNetV2 width multiplier is width / 128).
    growth_rate : int
        ``bdu-*``: new maps per dense layer (16; the paper does not state it).
    layers_per_block : int
        ``bdu-*``: conv blocks per dense block (4, as the paper).
    dropout : float
        ``bdu-*``: dropout after each dense layer (0.2, as FC-DenseNet).
    disc_width : int
        ``deblurgan``: maps of the discriminators' first conv (64).
    backbone_weights : str or None
        ``deblurgan``: path of a local torchvision MobileNetV2 state dict (ImageNet weights) to
        start the backbone from; None trains from scratch.
    """

    name: str
    width: int | None = None
    growth_rate: int = 16
    layers_per_block: int = 4
    dropout: float = 0.2
    disc_width: int = 64
    backbone_weights: str | None = None

    def __post_init__(self):
        _check_name(self.name)
        if self.width is None:
            object.__setattr__(self, "width", _FULL_WIDTH[self.name])
        for field in ("width", "growth_rate", "layers_per_block", "disc_width"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{field} must be a positive integer, got {value!r}")
        if self.name == "deblurgan" and self.width < 4:
            raise ValueError(f"deblurgan needs width >= 4 (width / 4 maps in the last conv), got {self.width}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.backbone_weights is not None and self.name != "deblurgan":
            raise ValueError(f"backbone_weights applies only to deblurgan, not {self.name}")

    @classmethod
    def full(cls, name: str) -> ModelConfig:
        """The published widths (the same as ``ModelConfig(name)``)."""
        return cls(name)

    @classmethod
    def tiny(cls, name: str) -> ModelConfig:
        """The same topology at a width small enough for CPU tests (< 50 k parameters)."""
        _check_name(name)
        return cls(name, **_TINY[name])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Build from a dict, rejecting unknown keys and unknown model names with a clear ValueError."""
        reject_unknown_keys(cls, data, "model parameter")
        if "name" not in data:
            raise ValueError("model configuration has no 'name'")
        return cls(**data)


def build_model(cfg: ModelConfig, *, pretrained: bool = True) -> nn.Module:
    """Build the network of `cfg` with fresh weights.

    Parameters
    ----------
    cfg : ModelConfig
        Name and widths.
    pretrained : bool
        deblurgan: start the backbone from ``cfg.backbone_weights`` when set (raises DataError when
        that file is unusable). Pass False when a checkpoint's weights will replace them anyway, so
        that restoring never needs the original file.
    """
    cls = MODEL_CLASSES[cfg.name]
    if cls is BurstUNet:
        return BurstUNet(width=cfg.width)
    if cls is BurstDenseUNet:
        return BurstDenseUNet(width=cfg.width, growth_rate=cfg.growth_rate, layers=cfg.layers_per_block,
                              dropout=cfg.dropout, transposed=cfg.name == "bdu-t")
    return DeblurGANGenerator(width=cfg.width, backbone_weights=cfg.backbone_weights if pretrained else None)


def size_multiple(cfg: ModelConfig) -> int:
    """H and W of the input must be multiples of this."""
    return MODEL_CLASSES[cfg.name].size_multiple


def frames_required(cfg: ModelConfig) -> int | None:
    """The exact number of frames the model takes (3 for deblurgan), or None for any N >= 1."""
    return getattr(MODEL_CLASSES[cfg.name], "frames", None)


def build_discriminators(cfg: ModelConfig) -> nn.ModuleDict:
    """The adversarial model's discriminators, {"patch": ..., "full": ...}: (B, 1, H, W) -> scores."""
    if not recipe(cfg.name).adversarial:
        raise ValueError(f"{cfg.name} is not trained adversarially; it has no discriminators")
    return _build_discriminators(cfg.disc_width)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass(frozen=True)
class Recipe:
    """How the paper trained a model.

    Attributes
    ----------
    loss : str
        Content loss for :func:`napari_temdeblur.core.losses.make_loss`: "l1-gradient", "l1-ssim" or
        "mse-ragan" (MSE content; the RaGAN-LS terms come from the discriminators).
    lr : float
        Adam learning rate.
    lr_decay_per_epoch : float
        Multiplier applied to the learning rate after each epoch (1.0 = fixed).
    adversarial : bool
        Whether discriminators are trained alongside (:func:`build_discriminators`).
    adversarial_weight : float
        Weight of the generator's adversarial loss against the content loss.
    """

    loss: str
    lr: float
    lr_decay_per_epoch: float = 1.0
    adversarial: bool = False
    adversarial_weight: float = 0.0


_RECIPES = {
    "bu": Recipe("l1-gradient", 0.003, 0.99),
    "bdu-t": Recipe("l1-gradient", 0.001),
    "bdu-uc": Recipe("l1-gradient", 0.001),
    "bdu-uc-ssim": Recipe("l1-ssim", 0.001),
    # The paper: Adam 1e-3; DeblurGAN-v2 weighs the adversarial term 0.001 against the content loss.
    "deblurgan": Recipe("mse-ragan", 0.001, adversarial=True, adversarial_weight=0.001),
}


def recipe(name: str) -> Recipe:
    """The paper's training recipe for model `name`."""
    _check_name(name)
    return _RECIPES[name]
