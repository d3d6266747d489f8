"""EfficientAT DyMN: MobileNetV3 with dynamic convolution, dynamic ReLU and coordinate attention.

Paper: Schmid, Koutini, Widmer, "Dynamic Convolutional Neural Networks as Efficient Pre-trained Audio
Models", IEEE/ACM TASLP 2024. Reference: ``fschmid56/EfficientAT`` at ``a425fdce``, ``models/dymn/{model,
dy_block,utils}.py``.

Each of the 15 MobileNetV3 blocks becomes a dynamic block: a context generator summarises the block input into
a context vector (and frequency / time sequences), which parameterises the attention over K convolution kernels
(:class:`DynamicConv`), the piecewise-linear activation (:class:`DynamicReLU`, DY-ReLU-B) and the coordinate
attention. Module names reproduce the official keys (``layers.<i>.depth_conv.weight``, ``in_c``, ``out_c``,
``classifier``), so the published checkpoints load strictly.

The kernel-attention temperature is model configuration, not a weight: it is outside the state dict, starts at
``pretrain_final_temp`` (1.0: the inference setting of every official checkpoint; the reference's fresh
``get_model()`` starts at ``T_max`` = 30 instead) and follows :class:`TemperatureSchedule` through
:meth:`DyMN.update_temperature`, called once at the start of every training epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .layers import ConvNormAct, LayerFactory, make_divisible, pair
from .mobilenet import (
    ACTIVATIONS,
    NORM_LAYER,
    EfficientATNet,
    InvertedResidual,
    InvertedResidualConfig,
    describe_features,
    init_weights,
    mobilenet_v3_config,
    reject_pretrained_name,
)
from .spec import ArchConfig, renamed

__all__ = [
    "DYNAMIC_BLOCK_LAYOUTS",
    "ContextGenerator",
    "DyMN",
    "DyMNConfig",
    "DynamicBackbone",
    "DynamicBlock",
    "DynamicConfig",
    "DynamicConv",
    "DynamicOptions",
    "DynamicReLU",
    "TemperatureSchedule",
    "build_dynamic_layers",
]

# Which of the 15 blocks are dynamic: all, or only those where MobileNetV3 has SE ("replace_se").
DYNAMIC_BLOCK_LAYOUTS: dict[str, tuple[bool, ...]] = {
    "all": (True,) * 15,
    "replace_se": (False, False, False, True, True, True, False, False, False, False, True, True, True, True, True),
}


@dataclass(frozen=True)
class TemperatureSchedule:
    """Temperature of the attention over kernels per epoch: ``max(t_max - t0_slope·e, 1 + t1_slope·(t_max - 1)
    / t0_slope - t1_slope·e, t_min)``; with the defaults linear from 30 to 1 over 29 epochs (paper, eq. 5)."""

    t_max: float = 30.0
    t0_slope: float = 1.0
    t1_slope: float = 0.02
    t_min: float = 1.0

    def __post_init__(self) -> None:
        if not (self.t_max > 0 and self.t_min > 0 and self.t0_slope > 0 and self.t1_slope >= 0):
            raise ConfigError(f"temperature schedule needs t_max, t_min, t0_slope > 0 and t1_slope >= 0: {self}")

    def at(self, epoch: float) -> float:
        """The temperature for ``epoch`` (0-based)."""
        t0 = self.t_max - self.t0_slope * epoch
        t1 = 1 + self.t1_slope * (self.t_max - 1) / self.t0_slope - self.t1_slope * epoch
        return max(t0, t1, self.t_min)


class DynamicConv(nn.Module):
    """Convolution whose kernel is a per-sample softmax mixture of K kernels (Chen et al. 2020).

    ``weight`` keeps the reference layout ``[1, 1, K, out·in/groups·k·k]`` (row j = kernel j flattened as
    ``(out, in/groups, k, k)``); ``residuals.0`` maps the context vector to the K attention logits. The batch is
    folded into the channel axis so that one grouped convolution applies every sample's own kernel.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        context_dim: size of the context vector.
        kernel_size: square kernel.
        stride: stride, one for both axes or ``(freq, time)``.
        dilation: dilation (both axes).
        groups: conv groups.
        num_kernels: K.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        context_dim: int,
        kernel_size: int,
        stride: int | tuple[int, int] = 1,
        dilation: int = 1,
        groups: int = 1,
        num_kernels: int = 4,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ConfigError(f"channels {in_channels} -> {out_channels} are not divisible by groups={groups}")
        if num_kernels < 1:
            raise ConfigError(f"dyconv_k must be >= 1, got {num_kernels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = kernel_size, pair(stride), dilation
        self.padding = (kernel_size - 1) // 2 * dilation
        self.temperature = 1.0
        self.residuals = nn.Sequential(nn.Linear(context_dim, num_kernels))
        # Each kernel Kaiming-normal (fan-out, ReLU gain), drawn in one call.
        weight = torch.empty(1, 1, num_kernels, out_channels * (in_channels // groups) * kernel_size**2)
        self.weight = nn.Parameter(weight.normal_(0.0, math.sqrt(2.0 / (out_channels * kernel_size**2))))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """``x [batch, in, freq, time]``, ``context [batch, context_dim]`` -> ``[batch, out, freq', time']``."""
        batch, _, freq, time = x.shape
        attention = torch.softmax(self.residuals(context) / self.temperature, dim=-1)
        kernels = (attention @ self.weight[0, 0]).view(
            batch * self.out_channels, self.in_channels // self.groups, self.kernel_size, self.kernel_size
        )
        out = F.conv2d(
            x.reshape(1, -1, freq, time), kernels, None, self.stride, self.padding, self.dilation, self.groups * batch
        )
        return out.view(batch, self.out_channels, out.shape[-2], out.shape[-1])


class StaticConv(nn.Module):
    """A plain convolution with the dynamic-conv call signature (``no_dyconv``; keys ``<name>.module.weight``)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.module = conv

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        return self.module(x)


class DynamicReLU(nn.Module):
    """DY-ReLU-B (Chen et al. 2020): ``max_m(a_m·x + b_m)`` with per-sample, per-channel coefficients.

    ``coef_net.0`` maps the context to ``2M`` values per channel, laid out ``[channels, 2M]``: the slopes
    ``a_1..a_M`` then the offsets ``b_1..b_M``, as ``(2·sigmoid - 1)·lambdas + init_v`` (``lambdas`` and
    ``init_v`` are persistent buffers of the official checkpoints).

    Args:
        channels: channels of the input.
        context_dim: size of the context vector.
        pieces: M, the number of linear pieces.
    """

    def __init__(self, channels: int, context_dim: int, pieces: int = 2) -> None:
        super().__init__()
        if pieces < 1:
            raise ConfigError(f"dyrelu_k must be >= 1, got {pieces}")
        self.channels, self.pieces = channels, pieces
        self.coef_net = nn.Sequential(nn.Linear(context_dim, 2 * pieces * channels))
        self.register_buffer("lambdas", torch.tensor([1.0] * pieces + [0.5] * pieces))
        self.register_buffer("init_v", torch.tensor([1.0] + [0.0] * (2 * pieces - 1)))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        theta = 2 * torch.sigmoid(self.coef_net(context)) - 1
        coefs = theta.view(-1, self.channels, 1, 1, 2 * self.pieces) * self.lambdas + self.init_v
        if self.pieces == 2:  # two pieces without materialising the [..., M] tensor
            return torch.maximum(x * coefs[..., 0] + coefs[..., 2], x * coefs[..., 1] + coefs[..., 3])
        return (x.unsqueeze(-1) * coefs[..., : self.pieces] + coefs[..., self.pieces :]).amax(-1)


class ContextGenerator(nn.Module):
    """Summarises a block input into the context of its dynamic parts.

    The input is averaged over time (a sequence over frequency) and over frequency (a sequence over time); both
    sequences share one 1x1 conv + norm + Hardswish. Their joint mean is the context vector ``[batch, H]``
    (kernel attention, DY-ReLU); ``conv_f`` / ``conv_t`` turn the sequences, pooled to the block's output
    resolution, into the coordinate-attention logits ``[batch, expanded, freq', 1]`` and ``[batch, expanded, 1,
    time']``.

    Args:
        in_channels: block input channels.
        context_dim: H.
        expanded_channels: channels the coordinate attention gates.
        strides: the block's depthwise ``(freq, time)`` strides (each sequence is pooled with its own).
        norm_layer: norm factory.
    """

    def __init__(
        self,
        in_channels: int,
        context_dim: int,
        expanded_channels: int,
        strides: tuple[int, int],
        norm_layer: LayerFactory,
    ) -> None:
        super().__init__()
        self.joint_conv = nn.Conv2d(in_channels, context_dim, 1, bias=False)
        self.joint_norm = norm_layer(context_dim)
        self.joint_act = nn.Hardswish(inplace=True)
        self.conv_f = nn.Conv2d(context_dim, expanded_channels, 1)
        self.conv_t = nn.Conv2d(context_dim, expanded_channels, 1)
        freq_stride, time_stride = strides  # pools with count_include_pad=True, as the reference
        self.pool_f = nn.AvgPool2d((3, 1), (freq_stride, 1), (1, 0)) if freq_stride > 1 else nn.Identity()
        self.pool_t = nn.AvgPool2d((1, 3), (1, time_stride), (0, 1)) if time_stride > 1 else nn.Identity()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x [batch, in, freq, time]`` -> (context ``[batch, H]``, freq logits, time logits)."""
        freq, time = x.shape[-2:]
        along_freq = F.adaptive_avg_pool2d(x, (None, 1))
        along_time = F.adaptive_avg_pool2d(x, (1, None)).transpose(2, 3)
        joint = self.joint_act(self.joint_norm(self.joint_conv(torch.cat([along_freq, along_time], dim=2))))
        h_f, h_t = torch.split(joint, [freq, time], dim=2)
        context = joint.mean(2).flatten(1)
        return context, self.conv_f(self.pool_f(h_f)), self.conv_t(self.pool_t(h_t.transpose(2, 3)))


class DynamicBlock(nn.Module):
    """Dynamic inverted residual: context -> dynamic 1x1 expand -> dynamic depthwise -> DY-ReLU -> coordinate
    attention -> dynamic 1x1 project, + residual (reference ``DY_Block``).

    Args:
        cfg: the block row (``use_se`` is ignored: the coordinate attention takes its place).
        context_dim: H.
        num_kernels: K of the dynamic convolutions.
        relu_pieces: M of DY-ReLU.
        dynamic_conv: False for static convolutions (``no_dyconv``).
        dynamic_relu: False for the static activation (``no_dyrelu``).
        coord_att: False to leave out the coordinate attention (``no_ca``).
        norm_layer: norm factory.
    """

    def __init__(
        self,
        cfg: InvertedResidualConfig,
        context_dim: int,
        num_kernels: int = 4,
        relu_pieces: int = 2,
        dynamic_conv: bool = True,
        dynamic_relu: bool = True,
        coord_att: bool = True,
        norm_layer: LayerFactory = NORM_LAYER,
    ) -> None:
        super().__init__()
        act = ACTIVATIONS[cfg.activation]
        exp, strides = cfg.expanded_channels, cfg.depthwise_strides

        def conv(
            cin: int, cout: int, kernel: int, stride: tuple[int, int] = (1, 1), dilation: int = 1, groups: int = 1
        ) -> nn.Module:
            if dynamic_conv:
                return DynamicConv(cin, cout, context_dim, kernel, stride, dilation, groups, num_kernels)
            padding = (kernel - 1) // 2 * dilation
            return StaticConv(nn.Conv2d(cin, cout, kernel, stride, padding, dilation, groups, bias=False))

        self.exp_conv = self.exp_norm = self.exp_act = None
        if exp != cfg.in_channels:
            self.exp_conv = conv(cfg.in_channels, exp, 1)
            self.exp_norm = norm_layer(exp)
            self.exp_act = act(inplace=True)
        self.depth_conv = conv(exp, exp, cfg.kernel_size, strides, cfg.dilation, groups=exp)
        self.depth_norm = norm_layer(exp)
        self.depth_act = DynamicReLU(exp, context_dim, relu_pieces) if dynamic_relu else act(inplace=True)
        self.proj_conv = conv(exp, cfg.out_channels, 1)
        self.proj_norm = norm_layer(cfg.out_channels)
        self.context_gen = ContextGenerator(cfg.in_channels, context_dim, exp, strides, norm_layer)
        self.coord_att = coord_att
        self.use_residual = cfg.use_residual

    def forward(self, x: Tensor) -> Tensor:
        context, gate_f, gate_t = self.context_gen(x)
        out = x
        if self.exp_conv is not None:
            out = self.exp_act(self.exp_norm(self.exp_conv(out, context)))
        out = self.depth_norm(self.depth_conv(out, context))
        out = self.depth_act(out, context) if isinstance(self.depth_act, DynamicReLU) else self.depth_act(out)
        if self.coord_att:
            out = out * gate_f.sigmoid() * gate_t.sigmoid()
        out = self.proj_norm(self.proj_conv(out, context))
        if self.use_residual:
            out += x
        return out


@dataclass(frozen=True)
class DynamicOptions:
    """How the dynamic blocks are built (what DyMN and the frame-level DyMN share).

    Attributes:
        context_ratio: H = ``make_divisible(expanded // context_ratio, 8)`` ...
        context_range: ... clipped to this ``(min, max)``: width-scaled in the options a network is built with, at
            width 1 in a :class:`DynamicConfig` (:meth:`scaled` turns one into the other).
        num_kernels: K of the dynamic convolutions.
        relu_pieces: M of DY-ReLU.
        dynamic_conv: False for static convolutions.
        dynamic_relu: False for static activations.
        coord_att: False to leave out the coordinate attention.
    """

    context_ratio: int = 4
    context_range: tuple[int, int] = (32, 128)
    num_kernels: int = 4
    relu_pieces: int = 2
    dynamic_conv: bool = True
    dynamic_relu: bool = True
    coord_att: bool = True

    def __post_init__(self) -> None:
        if self.context_ratio <= 0 or not 0 < self.context_range[0] <= self.context_range[1]:
            raise ConfigError(f"need context_ratio > 0 and 0 < min <= max context, got {self.context_ratio}, "
                              f"{self.context_range}")  # fmt: skip

    def context_dim(self, expanded_channels: int) -> int:
        """H of a block with ``expanded_channels`` channels."""
        low, high = self.context_range
        return min(max(make_divisible(expanded_channels // self.context_ratio, 8), low), high)

    def scaled(self, width_mult: float) -> DynamicOptions:
        """These options for a network of width ``width_mult``: the context range scaled as the channels are."""
        low, high = self.context_range
        return replace(self, context_range=(make_divisible(low * width_mult, 8), make_divisible(high * width_mult, 8)))


def build_dynamic_layers(
    blocks: Sequence[InvertedResidualConfig], dynamic: Sequence[bool], options: DynamicOptions
) -> nn.ModuleList:
    """The 15 blocks of a DyMN: a :class:`DynamicBlock` where ``dynamic`` says so, else an inverted residual
    without SE. The blocks' ``(freq, time)`` strides are kept, so frame-level configs build the same way."""
    if not blocks or len(dynamic) != len(blocks):
        raise ConfigError(f"need one dynamic flag per block: {len(dynamic)} flags for {len(blocks)} blocks")
    layers = nn.ModuleList()
    for cfg, is_dynamic in zip(blocks, dynamic, strict=True):
        if is_dynamic:
            layers.append(DynamicBlock(cfg, options.context_dim(cfg.expanded_channels), options.num_kernels,
                                       options.relu_pieces, options.dynamic_conv, options.dynamic_relu,
                                       options.coord_att))  # fmt: skip
        else:
            layers.append(InvertedResidual(replace(cfg, use_se=False), None, NORM_LAYER))
    return layers


class DynamicBackbone(nn.Module):
    """What DyMN and the frame-level DyMN share: the dynamic ``layers``, the stem ``in_c`` (3x3, stride 2), the
    1x1 ``out_c`` to ``6 × blocks[-1].out_channels`` channels, and the kernel-attention temperature, a setting
    outside the state dict stepped once per epoch by the training callback (``update_temperature``)."""

    temperature_schedule: TemperatureSchedule
    _temperature: float

    def _build_backbone(
        self,
        blocks: Sequence[InvertedResidualConfig],
        dynamic: Sequence[bool],
        options: DynamicOptions,
        temperature_schedule: TemperatureSchedule,
    ) -> None:
        """Add ``layers``, ``in_c`` and ``out_c`` (the official key order); call :meth:`set_temperature` once the
        network is complete."""
        self.layers = build_dynamic_layers(blocks, dynamic, options)
        self.in_c = ConvNormAct(1, blocks[0].in_channels, 3, stride=2, norm_layer=NORM_LAYER,
                                activation_layer=nn.Hardswish)  # fmt: skip
        last = blocks[-1].out_channels
        self.out_c = ConvNormAct(last, 6 * last, 1, norm_layer=NORM_LAYER, activation_layer=nn.Hardswish)
        self.temperature_schedule = temperature_schedule

    def _feature_map(self, mel: Tensor) -> Tensor:
        x = self.in_c(mel)
        for layer in self.layers:
            x = layer(x)
        return self.out_c(x)

    @property
    def temperature(self) -> float:
        """The current kernel-attention temperature (not part of the state dict)."""
        return self._temperature

    def set_temperature(self, temperature: float) -> None:
        """Set the softmax temperature of the attention over kernels in every dynamic convolution."""
        if not temperature > 0:
            raise ConfigError(f"the temperature must be positive, got {temperature}")
        self._temperature = float(temperature)
        for module in self.modules():
            if isinstance(module, DynamicConv):
                module.temperature = self._temperature

    def update_temperature(self, epoch: int) -> float:
        """Apply :attr:`temperature_schedule` for ``epoch`` (call at each epoch start); returns the temperature."""
        self.set_temperature(self.temperature_schedule.at(epoch))
        return self._temperature


class DyMN(DynamicBackbone, EfficientATNet):
    """EfficientAT DyMN: mel ``[batch, 1, n_mels, frames]`` -> logits ``[batch, num_classes]``.

    Args:
        blocks: the 15 block rows (:func:`tympan.models.mobilenet.mobilenet_v3_config`).
        dynamic: per block, dynamic block (True) or a plain inverted residual without SE (False).
        last_channel: hidden width of the MLP head.
        num_classes: outputs.
        options: how the dynamic blocks are built.
        temperature: initial kernel-attention temperature.
        temperature_schedule: what :meth:`update_temperature` follows.
        head_type: ``"mlp"`` or ``"fully_convolutional"``.
        dropout: dropout of the MLP head.
    """

    def __init__(
        self,
        blocks: Sequence[InvertedResidualConfig],
        dynamic: Sequence[bool],
        last_channel: int,
        num_classes: int = 527,
        options: DynamicOptions = DynamicOptions(),
        temperature: float = 1.0,
        temperature_schedule: TemperatureSchedule = TemperatureSchedule(),
        head_type: str = "mlp",
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self._build_backbone(blocks, dynamic, options, temperature_schedule)
        self._build_head(6 * blocks[-1].out_channels, head_type, last_channel, num_classes, dropout)
        modules = ["in_c"] + [f"layers.{i}" for i in range(len(blocks))] + ["out_c"]
        self.feature_info = describe_features(blocks, modules)
        init_weights(self)
        self.set_temperature(temperature)

    @classmethod
    def from_config(cls, config: DyMNConfig, num_classes: int = 527) -> DyMN:
        """The DyMN of ``config`` with ``num_classes`` outputs (the registry's builder)."""
        blocks, last_channel = mobilenet_v3_config(config.width_mult, strides=config.strides)
        return cls(blocks, config.layout, last_channel, num_classes, config.options, config.temperature,
                   config.temperature_schedule)  # fmt: skip

    def forward_intermediates(self, mel: Tensor) -> list[Tensor]:
        maps = [self.in_c(mel)]
        for layer in self.layers:
            maps.append(layer(maps[-1]))
        maps.append(self.out_c(maps[-1]))
        return maps


# The reference get_model arguments of the dynamic parts, in tympan's names: DynamicOptions fields, switched-off
# features (True there = False here) and the TemperatureSchedule fields.
_REFERENCE_OPTIONS = {"context_ratio": "context_ratio", "dyconv_k": "num_kernels", "dyrelu_k": "relu_pieces"}
_REFERENCE_SWITCHES = {"no_dyconv": "dynamic_conv", "no_dyrelu": "dynamic_relu", "no_ca": "coord_att"}
_REFERENCE_SCHEDULE = {"T_max": "t_max", "T0_slope": "t0_slope", "T1_slope": "t1_slope", "T_min": "t_min"}


@dataclass(frozen=True)
class DynamicConfig(ArchConfig):
    """What the configs of DyMN and the frame-level DyMN share: the width and the dynamic parts.

    Attributes:
        width_mult: channel multiplier of every layer.
        dynamic_blocks: which blocks are dynamic, a key of :data:`DYNAMIC_BLOCK_LAYOUTS` (reference ``use_dy_blocks``).
        dynamic: how the dynamic blocks are built, the context range at width 1 (reference ``context_ratio``,
            ``min_context_size``, ``max_context_size``, ``dyconv_k``, ``dyrelu_k``, ``no_dyconv``, ``no_dyrelu``,
            ``no_ca``).
        temperature: initial kernel-attention temperature (reference ``pretrain_final_temp``).
        temperature_schedule: what ``update_temperature`` follows (reference ``T_max``, ``T0_slope``, ``T1_slope``,
            ``T_min``).
    """

    training_settings = frozenset({"temperature", "temperature_schedule"})

    width_mult: float = 1.0
    dynamic_blocks: str = "all"
    dynamic: DynamicOptions = field(default_factory=DynamicOptions)
    temperature: float = 1.0
    temperature_schedule: TemperatureSchedule = field(default_factory=TemperatureSchedule)

    def __post_init__(self) -> None:
        if self.dynamic_blocks not in DYNAMIC_BLOCK_LAYOUTS:
            raise ConfigError(f"dynamic_blocks (use_dy_blocks) must be one of {tuple(DYNAMIC_BLOCK_LAYOUTS)}, got "
                              f"{self.dynamic_blocks!r}")  # fmt: skip

    @classmethod
    def from_reference(cls, **kwargs: Any) -> DynamicConfig:
        """From the reference ``models.dymn.model.get_model`` keyword arguments (same names and defaults; the model
        starts at temperature ``pretrain_final_temp``, ``T_max`` ... ``T_min`` define the schedule) or tympan's."""
        return cls.from_dict(_reference_dynamic_fields(kwargs))

    @property
    def layout(self) -> tuple[bool, ...]:
        """Per block, dynamic (True) or a plain inverted residual without SE (False)."""
        return DYNAMIC_BLOCK_LAYOUTS[self.dynamic_blocks]

    @property
    def options(self) -> DynamicOptions:
        """The dynamic options at the config's width."""
        return self.dynamic.scaled(self.width_mult)


def _reference_dynamic_fields(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the reference names of the dynamic parts as the fields of :class:`DynamicConfig`."""
    fields = renamed(kwargs, {"use_dy_blocks": "dynamic_blocks", "pretrain_final_temp": "temperature"})
    reject_pretrained_name(fields.pop("pretrained_name", None))
    options = {ours: fields.pop(name) for name, ours in _REFERENCE_OPTIONS.items() if name in fields}
    options |= {ours: not fields.pop(name) for name, ours in _REFERENCE_SWITCHES.items() if name in fields}
    if {"min_context_size", "max_context_size"} & fields.keys():
        low, high = DynamicOptions().context_range
        options["context_range"] = (fields.pop("min_context_size", low), fields.pop("max_context_size", high))
    schedule = {ours: fields.pop(name) for name, ours in _REFERENCE_SCHEDULE.items() if name in fields}
    for ours, given in (("dynamic", options), ("temperature_schedule", schedule)):
        if given and ours in fields:
            raise ConfigError(f"give {ours} or the reference's arguments {sorted(given)}, not both")
        if given:
            fields[ours] = given
    return fields


@dataclass(frozen=True)
class DyMNConfig(DynamicConfig):
    """Architecture of an EfficientAT DyMN; the defaults are the reference ``get_model``'s (DyMN width 1.0).

    Attributes:
        strides: strides of the four down-sampling blocks (2, 4, 7 and 13).
    """

    strides: tuple[int, int, int, int] = (2, 2, 2, 2)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "strides", tuple(self.strides))


def build_dymn(num_classes: int = 527, **reference_kwargs: Any) -> DyMN:
    """DyMN from the reference ``models.dymn.model.get_model`` keyword arguments (same names and defaults)."""
    return DyMN.from_config(DyMNConfig.from_reference(**reference_kwargs), num_classes)
