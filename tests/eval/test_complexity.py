"""Complexity: the DCASE (torchinfo / NeSsi) count exactly as the reference, full MACs incl. attention, limits."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import shared_path
from tympan.errors import ConfigError
from tympan.eval.complexity import (
    Complexity,
    LayerComplexity,
    check_dcase_limits,
    fuse_conv_bn,
    measure,
    measure_model,
)
from tympan.models import create

CASES = {  # complexity.json case -> (zoo name, input shape, fuse BatchNorm)
    "cpmobile_default_input_1x1x256x64": ("cp_mobile_dcase23", (1, 1, 256, 64), False),
    "cpmobile_default_fused_input_1x1x256x64": ("cp_mobile_dcase23", (1, 1, 256, 64), True),
    "cpresnet128k_input_1x1x256x43": ("cpr_128k_dirfms_1", (1, 1, 256, 43), False),
    "dcase24_baseline_input_1x1x256x65": ("cp_mobile_dcase24_baseline", (1, 1, 256, 65), False),
}


@pytest.fixture(scope="module")
def reference() -> dict:
    with shared_path("reference", "dcase23", "complexity.json").open() as file:
        return json.load(file)


def _summary(row: LayerComplexity) -> tuple:
    return row.class_name, row.params, row.macs, list(row.output_shape)


@pytest.mark.parametrize("case", sorted(CASES))
def test_dcase_rule_reproduces_torchinfo_per_module(reference: dict, case: str) -> None:
    name, shape, fused = CASES[case]
    result = measure(create(name), shape, fuse_batchnorm=fused)
    ours = [_summary(row) for row in result.layers if row.macs]
    for version in ("torchinfo_1.7.0", "torchinfo_1.8.0"):
        params, macs, _, per_module = reference[version][case]
        assert (result.params, result.macs) == (params, macs)
        expected = [(m["class_name"], m["params"], m["macs"], m["output_size"]) for m in per_module.values()]
        assert ours == expected
        if not fused:  # the same names too (the reference's fused layers sit one level deeper, in ConvReLU2d)
            assert [_summary(result.layer(name)) for name in per_module] == expected
    # what torchinfo does not list (GRN scalars, pooling) costs no MACs under this rule
    assert len(ours) == len(per_module)


def test_published_submission_figures_and_limits() -> None:
    result = measure(create("cp_mobile_dcase23"), (1, 1, 256, 64))
    assert (result.params, result.macs) == (126_952, 28_893_268)
    assert result.peak_activation_bytes == 2 * 96 * 64 * 16 * 4  # stage 1: 96 channels at 64 x 16 in and out
    check = check_dcase_limits(result)
    assert check.passed and check.summary().startswith("PASS")
    fp16 = check_dcase_limits(result, param_bits=16)
    assert not fp16.passed and not fp16.params_ok and fp16.macs_ok and fp16.param_bytes == 253_904
    assert "FAIL" in fp16.summary()
    with pytest.raises(ConfigError, match="batch 1"):
        check_dcase_limits(measure(create("cp_mobile_dcase23"), (2, 1, 256, 64)))


def test_limit_boundaries() -> None:
    def complexity(params: int, macs: int) -> Complexity:
        return Complexity(params=params, macs=macs, peak_activation_bytes=0, rule="dcase", input_shape=(1, 1, 8, 8))

    assert check_dcase_limits(complexity(128_000, 30_000_000)).passed
    assert not check_dcase_limits(complexity(128_001, 30_000_000)).params_ok
    assert not check_dcase_limits(complexity(128_000, 30_000_001)).macs_ok


class _TinyTransformer(nn.Module):
    """One attention layer on a sequence, with PyTorch's fused attention kernel."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.proj(attended.transpose(1, 2).reshape(batch, tokens, dim))


def test_full_rule_counts_tokens_and_fused_attention() -> None:
    model, (batch, tokens, dim) = _TinyTransformer(), (1, 10, 16)
    full = measure(model, (batch, tokens, dim), rule="full")
    linear = tokens * (dim * 3 * dim + dim * dim)
    attention = 2 * tokens * tokens * dim  # q·kᵀ and softmax·v over all heads
    assert full.macs == linear + attention
    assert full.layer("").macs == attention and full.layer("qkv").macs == tokens * 3 * dim * dim
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        assert measure(model, (batch, tokens, dim), rule="full").macs == full.macs
    # torchinfo's rule charges a Linear its parameter count once, whatever the number of tokens
    assert measure(model, (batch, tokens, dim)).macs == sum(p.numel() for p in model.parameters())


def test_full_rule_on_grouped_convs_and_peak_memory() -> None:
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=True), nn.BatchNorm2d(8), nn.ReLU()).train()
    result = measure(model, (1, 4, 6, 5), rule="full")
    assert result.macs == (3 * 3 * 2) * 8 * 6 * 5  # bias and BatchNorm are not multiply-accumulates of a product
    assert result.peak_activation_bytes == (8 + 8) * 6 * 5 * 4  # largest op: BatchNorm, 8 channels in and out
    assert model.training  # the mode is restored
    dcase = measure(model, (1, 4, 6, 5))
    assert dcase.macs == (8 * 2 * 9 + 8) * 6 * 5 + 2 * 8


def test_fusing_folds_batchnorm_into_the_conv(generator: torch.Generator) -> None:
    model = create("cp_resnet", n_blocks=(1, 1, 0), base_channels=8)
    fused = fuse_conv_bn(model)
    mel = torch.randn(2, 1, 64, 20, generator=generator)
    with torch.no_grad():
        torch.testing.assert_close(fused(mel), model(mel), atol=1e-5, rtol=1e-4)
    assert isinstance(fused.in_c[1], nn.Identity) and fused.in_c[0].bias is not None
    assert isinstance(model.in_c[1], nn.BatchNorm2d)  # the original is untouched


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="rule"):
        measure(nn.Linear(2, 2), (1, 2), rule="flops")
    with pytest.raises(ConfigError):
        measure(nn.Linear(2, 2), (0, 2))
    with pytest.raises(ConfigError):
        measure_model("cp_mobile_dcase23", seconds=0)


def test_measure_model_uses_the_model_frontend() -> None:
    result = measure_model("cp_resnet")
    assert result.seconds == 1.0 and result.complexity.rule == "dcase"
    assert result.complexity.input_shape == (1, 1, 256, 43)
    assert result.dcase.passed and result.to_dict()["dcase"]["macs_per_second"] == 28_840_396
    longer = measure_model("cp_mobile_dcase23", seconds=2, rule="full")
    assert longer.complexity.input_shape == (1, 1, 256, 128) and longer.complexity.rule == "full"
    assert longer.dcase.macs < longer.complexity.macs  # the DCASE verdict is always for one 1 s clip
