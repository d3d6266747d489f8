"""Over-parameterisation tools: pruning, decomposition, frequency damping, depth vs receptive field, a tiny sweep."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tympan.analysis.receptive_field import receptive_field
from tympan.analysis.scaling import build_family_model, scaling_sweep
from tympan.errors import ConfigError
from tympan.models.surgery import (
    DecomposedConv2d,
    apply_frequency_damping,
    count_params,
    damping_ramp,
    decompose_convs,
    decomposed_params,
)
from tympan.train.pruning import MagnitudePruner

from ._scenes import write_scenes


def _small_resnet(width: int = 8, depth: int = 0, rho: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return build_family_model("cp_resnet", width, depth, rho, num_classes=3)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_pruner_reaches_the_exact_nonzero_target_and_keeps_masks(scope, generator):
    model = _small_resnet(16)
    for parameter in model.parameters():  # as after training: Fixup's zero convs and BN biases are non-zero
        parameter.data.normal_(0, 1, generator=generator)
    dense = count_params(model, nonzero=False)
    target = dense // 3
    pruner = MagnitudePruner(target_params=target, scope=scope, ramp="exp", ramp_epochs=4)
    assert [round(pruner.progress(e), 3) for e in (0, 3, 9)] == [round(pruner.progress(0), 3), 1.0, 1.0]
    assert 0 < pruner.progress(0) < pruner.progress(1) < pruner.progress(2) < 1.0
    pruner.prune(model, pruner.progress(1))
    between = count_params(model)
    pruner.prune(model, 1.0)
    assert count_params(model) == target
    assert target < between < dense
    assert count_params(model, nonzero=False) == dense

    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    mel = torch.randn(4, 1, 64, 20, generator=generator)
    for _ in range(3):
        optimizer.zero_grad()
        model(mel).square().mean().backward()
        optimizer.step()
        pruner.apply_masks(model)  # what the callback does after every optimiser step
    assert count_params(model) <= target
    restored = MagnitudePruner(target_ratio=0.5)
    restored.load_state_dict(pruner.state_dict())
    assert all(torch.equal(restored.masks[k], pruner.masks[k]) for k in pruner.masks)


def test_pruner_rejects_bad_settings():
    with pytest.raises(ConfigError):
        MagnitudePruner()
    with pytest.raises(ConfigError):
        MagnitudePruner(target_ratio=0.5, scope="channel")
    with pytest.raises(ConfigError, match="raise the target"):
        MagnitudePruner(target_params=10).final_pruned(_small_resnet(8))


def test_decomposition_parameter_formula_and_shapes(generator):
    conv = nn.Conv2d(32, 64, 3, padding=1, bias=True)
    decomposed = DecomposedConv2d(conv, 4)
    assert count_params(decomposed, nonzero=False) == 32 * 16 + 16 * 16 * 9 + 16 * 64 + 64
    assert decomposed_params(32, 64, (3, 3), 4, True) == count_params(decomposed, nonzero=False)
    x = torch.randn(2, 32, 10, 7, generator=generator)
    assert decomposed(x).shape == conv(x).shape

    model = _small_resnet(16)
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    expected = count_params(model, nonzero=False)
    for conv in convs.values():
        if conv.groups == 1 and max(conv.kernel_size) > 1 and conv.in_channels >= 2:
            expected += decomposed_params(conv.in_channels, conv.out_channels, conv.kernel_size, 4, False)
            expected -= conv.weight.numel()
    decompose_convs(model, 4)
    assert count_params(model, nonzero=False) == expected
    assert any(isinstance(m, DecomposedConv2d) for m in model.modules())
    assert model(torch.randn(2, 1, 64, 20, generator=generator)).shape == (2, 3)
    pointwise_too = decompose_convs(_small_resnet(16), 4, include_pointwise=True)
    assert count_params(pointwise_too, nonzero=False) < count_params(model, nonzero=False)
    assert pointwise_too(torch.randn(2, 1, 64, 20, generator=generator)).shape == (2, 3)


def test_frequency_damping_kernel_values(generator):
    assert torch.allclose(damping_ramp(3), torch.tensor([0.01, 1.0, 0.01]))
    assert torch.allclose(damping_ramp(5), torch.tensor([0.01, 0.505, 1.0, 0.505, 0.01]))
    conv = nn.Conv2d(2, 3, (3, 5), bias=False)
    original = conv.weight.detach().clone()
    apply_frequency_damping(conv)
    assert torch.allclose(conv.weight, original * torch.tensor([0.01, 1.0, 0.01]).view(1, 1, 3, 1))
    assert torch.allclose(conv.parametrizations.weight.original, original)  # the stored weight is unchanged
    one_by_one = nn.Conv2d(2, 3, 1)
    apply_frequency_damping(one_by_one)
    assert not hasattr(one_by_one, "parametrizations")


@pytest.mark.parametrize("rho", [3, 8])
def test_depth_leaves_the_receptive_field_unchanged(rho):
    def field(model):
        last = [f for f in receptive_field(model, (1, 1, 256, 64)) if f.name == "feed_forward.0"][-1]
        return last.freq.size, last.time.size

    shallow, deep = _small_resnet(8, 0, rho), _small_resnet(8, 3, rho)
    assert count_params(deep, nonzero=False) > count_params(shallow, nonzero=False)
    assert field(deep) == field(shallow)
    assert field(_small_resnet(8, 0, rho)) != field(_small_resnet(8, 0, rho + 4))  # while rho does change it


def test_tiny_sweep_end_to_end(tmp_path):
    (tmp_path / "data").mkdir()
    csv = write_scenes(tmp_path / "data", per_cell=2, sample_rate=8000)
    frontend = {"n_mels": 32, "freqm": 0, "sample_rate": 8000, "n_fft": 512, "win_length": 400, "hop_length": 160}
    result = scaling_sweep(
        csv,
        widths=[4, 8],
        rhos=[4],
        fixed_params=1500,
        epochs=2,
        batch_size=6,
        frontend=frontend,
        unseen_devices=["c"],
        output=tmp_path / "out",
        accelerator="cpu",
    )
    assert [r["width"] for r in result.rows] == [4, 8]
    pruned = result.rows[1]
    assert pruned["method"] == "prune" and 1000 < pruned["nonzero_params"] <= 1500 < pruned["params"]
    assert result.rows[0]["method"] == "dense" and result.rows[0]["params"] <= 1500
    for row in result.rows:
        assert 0.0 <= row["seen"] <= 1.0 and 0.0 <= row["unseen"] <= 1.0
        assert set(row) >= {"acc_a", "acc_b", "acc_c"}
    assert all(path.is_file() and path.stat().st_size > 0 for path in result.files.values())
