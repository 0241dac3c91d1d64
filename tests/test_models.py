"""The model registry: shapes, frame handling, permutation invariance, configs, recipes, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_temdeblur.core import DataError
from napari_temdeblur.core.imaging import (
    apply_window,
    random_crops,
    sample_mask,
    suggest_window,
)
from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.models import (
    DEFAULT_MODEL,
    MODEL_NAMES,
    MobileNetV2Features,
    ModelConfig,
    build_discriminators,
    build_model,
    count_parameters,
    frames_required,
    model_spec,
    recipe,
    size_multiple,
)
from napari_temdeblur.core.train import (
    adversarial_discriminator_loss,
    adversarial_generator_loss,
    make_loss,
)

BURST_MODELS = [name for name in MODEL_NAMES if frames_required(ModelConfig(name)) is None]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return {name: build_model(ModelConfig.tiny(name)).eval() for name in MODEL_NAMES}


def test_the_table_has_the_papers_models_and_the_fast_default():
    assert MODEL_NAMES == ("bu", "bdu-t", "bdu-uc", "bdu-uc-ssim", "deblurgan", "fast-burst")
    assert DEFAULT_MODEL == "fast-burst"
    assert BURST_MODELS == ["bu", "bdu-t", "bdu-uc", "bdu-uc-ssim", "fast-burst"]
    assert frames_required(ModelConfig("deblurgan")) == 3
    # the registry's size multiples and frame counts (data, so that configurations need no torch) are
    # the networks' own
    for name in MODEL_NAMES:
        network = model_spec(name).network_class
        assert frames_required(ModelConfig(name)) == getattr(network, "frames", None)
        assert size_multiple(ModelConfig(name)) == network.size_multiple
    assert {name: size_multiple(ModelConfig(name)) for name in MODEL_NAMES} == {
        "bu": 16,
        "bdu-t": 8,
        "bdu-uc": 8,
        "bdu-uc-ssim": 8,
        "deblurgan": 32,
        "fast-burst": 16,
    }


def test_fast_burst_predicts_a_residual_on_the_frame_mean():
    model = build_model(ModelConfig.tiny("fast-burst")).eval()
    burst = torch.rand(2, 4, 40, 56)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        torch.testing.assert_close(model(burst), burst.mean(dim=1, keepdim=True))
    # the shared per-frame encoder works on a quarter of the pixels: each 2 x 2 block is 4 channels
    assert model.encode_frame.in_channels == 4 and model.size_multiple == 16


@pytest.mark.parametrize("name", BURST_MODELS)
def test_burst_models_take_any_number_of_frames(tiny_models, name):
    model = tiny_models[name]
    with torch.no_grad():
        for frames in range(1, 6):
            out = model(torch.rand(2, frames, 32, 48))
            assert out.shape == (2, 1, 32, 48) and out.dtype == torch.float32


def test_deblurgan_takes_exactly_three_frames(tiny_models):
    model = tiny_models["deblurgan"]
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 64))
        assert out.shape == (2, 1, 32, 64) and out.min() >= 0 and out.max() <= 1
        for frames in (1, 2, 4, 5):
            with pytest.raises(ValueError, match=f"exactly 3 frames, got {frames}"):
                model(torch.rand(1, frames, 32, 32))


@pytest.mark.parametrize("name", BURST_MODELS)
def test_burst_models_are_permutation_invariant(tiny_models, name):
    torch.manual_seed(1)
    x = torch.rand(2, 5, 32, 32)
    with torch.no_grad():
        out = tiny_models[name](x)
        for order in ([4, 3, 2, 1, 0], [1, 0, 3, 4, 2]):
            torch.testing.assert_close(tiny_models[name](x[:, order]), out, atol=1e-5, rtol=1e-5)
        # while the frames do matter: dropping one changes the output
        assert not torch.allclose(tiny_models[name](x[:, :4]), out, atol=1e-3)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_any_size_is_padded_to_the_size_multiple_inside_the_network(tiny_models, name):
    multiple = size_multiple(ModelConfig(name))
    frames = frames_required(ModelConfig(name)) or 5
    x = torch.rand(2, frames, 36, multiple * 2 + 3)
    with torch.no_grad():
        out = tiny_models[name](x)
        # the same as mirror-padding by hand to the next multiples and cropping the output back
        padded = torch.nn.functional.pad(x, (0, -x.shape[-1] % multiple, 0, -x.shape[-2] % multiple), mode="reflect")
        by_hand = tiny_models[name](padded)[..., :36, : multiple * 2 + 3]
    assert out.shape == (2, 1, 36, multiple * 2 + 3)
    torch.testing.assert_close(out, by_hand)
    with pytest.raises(ValueError, match=r"\(B, N, H, W\)"):
        tiny_models[name](torch.rand(frames, multiple, multiple))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_round_trip_and_widths(name):
    for cfg in (ModelConfig.tiny(name), ModelConfig.full(name)):
        assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert ModelConfig.full(name) == ModelConfig(name)
    assert count_parameters(build_model(ModelConfig.tiny(name))) < 50_000
    # the paper's networks have millions of parameters; the fast default a few hundred thousand
    full = count_parameters(build_model(ModelConfig.full(name)))
    assert 100_000 < full < 1_000_000 if name == "fast-burst" else full > 1_000_000


def test_full_widths_follow_the_publications():
    bu = build_model(ModelConfig.full("bu"))
    encoder = [bu.enc0[0], bu.enc1[1][0], bu.enc2[1][0], bu.enc3[1][0]]
    assert [conv.out_channels for conv in encoder] == [64, 128, 256, 384]
    bdu = build_model(ModelConfig.full("bdu-uc"))
    assert bdu.stem.out_channels == 48 and len(bdu.down) == len(bdu.up) == 4
    assert all(len(block.layers) == 4 and block.out_channels == 4 * 16 for block in [*bdu.down, *bdu.up])
    gan = build_model(ModelConfig.full("deblurgan"))
    assert gan.fpn.backbone.channels == [16, 24, 32, 64, 160]
    assert isinstance(build_model(ModelConfig.full("bdu-t")).transitions[0][0], torch.nn.ConvTranspose2d)
    assert isinstance(bdu.transitions[0][0], torch.nn.Upsample)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "unet"}, "unknown model 'unet'"),
        ({"name": "bu", "widht": 8}, "unknown model parameter.*widht"),
        ({"width": 8}, "no 'name'"),
        ({"name": "bu", "width": 0}, "width must be a positive integer"),
        ({"name": "bdu-t", "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"name": "bu", "backbone_weights": "x.pth"}, "only to deblurgan"),
    ],
)
def test_bad_configs_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(data)


def test_recipes_follow_the_paper():
    assert recipe("bu") == recipe("bu").__class__("l1-gradient", 0.003, 0.99, False, 0.0)
    for name in ("bdu-t", "bdu-uc"):
        assert (recipe(name).loss, recipe(name).lr, recipe(name).lr_decay_per_epoch) == ("l1-gradient", 0.001, 1.0)
    assert (recipe("bdu-uc-ssim").loss, recipe("bdu-uc-ssim").lr) == ("l1-ssim", 0.001)
    gan = recipe("deblurgan")
    assert (gan.loss, gan.lr, gan.adversarial) == ("mse-ragan", 0.001, True) and gan.adversarial_weight > 0
    assert not any(recipe(name).adversarial for name in BURST_MODELS)
    with pytest.raises(ValueError, match="not trained adversarially"):
        build_discriminators(ModelConfig.tiny("bu"))
    with pytest.raises(ValueError, match="unknown model"):
        recipe("srgan")


def test_discriminators_score_grey_images():
    discriminators = build_discriminators(ModelConfig.tiny("deblurgan"))
    assert set(discriminators) == {"patch", "full"}
    with torch.no_grad():
        crops = torch.rand(2, 1, 128, 128)
        patch, full = discriminators["patch"](crops), discriminators["full"](crops)
    assert patch.shape == (2, 1, 19, 19) and full.shape == (2, 1, 7, 7)


def _torchvision_like_state(backbone: MobileNetV2Features) -> dict:
    """What a torchvision mobilenet_v2 checkpoint holds: our stages plus later ones and a classifier."""
    state = {
        key: torch.randn_like(value) if value.is_floating_point() else value
        for key, value in backbone.state_dict().items()
    }
    state["features.18.0.weight"] = torch.zeros(1280, 320, 1, 1)
    state["classifier.1.weight"] = torch.zeros(1000, 1280)
    return state


def test_deblurgan_backbone_starts_from_a_local_torchvision_file(tmp_path):
    state = _torchvision_like_state(MobileNetV2Features())
    # Keys and shapes as torchvision names them (an independent check of the module layout)
    assert state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert state["features.1.conv.1.weight"].shape == (16, 32, 1, 1)
    assert state["features.2.conv.0.0.weight"].shape == (96, 16, 1, 1)
    assert state["features.15.conv.2.weight"].shape == (160, 960, 1, 1)
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(state, path)
    cfg = ModelConfig("deblurgan", backbone_weights=str(path))
    loaded = build_model(cfg).fpn.backbone.state_dict()
    assert all(torch.equal(loaded[key], state[key]) for key in loaded)
    fresh = build_model(cfg, pretrained=False).fpn.backbone.state_dict()
    assert not torch.equal(fresh["features.0.0.weight"], state["features.0.0.weight"])

    torch.save(_torchvision_like_state(MobileNetV2Features(width_mult=0.5)), tmp_path / "half.pth")
    with pytest.raises(DataError, match="half.pth.*need the full width"):
        build_model(ModelConfig("deblurgan", backbone_weights=str(tmp_path / "half.pth")))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="junk.pth: cannot read pretrained backbone weights"):
        build_model(ModelConfig("deblurgan", backbone_weights=str(tmp_path / "junk.pth")))


@pytest.fixture(scope="module")
def crop_batch(simulated_dataset):
    """Four windowed 32 x 32 training crops (GT (4, 1, 32, 32), burst (4, 5, 32, 32)) of simulated kidney."""
    pairs = next(s for s in read_dataset(simulated_dataset.out) if (s.sample, s.split) == ("Kidney", "Train")).pairs
    gt_window = suggest_window([p.gt for p in pairs])
    low_window = suggest_window([p.low for p in pairs])
    gt, low = apply_window(pairs[0].gt, gt_window), apply_window(pairs[0].low, low_window)
    gt_crops, low_crops = random_crops(0, gt, low, sample_mask(low), size=32, count=4)
    return torch.tensor(gt_crops[:, None], dtype=torch.float32), torch.tensor(low_crops, dtype=torch.float32)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_recipe_loss_falls_on_simulated_crops(crop_batch, name):
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(name)
    gt, burst = crop_batch
    if frames_required(cfg):
        burst = burst[:, 1:4]
    model, plan = build_model(cfg).train(), recipe(name)
    loss_fn = make_loss(plan.loss)
    optimiser = torch.optim.Adam(model.parameters(), lr=plan.lr)
    if plan.adversarial:
        discriminators = build_discriminators(cfg)
        d_optimiser = torch.optim.Adam(discriminators.parameters(), lr=plan.lr)
    losses = []
    for _ in range(30):
        pred = model(burst)
        content = loss_fn(pred, gt)
        loss = content
        if plan.adversarial:
            d_optimiser.zero_grad()
            adversarial_discriminator_loss(discriminators, pred, gt).backward()
            d_optimiser.step()
            loss = content + plan.adversarial_weight * adversarial_generator_loss(discriminators, pred, gt)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(content.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
