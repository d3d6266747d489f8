"""Tests of EfficientAT MN: official state-dict layout, parity with the reference, the model contract."""

from __future__ import annotations

import logging

import pytest
import torch

from tests.conftest import load_reference
from tests.models._efficientat import keys_file, meta_layout, official_variant, one_thread
from tympan.errors import ConfigError
from tympan.models import create
from tympan.models.mobilenet import InvertedResidualConfig, MobileNet, mobilenet_v3_config

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

MN_VARIANTS = ["mn01_as", "mn02_as", "mn04_as", "mn05_as", "mn10_as", "mn20_as", "mn30_as", "mn40_as", "mn10_as_fc"]


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_reference("efficientat", "mn04_stress_seed0.pt")


@pytest.fixture(scope="module")
def mn04(golden: dict) -> MobileNet:
    return create("mn", checkpoint=golden["state_dict"], **golden["config"]["constructor_kwargs"])


@pytest.mark.parametrize("name", MN_VARIANTS)
def test_state_dict_keys_shapes_and_params_match_the_official_variant(name: str) -> None:
    variant = official_variant(name)
    layout, num_params = meta_layout("mn", **variant["constructor_kwargs"])
    assert list(layout) == list(variant["keys"])  # same order as the reference, incl. mn01's shifted indices
    assert layout == variant["keys"]
    assert num_params == variant["num_params"]


@pytest.mark.parametrize(("name", "width"), [("mn10_as", 1.0), ("mn40_as", 4.0)])
def test_state_dict_matches_the_official_key_files(name: str, width: float) -> None:
    layout, _ = meta_layout("mn", width_mult=width)
    assert list(layout.items()) == list(keys_file(name).items())


def test_logits_embedding_and_feature_maps_match_the_reference(golden: dict, mn04: MobileNet) -> None:
    mel = golden["mel_input"]
    with torch.inference_mode():
        torch.testing.assert_close(mn04(mel), golden["logits"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(mn04.forward_features(mel), golden["embedding"], atol=1e-4, rtol=1e-4)
        maps = mn04.forward_intermediates(mel)
    assert len(maps) == len(golden["fmaps"]) == 17
    for ours, ref in zip(maps, golden["fmaps"], strict=True):
        torch.testing.assert_close(ours, ref, atol=2e-4, rtol=1e-4)
    assert [info["num_chs"] for info in mn04.feature_info] == [m.shape[1] for m in maps]


def test_real_recording_clip_matches_the_reference(golden: dict, mn04: MobileNet) -> None:
    real = golden["real_audio"]
    mel = real["clip_mel"].unsqueeze(0)
    with torch.inference_mode():
        torch.testing.assert_close(mn04(mel), real["clip_logits"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(mn04.forward_features(mel), real["clip_embedding"], atol=1e-4, rtol=1e-4)


def test_float64_model_matches_the_float64_reference(golden: dict, mn04: MobileNet) -> None:
    model = create("mn", **golden["config"]["constructor_kwargs"]).double()
    model.load_state_dict(mn04.state_dict())
    mel = golden["mel_input"].double()
    with torch.inference_mode():
        torch.testing.assert_close(model(mel), golden["logits_fp64"], atol=1e-9, rtol=0)
        torch.testing.assert_close(model.forward_features(mel), golden["embedding_fp64"], atol=1e-9, rtol=0)


@pytest.mark.parametrize("head_type", ["mlp", "fully_convolutional"])
def test_batch_of_one_keeps_its_axes_even_with_one_class(head_type: str, generator: torch.Generator) -> None:
    model = create("mn", width_mult=0.1, num_classes=1, head_type=head_type)
    mel = torch.randn(1, 1, 32, 40, generator=generator)
    with torch.inference_mode():
        assert model(mel).shape == (1, 1)
        assert model.forward_features(mel).shape == (1, model.num_features) == (1, 96)


@pytest.mark.parametrize("head_type", ["mlp", "fully_convolutional"])
def test_forward_is_the_head_of_the_features(head_type: str, generator: torch.Generator) -> None:
    model = create("mn", width_mult=0.2, head_type=head_type, num_classes=7)
    for module in model.modules():  # non-trivial BN statistics so that the FC head's BN matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
    mel = torch.randn(3, 1, 48, 30, generator=generator)
    with torch.inference_mode():
        torch.testing.assert_close(model(mel), model.forward_head(model.forward_features(mel)), atol=1e-5, rtol=1e-4)


def test_other_widths_strides_and_input_sizes(generator: torch.Generator) -> None:
    model = create("mn", width_mult=0.5, strides=(2, 2, 1, 1), num_classes=5)
    mel = torch.randn(2, 1, 64, 50, generator=generator)
    with torch.inference_mode():
        maps = model.forward_intermediates(mel)
        assert model(mel).shape == (2, 5)
    assert maps[-1].shape == (2, 480, 8, 7)  # x8 down-sampling with two strides removed
    assert [info["reduction"] for info in model.feature_info][-1] == 8


def test_reduced_tail_and_dilation_change_the_tail_only() -> None:
    blocks, hidden = mobilenet_v3_config(1.0, reduced_tail=True, dilated=True)
    assert [b.out_channels for b in blocks[-3:]] == [80, 80, 80] and hidden == 640
    assert [b.dilation for b in blocks] == [1] * 12 + [2] * 3 and blocks[12].depthwise_stride == 1
    model = MobileNet(blocks, hidden, num_classes=3)
    with torch.inference_mode():
        assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 3)


def test_frequency_se_works_and_checks_the_band_count(generator: torch.Generator) -> None:
    model = create("mn", width_mult=0.1, se_dims="cf", se_agg="avg", input_dim_f=64, num_classes=4)
    se = model.features[4].block[1]
    assert [layer.fc1.in_features for layer in se.conc_se_layers] == [8, 8]  # 8 channels, 64 bands / 8
    with torch.inference_mode():
        assert model(torch.randn(2, 1, 64, 30, generator=generator)).shape == (2, 4)
        with pytest.raises(ConfigError, match="input_dim_f"):
            model(torch.randn(2, 1, 32, 30, generator=generator))


def test_reset_classifier_replaces_the_output_layer_only() -> None:
    model = create("mn", width_mult=0.1)
    hidden = model.classifier[2].weight.clone()
    model.reset_classifier(10)
    assert model.num_classes == 10 and model.classifier[5].out_features == 10
    torch.testing.assert_close(model.classifier[2].weight, hidden)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    fully_convolutional = create("mn", width_mult=0.1, head_type="fully_convolutional").double()
    fully_convolutional.reset_classifier(4)
    assert not fully_convolutional.classifier.training  # follows the model's eval mode
    assert fully_convolutional(torch.zeros(1, 1, 32, 32, dtype=torch.float64)).shape == (1, 4)


def test_checkpoint_with_another_class_count_keeps_the_new_head(caplog: pytest.LogCaptureFixture) -> None:
    source = create("mn", width_mult=0.1).state_dict()
    with caplog.at_level(logging.INFO):
        model = create("mn", width_mult=0.1, num_classes=10, checkpoint=source)
    assert "classifier.5.weight" in caplog.text
    torch.testing.assert_close(model.classifier[2].weight, source["classifier.2.weight"])
    assert model.classifier[5].out_features == 10


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strides": (2, 2, 3, 2)},
        {"strides": (2, 2, 2)},
        {"width_mult": 0.0},
        {"head_type": "multihead_attention_pooling"},
        {"se_dims": "x"},
        {"se_agg": "median"},
        {"pretrained_name": "mn10_as"},
        {"num_classes": 0},
    ],
)
def test_invalid_configurations_raise_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        create("mn", **kwargs)


def test_block_config_validates_itself() -> None:
    with pytest.raises(ConfigError, match="odd"):
        InvertedResidualConfig(16, 4, 64, 24, False, "RE", 1)
    with pytest.raises(ConfigError, match="activation"):
        InvertedResidualConfig(16, 3, 64, 24, False, "GELU", 1)
