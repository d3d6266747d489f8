"""Tests of EfficientAT DyMN: official state-dict layout, parity with the reference, temperature, options."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import load_reference
from tests.models._efficientat import keys_file, meta_layout, official_variant, one_thread
from tympan.errors import ConfigError
from tympan.models import create
from tympan.models.dymn import DyMN, DynamicConv, DynamicReLU, TemperatureSchedule

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

DYMN_VARIANTS = ["dymn04_as", "dymn10_as", "dymn20_as", "dymn04_replace_se_as", "dymn10_replace_se_as"]
ATOL, RTOL = 3e-4, 1e-3


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_reference("efficientat", "dymn04_stress_seed0.pt")


@pytest.fixture(scope="module")
def dymn04(golden: dict) -> DyMN:
    return create("dymn", checkpoint=golden["state_dict"], **golden["config"]["constructor_kwargs"])


@pytest.mark.parametrize("name", DYMN_VARIANTS)
def test_state_dict_keys_shapes_and_params_match_the_official_variant(name: str) -> None:
    variant = official_variant(name)
    layout, num_params = meta_layout("dymn", **variant["constructor_kwargs"])
    assert list(layout) == list(variant["keys"])
    assert layout == variant["keys"]
    assert num_params == variant["num_params"]


def test_state_dict_matches_the_official_key_file() -> None:
    layout, _ = meta_layout("dymn", width_mult=1.0)
    assert list(layout.items()) == list(keys_file("dymn10_as").items())


def test_logits_embedding_and_feature_maps_match_the_reference(golden: dict, dymn04: DyMN) -> None:
    mel = golden["mel_input"]
    assert dymn04.temperature == 1.0
    with torch.inference_mode():
        torch.testing.assert_close(dymn04(mel), golden["logits"], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(dymn04.forward_features(mel), golden["embedding"], atol=ATOL, rtol=RTOL)
        maps = dymn04.forward_intermediates(mel)
    assert len(maps) == len(golden["fmaps"]) == 17
    for ours, ref in zip(maps, golden["fmaps"], strict=True):
        torch.testing.assert_close(ours, ref, atol=2e-3, rtol=1e-3)


def test_temperature_30_matches_the_reference(golden: dict, dymn04: DyMN) -> None:
    mel = golden["mel_input"]
    try:
        dymn04.set_temperature(30.0)
        with torch.inference_mode():
            torch.testing.assert_close(dymn04(mel), golden["logits_temp30"], atol=ATOL, rtol=RTOL)
            torch.testing.assert_close(dymn04.forward_features(mel), golden["embedding_temp30"], atol=ATOL, rtol=RTOL)
    finally:
        dymn04.set_temperature(1.0)


def test_float64_model_matches_the_float64_reference(golden: dict, dymn04: DyMN) -> None:
    model = create("dymn", **golden["config"]["constructor_kwargs"]).double()
    model.load_state_dict(dymn04.state_dict())
    mel = golden["mel_input"][:1].double()  # one example keeps the slow float64 grouped convolutions cheap
    with torch.inference_mode():
        torch.testing.assert_close(model(mel), golden["logits_fp64"][:1], atol=1e-9, rtol=0)
        torch.testing.assert_close(model.forward_features(mel), golden["embedding_fp64"][:1], atol=1e-9, rtol=0)


def test_temperature_is_configuration_with_a_typed_schedule() -> None:
    model = create("dymn", width_mult=0.1, num_classes=3)
    assert model.temperature == 1.0
    assert not any("temperature" in key for key in model.state_dict())
    assert [model.temperature_schedule.at(e) for e in (0, 10, 29, 40)] == [30.0, 20.0, 1.0, 1.0]
    assert model.update_temperature(5) == 25.0
    assert {m.temperature for m in model.modules() if isinstance(m, DynamicConv)} == {25.0}
    assert create("dymn", width_mult=0.1, pretrain_final_temp=30.0).temperature == 30.0
    assert create("dymn04_as").temperature_schedule.at(0) == 1.0  # pretrained: stays at 1, as the reference
    assert TemperatureSchedule(t_max=10.0, t0_slope=2.0, t1_slope=0.1, t_min=0.5).at(5) == pytest.approx(0.95)
    with pytest.raises(ConfigError):
        model.set_temperature(0.0)


def test_each_sample_gets_its_own_kernels(generator: torch.Generator) -> None:
    model = create("dymn", width_mult=0.2, num_classes=4)
    for module in model.modules():  # spread the kernel attention so that it differs between samples
        if isinstance(module, (DynamicConv, DynamicReLU)):
            torch.nn.init.normal_(module.residuals[0].weight if isinstance(module, DynamicConv)
                                  else module.coef_net[0].weight, std=0.5, generator=generator)
    mel = torch.randn(3, 1, 32, 40, generator=generator)
    with torch.inference_mode():
        batched = model(mel)
        alone = torch.cat([model(mel[i : i + 1]) for i in range(3)])
    assert batched.shape == (3, 4)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("use_dy_blocks", ["all", "replace_se"])
def test_training_step_reaches_every_parameter(use_dy_blocks: str, generator: torch.Generator) -> None:
    model = create("dymn", width_mult=0.1, num_classes=3, use_dy_blocks=use_dy_blocks).train()
    model(torch.randn(2, 1, 32, 24, generator=generator)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_dynamic_relu_takes_the_maximum_of_its_pieces(generator: torch.Generator) -> None:
    relu = DynamicReLU(channels=2, context_dim=3, pieces=3)
    x, context = torch.randn(2, 2, 4, 5, generator=generator), torch.randn(2, 3, generator=generator)
    coefs = (2 * torch.sigmoid(relu.coef_net(context)) - 1).view(2, 2, 6) * relu.lambdas + relu.init_v
    pieces = [x * coefs[:, :, m, None, None] + coefs[:, :, 3 + m, None, None] for m in range(3)]
    torch.testing.assert_close(relu(x, context), torch.stack(pieces).amax(0))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"no_dyconv": True}, "layers.4.exp_conv.module.weight"),
        ({"no_dyrelu": True}, "layers.1.depth_conv.weight"),
        ({"no_ca": True, "dyconv_k": 2, "dyrelu_k": 3}, "layers.1.depth_act.coef_net.0.weight"),
    ],
)
def test_ablation_options_build_and_run(kwargs: dict, key: str, generator: torch.Generator) -> None:
    model = create("dymn", width_mult=0.1, num_classes=2, **kwargs)
    assert key in model.state_dict()
    with torch.inference_mode():
        assert model(torch.randn(1, 1, 32, 32, generator=generator)).shape == (1, 2)


def test_batch_of_one_keeps_its_axes() -> None:
    model = create("dymn", width_mult=0.1, num_classes=1, strides=(2, 2, 1, 1))
    with torch.inference_mode():
        assert model(torch.zeros(1, 1, 40, 24)).shape == (1, 1)
        assert model.forward_features(torch.zeros(1, 1, 40, 24)).shape == (1, model.num_features)


@pytest.mark.parametrize(
    "kwargs", [{"use_dy_blocks": "some"}, {"dyconv_k": 0}, {"context_ratio": 0}, {"pretrained_name": "dymn10_as"}]
)
def test_invalid_configurations_raise_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        create("dymn", width_mult=0.1, **kwargs)
