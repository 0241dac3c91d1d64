"""Training losses of the paper's recipes (see :func:`napari_temdeblur.core.models.recipe`).

Content losses take ``pred, target`` float tensors (B, 1, H, W) with intensities windowed to [0, 1]
and return a scalar tensor (a mean over the batch). The RaGAN-LS losses take discriminator scores of
any shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from napari_temdeblur.core.imaging import ssim_torch

__all__ = [
    "LOSS_NAMES",
    "l1_loss",
    "mse_loss",
    "l1_gradient_loss",
    "ssim_loss",
    "l1_ssim_loss",
    "make_loss",
    "ragan_ls_discriminator_loss",
    "ragan_ls_generator_loss",
    "adversarial_generator_loss",
    "adversarial_discriminator_loss",
]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    _check(pred, target)
    return F.l1_loss(pred, target)


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (DeblurGAN-v2's content loss)."""
    _check(pred, target)
    return F.mse_loss(pred, target)


def l1_gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The Burst network's loss: L1 on intensities plus L1 on horizontal and vertical gradients.

    Gradients are plain forward differences (not normalised by the intensity), each term a mean
    over its own elements: ``mean|p - t| + mean|dx p - dx t| + mean|dy p - dy t|`` with
    ``dx p = p[..., :, 1:] - p[..., :, :-1]`` and ``dy`` likewise along rows.
    """
    _check(pred, target)
    error = pred - target
    # The gradient of the error equals the error of the gradients: one difference per axis.
    dx = error[..., :, 1:] - error[..., :, :-1]
    dy = error[..., 1:, :] - error[..., :-1, :]
    return error.abs().mean() + dx.abs().mean() + dy.abs().mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM (the one SSIM of :mod:`napari_temdeblur.core.imaging`); H, W >= 11."""
    _check(pred, target)
    return 1 - ssim_torch(pred, target).mean()


def l1_ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 + (1 - mean SSIM): the paper's BDU+UC+SSIM loss, the gradient term of L1 + gradient
    replaced by SSIM.

    The L1 term is not optional: SSIM's luminance and structure terms are both negative for a
    sign-flipped image, so 1 - SSIM alone scores ``-target`` as a good restoration (measured: a tiny
    network trained on the simulated grid converged to such a negated output).
    """
    return l1_loss(pred, target) + ssim_loss(pred, target)


_LOSSES: dict[str, Loss] = {
    "l1": l1_loss,
    "mse": mse_loss,
    "l1-gradient": l1_gradient_loss,
    "ssim": ssim_loss,
    "l1-ssim": l1_ssim_loss,
    # The adversarial recipe's content part; the RaGAN-LS terms need the discriminators.
    "mse-ragan": mse_loss,
}
LOSS_NAMES = tuple(_LOSSES)


def make_loss(name: str | Mapping[str, float]) -> Loss:
    """The content loss called `name`, or a weighted sum of them.

    Parameters
    ----------
    name : str or mapping
        One of :data:`LOSS_NAMES`, or ``{name: weight}`` for ``sum(weight * loss)``, e.g.
        ``{"ssim": 0.84, "l1": 0.16}``.

    Returns
    -------
    callable
        ``loss(pred, target) -> scalar tensor``.
    """
    if isinstance(name, Mapping):
        if not name:
            raise ValueError("a weighted loss needs at least one term")
        terms = [(make_loss(term), float(weight)) for term, weight in name.items()]

        def weighted(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return sum(weight * loss(pred, target) for loss, weight in terms)

        return weighted
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    return _LOSSES[name]


def ragan_ls_discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Relativistic average least-squares GAN loss of the discriminator (DeblurGAN-v2).

    ``(mean((D(real) - mean D(fake) - 1)^2) + mean((D(fake) - mean D(real) + 1)^2)) / 2``.
    """
    return (((d_real - d_fake.mean() - 1) ** 2).mean() + ((d_fake - d_real.mean() + 1) ** 2).mean()) / 2


def ragan_ls_generator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Relativistic average least-squares GAN loss of the generator: the discriminator's targets swapped.

    ``(mean((D(real) - mean D(fake) + 1)^2) + mean((D(fake) - mean D(real) - 1)^2)) / 2``.
    """
    return (((d_real - d_fake.mean() + 1) ** 2).mean() + ((d_fake - d_real.mean() - 1) ** 2).mean()) / 2


def adversarial_generator_loss(discriminators: nn.ModuleDict, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the discriminators (DeblurGAN-v2's double GAN) of the generator's RaGAN-LS loss.

    `fake` is the generator output (B, 1, H, W) with its graph; `real` the ground truth.
    """
    losses = [ragan_ls_generator_loss(d(real), d(fake)) for d in discriminators.values()]
    return torch.stack(losses).mean()


def adversarial_discriminator_loss(
    discriminators: nn.ModuleDict, fake: torch.Tensor, real: torch.Tensor
) -> torch.Tensor:
    """Mean over the discriminators of their RaGAN-LS loss; `fake` is detached from the generator."""
    fake = fake.detach()
    losses = [ragan_ls_discriminator_loss(d(real), d(fake)) for d in discriminators.values()]
    return torch.stack(losses).mean()
