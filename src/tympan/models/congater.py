"""ConGater: controllable gate adapters that remove attribute information at inference time.

"Domain Information Control at Inference Time for Acoustic Scene Classification" (Masoudian et al., EUSIPCO 2023,
arXiv 2306.08010); reference code ``ShawMask/congater_dcase2022t1`` @ dc12461 (``models/passt/congater.py``).

Per attribute (device, city, ...) a gate ``g = 1 − log2(1 + ω)·σ(−z)`` with ``z`` from a small linear stack
multiplies the token features; ω = 0 gives g ≡ 1, exactly the original model, and ω = 1 gives ``σ(z)``. Gates of
several attributes multiply (any number of them; the reference handles two). The adversarial part — gradient
reversal and several adversary heads — is our own (the reference imports an unpublished package).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.base import AudioModel

__all__ = [
    "AdversaryHeads",
    "ConGater",
    "ControlGate",
    "GatedModel",
    "GradientReversal",
    "gradient_reversal",
    "recorded_gates",
]

Activation = Literal["L", "T"]
Placement = Literal["last", "all"]


class ControlGate(nn.Module):
    """One attribute's gate: ``z = W·h + b`` (deeper stacks: Linear + ReLU), then the ω-controlled sigmoid.

    Args:
        dim: feature width.
        num_layers: linear layers computing ``z``.
        activation: ``"L"`` (``1 − log2(1+ω)·σ(−z)``, the paper's) or ``"T"`` (``min(1, s·σ(ωz))``).
        init_bias: initial ``b`` with ``W = 0``: σ(6) = 0.9975, so even ω = 1 starts near the identity.
    """

    def __init__(self, dim: int, num_layers: int = 1, activation: Activation = "L", init_bias: float = 6.0) -> None:
        super().__init__()
        if activation not in ("L", "T"):
            raise ConfigError(f"gate activation must be 'L' or 'T', got {activation!r}")
        if num_layers < 1:
            raise ConfigError(f"a gate needs at least one layer, got num_layers={num_layers}")
        layers: list[nn.Module] = []
        for _ in range(num_layers - 1):
            layers += [nn.Linear(dim, dim), nn.ReLU()]
        last = nn.Linear(dim, dim)
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, init_bias)
        self.layers = nn.Sequential(*layers, last)
        self.activation = activation

    def forward(self, h: Tensor, omega: float) -> Tensor:
        if omega < 0:
            raise ConfigError(f"omega must be >= 0, got {omega}")
        z = self.layers(h)
        if self.activation == "L":
            return 1 - math.log2(1 + omega) * torch.sigmoid(-z)
        scale = 2 - omega if omega <= 1 else 1.0
        return (scale * torch.sigmoid(omega * z)).clamp(max=1.0)


class ConGater(nn.Module):
    """The gates of several attributes at one place of the network; their product multiplies the features."""

    def __init__(self, dim: int, attributes: Sequence[str], **gate_kwargs) -> None:
        super().__init__()
        if not attributes:
            raise ConfigError("ConGater needs at least one attribute")
        self.gates = nn.ModuleDict({name: ControlGate(dim, **gate_kwargs) for name in attributes})

    def forward(self, h: Tensor, omega: Mapping[str, float]) -> Tensor | None:
        """The combined gate for ``h``, or None when every ω is 0 (the gate is exactly 1 then)."""
        unknown = set(omega) - set(self.gates)
        if unknown:
            raise ConfigError(f"no gate for {sorted(unknown)}; the gated attributes are {sorted(self.gates)}")
        active = [self.gates[name](h, w) for name, w in omega.items() if w != 0]
        if not active:
            return None
        gate = active[0]
        for other in active[1:]:
            gate = gate * other
        return gate


class GatedModel(nn.Module):
    """A tympan model with ConGater adapters; ``forward(mel, omega)`` with ``omega = {"device": 0.5, ...}``.

    Placement as the paper: ``"all"`` gates every transformer block's output with a gate computed from the block's
    input tokens; ``"last"`` gates once, after the last block and before the final norm. Models without a token
    sequence (the CNNs) are gated once on the pooled embedding, before the head (``"last"`` only).
    """

    def __init__(
        self,
        backbone: AudioModel,
        attributes: Sequence[str],
        placement: Placement = "last",
        **gate_kwargs,
    ) -> None:
        super().__init__()
        if placement not in ("last", "all"):
            raise ConfigError(f"placement must be 'last' or 'all', got {placement!r}")
        self.is_transformer = hasattr(backbone, "forward_input_sequence")
        if placement == "all" and not self.is_transformer:
            raise ConfigError("placement 'all' needs a transformer (PaSST); gate a CNN with placement 'last'")
        self.backbone = backbone
        self.attributes = tuple(attributes)
        self.placement = placement
        dim = backbone.num_features
        count = len(backbone.blocks) if placement == "all" else 1
        self.gaters = nn.ModuleList(ConGater(dim, attributes, **gate_kwargs) for _ in range(count))

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    def gate_parameters(self, attribute: str) -> list[nn.Parameter]:
        """The parameters of one attribute's gates (what its gate step trains)."""
        return [p for gater in self.gaters for p in gater.gates[attribute].parameters()]

    @staticmethod
    def _gated(x: Tensor, gate: Tensor | None) -> Tensor:
        return x if gate is None else x * gate

    def forward_features(self, mel: Tensor, omega: Mapping[str, float] | None = None) -> Tensor:
        omega = dict(omega or {})
        if not self.is_transformer:
            features = self.backbone.forward_features(mel)
            return self._gated(features, self.gaters[0](features, omega))
        net = self.backbone
        x = net.forward_input_sequence(mel)
        for index, block in enumerate(net.blocks):
            out = block(x)
            x = self._gated(out, self.gaters[index](x, omega)) if self.placement == "all" else out
        if self.placement == "last":
            x = self._gated(x, self.gaters[0](x, omega))
        return net.norm(x)[:, : net.num_tokens].mean(dim=1)

    def forward(self, mel: Tensor, omega: Mapping[str, float] | None = None) -> Tensor:
        return self.backbone.forward_head(self.forward_features(mel, omega))


@contextlib.contextmanager
def recorded_gates(model: GatedModel) -> Iterator[list[Tensor]]:
    """Collect every combined gate ``model`` applies inside the block (none is applied where all ω are 0).

    Why: after the final LayerNorm a gate that scales all features alike changes nothing, so the task accuracy alone
    cannot tell an untrained gate from a trained one; the gate values can.
    """
    gates: list[Tensor] = []

    def keep(_module: nn.Module, _inputs: tuple, gate: Tensor | None) -> None:
        if gate is not None:
            gates.append(gate.detach())

    hooks = [gater.register_forward_hook(keep) for gater in model.gaters]
    try:
        yield gates
    finally:
        for hook in hooks:
            hook.remove()


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.scale * grad, None


def gradient_reversal(x: Tensor, scale: float = 1.0) -> Tensor:
    """Identity forward; the gradient is multiplied by ``−scale`` backward (DANN)."""
    return _ReverseGradient.apply(x, scale)


class GradientReversal(nn.Module):
    """Module form of :func:`gradient_reversal` with a settable ``scale`` (λ, e.g. ramped by a schedule)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return gradient_reversal(x, self.scale)


class AdversaryHeads(nn.Module):
    """Several MLP adversaries (dim → dim ReLU → classes) behind one gradient reversal; the loss is their mean CE."""

    def __init__(self, dim: int, num_classes: int, num_heads: int = 3, scale: float = 1.0) -> None:
        super().__init__()
        self.reversal = GradientReversal(scale)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, num_classes)) for _ in range(num_heads)
        )

    def forward(self, features: Tensor) -> list[Tensor]:
        reversed_features = self.reversal(features)
        return [head(reversed_features) for head in self.heads]

    def loss(self, features: Tensor, target: Tensor) -> Tensor:
        return torch.stack([F.cross_entropy(logits, target) for logits in self(features)]).mean()
