"""Each loss against a value computed by hand or with an independent implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from napari_temdeblur.core.models import ModelConfig, build_discriminators
from napari_temdeblur.core.train import (
    LOSS_NAMES,
    adversarial_discriminator_loss,
    adversarial_generator_loss,
    l1_gradient_loss,
    l1_loss,
    l1_ssim_loss,
    make_loss,
    ragan_ls_discriminator_loss,
    ragan_ls_generator_loss,
    ssim_loss,
)

# pred - target = [[0, 1, 3], [2, 2, 2]]
PRED = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])
TARGET = torch.zeros_like(PRED)


def test_l1_gradient_loss_by_hand():
    # L1: (0+1+3+2+2+2)/6; horizontal differences [[1, 2], [0, 0]] -> 3/4; vertical [2, 1, -1] -> 4/3
    expected = 10 / 6 + 3 / 4 + 4 / 3
    assert l1_gradient_loss(PRED, TARGET).item() == pytest.approx(expected)
    assert l1_gradient_loss(PRED + 5, TARGET + 5).item() == pytest.approx(expected)  # only differences count


def test_content_losses_and_weighted_sum_by_hand():
    assert make_loss("l1")(PRED, TARGET).item() == pytest.approx(10 / 6)
    assert make_loss("mse")(PRED, TARGET).item() == pytest.approx((0 + 1 + 9 + 4 + 4 + 4) / 6)
    assert make_loss("mse-ragan")(PRED, TARGET).item() == pytest.approx(22 / 6)
    weighted = make_loss({"l1": 2.0, "mse": 0.5, "l1-gradient": 1.0})
    assert weighted(PRED, TARGET).item() == pytest.approx(2 * 10 / 6 + 0.5 * 22 / 6 + 3.75)
    assert set(LOSS_NAMES) >= {"l1-gradient", "ssim", "mse-ragan"}


def test_ssim_loss_is_one_minus_skimage_ssim():
    rng = np.random.default_rng(0)
    gt = rng.random((2, 24, 30))
    pred = np.clip(gt + 0.15 * rng.standard_normal(gt.shape), 0, 1)
    expected = 1 - np.mean(
        [
            structural_similarity(p, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)
            for p, g in zip(pred, gt)
        ]
    )
    value = ssim_loss(torch.tensor(pred[:, None]), torch.tensor(gt[:, None]))
    assert value.item() == pytest.approx(expected, abs=1e-6)
    assert make_loss("ssim")(torch.tensor(gt[:, None]), torch.tensor(gt[:, None])).item() == pytest.approx(0, abs=1e-9)


def test_l1_ssim_loss_does_not_reward_a_negated_image():
    """1 - SSIM alone prefers -GT to a noisy but truthful image (both SSIM terms flip sign);
    the BDU+UC+SSIM loss, L1 + (1 - SSIM), does not."""
    rng = np.random.default_rng(0)
    gt = ndimage.gaussian_filter(rng.random((64, 64)), 2)
    gt = torch.tensor((gt - gt.min()) / (gt.max() - gt.min()))[None, None]
    negated = -gt
    noisy = (gt + 0.2 * torch.tensor(rng.standard_normal((64, 64)))).clamp(0, 1)
    assert ssim_loss(negated, gt) < ssim_loss(noisy, gt)
    assert l1_ssim_loss(negated, gt) > l1_ssim_loss(noisy, gt)
    assert make_loss("l1-ssim")(noisy, gt).item() == pytest.approx((l1_loss(noisy, gt) + ssim_loss(noisy, gt)).item())


def test_ragan_ls_losses_by_hand():
    d_real, d_fake = torch.tensor([2.0, 4.0]), torch.tensor([0.0, 1.0])  # means 3 and 0.5
    # D: real terms (2-.5-1)^2, (4-.5-1)^2 -> 3.25; fake terms (0-3+1)^2, (1-3+1)^2 -> 2.5
    assert ragan_ls_discriminator_loss(d_real, d_fake).item() == pytest.approx((3.25 + 2.5) / 2)
    # G: real terms (2-.5+1)^2, (4-.5+1)^2 -> 13.25; fake terms (0-3-1)^2, (1-3-1)^2 -> 12.5
    assert ragan_ls_generator_loss(d_real, d_fake).item() == pytest.approx((13.25 + 12.5) / 2)


def test_adversarial_losses_average_both_discriminators_and_shield_the_generator():
    torch.manual_seed(0)
    discriminators = build_discriminators(ModelConfig.tiny("deblurgan"))
    source = torch.rand(2, 1, 32, 32, requires_grad=True)
    fake, real = source * 0.5, torch.rand(2, 1, 32, 32)
    d_loss = adversarial_discriminator_loss(discriminators, fake, real)
    expected = np.mean([ragan_ls_discriminator_loss(d(real), d(fake)).item() for d in discriminators.values()])
    assert d_loss.item() == pytest.approx(expected, rel=1e-5)
    d_loss.backward()
    assert source.grad is None  # the discriminator step must not train the generator
    g_loss = adversarial_generator_loss(discriminators, fake, real)
    expected = np.mean([ragan_ls_generator_loss(d(real), d(fake)).item() for d in discriminators.values()])
    assert g_loss.item() == pytest.approx(expected, rel=1e-5)
    g_loss.backward()
    assert source.grad.abs().sum() > 0


def test_loss_errors():
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        make_loss("l2")
    with pytest.raises(ValueError, match="at least one term"):
        make_loss({})
    with pytest.raises(ValueError, match="shapes differ"):
        l1_gradient_loss(PRED, TARGET[..., :2])
