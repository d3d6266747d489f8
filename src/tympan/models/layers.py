"""Building blocks shared by the CNN families (MN, DyMN, CP-Mobile, CP-ResNet).

The blocks follow torchvision's ``Conv2dNormActivation`` / ``SqueezeExcitation`` (``torchvision/ops/misc.py``)
and EfficientAT's ``models/mn/block_types.py``: their submodule names reproduce the official state-dict keys
(``0.weight`` for the conv, ``1.*`` for the norm; ``fc1`` / ``fc2`` and ``conc_se_layers.<i>`` for SE), so the
networks built from them load the published checkpoints strictly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .base import AudioModel

__all__ = [
    "SE_AGGREGATIONS",
    "ConcurrentSqueezeExcitation",
    "ConvNormAct",
    "LayerFactory",
    "PositionClassifierModel",
    "SqueezeExcitation",
    "batch_norm",
    "make_divisible",
    "pair",
    "position_classifier",
]

LayerFactory = Callable[..., nn.Module]
SE_AGGREGATIONS = ("max", "avg", "add", "min")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never below ``min_value`` (default the divisor)
    and never more than 10 % below ``value`` (the MobileNet / TF-slim rule that fixes every width-scaled layer)."""
    if divisor <= 0:
        raise ConfigError(f"make_divisible needs a positive divisor, got {divisor}")
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    """``(freq, time)`` from one int or a pair (kernel sizes, strides, dilations)."""
    if isinstance(value, int):
        return value, value
    values = tuple(int(v) for v in value)
    if len(values) != 2:
        raise ConfigError(f"expected an int or a (freq, time) pair, got {value!r}")
    return values  # type: ignore[return-value]


def batch_norm(eps: float = 1e-5, momentum: float = 0.1) -> LayerFactory:
    """A ``BatchNorm2d`` factory with fixed ``eps`` / ``momentum`` (EfficientAT uses ``eps=1e-3, momentum=0.01``)."""
    return partial(nn.BatchNorm2d, eps=eps, momentum=momentum)


class ConvNormAct(nn.Sequential):
    """``Conv2d -> norm -> activation`` with same-padding, as torchvision's ``Conv2dNormActivation``.

    Submodules are numbered ``0`` (conv), ``1`` (norm), then the activation, which reproduces the reference keys.
    The conv has a bias only when there is no norm to absorb it.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: int or ``(freq, time)``.
        stride: int or ``(freq, time)``.
        padding: default ``(kernel - 1) // 2 * dilation`` per axis.
        groups: conv groups (``in_channels`` for a depthwise conv).
        dilation: int or ``(freq, time)``.
        norm_layer: factory called with ``out_channels``; None for no norm.
        activation_layer: factory of the activation (built in-place when it accepts ``inplace``); None for none.
        bias: conv bias; default ``norm_layer is None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | None = None,
        groups: int = 1,
        dilation: int | Sequence[int] = 1,
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        activation_layer: LayerFactory | None = nn.ReLU,
        bias: bool | None = None,
    ) -> None:
        if in_channels % groups or out_channels % groups:
            raise ConfigError(f"channels {in_channels} -> {out_channels} are not divisible by groups={groups}")
        kernel, dilations = pair(kernel_size), pair(dilation)
        if padding is None:
            padding = tuple((k - 1) // 2 * d for k, d in zip(kernel, dilations, strict=True))
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel,
                stride=pair(stride),
                padding=pair(padding),
                dilation=dilations,
                groups=groups,
                bias=norm_layer is None if bias is None else bias,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(_activation(activation_layer))
        super().__init__(*layers)
        self.out_channels = out_channels


def _activation(factory: LayerFactory) -> nn.Module:
    """Build an activation in-place where it supports it (saves one tensor per layer in eval)."""
    try:
        return factory(inplace=True)
    except TypeError:
        return factory()


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation along one axis (Hu et al. 2018): a gate per channel, frequency band or frame.

    The input is averaged over the two other axes, passed through ``fc1 -> activation -> fc2 -> gate`` and
    multiplied back. With ``dim=1`` this is the classic channel SE (EfficientAT uses a true sigmoid gate where
    torchvision's MobileNetV3 uses a hard sigmoid). ``fc1`` / ``fc2`` are ``Linear`` layers, as in EfficientAT.

    Args:
        num_features: size of the gated axis (channels, bands or frames).
        squeeze_features: bottleneck size.
        dim: the gated axis of ``[batch, channels, freq, time]``: 1, 2 or 3.
        activation: bottleneck activation factory.
        gate: output activation factory.
    """

    def __init__(
        self,
        num_features: int,
        squeeze_features: int,
        dim: int = 1,
        activation: LayerFactory = nn.ReLU,
        gate: LayerFactory = nn.Sigmoid,
    ) -> None:
        super().__init__()
        if dim not in (1, 2, 3):
            raise ConfigError(f"SqueezeExcitation.dim must be 1 (channels), 2 (freq) or 3 (time), got {dim}")
        if num_features <= 0 or squeeze_features <= 0:
            raise ConfigError(f"SE sizes must be positive, got {num_features} -> {squeeze_features}")
        self.fc1 = nn.Linear(num_features, squeeze_features)
        self.fc2 = nn.Linear(squeeze_features, num_features)
        self.activation = activation()
        self.gate = gate()
        self.dim = dim
        self._reduce = tuple(d for d in (1, 2, 3) if d != dim)

    def scale(self, x: Tensor) -> Tensor:
        """The gate, shaped to broadcast against ``x``."""
        size = x.shape[self.dim]
        if size != self.fc1.in_features:
            axis = ("channels", "frequency bands", "frames")[self.dim - 1]
            raise ConfigError(
                f"this SE gates {self.fc1.in_features} {axis} but the input has {size}; build the model for this "
                "input size (input_dim_f / input_dim_t) or use channel SE"
            )
        shape = [x.shape[0], 1, 1, 1]
        shape[self.dim] = size
        squeezed = x.mean(self._reduce)
        return self.gate(self.fc2(self.activation(self.fc1(squeezed)))).view(shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.scale(x) * x


class ConcurrentSqueezeExcitation(nn.Module):
    """Several SE gates on different axes applied to the same input, fused elementwise (EfficientAT
    ``ConcurrentSEBlock``). With one gate (the published models) it is exactly that gate.

    Args:
        layers: the SE modules (kept as ``conc_se_layers`` for the reference keys).
        aggregation: ``"max"``, ``"avg"``, ``"add"`` or ``"min"`` over the gated outputs.
    """

    def __init__(self, layers: Sequence[nn.Module], aggregation: str = "max") -> None:
        super().__init__()
        if not layers:
            raise ConfigError("ConcurrentSqueezeExcitation needs at least one SE layer")
        if aggregation not in SE_AGGREGATIONS:
            raise ConfigError(f"unknown SE aggregation {aggregation!r}; use one of {SE_AGGREGATIONS}")
        self.conc_se_layers = nn.ModuleList(layers)
        self.aggregation = aggregation

    def forward(self, x: Tensor) -> Tensor:
        if len(self.conc_se_layers) == 1:
            return self.conc_se_layers[0](x)
        outputs = torch.stack([layer(x) for layer in self.conc_se_layers])
        if self.aggregation == "max":
            return outputs.amax(0)
        if self.aggregation == "min":
            return outputs.amin(0)
        if self.aggregation == "avg":
            return outputs.mean(0)
        return outputs.sum(0)


def position_classifier(in_channels: int, num_classes: int) -> nn.Sequential:
    """Class projection ``1×1 conv (no bias) + BN``; keys ``feed_forward.0`` / ``feed_forward.1``."""
    return nn.Sequential(nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=False), nn.BatchNorm2d(num_classes))


class PositionClassifierModel(AudioModel):
    """A CNN whose classifier (:func:`position_classifier`, attribute ``feed_forward``) runs at every position.

    CP-JKU's CP-ResNet and CP-Mobile classify every time-frequency position and then average, so that BatchNorm
    sees per-position statistics in training. Both classifier layers are affine, so in eval mode
    ``forward_head(forward_features(x))`` equals ``forward(x)`` up to float rounding. Subclasses build
    ``feed_forward`` and implement :meth:`forward_map`.
    """

    feed_forward: nn.Sequential

    def forward_map(self, mel: Tensor) -> Tensor:
        """Output of the last stage ``[batch, num_features, F', T']`` (before any pooling)."""
        raise NotImplementedError

    def forward_features(self, mel: Tensor) -> Tensor:
        return self.forward_map(mel).mean(dim=(2, 3))

    def forward_head(self, features: Tensor) -> Tensor:
        return self.feed_forward(features[:, :, None, None]).flatten(1)

    def forward(self, mel: Tensor) -> Tensor:
        return self.feed_forward(self.forward_map(mel)).mean(dim=(2, 3))
