"""EfficientAT MN: MobileNetV3-Large for log-mel spectrograms, distilled from PaSST ensembles.

Paper: Schmid, Koutini, Widmer, "Efficient Large-Scale Audio Tagging via Transformer-to-CNN Knowledge
Distillation", ICASSP 2023. Reference: ``fschmid56/EfficientAT`` at ``a425fdce``, ``models/mn/{model,
block_types,utils}.py`` (itself adapted from torchvision's ``mobilenetv3.py``).

Differences from torchvision's MobileNetV3: one input channel, every norm ``BatchNorm2d(eps=1e-3,
momentum=0.01)``, SE with a true sigmoid and ``Linear`` layers, optional frequency / time SE, configurable
strides of the four down-sampling blocks, and an MLP or fully-convolutional head. Module names reproduce the
official state-dict keys (``features.<i>.block.<j>...``, ``classifier.{2,5}``), so the published checkpoints
load strictly. Unlike the reference, ``forward`` returns logits only (the embedding is ``forward_features``),
outputs keep their batch axis for batch size 1, and frequency SE works.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import AudioModel
from .layers import (
    SE_AGGREGATIONS,
    ConcurrentSqueezeExcitation,
    ConvNormAct,
    LayerFactory,
    SqueezeExcitation,
    batch_norm,
    make_divisible,
)
from .spec import ArchConfig

__all__ = [
    "ACTIVATIONS",
    "HEAD_TYPES",
    "NORM_LAYER",
    "EfficientATNet",
    "InvertedResidual",
    "InvertedResidualConfig",
    "MNConfig",
    "MobileNet",
    "SEConfig",
    "build_classifier",
    "build_features",
    "checkpoint_filter_fn",
    "describe_features",
    "init_weights",
    "mobilenet_v3_config",
    "reference_se_fields",
    "reject_pretrained_name",
]

logger = logging.getLogger(__name__)

HEAD_TYPES = ("mlp", "fully_convolutional")
ACTIVATIONS: dict[str, LayerFactory] = {"RE": nn.ReLU, "HS": nn.Hardswish}
NORM_LAYER = batch_norm(eps=1e-3, momentum=0.01)  # every backbone norm of MN and DyMN

# MobileNetV3-Large (Howard et al. 2019, table 2): in, kernel, expanded, out, SE, activation, stride slot.
# A stride slot i takes strides[i] of the constructor (the four down-sampling blocks); None means stride 1.
_LARGE_TABLE: tuple[tuple[int, int, int, int, bool, str, int | None], ...] = (
    (16, 3, 16, 16, False, "RE", None),
    (16, 3, 64, 24, False, "RE", 0),
    (24, 3, 72, 24, False, "RE", None),
    (24, 5, 72, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", None),
    (40, 5, 120, 40, True, "RE", None),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", None),
    (80, 3, 184, 80, False, "HS", None),
    (80, 3, 184, 80, False, "HS", None),
    (80, 3, 480, 112, True, "HS", None),
    (112, 3, 672, 112, True, "HS", None),
    (112, 5, 672, 160, True, "HS", 3),
    (160, 5, 960, 160, True, "HS", None),
    (160, 5, 960, 160, True, "HS", None),
)
_INPUT_SIZE = (128, 1000)  # (n_mels, frames) of 10 s at the EfficientAT frontend
_TAIL = 12  # rows from here on form the C4 stage (halved by reduced_tail, dilated by dilated)


@dataclass(frozen=True)
class InvertedResidualConfig:
    """One row of the MobileNetV3 table, channels already width-scaled.

    Attributes:
        in_channels: block input channels.
        kernel_size: depthwise kernel (square).
        expanded_channels: channels after the 1x1 expansion (no expansion conv when equal to ``in_channels``).
        out_channels: block output channels.
        use_se: apply squeeze-excitation after the depthwise conv.
        activation: ``"RE"`` (ReLU) or ``"HS"`` (Hardswish).
        stride: depthwise stride, 1 or 2 (both axes, or frequency only when ``time_stride`` is given).
        dilation: depthwise dilation; a dilated block runs with stride 1.
        time_stride: depthwise stride along time when it differs from ``stride`` (the frame-level models of
            :mod:`tympan.models.frame` keep the time axis while they pool frequency).
    """

    in_channels: int
    kernel_size: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    activation: str
    stride: int
    dilation: int = 1
    time_stride: int | None = None

    def __post_init__(self) -> None:
        for name in ("in_channels", "kernel_size", "expanded_channels", "out_channels", "dilation"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"InvertedResidualConfig.{name} must be positive, got {getattr(self, name)}")
        if self.stride not in (1, 2) or self.time_stride not in (None, 1, 2):
            raise ConfigError(f"block strides must be 1 or 2, got {self.stride} / time {self.time_stride}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"the depthwise kernel must be odd to keep 'same' padding, got {self.kernel_size}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def depthwise_strides(self) -> tuple[int, int]:
        """The ``(freq, time)`` strides the depthwise conv really uses (1 in dilated blocks)."""
        if self.dilation > 1:
            return 1, 1
        return self.stride, self.stride if self.time_stride is None else self.time_stride

    @property
    def depthwise_stride(self) -> int:
        """The frequency stride the depthwise conv really uses (that of both axes unless ``time_stride`` is set)."""
        return self.depthwise_strides[0]

    @property
    def use_residual(self) -> bool:
        return self.stride == 1 and self.time_stride in (None, 1) and self.in_channels == self.out_channels

    def out_size(self, size: int, axis: int = 0) -> int:
        """Length of one spatial axis (0: frequency, 1: time) after the block."""
        padding = (self.kernel_size - 1) // 2 * self.dilation
        stride = self.depthwise_strides[axis]
        return (size + 2 * padding - self.dilation * (self.kernel_size - 1) - 1) // stride + 1


def mobilenet_v3_config(
    width_mult: float = 1.0,
    reduced_tail: bool = False,
    dilated: bool = False,
    strides: Sequence[int] = (2, 2, 2, 2),
) -> tuple[tuple[InvertedResidualConfig, ...], int]:
    """The 15 block rows of MobileNetV3-Large at ``width_mult`` and the head's hidden width.

    Args:
        width_mult: channel multiplier; every channel count is rounded by :func:`make_divisible`.
        reduced_tail: halve the channels of the last stage.
        dilated: dilation 2 (and stride 1) in the last three blocks.
        strides: strides of the four down-sampling blocks (2, 4, 7 and 13).

    Raises:
        ConfigError: a non-positive width or not four strides of 1 or 2.
    """
    if not width_mult > 0:
        raise ConfigError(f"width_mult must be positive, got {width_mult}")
    strides = tuple(strides)
    if len(strides) != 4:
        raise ConfigError(f"strides needs 4 entries (blocks 2, 4, 7, 13), got {strides}")
    divider = 2 if reduced_tail else 1

    def scale(channels: int) -> int:
        return make_divisible(channels * width_mult, 8)

    rows = []
    for index, (cin, kernel, exp, out, se, act, slot) in enumerate(_LARGE_TABLE):
        tail_in = index > _TAIL
        rows.append(
            InvertedResidualConfig(
                in_channels=scale(cin // divider if tail_in else cin),
                kernel_size=kernel,
                expanded_channels=scale(exp // divider if tail_in else exp),
                out_channels=scale(out // divider if index >= _TAIL else out),
                use_se=se,
                activation=act,
                stride=1 if slot is None else strides[slot],
                dilation=2 if dilated and index >= _TAIL else 1,
            )
        )
    return tuple(rows), scale(1280 // divider)


@dataclass(frozen=True)
class SEConfig:
    """Squeeze-excitation settings of MN (the reference ``se_dims`` / ``se_agg`` / ``se_r``).

    Attributes:
        dims: gated axes, 1 = channels, 2 = frequency, 3 = time (the published models: channels only).
        aggregation: fusion of several gates: ``"max"``, ``"avg"``, ``"add"`` or ``"min"``.
        reduction: bottleneck = ``make_divisible(size // reduction, 8)``.
    """

    dims: tuple[int, ...] = (1,)
    aggregation: str = "max"
    reduction: int = 4

    def __post_init__(self) -> None:
        if not self.dims or len(set(self.dims)) != len(self.dims) or not set(self.dims) <= {1, 2, 3}:
            raise ConfigError(f"SE dims must be distinct axes among 1, 2, 3, got {self.dims}")
        if self.aggregation not in SE_AGGREGATIONS:
            raise ConfigError(f"se_agg must be one of {SE_AGGREGATIONS}, got {self.aggregation!r}")
        if self.reduction <= 0:
            raise ConfigError(f"se_r must be positive, got {self.reduction}")

    @classmethod
    def from_reference(cls, se_dims: str = "c", se_agg: str = "max", se_r: int = 4) -> SEConfig | None:
        """From the reference letters (``"c"``, ``"f"``, ``"t"`` or combinations; ``"none"`` -> no SE)."""
        if se_dims == "none":
            return None
        axes = {"c": 1, "f": 2, "t": 3}
        if not se_dims or any(letter not in axes for letter in se_dims):
            raise ConfigError(f"se_dims must combine 'c', 'f', 't' (or be 'none'), got {se_dims!r}")
        return cls(tuple(axes[letter] for letter in se_dims), se_agg, se_r)

    def build(self, channels: int, freq: int, time: int) -> nn.Module:
        """The SE module for a block with ``channels`` expanded channels and a ``freq`` x ``time`` output."""
        sizes = {1: channels, 2: freq, 3: time}
        layers = [
            SqueezeExcitation(sizes[dim], make_divisible(sizes[dim] // self.reduction, 8), dim=dim)
            for dim in self.dims
        ]
        return ConcurrentSqueezeExcitation(layers, self.aggregation)


@dataclass(frozen=True)
class MNConfig(ArchConfig):
    """Architecture of an EfficientAT MN; the defaults are the reference ``get_model``'s (MN width 1.0).

    Attributes:
        width_mult: channel multiplier of every layer.
        reduced_tail: halve the channels of the last stage.
        dilated: dilation 2 (and stride 1) in the last three blocks.
        strides: strides of the four down-sampling blocks (2, 4, 7 and 13).
        head_type: ``"mlp"`` or ``"fully_convolutional"``.
        input_size: ``(n_mels, frames)`` the frequency / time SE layers are sized for (reference ``input_dim_f``,
            ``input_dim_t``).
        se: squeeze-excitation settings, None for none (reference ``se_dims``, ``se_agg``, ``se_r``).
    """

    width_mult: float = 1.0
    reduced_tail: bool = False
    dilated: bool = False
    strides: tuple[int, int, int, int] = (2, 2, 2, 2)
    head_type: str = "mlp"
    input_size: tuple[int, int] = _INPUT_SIZE
    se: SEConfig | None = field(default_factory=SEConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strides", tuple(self.strides))
        object.__setattr__(self, "input_size", positive_size(self.input_size))

    @classmethod
    def from_reference(cls, **kwargs: Any) -> MNConfig:
        """From the reference ``models.mn.model.get_model`` keyword arguments (or tympan's names)."""
        fields = reference_se_fields(kwargs)
        reject_pretrained_name(fields.pop("pretrained_name", None))
        fields.pop("multihead_attention_heads", None)  # only for the attention-pooling head, which is not supported
        return cls.from_dict(fields)


def positive_size(size: Sequence[int]) -> tuple[int, int]:
    """``(n_mels, frames)`` as a pair of positive ints.

    Raises:
        ConfigError: not two positive sizes.
    """
    freq, time = (int(s) for s in size)
    if min(freq, time) <= 0:
        raise ConfigError(f"input_size (input_dim_f / input_dim_t) must be positive, got {freq} / {time}")
    return freq, time


def reference_se_fields(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the reference names of the SE and its input size (``se_dims``, ``se_agg``, ``se_r``,
    ``input_dim_f``, ``input_dim_t``) as tympan's ``se`` and ``input_size`` (what MN and the frame MN share).

    Raises:
        ConfigError: a setting is given in both names.
    """
    fields = dict(kwargs)
    given = {name: fields.pop(name) for name in ("input_dim_f", "input_dim_t", "se_dims", "se_agg", "se_r")
             if name in fields}  # fmt: skip
    for ours, names in (("input_size", ("input_dim_f", "input_dim_t")), ("se", ("se_dims", "se_agg", "se_r"))):
        if ours in fields and given.keys() & set(names):
            raise ConfigError(f"give {ours} or {' / '.join(names)}, not both")
    if {"input_dim_f", "input_dim_t"} & given.keys():
        freq, time = _INPUT_SIZE
        fields["input_size"] = (given.get("input_dim_f", freq), given.get("input_dim_t", time))
    if {"se_dims", "se_agg", "se_r"} & given.keys():
        fields["se"] = SEConfig.from_reference(**{k: v for k, v in given.items() if k.startswith("se_")})
    return fields


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: 1x1 expand (if needed) -> depthwise -> SE (optional) -> 1x1 project, + residual.

    Args:
        cfg: the block row.
        se_layer: the SE module to insert (None: none).
        norm_layer: norm factory.
    """

    def __init__(self, cfg: InvertedResidualConfig, se_layer: nn.Module | None, norm_layer: LayerFactory) -> None:
        super().__init__()
        act = ACTIVATIONS[cfg.activation]
        layers: list[nn.Module] = []
        if cfg.expanded_channels != cfg.in_channels:
            layers.append(ConvNormAct(cfg.in_channels, cfg.expanded_channels, 1, norm_layer=norm_layer,
                                      activation_layer=act))
        layers.append(
            ConvNormAct(cfg.expanded_channels, cfg.expanded_channels, cfg.kernel_size, stride=cfg.depthwise_strides,
                        dilation=cfg.dilation, groups=cfg.expanded_channels, norm_layer=norm_layer,
                        activation_layer=act)
        )
        if se_layer is not None:
            layers.append(se_layer)
        layers.append(ConvNormAct(cfg.expanded_channels, cfg.out_channels, 1, norm_layer=norm_layer,
                                  activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = cfg.use_residual

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_residual:
            out += x
        return out


def build_classifier(
    head_type: str, in_features: int, hidden_features: int, num_classes: int, dropout: float = 0.2
) -> nn.Sequential:
    """The EfficientAT heads, on the last feature map ``[batch, in_features, freq, time]``.

    ``"mlp"``: pool -> flatten -> Linear -> Hardswish -> Dropout -> Linear (keys ``classifier.{2,5}``).
    ``"fully_convolutional"``: 1x1 conv (no bias) -> ``BatchNorm2d`` (default eps) -> pool (keys
    ``classifier.{0,1}``). Both give ``[batch, num_classes, 1, 1]`` / ``[batch, num_classes]``; pooling commutes
    with the affine fully-convolutional head in eval mode, so either head also accepts the pooled embedding
    reshaped to ``[batch, in_features, 1, 1]``.

    Raises:
        ConfigError: an unknown head type or a non-positive class count.
    """
    if num_classes <= 0:
        raise ConfigError(f"num_classes must be positive, got {num_classes}")
    if head_type == "mlp":
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(in_features, hidden_features),
            nn.Hardswish(inplace=True),
            nn.Dropout(dropout, inplace=True),
            nn.Linear(hidden_features, num_classes),
        )
    if head_type == "fully_convolutional":
        return nn.Sequential(
            nn.Conv2d(in_features, num_classes, 1, bias=False), nn.BatchNorm2d(num_classes), nn.AdaptiveAvgPool2d(1)
        )
    raise ConfigError(
        f"head_type {head_type!r} is not supported; use one of {HEAD_TYPES} (no official checkpoint uses "
        "'multihead_attention_pooling')"
    )


def init_weights(module: nn.Module) -> None:
    """The EfficientAT init: convs Kaiming-normal (fan-out) with zero bias, norms 1 / 0, linears N(0, 0.01²)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class EfficientATNet(AudioModel):
    """What MN and DyMN share: the head, pooling and the forward contract.

    Subclasses implement ``forward_intermediates`` (the 17 feature maps) and ``_feature_map`` (the last one)
    and call :meth:`_build_head`.
    """

    classifier: nn.Sequential
    head_type: str
    _hidden_features: int
    _dropout: float

    def _build_head(
        self, num_features: int, head_type: str, hidden_features: int, num_classes: int, dropout: float
    ) -> None:
        """Set the head and the attributes it is described by (``num_features`` ... ``_dropout``)."""
        self.num_features = num_features
        self.head_type = head_type
        self.num_classes = num_classes
        self._hidden_features = hidden_features
        self._dropout = dropout
        self.classifier = build_classifier(head_type, num_features, hidden_features, num_classes, dropout)

    def _feature_map(self, mel: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_intermediates(self, mel: Tensor) -> list[Tensor]:
        """The stem, the 15 block outputs and the last 1x1 conv output, each ``[batch, channels, freq, time]``."""
        raise NotImplementedError

    def forward_features(self, mel: Tensor) -> Tensor:
        """Embedding ``[batch, num_features]``: the mean of the last feature map (before the head)."""
        return F.adaptive_avg_pool2d(self._feature_map(mel), 1).flatten(1)

    def forward_head(self, features: Tensor) -> Tensor:
        """Logits ``[batch, num_classes]`` from the embedding ``[batch, num_features]``."""
        return self.classifier(features[:, :, None, None]).flatten(1)

    def forward(self, mel: Tensor) -> Tensor:
        """Logits ``[batch, num_classes]`` of mel ``[batch, 1, n_mels, frames]``.

        The fully-convolutional head runs on the whole map, as in the reference, so that its BatchNorm sees
        every position in training.
        """
        x = self._feature_map(mel)
        if self.head_type == "fully_convolutional":
            return self.classifier(x).flatten(1)
        return self.forward_head(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def reset_classifier(self, num_classes: int) -> None:
        """New output layer for ``num_classes``: the last Linear of the MLP head (the hidden layer keeps its
        weights, as the reference fine-tuning does) or the whole fully-convolutional head."""
        fresh = build_classifier(self.head_type, self.num_features, self._hidden_features, num_classes, self._dropout)
        init_weights(fresh)
        fresh.train(self.training)
        like = next(self.classifier.parameters())  # keep the model's device and dtype
        if self.head_type == "mlp":
            self.classifier[5] = fresh[5].to(like)
        else:
            self.classifier = fresh.to(like)
        self.num_classes = num_classes


class MobileNet(EfficientATNet):
    """EfficientAT MN: mel ``[batch, 1, n_mels, frames]`` -> logits ``[batch, num_classes]``.

    Args:
        blocks: the 15 block rows (:func:`mobilenet_v3_config`).
        last_channel: hidden width of the MLP head.
        num_classes: outputs.
        head_type: ``"mlp"`` or ``"fully_convolutional"``.
        se: squeeze-excitation settings (None: no SE).
        input_size: ``(n_mels, frames)`` the frequency / time SE layers are sized for.
        dropout: dropout before the last Linear of the MLP head.
        norm_layer: norm factory of the backbone.
    """

    def __init__(
        self,
        blocks: Sequence[InvertedResidualConfig],
        last_channel: int,
        num_classes: int = 527,
        head_type: str = "mlp",
        se: SEConfig | None = SEConfig(),
        input_size: tuple[int, int] = (128, 1000),
        dropout: float = 0.2,
        norm_layer: LayerFactory = NORM_LAYER,
    ) -> None:
        super().__init__()
        self.features = build_features(blocks, se, input_size, norm_layer)
        self._build_head(6 * blocks[-1].out_channels, head_type, last_channel, num_classes, dropout)
        self.feature_info = describe_features(blocks, [f"features.{i}" for i in range(len(self.features))])
        init_weights(self)

    @classmethod
    def from_config(cls, config: MNConfig, num_classes: int = 527) -> MobileNet:
        """The MN of ``config`` with ``num_classes`` outputs (the registry's builder)."""
        blocks, last_channel = mobilenet_v3_config(config.width_mult, config.reduced_tail, config.dilated,
                                                   config.strides)  # fmt: skip
        return cls(blocks, last_channel, num_classes, config.head_type, config.se, config.input_size)

    def _feature_map(self, mel: Tensor) -> Tensor:
        return self.features(mel)

    def forward_intermediates(self, mel: Tensor) -> list[Tensor]:
        maps = []
        x = mel
        for layer in self.features:
            x = layer(x)
            maps.append(x)
        return maps


def build_features(
    blocks: Sequence[InvertedResidualConfig],
    se: SEConfig | None,
    input_size: tuple[int, int],
    norm_layer: LayerFactory = NORM_LAYER,
) -> nn.Sequential:
    """The MN feature extractor ``features.{0..16}``: stem (3x3, stride 2), the blocks, and the 1x1 conv to
    ``6 × blocks[-1].out_channels`` channels; frequency / time SE layers are sized for ``input_size``."""
    if not blocks:
        raise ConfigError("MobileNet needs at least one block config")
    freq, time = (_conv_out(size, 3, 2) for size in input_size)
    layers: list[nn.Module] = [
        ConvNormAct(1, blocks[0].in_channels, 3, stride=2, norm_layer=norm_layer, activation_layer=nn.Hardswish)
    ]
    for cfg in blocks:
        freq, time = cfg.out_size(freq, 0), cfg.out_size(time, 1)
        se_layer = se.build(cfg.expanded_channels, freq, time) if cfg.use_se and se is not None else None
        layers.append(InvertedResidual(cfg, se_layer, norm_layer))
    layers.append(ConvNormAct(blocks[-1].out_channels, 6 * blocks[-1].out_channels, 1, norm_layer=norm_layer,
                              activation_layer=nn.Hardswish))
    return nn.Sequential(*layers)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * ((kernel - 1) // 2) - kernel) // stride + 1


def describe_features(blocks: Sequence[InvertedResidualConfig], modules: Sequence[str]) -> list[dict[str, Any]]:
    """Channels, total down-sampling and module name of each of the 17 feature maps."""
    channels = [blocks[0].in_channels] + [b.out_channels for b in blocks] + [6 * blocks[-1].out_channels]
    reductions = [2]
    for cfg in blocks:
        reductions.append(reductions[-1] * cfg.depthwise_stride)
    reductions.append(reductions[-1])
    return [
        {"num_chs": c, "reduction": r, "module": m} for c, r, m in zip(channels, reductions, modules, strict=True)
    ]


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Keep the model's own (fresh) classifier where the checkpoint's class count differs, and log it.

    This is the one conversion the reference performs (it drops the head tensors when ``num_classes``
    differs); every other mismatch still fails the strict load.
    """
    own = model.state_dict()
    head = [k for k in own if k.startswith("classifier.")]
    differing = [k for k in head if k in state_dict and state_dict[k].shape != own[k].shape]
    if not differing:
        return state_dict
    replaced = head if getattr(model, "head_type", "mlp") == "fully_convolutional" else differing
    logger.info("classifier tensors taken from the model's own init (class count differs): %s", replaced)
    return {**state_dict, **{k: own[k] for k in replaced}}


def reject_pretrained_name(pretrained_name: str | None) -> None:
    """The reference downloads weights by name inside ``get_model``; tympan names them in the zoo instead."""
    if pretrained_name is not None:
        raise ConfigError(
            f"pretrained_name={pretrained_name!r}: build a named model with "
            f"tympan.models.create({pretrained_name!r}, checkpoint=path) instead"
        )


def build_mn(num_classes: int = 527, **reference_kwargs: Any) -> MobileNet:
    """MN from the reference ``models.mn.model.get_model`` keyword arguments (the same names and defaults)."""
    return MobileNet.from_config(MNConfig.from_reference(**reference_kwargs), num_classes)
