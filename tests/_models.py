"""Small models with O(1) activations for the inference tests (random init gives outputs of ~1e-10)."""

from __future__ import annotations

import torch
from torch import nn

import tympan.models.mobilenet  # noqa: F401  (registers the "mn" architecture)


def stress_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Redraw every weight so that each one matters: convs/linears ~ N(0, 1/fan_in), norms around 1."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.copy_(
                    torch.randn(module.weight.shape, generator=generator) / module.weight[0].numel() ** 0.5
                )
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model.eval()


def small_mn_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of MN width 0.4 (``mn04``) with stress weights."""
    from tympan.models import create

    return stress_(create("mn", width_mult=0.4), torch.Generator().manual_seed(seed)).state_dict()
