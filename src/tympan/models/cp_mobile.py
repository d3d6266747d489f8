"""CP-Mobile: the CP-JKU receptive-field-regularised MobileNet for low-complexity acoustic scene classification.

Paper: Schmid, Morocutti, Masoudian, Koutini, Widmer, "CP-JKU submission to DCASE23: Efficient Acoustic Scene
Classification with CP-Mobile" (DCASE 2023 Task 1 technical report, ranked first). Reference code:
``fschmid56/cpjku_dcase23`` @ 2e20abaa ``models/cp_mobile_clean.py``; the DCASE 2024 baseline
(``CPJKU/dcase2024_task1_baseline`` @ 9948d196 ``models/baseline.py``) is the same network without GRN.
State-dict names follow the reference exactly (``in_c.0.0.weight``, ``stages.s1.b1.block.0.0.weight``,
``stages.s1.b1.after_block_norm.gamma``, ``feed_forward.0.weight``, ...).

Shape of the network: a two-conv stem (stride 4), stages of inverted-bottleneck blocks (1×1 expand, 3×3
depthwise with the block's (freq, time) stride, 1×1 project), a residual add where the width does not change
(through a 3×3 average pool on strided blocks), then a global response norm with *scalar* γ, β and a ReLU on every
block, and a classifier that projects to the classes (1×1 conv + BN) **before** global average pooling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..audio.frontend import MelFrontendConfig
from ..errors import ConfigError
from .layers import ConvNormAct, PositionClassifierModel, make_divisible, pair, position_classifier
from .spec import ArchConfig

__all__ = ["DCASE23_FRONTEND", "DCASE24_FRONTEND", "CPMobile", "CPMobileBlock", "CPMobileConfig", "GlobalResponseNorm"]

_GRN_EPS = 1e-6
_DEFAULT_STRIDES = {"b2": (2, 2), "b4": (2, 1)}

# The frontend of the DCASE23 submission run (``run_training.py``): 1 s at 32 kHz -> [256 mels, 64 frames].
DCASE23_FRONTEND = MelFrontendConfig.from_reference(
    n_mels=256, sr=32000, win_length=3072, hopsize=500, n_fft=4096, freqm=48, timem=0,
    fmin=0, fmax=None, fmin_aug_range=1, fmax_aug_range=1000,
)  # fmt: skip

# The frontend of the DCASE24 / DCASE25 Task 1 baselines (``run_training.py``, ``train_base.py``): 44.1 kHz input
# resampled to 32 kHz inside the module (torchaudio ``Resample`` defaults), torchaudio ``MelSpectrogram`` (HTK
# scale, periodic Hann, no pre-emphasis, fmax = Nyquist), ``log(x + 1e-5)``; 1 s -> [256 mels, 65 frames].
# Training masks up to 48 bands of the power mel; no fmin / fmax jitter.
DCASE24_FRONTEND = MelFrontendConfig(
    kind="htk", sample_rate=44100, resample_to=32000, n_mels=256, win_length=3072, hop_length=500, n_fft=4096,
    freqm=48, timem=0, fmin=0.0, fmax=None, fmin_aug_range=0, fmax_aug_range=0,
)  # fmt: skip


@dataclass(frozen=True)
class CPMobileConfig(ArchConfig):
    """Architecture of a CP-Mobile; the defaults are the DCASE23 submission (126,952 parameters with 10 scenes).

    The class count is not part of it: it is the network's ``num_classes`` (the spec's ``len(labels)``).

    Attributes:
        in_channels: input channels (1 for a mel spectrogram).
        base_channels: width of the stem output and of stage 1 (rounded to a multiple of 8).
        channels_multiplier: width growth per stage: stage ``s`` (0-based) has ``base * multiplier**s`` channels.
        expansion_rate: inverted-bottleneck expansion of each block's input width.
        n_blocks: blocks per stage; blocks are numbered globally ``b1, b2, ...`` across stages.
        strides: (freq, time) stride of the depthwise conv of a block, by block name; other blocks use 1.
        use_grn: global response norm after each block (False gives the DCASE24 baseline).
    """

    in_channels: int = 1
    base_channels: int = 32
    channels_multiplier: float = 2.3
    expansion_rate: float = 3.0
    n_blocks: tuple[int, ...] = (3, 2, 1)
    strides: Mapping[str, tuple[int, int]] = field(default_factory=lambda: dict(_DEFAULT_STRIDES))
    use_grn: bool = True

    def __post_init__(self) -> None:
        for name in ("in_channels", "base_channels"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"CPMobileConfig.{name} must be positive, got {getattr(self, name)}")
        if self.channels_multiplier <= 0 or self.expansion_rate <= 0:
            raise ConfigError("channels_multiplier and expansion_rate must be positive")
        if not self.n_blocks or any(int(n) != n or n < 1 for n in self.n_blocks):
            raise ConfigError(f"n_blocks must list at least one stage of >= 1 blocks, got {self.n_blocks!r}")
        names = {f"b{i + 1}" for i in range(sum(self.n_blocks))}
        unknown = sorted(set(self.strides) - names)
        if unknown:
            raise ConfigError(f"strides name blocks {unknown} but the network has blocks b1..b{len(names)}")
        strides = {name: pair(stride) for name, stride in self.strides.items()}
        if any(s < 1 for stride in strides.values() for s in stride):
            raise ConfigError(f"strides must be >= 1, got {self.strides!r}")
        object.__setattr__(self, "n_blocks", tuple(int(n) for n in self.n_blocks))
        object.__setattr__(self, "strides", strides)

    @classmethod
    def from_reference(cls, **kwargs: Any) -> CPMobileConfig:
        """Build from the reference ``get_model`` keyword arguments without the class count (``strides=None`` is
        the reference default); the names are tympan's, plus ``use_grn``."""
        return cls.from_dict({k: v for k, v in kwargs.items() if not (k == "strides" and v is None)})

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """Stem width then the width of each stage (``[32, 32, 72, 168]`` for the submission)."""
        base = make_divisible(self.base_channels, 8)
        return (base, *(make_divisible(base * self.channels_multiplier**s, 8) for s in range(len(self.n_blocks))))

    def stride(self, block_name: str) -> tuple[int, int]:
        return self.strides.get(block_name, (1, 1))


class GlobalResponseNorm(nn.Module):
    """GRN (ConvNeXt V2, arXiv 2301.00808) with one scalar γ and β for all channels, initialised to 0 (identity).

    ``y = γ · x · n + β + x`` where ``n = ‖x‖₂ over (freq, time) / (mean over channels of that norm + 1e-6)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        norm = torch.linalg.vector_norm(x, ord=2, dim=(2, 3), keepdim=True)
        normalised = norm / (norm.mean(dim=1, keepdim=True) + _GRN_EPS)
        return self.gamma * (x * normalised) + self.beta + x


class CPMobileBlock(nn.Module):
    """Inverted bottleneck ``1×1 expand → 3×3 depthwise (stride) → 1×1 project``, residual add where the width
    is kept (average-pooled on strided blocks), then GRN (optional) and ReLU — also on blocks without a shortcut."""

    def __init__(
        self, in_channels: int, out_channels: int, expansion_rate: float, stride: tuple[int, int], use_grn: bool
    ) -> None:
        super().__init__()
        expanded = make_divisible(in_channels * expansion_rate, 8)
        self.block = nn.Sequential(
            ConvNormAct(in_channels, expanded, kernel_size=1),
            ConvNormAct(expanded, expanded, kernel_size=3, stride=stride, groups=expanded),
            ConvNormAct(expanded, out_channels, kernel_size=1, activation_layer=None),
        )
        self.shortcut: nn.Module | None = None
        if in_channels == out_channels:
            # count_include_pad=True (the default) is what the reference trains with.
            self.shortcut = nn.Identity() if stride == (1, 1) else nn.AvgPool2d(3, stride=stride, padding=1)
        self.after_block_norm = GlobalResponseNorm() if use_grn else nn.Identity()
        self.after_block_activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.after_block_activation(self.after_block_norm(y))


class CPMobile(PositionClassifierModel):
    """CP-Mobile on mel ``[batch, in_channels, n_mels, frames]``.

    The classifier runs at every time-frequency position before averaging (see :class:`PositionClassifierModel`);
    ``forward_features`` is the average-pooled output of the last stage ``[batch, num_features]``.

    Args:
        config: the architecture; see :class:`CPMobileConfig`.
        num_classes: number of scenes.
    """

    def __init__(self, config: CPMobileConfig | None = None, num_classes: int = 10) -> None:
        super().__init__()
        self.config = config = config or CPMobileConfig()
        channels = config.stage_channels
        self.in_c = nn.Sequential(
            ConvNormAct(config.in_channels, channels[0] // 4, kernel_size=3, stride=2),
            ConvNormAct(channels[0] // 4, channels[0], kernel_size=3, stride=2),
        )
        self.stages = nn.Sequential()
        block_index, width = 0, channels[0]
        for stage_index, num_blocks in enumerate(config.n_blocks):
            stage = nn.Sequential()
            for _ in range(num_blocks):
                block_index += 1
                name = f"b{block_index}"
                out = channels[stage_index + 1]
                stage.add_module(
                    name, CPMobileBlock(width, out, config.expansion_rate, config.stride(name), config.use_grn)
                )
                width = out
            self.stages.add_module(f"s{stage_index + 1}", stage)
        if num_classes <= 0:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        self.num_features = width
        self.num_classes = num_classes
        self.feed_forward = position_classifier(width, num_classes)
        self.apply(_init_weights)

    def reset_classifier(self, num_classes: int) -> None:
        if num_classes <= 0:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        self.feed_forward = position_classifier(self.num_features, num_classes)
        self.feed_forward.apply(_init_weights)
        self.num_classes = num_classes

    def forward_intermediates(self, mel: Tensor) -> dict[str, Tensor]:
        """Unpooled maps ``[batch, C, F, T]`` after the stem (``in_c``) and after each stage (``s1``, ...)."""
        outputs = {"in_c": self.in_c(mel)}
        x = outputs["in_c"]
        for name, stage in self.stages.named_children():
            x = outputs[name] = stage(x)
        return outputs

    def forward_map(self, mel: Tensor) -> Tensor:
        """Output of the last stage ``[batch, num_features, F', T']`` (before any pooling)."""
        return self.stages(self.in_c(mel))


def _init_weights(module: nn.Module) -> None:
    """The reference init: convs kaiming-normal (fan_out), BN 1 / 0 (GRN starts at 0 / 0 by construction)."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def build_cp_mobile(n_classes: int = 10, **reference_kwargs: Any) -> CPMobile:
    """Build :class:`CPMobile` from the reference ``get_model`` keyword arguments (``n_classes``, ``in_channels``,
    ``base_channels``, ``channels_multiplier``, ``expansion_rate``, ``n_blocks``, ``strides``) plus our
    ``use_grn``; ``strides=None`` means the reference default ``{"b2": (2, 2), "b4": (2, 1)}``."""
    return CPMobile(CPMobileConfig.from_reference(**reference_kwargs), n_classes)
