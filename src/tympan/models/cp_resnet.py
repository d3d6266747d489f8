"""CP-ResNet: the receptive-field-regularised ResNet of CP-JKU (the DCASE23 128K teacher).

Papers: Koutini, Eghbal-zadeh, Widmer, "Receptive Field Regularization Techniques for Audio Classification and
Tagging with Deep Convolutional Neural Networks", IEEE/ACM TASLP 2021; Schmid et al., DCASE23 Task 1 technical
report. Reference code: ``fschmid56/cpjku_dcase23`` @ 2e20abaa ``models/cp_resnet.py`` (the rho-parameterised
version with channel cuts and grouped stages); state-dict names follow it exactly (``in_c.0.weight``,
``stage1.block1.conv1.weight``, ``stage2.block1.shortcut.conv.weight``, ``feed_forward.0.weight``, ...).

One parameter, ``rho``, sets the receptive field: it switches the kernels of the blocks between 3×3 and 1×1
(padding ``k // 3``), which bounds how much of the spectrogram a unit sees (155 bins × 55 frames at rho 8).
``rho_rule="dcase20"`` (with :data:`DCASE20_KWARGS`) is the earlier mapping of ``kkoutini/cpjku_dcase20`` used by the
receptive-field and over-parameterisation papers: 3 stages × 4 blocks, max-pools after stage-1 blocks 1, 2 and 4.
Downsampling is by max-pooling only (stride 1 in every block); the classifier projects to the classes before
global average pooling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ..audio.frontend import MelFrontendConfig
from ..errors import ConfigError
from .layers import PositionClassifierModel, pair, position_classifier
from .spec import ArchConfig, renamed

__all__ = ["BasicBlock", "CPResNet", "CPResNetConfig"]

# The frontend of the CP-ResNet teachers (``run_cp-resnet_training.py``): as CP-Mobile's, with hop 750 (43 frames).
TEACHER_FRONTEND = MelFrontendConfig.from_reference(
    n_mels=256, sr=32000, win_length=3072, hopsize=750, n_fft=4096, freqm=48, timem=0,
    fmin=0, fmax=None, fmin_aug_range=1, fmax_aug_range=1000,
)  # fmt: skip

_REFERENCE_NAMES = {
    "maxpool_stage1_pos0_kernel": "first_pool_kernel",
    "maxpool_stage1_pos0_stride": "first_pool_stride",
    "maxpool_kernel": "pool_kernel",
    "maxpool_stride": "pool_stride",
}


@dataclass(frozen=True)
class CPResNetConfig(ArchConfig):
    """Architecture of a CP-ResNet; the defaults are the 128K teacher (127,684 parameters with 10 scenes).

    The class count is not part of it: it is the network's ``num_classes`` (the spec's ``len(labels)``).

    Attributes:
        rho: receptive-field parameter; sets every block's kernel sizes (see :meth:`kernel_sizes`).
        in_channels: input channels (1 for a mel spectrogram).
        base_channels: width of the stem and stage 1.
        cut_channels_s2: channels removed from stage 2's ``base * multiplier``.
        cut_channels_s3: channels removed from stage 3's ``base * multiplier**2``.
        channels_multiplier: width growth per stage.
        n_blocks: blocks of stages 1, 2, 3 (stage 3 may have none).
        groups: conv groups of each stage (also used by the shortcut conv).
        pool_positions: per stage, where max-pools go: position ``p`` = after ``p`` blocks (0 = before the first).
        first_pool_kernel: kernel of stage 1's position-0 pool.
        first_pool_stride: stride of stage 1's position-0 pool (the reference takes the kernel instead; same
            numbers with the defaults).
        pool_kernel: kernel of every other pool, (freq, time).
        pool_stride: stride of every other pool.
        rho_rule: ``"dcase23"`` (``fschmid56/cpjku_dcase23``: ``extra = rho − 4``, two blocks per stage with
            kernels) or ``"dcase20"`` (``kkoutini/cpjku_dcase20``: ``extra = rho − 7``, four).
    """

    rho: int = 8
    in_channels: int = 1
    base_channels: int = 32
    cut_channels_s2: int = 0
    cut_channels_s3: int = 36
    channels_multiplier: int = 2
    n_blocks: tuple[int, int, int] = (2, 1, 1)
    groups: tuple[int, int, int] = (1, 2, 1)
    pool_positions: tuple[tuple[int, ...], ...] = ((0, 1, 2, 4), (), ())
    first_pool_kernel: tuple[int, int] = (2, 2)
    first_pool_stride: tuple[int, int] = (2, 2)
    pool_kernel: tuple[int, int] = (2, 1)
    pool_stride: tuple[int, int] = (2, 1)
    rho_rule: str = "dcase23"

    def __post_init__(self) -> None:
        if self.rho_rule not in _RHO_RULES:
            raise ConfigError(f"rho_rule must be one of {sorted(_RHO_RULES)}, got {self.rho_rule!r}")
        for name in ("in_channels", "base_channels", "channels_multiplier"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"CPResNetConfig.{name} must be positive, got {getattr(self, name)}")
        if len(self.n_blocks) != 3 or min(self.n_blocks[:2]) < 1 or self.n_blocks[2] < 0:
            raise ConfigError(f"n_blocks must be 3 counts, the first two >= 1, got {self.n_blocks!r}")
        if len(self.groups) != 3 or min(self.groups) < 1:
            raise ConfigError(f"groups must be 3 positive counts, got {self.groups!r}")
        if len(self.pool_positions) != 3:
            raise ConfigError(f"pool_positions needs one list per stage, got {self.pool_positions!r}")
        widths = self.widths
        if min(widths) <= 0:
            raise ConfigError(f"the channel cuts leave no channels: widths {widths}")
        inputs = (self.base_channels, widths[0], widths[1])
        for stage, (groups, width, inp) in enumerate(zip(self.groups, widths, inputs, strict=True)):
            if width % groups or inp % groups:
                raise ConfigError(f"stage {stage + 1}: channels {inp} -> {width} are not divisible by groups={groups}")
        for name in ("first_pool_kernel", "first_pool_stride", "pool_kernel", "pool_stride"):
            object.__setattr__(self, name, pair(getattr(self, name)))
        object.__setattr__(self, "n_blocks", tuple(int(n) for n in self.n_blocks))
        object.__setattr__(self, "groups", tuple(int(g) for g in self.groups))
        object.__setattr__(self, "pool_positions", tuple(tuple(int(p) for p in ps) for ps in self.pool_positions))

    @classmethod
    def from_reference(cls, **kwargs: Any) -> CPResNetConfig:
        """Build from the reference ``get_model`` keyword arguments without the class count (``s2_group``,
        ``maxpool_pos_stage1``, ``maxpool_kernel``, ...; None means the reference default) or tympan's names."""
        fields = renamed({k: v for k, v in kwargs.items() if v is not None}, _REFERENCE_NAMES)
        for ours, pattern in (("groups", "s{}_group"), ("pool_positions", "maxpool_pos_stage{}")):
            names = [pattern.format(stage) for stage in (1, 2, 3)]
            if any(name in fields for name in names):
                if ours in fields:
                    raise ConfigError(f"give {ours} or {' / '.join(names)}, not both")
                default = getattr(cls, ours)
                fields[ours] = tuple(fields.pop(name, stage) for name, stage in zip(names, default, strict=True))
        return cls.from_dict(fields)

    @property
    def widths(self) -> tuple[int, int, int]:
        """Output channels of stages 1, 2, 3 (``[32, 64, 92]`` for the 128K teacher)."""
        base, mult = self.base_channels, self.channels_multiplier
        stage3 = base * mult * mult - self.cut_channels_s3 if self.n_blocks[2] else base * mult - self.cut_channels_s2
        return base, base * mult - self.cut_channels_s2, stage3

    def kernel_sizes(self, stage: int, block: int) -> tuple[int, int]:
        """``(k1, k2)`` of the two convs of ``block`` (0-based) in ``stage`` (1-based): 3 or 1, set by ``rho``.

        Blocks beyond those the rule lists (2 per stage for DCASE23, 4 for DCASE20) use 1×1 kernels, as in the
        references.
        """
        k1s, k2s = _RHO_RULES[self.rho_rule](self.rho)[stage]
        return (k1s[block], k2s[block]) if block < len(k1s) else (1, 1)


def _dcase23_kernels(rho: int) -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
    """stage -> ((k1 of each block), (k2 of each block)) of ``cpjku_dcase23`` (``extra = rho − 4``)."""
    extra = rho - 4
    return {
        1: ((3, 3 - 2 * (-extra > 2)), (1, 3 - 2 * (-extra > 1))),
        2: ((3 - 2 * (-extra > 0), 1 + 2 * (extra > 1)), (1 + 2 * (extra > 0), 1 + 2 * (extra > 2))),
        3: ((1 + 2 * (extra > 3), 1 + 2 * (extra > 5)), (1 + 2 * (extra > 4), 1 + 2 * (extra > 6))),
    }


def _dcase20_kernels(rho: int) -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
    """The same for ``cpjku_dcase20`` (``extra = rho − 7``): stage 1 shrinks below rho 7, stages 2–3 grow above."""
    extra = rho - 7

    def shrink(*thresholds: int) -> tuple[int, ...]:
        return tuple(3 - 2 * (-extra > t) for t in thresholds)

    def grow(*thresholds: int) -> tuple[int, ...]:
        return tuple(1 + 2 * (extra > t) for t in thresholds)

    return {
        1: ((3, *shrink(6, 4, 2)), (1, *shrink(5, 3, 1))),
        2: ((*shrink(0), *grow(1, 3, 5)), grow(0, 2, 4, 6)),
        3: (grow(7, 9, 11, 13), grow(8, 10, 12, 14)),
    }


_RHO_RULES = {"dcase23": _dcase23_kernels, "dcase20": _dcase20_kernels}

DCASE20_KWARGS: dict[str, Any] = {
    "rho_rule": "dcase20",
    "in_channels": 2,
    "base_channels": 128,
    "cut_channels_s3": 0,
    "n_blocks": (4, 4, 4),
    "s2_group": 1,
    "maxpool_pos_stage1": (1, 2, 4),
    "maxpool_kernel": (2, 2),
    "maxpool_stride": (2, 2),
}
"""``create("cp_resnet", rho=ρ, **DCASE20_KWARGS)``: the CP-ResNet of ``kkoutini/cpjku_dcase20`` (w = 128, stereo)."""


class BasicBlock(nn.Module):
    """``ReLU(BN(conv1)) → BN(conv2)``, plus the input (through 1×1 conv + BN where the width changes), then ReLU.

    Kernels are square, padded with ``k // 3`` (so 3×3 keeps the size and 1×1 has no padding); stride 1.
    """

    def __init__(self, in_channels: int, out_channels: int, k1: int, k2: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, k1, padding=k1 // 3, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, k2, padding=k2 // 3, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if in_channels != out_channels:
            self.shortcut.add_module("conv", nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False))
            self.shortcut.add_module("bn", nn.BatchNorm2d(out_channels))
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + self.shortcut(x))


class CPResNet(PositionClassifierModel):
    """CP-ResNet on mel ``[batch, in_channels, n_mels, frames]``.

    As in :class:`~tympan.models.cp_mobile.CPMobile`, the classifier runs at every position before averaging (see
    :class:`~tympan.models.layers.PositionClassifierModel`).

    Initialisation is the reference's Fixup variant, with the block count ``L`` taken from this model (the
    reference counts every block built in the process, so its second model differs): stem kaiming-normal
    (fan_in), ``conv1 ~ N(0, L^-½·√(2/(k²·out)))``, ``conv2 = 0``, shortcut ``conv ~ N(0, √(2/out))``, classifier
    conv 0, BN 1 / 0 — a fresh model outputs all-zero logits.

    Args:
        config: the architecture; see :class:`CPResNetConfig`.
        num_classes: number of classes.
    """

    def __init__(self, config: CPResNetConfig | None = None, num_classes: int = 10) -> None:
        super().__init__()
        self.config = config = config or CPResNetConfig()
        widths = config.widths
        self.in_c = nn.Sequential(
            nn.Conv2d(config.in_channels, widths[0], 5, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        inputs = (widths[0], widths[0], widths[1])
        for stage in range(3):
            self.add_module(f"stage{stage + 1}", self._make_stage(stage + 1, inputs[stage], widths[stage]))
        if num_classes <= 0:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        self.num_features = widths[2]
        self.num_classes = num_classes
        self.feed_forward = position_classifier(widths[2], num_classes)
        self._init_weights()

    def _make_stage(self, stage: int, in_channels: int, out_channels: int) -> nn.Sequential:
        config = self.config
        positions = config.pool_positions[stage - 1]
        layers = nn.Sequential()
        if 0 in positions:
            kernel, stride = (
                (config.first_pool_kernel, config.first_pool_stride)
                if stage == 1
                else (config.pool_kernel, config.pool_stride)
            )
            layers.add_module("maxpool0_0", nn.MaxPool2d(kernel, stride))
        for index in range(config.n_blocks[stage - 1]):
            k1, k2 = config.kernel_sizes(stage, index)
            layers.add_module(
                f"block{index + 1}", BasicBlock(in_channels, out_channels, k1, k2, config.groups[stage - 1])
            )
            in_channels = out_channels
            for position_index, position in enumerate(positions):
                if position == index + 1:
                    layers.add_module(
                        f"maxpool{position}_{position_index}", nn.MaxPool2d(config.pool_kernel, config.pool_stride)
                    )
        return layers

    def _init_weights(self) -> None:
        blocks = [m for m in self.modules() if isinstance(m, BasicBlock)]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.feed_forward[0].weight)
        for block in blocks:
            k_h, k_w = block.conv1.kernel_size
            fan_out = k_h * k_w * block.conv1.out_channels
            nn.init.normal_(block.conv1.weight, 0.0, len(blocks) ** -0.5 * math.sqrt(2.0 / fan_out))
            nn.init.zeros_(block.conv2.weight)
            if hasattr(block.shortcut, "conv"):
                nn.init.normal_(block.shortcut.conv.weight, 0.0, math.sqrt(2.0 / block.shortcut.conv.out_channels))

    def reset_classifier(self, num_classes: int) -> None:
        if num_classes <= 0:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        self.feed_forward = position_classifier(self.num_features, num_classes)
        nn.init.zeros_(self.feed_forward[0].weight)
        self.num_classes = num_classes

    def forward_intermediates(self, mel: Tensor) -> dict[str, Tensor]:
        """Unpooled maps ``[batch, C, F, T]`` after the stem (``in_c``) and each stage (``stage1`` ...)."""
        x = self.in_c(mel)
        outputs = {"in_c": x}
        for name in ("stage1", "stage2", "stage3"):
            x = outputs[name] = getattr(self, name)(x)
        return outputs

    def forward_map(self, mel: Tensor) -> Tensor:
        """Output of the last stage ``[batch, num_features, F', T']`` (before any pooling)."""
        return self.stage3(self.stage2(self.stage1(self.in_c(mel))))


def build_cp_resnet(n_classes: int = 10, **reference_kwargs: Any) -> CPResNet:
    """Build :class:`CPResNet` from the reference ``get_model`` keyword arguments (``rho``, ``in_channels``,
    ``n_classes``, ``base_channels``, ``cut_channels_s2``, ``cut_channels_s3``, ``channels_multiplier``,
    ``n_blocks``, ``s1_group``..``s3_group``, ``maxpool_pos_stage1``..``3``, ``maxpool_stage1_pos0_kernel``,
    ``maxpool_stage1_pos0_stride``, ``maxpool_kernel``, ``maxpool_stride``); without arguments, the 128K teacher."""
    return CPResNet(CPResNetConfig.from_reference(**reference_kwargs), n_classes)
