"""One optimisation step of each recipe: supervised (burst networks) or adversarial (deblurgan).

A trainer owns the network, its optimiser(s) and learning-rate schedule; its ``state_dict`` holds
everything else a resumed run needs to continue exactly (optimiser moments, scheduler epoch,
discriminators).
"""

from __future__ import annotations

import torch
from torch import nn

from napari_temdeblur.core.models import build_discriminators, build_model, recipe

from ._config import TrainConfig
from ._losses import (
    adversarial_discriminator_loss,
    adversarial_generator_loss,
    make_loss,
)


class SupervisedTrainer:
    """Adam on the recipe's content loss, learning rate multiplied by the recipe's decay per epoch.

    Parameters
    ----------
    cfg : TrainConfig
    device : torch.device
    pretrained : bool
        Load the model's local pretrained weights (deblurgan's backbone file), if it names any.
        False when resuming: the weights then come from last.pt, and the file may have moved.
    """

    def __init__(self, cfg: TrainConfig, device: torch.device, pretrained: bool = True):
        self.recipe = recipe(cfg.model.name)
        self.model = build_model(cfg.model, pretrained=pretrained).to(device)
        self.loss = make_loss(self.recipe.loss)
        self.optimizers = {"model": self._adam(self.model, cfg)}
        self.schedulers = {
            name: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.recipe.lr_decay_per_epoch)
            for name, opt in self.optimizers.items()
        }

    def _adam(self, module: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
        return torch.optim.Adam(module.parameters(), lr=cfg.lr if cfg.lr is not None else self.recipe.lr)

    @property
    def lr(self) -> float:
        """The network's current learning rate."""
        return float(self.optimizers["model"].param_groups[0]["lr"])

    def train_mode(self, training: bool) -> None:
        self.model.train(training)

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        """One step on a batch: inputs (B, N, H, W), targets (B, 1, H, W), float32 in [0, 1]; returns the loss."""
        loss = self.loss(self.model(inputs), targets)
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.recipe.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        optimizer.step()
        return float(loss.detach())

    def end_epoch(self) -> None:
        """Apply the per-epoch learning-rate decay."""
        for scheduler in self.schedulers.values():
            scheduler.step()

    def state_dict(self) -> dict:
        """Optimiser and scheduler states (the network's weights are saved separately)."""
        return {
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])


class AdversarialTrainer(SupervisedTrainer):
    """DeblurGAN-v2's double GAN: each step updates the patch and full discriminators on the RaGAN-LS
    loss, then the generator on content loss + ``recipe.adversarial_weight`` x adversarial loss.
    Both have Adam at the same learning rate and schedule."""

    def __init__(self, cfg: TrainConfig, device: torch.device, pretrained: bool = True):
        super().__init__(cfg, device, pretrained)
        self.discriminators = build_discriminators(cfg.model).to(device)
        self.optimizers["discriminators"] = self._adam(self.discriminators, cfg)
        self.schedulers["discriminators"] = torch.optim.lr_scheduler.ExponentialLR(
            self.optimizers["discriminators"], gamma=self.recipe.lr_decay_per_epoch
        )

    def train_mode(self, training: bool) -> None:
        self.model.train(training)
        self.discriminators.train(training)

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        """One discriminator and one generator update; returns the generator's total loss."""
        fake = self.model(inputs)
        d_opt, g_opt = self.optimizers["discriminators"], self.optimizers["model"]
        d_loss = adversarial_discriminator_loss(self.discriminators, fake, targets)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        # The generator's loss must not move the discriminators: freeze them for its backward pass.
        self.discriminators.requires_grad_(False)
        try:
            adversarial = adversarial_generator_loss(self.discriminators, fake, targets)
            g_loss = self.loss(fake, targets) + self.recipe.adversarial_weight * adversarial
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
        finally:
            self.discriminators.requires_grad_(True)
        return float(g_loss.detach())

    def state_dict(self) -> dict:
        return {**super().state_dict(), "discriminators": self.discriminators.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.discriminators.load_state_dict(state["discriminators"])
        super().load_state_dict(state)


def make_trainer(cfg: TrainConfig, device: torch.device, pretrained: bool = True) -> SupervisedTrainer:
    """The trainer for `cfg`'s model recipe (adversarial for deblurgan); `pretrained` as for
    :class:`SupervisedTrainer`."""
    cls = AdversarialTrainer if recipe(cfg.model.name).adversarial else SupervisedTrainer
    return cls(cfg, device, pretrained)
