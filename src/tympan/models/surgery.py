"""Model surgery for the over-parameterisation study: counting, conv decomposition and frequency damping.

Koutini et al., "Over-Parameterization and Generalization in Audio Classification" (arXiv 2107.08933) hold the
parameter count fixed while widening a CNN; :func:`decompose_convs` is one way (each k×k conv becomes
``1×1 (C_in → C_out/Z) → k×k → 1×1 (→ C_out)``). :func:`apply_frequency_damping` is the DCASE20 "frequency damping"
(k×k kernels scaled along frequency from 1 at the centre to 0.01 at the edges). These edit networks in place and
know nothing of training; the pruning callback lives in :mod:`tympan.train.pruning`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..errors import ConfigError

__all__ = [
    "DecomposedConv2d",
    "FrequencyDamping",
    "apply_frequency_damping",
    "count_params",
    "damping_ramp",
    "decompose_convs",
    "decomposed_params",
]


def count_params(model: nn.Module, nonzero: bool = True) -> int:
    """Parameters of ``model``: non-zero elements (pruned weights do not count) or all elements.

    A parametrised weight (frequency damping) counts its stored original once.
    """
    return sum(int(torch.count_nonzero(p)) if nonzero else p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------- decomposition
class DecomposedConv2d(nn.Sequential):
    """``reduce`` 1×1 (C_in → C_out/Z) → ``conv`` k×k (stride, padding, dilation of the original) → ``expand`` 1×1
    (→ C_out, with the original's bias); the receptive field is the original's."""

    def __init__(self, conv: nn.Conv2d, factor: int) -> None:
        if conv.groups != 1:
            raise ConfigError("only ungrouped convolutions can be decomposed")
        inner = max(1, conv.out_channels // factor)
        super().__init__()
        self.reduce = nn.Conv2d(conv.in_channels, inner, 1, bias=False)
        self.conv = nn.Conv2d(
            inner, inner, conv.kernel_size, conv.stride, conv.padding, conv.dilation, bias=False,
            padding_mode=conv.padding_mode,
        )  # fmt: skip
        self.expand = nn.Conv2d(inner, conv.out_channels, 1, bias=conv.bias is not None)


def decomposed_params(in_channels: int, out_channels: int, kernel: tuple[int, int], factor: int, bias: bool) -> int:
    """Weights of a :class:`DecomposedConv2d`: ``C_in·C' + C'²·k_f·k_t + C'·C_out (+ C_out)``, ``C' = C_out // Z``."""
    inner = max(1, out_channels // factor)
    return in_channels * inner + inner * inner * kernel[0] * kernel[1] + inner * out_channels + (out_channels * bias)


def decompose_convs(
    model: nn.Module, factor: int, min_in_channels: int = 2, include_pointwise: bool = False
) -> nn.Module:
    """Replace (in place) every ungrouped k×k conv (k > 1 on some axis, or any size with ``include_pointwise``)
    with at least ``min_in_channels`` inputs by a :class:`DecomposedConv2d` of factor ``factor``; returns ``model``.

    Depthwise / grouped convs (CP-Mobile's blocks, CP-ResNet's grouped stage) and the one-channel stem are kept.
    At small ρ most CP-ResNet weights sit in 1×1 convs, so only ``include_pointwise`` can meet a tight budget.
    """
    if factor < 1:
        raise ConfigError(f"the decomposition factor must be >= 1, got {factor}")
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (
                isinstance(child, nn.Conv2d)
                and child.groups == 1
                and (include_pointwise or max(child.kernel_size) > 1)
                and child.in_channels >= min_in_channels
            ):
                setattr(parent, name, DecomposedConv2d(child, factor))
    return model


# ----------------------------------------------------------------------------------------- frequency damping
def damping_ramp(size: int, edge: float = 0.01) -> Tensor:
    """Linear ramp from 1 at the centre to ``edge`` at both ends (``[0.01, 1, 0.01]`` for 3)."""
    if size == 1:
        return torch.ones(1)
    centre = (size - 1) / 2
    distance = (torch.arange(size, dtype=torch.float32) - centre).abs() / centre
    return 1.0 - (1.0 - edge) * distance


class FrequencyDamping(nn.Module):
    """Weight parametrisation multiplying a conv kernel ``[out, in, k_f, k_t]`` by :func:`damping_ramp` along
    frequency; the nominal receptive field stays, the effective one along frequency shrinks."""

    def __init__(self, freq_size: int, edge: float = 0.01) -> None:
        super().__init__()
        self.register_buffer("ramp", damping_ramp(freq_size, edge).view(1, 1, -1, 1))

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.ramp


def apply_frequency_damping(model: nn.Module, edge: float = 0.01) -> nn.Module:
    """Register :class:`FrequencyDamping` on every conv with a frequency kernel > 1 (in place); returns ``model``."""
    for module in list(model.modules()):
        if isinstance(module, nn.Conv2d) and module.kernel_size[0] > 1:
            parametrize.register_parametrization(module, "weight", FrequencyDamping(module.kernel_size[0], edge))
    return model
