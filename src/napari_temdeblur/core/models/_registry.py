"""The model registry: one :class:`ModelSpec` per model name, built from configuration data.

============  ==========================================================  ======================================
name          network                                                     recipe (Adam)
============  ==========================================================  ======================================
bu            Burst UNet of Aittala & Durand (:mod:`._burst_unet`)         lr 0.003, x0.99/epoch, L1 + gradient
bdu-t         Burst Dense UNet, transposed-conv transition up             lr 0.001 fixed, L1 + gradient
bdu-uc        Burst Dense UNet, nearest upsampling + conv                 lr 0.001 fixed, L1 + gradient
bdu-uc-ssim   bdu-uc network                                              lr 0.001 fixed, L1 + 1 - SSIM
deblurgan     DeblurGAN-v2 FPN-MobileNet, 3 frames as channels            lr 0.001 fixed, MSE + RaGAN-LS
fast-burst    NAFNet blocks at half resolution, max/mean frame fusion     lr 0.004, x0.998/epoch, L1 + 1 - SSIM
============  ==========================================================  ======================================

The first five are the paper's; ``fast-burst`` (:mod:`._fast_burst`) is the plugin's default: about 60x
faster than ``bdu-uc-ssim`` at inference and better in equal training time (docs/models.md).

Every model maps a float (B, N, H, W) burst in [0, 1] (centre frame ``x[:, N // 2]``) to a
(B, 1, H, W) image of the same size: a network pads its input to its size multiple itself and crops
the output back. This module does not import torch: a network's module is imported when the network
is first built, so configurations (and the command line built from them) stay light.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from napari_temdeblur.core import check_int, reject_unknown_keys

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Recipe:
    """How the paper trained a model.

    Attributes
    ----------
    loss : str
        Content loss for :func:`napari_temdeblur.core.train.make_loss`: "l1-gradient", "l1-ssim" or
        "mse-ragan" (MSE content; the RaGAN-LS terms come from the discriminators).
    lr : float
        Adam learning rate.
    lr_decay_per_epoch : float
        Multiplier applied to the learning rate after each epoch (1.0 = fixed).
    adversarial : bool
        Whether discriminators are trained alongside (:func:`build_discriminators`).
    adversarial_weight : float
        Weight of the generator's adversarial loss against the content loss.
    grad_clip : float or None
        Clip the gradients' global norm to this before each step (None: never; the paper's models).
    """

    loss: str
    lr: float
    lr_decay_per_epoch: float = 1.0
    adversarial: bool = False
    adversarial_weight: float = 0.0
    grad_clip: float | None = None


@dataclass(frozen=True)
class ModelSpec:
    """Everything the package knows about one model name.

    Attributes
    ----------
    name : str
        The name users type (``--model``) and checkpoints record.
    summary : str
        One line for menus and ``--help``.
    network : str
        ``"<private module>:<class>"`` of the architecture in this package (imported on first use).
    full_width : int
        The published ``ModelConfig.width``.
    tiny : dict
        ``ModelConfig`` fields of the tiny variant (same topology, < 50 k parameters) for tests and
        quick CPU checks.
    recipe : Recipe
        The paper's training recipe.
    config_fields : tuple of str
        The ``ModelConfig`` fields passed to the network's constructor (same names).
    options : dict
        Further constructor arguments fixed by the name (e.g. ``transposed=True`` for ``bdu-t``).
    min_width : int
        Smallest width the architecture supports.
    size_multiple : int
        Sizes that need no padding are multiples of this (the network's total downsampling).
    frames_required : int or None
        The exact number of frames the model takes (frames as channels), or None for any N >= 1.

    ``size_multiple`` and ``frames_required`` are the network class's own attributes, written here as
    data (a test checks that they agree) so that configurations never import torch.
    """

    name: str
    summary: str
    network: str
    full_width: int
    tiny: dict
    recipe: Recipe
    size_multiple: int
    config_fields: tuple[str, ...] = ("width",)
    options: dict = field(default_factory=dict)
    min_width: int = 1
    frames_required: int | None = None

    @property
    def network_class(self) -> type[nn.Module]:
        """The architecture (its module, and torch, are imported now)."""
        module, cls = self.network.split(":")
        return getattr(importlib.import_module(module, __package__), cls)


_DENSE = ("width", "growth_rate", "layers_per_block", "dropout")
_DENSE_TINY = {"width": 8, "growth_rate": 2}

#: The three Burst Dense UNets differ only in their up-sampling (bdu-t) and loss (bdu-uc-ssim).
_BURST_DENSE_UNET = ModelSpec(
    name="bdu-uc",
    summary="Burst Dense UNet",
    network="._burst_dense_unet:BurstDenseUNet",
    full_width=48,
    size_multiple=8,
    tiny=_DENSE_TINY,
    recipe=Recipe("l1-gradient", 0.001),
    config_fields=_DENSE,
)

#: The models by name; adding a model is one entry here.
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="bu",
            summary="Burst UNet (Aittala & Durand)",
            network="._burst_unet:BurstUNet",
            full_width=64,
            size_multiple=16,
            tiny={"width": 3},
            recipe=Recipe("l1-gradient", 0.003, 0.99),
        ),
        dataclasses.replace(
            _BURST_DENSE_UNET,
            name="bdu-t",
            summary="Burst Dense UNet, transposed-conv up",
            options={"transposed": True},
        ),
        dataclasses.replace(_BURST_DENSE_UNET, name="bdu-uc", summary="Burst Dense UNet, upsampling + conv"),
        dataclasses.replace(
            _BURST_DENSE_UNET,
            name="bdu-uc-ssim",
            summary="bdu-uc trained with L1 + SSIM (the paper's best)",
            recipe=Recipe("l1-ssim", 0.001),
        ),
        ModelSpec(
            name="deblurgan",
            summary="DeblurGAN-v2 FPN-MobileNet, 3 frames as channels",
            network="._deblurgan:DeblurGANGenerator",
            full_width=128,
            size_multiple=32,
            tiny={"width": 12, "disc_width": 2},
            # The paper: Adam 1e-3; DeblurGAN-v2 weighs the adversarial term 0.001 against the content loss.
            recipe=Recipe("mse-ragan", 0.001, adversarial=True, adversarial_weight=0.001),
            config_fields=("width", "backbone_weights"),
            min_width=4,
            frames_required=3,
        ),
        ModelSpec(
            name="fast-burst",
            summary="fast burst network (NAFNet blocks), the default",
            network="._fast_burst:FastBurstNet",
            full_width=16,
            size_multiple=16,
            tiny={"width": 4},
            # a high rate learns fast in minutes; clipping the rare large gradients (their norm is about
            # 1, spikes reach 5-9) and a slow decay keep long runs from diverging, as they did without
            recipe=Recipe("l1-ssim", 0.004, 0.998, grad_clip=2.0),
        ),
    )
}
MODEL_NAMES = tuple(MODELS)
#: The model users get unless they choose another.
DEFAULT_MODEL = "fast-burst"


def model_spec(name: str) -> ModelSpec:
    """The registry entry of `name`; a ValueError listing the known names otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return MODELS[name]


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
        spec = model_spec(self.name)
        if self.width is None:
            object.__setattr__(self, "width", spec.full_width)
        for name in ("width", "growth_rate", "layers_per_block", "disc_width"):
            check_int(f"ModelConfig.{name}", getattr(self, name))
        if self.width < spec.min_width:
            raise ValueError(f"{self.name} needs width >= {spec.min_width}, got {self.width}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.backbone_weights is not None and "backbone_weights" not in spec.config_fields:
            takers = [s.name for s in MODELS.values() if "backbone_weights" in s.config_fields]
            raise ValueError(f"backbone_weights applies only to {', '.join(takers)}, not {self.name}")

    @classmethod
    def full(cls, name: str) -> ModelConfig:
        """The published widths (the same as ``ModelConfig(name)``)."""
        return cls(name)

    @classmethod
    def tiny(cls, name: str) -> ModelConfig:
        """The same topology at a width small enough for CPU tests (< 50 k parameters)."""
        return cls(name, **model_spec(name).tiny)

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
        Start a pretrained backbone (deblurgan's ``backbone_weights``) from its file when set
        (DataError when that file is unusable). Pass False when a checkpoint's weights will replace
        them anyway, so that restoring never needs the original file.
    """
    spec = model_spec(cfg.name)
    kwargs = {name: getattr(cfg, name) for name in spec.config_fields}
    if not pretrained and "backbone_weights" in kwargs:
        kwargs["backbone_weights"] = None
    return spec.network_class(**kwargs, **spec.options)


def size_multiple(cfg: ModelConfig) -> int:
    """H and W that are multiples of this need no padding inside the network."""
    return model_spec(cfg.name).size_multiple


def frames_required(cfg: ModelConfig) -> int | None:
    """The exact number of frames the model takes (3 for deblurgan), or None for any N >= 1."""
    return model_spec(cfg.name).frames_required


def recipe(name: str) -> Recipe:
    """The paper's training recipe for model `name`."""
    return model_spec(name).recipe


def build_discriminators(cfg: ModelConfig) -> nn.ModuleDict:
    """The adversarial model's discriminators, {"patch": ..., "full": ...}: (B, 1, H, W) -> scores."""
    if not recipe(cfg.name).adversarial:
        raise ValueError(f"{cfg.name} is not trained adversarially; it has no discriminators")
    from ._deblurgan import build_discriminators as discriminators

    return discriminators(cfg.disc_width)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
