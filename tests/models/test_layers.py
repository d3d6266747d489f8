"""Tests of the shared CNN building blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tympan.errors import ConfigError
from tympan.models.layers import (
    ConcurrentSqueezeExcitation,
    ConvNormAct,
    SqueezeExcitation,
    batch_norm,
    make_divisible,
)


@pytest.mark.parametrize(
    ("value", "expected"), [(1.6, 8), (6.4, 8), (28.8, 32), (67.2, 64), (96.0, 96), (19.2, 24), (12, 16), (1280, 1280)]
)
def test_make_divisible_rounds_to_eight_and_never_ten_percent_below(value: float, expected: int) -> None:
    assert make_divisible(value, 8) == expected


def test_conv_norm_act_reproduces_torchvision_keys_padding_and_bias_rule() -> None:
    block = ConvNormAct(4, 8, (3, 5), stride=(2, 1), dilation=(1, 2), norm_layer=batch_norm(1e-3, 0.01),
                        activation_layer=nn.Hardswish)
    assert list(block.state_dict()) == [
        "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
    ]
    conv, norm, act = block
    assert conv.padding == (1, 4) and conv.bias is None and norm.eps == 1e-3 and act.inplace
    assert block(torch.zeros(1, 4, 10, 7)).shape == (1, 8, 5, 7)
    assert ConvNormAct(4, 8, 1, norm_layer=None, activation_layer=None)[0].bias is not None
    with pytest.raises(ConfigError, match="groups"):
        ConvNormAct(4, 6, groups=4)


def test_channel_se_is_mean_linear_relu_linear_sigmoid(generator: torch.Generator) -> None:
    se = SqueezeExcitation(6, 8)
    x = torch.randn(2, 6, 5, 7, generator=generator)
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3))))))
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_frequency_se_gates_bands_and_rejects_another_band_count(generator: torch.Generator) -> None:
    se = SqueezeExcitation(5, 8, dim=2)
    x = torch.randn(2, 6, 5, 7, generator=generator)
    gate = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((1, 3))))))
    torch.testing.assert_close(se(x), x * gate[:, None, :, None])
    with pytest.raises(ConfigError, match="input_dim_f"):
        se(torch.zeros(1, 6, 4, 7))


def test_concurrent_se_fuses_gates_and_is_the_gate_itself_when_alone(generator: torch.Generator) -> None:
    x = torch.randn(2, 6, 5, 7, generator=generator)
    channel, freq = SqueezeExcitation(6, 8), SqueezeExcitation(5, 8, dim=2)
    torch.testing.assert_close(ConcurrentSqueezeExcitation([channel])(x), channel(x))
    fused = ConcurrentSqueezeExcitation([channel, freq], "min")(x)
    torch.testing.assert_close(fused, torch.minimum(channel(x), freq(x)))
    with pytest.raises(ConfigError, match="aggregation"):
        ConcurrentSqueezeExcitation([channel], "median")
