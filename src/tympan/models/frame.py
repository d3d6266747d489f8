"""Frame-level models for sound event detection: scores every 40 ms instead of one per clip.

Paper: Schmid, Morocutti, Foscarin, Schlüter, Koutini, Widmer, "Effective Pre-Training of Audio Transformers for
Sound Event Detection", ICASSP 2025 (https://arxiv.org/abs/2409.09546). Reference: ``fschmid56/PretrainedSED`` at
``1aa47e4``, ``models/frame_mn/model.py`` (the frame-level MobileNet) and ``models/prediction_wrapper.py`` (the
heads).

A frame model keeps the time axis of its backbone and pools only frequency, giving a sequence of embeddings
``[batch, frames', D]``; the sequence is resampled to the label frame rate (linear interpolation up, average
pooling down, as the reference ``PredictionsWrapper``) and two linear heads read it: ``strong_head`` per frame
(event activity) and ``weak_head`` on the time-averaged sequence (clip tags). ``forward`` gives the clip logits, so
a frame model also tags like any other network; :meth:`FrameModel.forward_frames` gives the frame logits.

``frame_mn`` is the reference's frame-level MobileNetV3: the EfficientAT blocks with separate frequency and time
strides, frequency pooled to one band by six stride-2 blocks, time by 4 in all (stem and block 1), so that a
10-ms-hop mel gives 250 frames per 10 s. Its state-dict keys are ours (``features.*``, ``strong_head.*``,
``weak_head.*``); the published checkpoints nest the backbone in two wrappers (``model.frame_mn.features.*``), which
:func:`checkpoint_filter_fn` removes before the strict load. ``frame_dymn`` is the same frame-level design on the
DyMN blocks (:class:`FrameDyMN`; PretrainedSED publishes no such model), and the frame-level PaSST is in
:mod:`tympan.models.frame_passt`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..audio.frontend import MelFrontendConfig
from ..errors import ConfigError
from .base import AudioModel
from .dymn import DynamicBackbone, DynamicConfig, DynamicOptions, TemperatureSchedule
from .mobilenet import (
    InvertedResidualConfig,
    SEConfig,
    build_features,
    init_weights,
    mobilenet_v3_config,
    positive_size,
    reference_se_fields,
)
from .spec import ArchConfig

__all__ = [
    "FRAME_MN_STRIDES",
    "FrameDyMN",
    "FrameDyMNConfig",
    "FrameMNConfig",
    "FrameMobileNet",
    "FrameModel",
    "checkpoint_filter_fn",
    "frame_mobilenet_config",
    "resample_sequence",
]

logger = logging.getLogger(__name__)

# (freq, time) strides of the 15 blocks of the reference frame MobileNet (``_mobilenet_v3_conf``, strides=None).
# fmt: off
FRAME_MN_STRIDES: tuple[tuple[int, int], ...] = (
    (1, 1), (2, 2), (2, 1), (1, 1), (1, 1), (2, 1), (1, 1), (2, 1), (1, 1), (1, 1), (2, 1), (1, 1), (1, 1), (1, 1),
    (2, 1),
)
# fmt: on
CHANNEL_SE = SEConfig()  # the reference's se_dims="c"
# Mel frames per output frame: 4 × 10 ms = 40 ms, PretrainedSED's 250 frames per 10 s.
MEL_FRAMES_PER_OUTPUT = 4
# The reference wrappers' attribute of the backbone (PredictionsWrapper.model.frame_mn / .fpasst).
_REFERENCE_BACKBONE_PREFIXES = ("frame_mn.", "fpasst.")


def resample_sequence(sequence: Tensor, frames: int) -> Tensor:
    """``[batch, T', D]`` to ``[batch, frames, D]``: average pooling to fewer frames, linear interpolation to more."""
    if sequence.shape[1] == frames:
        return sequence
    channels_first = sequence.transpose(1, 2)
    if sequence.shape[1] > frames:
        resampled = F.adaptive_avg_pool1d(channels_first, frames)
    else:
        resampled = F.interpolate(channels_first, size=frames, mode="linear")
    return resampled.transpose(1, 2)


class FrameModel(AudioModel):
    """Base of the frame-level networks: a backbone sequence, resampled to the label rate, and two linear heads.

    Subclasses implement :meth:`forward_sequence`. Shapes: mel ``[batch, 1, n_mels, frames]`` in; frame logits
    ``[batch, num_classes, frames / mel_frames_per_output]``, clip logits ``[batch, num_classes]`` out.

    Args:
        num_features: width ``D`` of the backbone sequence.
        num_classes: event classes.
        mel_frames_per_output: mel frames per output frame (4 at a 10-ms hop: 40-ms frames).
    """

    def __init__(self, num_features: int, num_classes: int, mel_frames_per_output: int = MEL_FRAMES_PER_OUTPUT):
        super().__init__()
        if num_classes <= 0 or mel_frames_per_output <= 0:
            raise ConfigError(f"need num_classes > 0 and mel_frames_per_output > 0, got {num_classes}, "
                              f"{mel_frames_per_output}")  # fmt: skip
        self.num_features = num_features
        self.num_classes = num_classes
        self.mel_frames_per_output = mel_frames_per_output
        self.strong_head = nn.Linear(num_features, num_classes)
        self.weak_head = nn.Linear(num_features, num_classes)

    def forward_sequence(self, mel: Tensor) -> Tensor:
        """Backbone embeddings over time ``[batch, T', num_features]`` at the backbone's own rate."""
        raise NotImplementedError

    def output_frames(self, mel_frames: int) -> int:
        """Output frames for an input of ``mel_frames`` mel frames."""
        return max(1, round(mel_frames / self.mel_frames_per_output))

    def aligned_sequence(self, mel: Tensor) -> Tensor:
        """The backbone sequence at the output rate ``[batch, frames, num_features]``."""
        return resample_sequence(self.forward_sequence(mel), self.output_frames(mel.shape[-1]))

    def forward_detection(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """Frame logits ``[batch, classes, frames]`` and clip logits ``[batch, classes]`` from one backbone pass
        (what training with strong and weak labels in one batch needs)."""
        sequence = self.aligned_sequence(mel)
        return self.strong_head(sequence).transpose(1, 2), self.weak_head(sequence.mean(1))

    def forward_frames(self, mel: Tensor) -> Tensor:
        """Frame logits ``[batch, num_classes, frames]``."""
        return self.strong_head(self.aligned_sequence(mel)).transpose(1, 2)

    def forward_features(self, mel: Tensor) -> Tensor:
        """Clip embedding ``[batch, num_features]``: the time average of the aligned sequence."""
        return self.aligned_sequence(mel).mean(1)

    def forward_head(self, features: Tensor) -> Tensor:
        """Clip logits ``[batch, num_classes]`` from the clip embedding."""
        return self.weak_head(features)

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh strong and weak heads for ``num_classes`` events (the reference's init: N(0, 0.01²), zero bias)."""
        like = self.strong_head.weight
        for name in ("strong_head", "weak_head"):
            head = nn.Linear(self.num_features, num_classes)
            init_weights(head)
            setattr(self, name, head.to(like))
        self.num_classes = num_classes


def frame_mobilenet_config(
    width_mult: float = 1.0, strides: Sequence[Sequence[int]] = FRAME_MN_STRIDES
) -> tuple[InvertedResidualConfig, ...]:
    """The 15 MobileNetV3-Large rows at ``width_mult`` with per-block ``(freq, time)`` strides.

    Raises:
        ConfigError: not 15 stride pairs, or a stride other than 1 or 2.
    """
    strides = tuple(tuple(int(s) for s in pair) for pair in strides)
    if len(strides) != 15 or any(len(pair) != 2 for pair in strides):
        raise ConfigError(f"strides needs 15 (freq, time) pairs, one per block, got {strides}")
    rows, _ = mobilenet_v3_config(width_mult)
    return tuple(
        InvertedResidualConfig(
            row.in_channels, row.kernel_size, row.expanded_channels, row.out_channels, row.use_se, row.activation,
            stride=freq, time_stride=time,
        )
        for row, (freq, time) in zip(rows, strides, strict=True)
    )  # fmt: skip


@dataclass(frozen=True)
class FrameMNConfig(ArchConfig):
    """Architecture of PretrainedSED's frame MobileNet; the defaults are the reference's (width 1.0).

    Attributes:
        width_mult: channel multiplier of every layer.
        strides: ``(freq, time)`` stride of each of the 15 blocks.
        input_size: ``(n_mels, frames)`` frequency / time SE layers would be sized for (reference ``input_dim_f``,
            ``input_dim_t``).
        se: squeeze-excitation settings, None for none (reference ``se_dims``, ``se_agg``, ``se_r``).
        mel_frames_per_output: mel frames per output frame (4 at a 10-ms hop: 40-ms frames).
    """

    width_mult: float = 1.0
    strides: tuple[tuple[int, int], ...] = FRAME_MN_STRIDES
    input_size: tuple[int, int] = (128, 1000)
    se: SEConfig | None = CHANNEL_SE
    mel_frames_per_output: int = MEL_FRAMES_PER_OUTPUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", positive_size(self.input_size))

    @classmethod
    def from_reference(cls, **kwargs: Any) -> FrameMNConfig:
        """From the reference ``models.frame_mn.model.get_model`` arguments (width, SE) or tympan's names."""
        return cls.from_dict(reference_se_fields(kwargs))


class FrameMobileNet(FrameModel):
    """PretrainedSED's frame-level MobileNet: mel ``[batch, 1, n_mels, frames]`` -> 40-ms frame logits.

    Args:
        blocks: the 15 block rows (:func:`frame_mobilenet_config`).
        num_classes: event classes (AudioSet-Strong: 447).
        se: squeeze-excitation settings (channel SE, as the reference).
        input_size: ``(n_mels, frames)`` the frequency / time SE layers would be sized for.
        mel_frames_per_output: mel frames per output frame.
    """

    def __init__(
        self,
        blocks: Sequence[InvertedResidualConfig],
        num_classes: int = 447,
        se: SEConfig | None = CHANNEL_SE,
        input_size: tuple[int, int] = (128, 1000),
        mel_frames_per_output: int = MEL_FRAMES_PER_OUTPUT,
    ) -> None:
        super().__init__(6 * blocks[-1].out_channels, num_classes, mel_frames_per_output)
        self.features = build_features(blocks, se, input_size)
        init_weights(self)

    @classmethod
    def from_config(cls, config: FrameMNConfig, num_classes: int = 447) -> FrameMobileNet:
        """The frame MN of ``config`` with ``num_classes`` events (the registry's builder)."""
        return cls(frame_mobilenet_config(config.width_mult, config.strides), num_classes, config.se,
                   config.input_size, config.mel_frames_per_output)  # fmt: skip

    def forward_sequence(self, mel: Tensor) -> Tensor:
        """The last feature map averaged over its frequency bands (one band for 128 mels), ``[batch, T', D]``."""
        return self.features(mel).mean(2).transpose(1, 2)


@dataclass(frozen=True)
class FrameDyMNConfig(DynamicConfig):
    """Architecture of the frame-level DyMN: the DyMN config with per-block ``(freq, time)`` strides.

    Attributes:
        strides: ``(freq, time)`` stride of each of the 15 blocks (the frame MobileNet's by default).
        mel_frames_per_output: mel frames per output frame.
    """

    strides: tuple[tuple[int, int], ...] = FRAME_MN_STRIDES
    mel_frames_per_output: int = MEL_FRAMES_PER_OUTPUT


class FrameDyMN(DynamicBackbone, FrameModel):
    """Frame-level DyMN: the DyMN blocks with the frame MobileNet's ``(freq, time)`` strides, frequency averaged
    at the end: mel ``[batch, 1, n_mels, frames]`` -> 40-ms frame logits. No public weights exist.

    Args:
        blocks: the 15 block rows (:func:`frame_mobilenet_config`).
        dynamic: per block, dynamic block (True) or a plain inverted residual without SE (False).
        num_classes: event classes.
        options: how the dynamic blocks are built (None: :class:`~tympan.models.dymn.DynamicOptions` defaults).
        temperature: initial kernel-attention temperature.
        temperature_schedule: what :meth:`update_temperature` follows (None: the paper's schedule).
        mel_frames_per_output: mel frames per output frame.
    """

    def __init__(
        self,
        blocks: Sequence[InvertedResidualConfig],
        dynamic: Sequence[bool],
        num_classes: int = 447,
        options: DynamicOptions | None = None,
        temperature: float = 1.0,
        temperature_schedule: TemperatureSchedule | None = None,
        mel_frames_per_output: int = MEL_FRAMES_PER_OUTPUT,
    ) -> None:
        super().__init__(6 * blocks[-1].out_channels, num_classes, mel_frames_per_output)
        self._build_backbone(
            blocks, dynamic, options or DynamicOptions(), temperature_schedule or TemperatureSchedule()
        )
        init_weights(self)
        self.set_temperature(temperature)

    @classmethod
    def from_config(cls, config: FrameDyMNConfig, num_classes: int = 447) -> FrameDyMN:
        """The frame-level DyMN of ``config`` with ``num_classes`` events (the registry's builder)."""
        return cls(frame_mobilenet_config(config.width_mult, config.strides), config.layout, num_classes,
                   config.options, config.temperature, config.temperature_schedule,
                   config.mel_frames_per_output)  # fmt: skip

    def forward_sequence(self, mel: Tensor) -> Tensor:
        """The last feature map averaged over its frequency bands, ``[batch, T', D]``."""
        return self._feature_map(mel).mean(2).transpose(1, 2)


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Remove the reference wrappers' backbone level, ``frame_mn.`` or ``fpasst.`` (``model.`` is stripped by the
    generic loader)."""
    prefix = next((p for p in _REFERENCE_BACKBONE_PREFIXES if any(k.startswith(p) for k in state_dict)), None)
    if prefix is None:
        return state_dict
    logger.debug("removing the PretrainedSED wrapper level %r from the checkpoint keys", prefix)
    return {key.removeprefix(prefix): value for key, value in state_dict.items()}


# 16 kHz, 128 mels, window 25 ms, hop 10 ms, FFT 512: PretrainedSED's FrameMNWrapper.
# FrameMNWrapper's AugmentMelSTFT: kaldi banks, symmetric window, log(max(mel, 1e-7)), (x + 4.5) / 5.
PRETRAINED_SED_FRONTEND = MelFrontendConfig(
    sample_rate=16000, win_length=400, hop_length=160, n_fft=512, freqm=0, timem=0, fmin_aug_range=10,
    fmax_aug_range=2000, log_floor=1e-7,
)  # fmt: skip


def build_frame_mn(num_classes: int = 447, **reference_kwargs: Any) -> FrameMobileNet:
    """Frame MN from the reference ``models.frame_mn.model.get_model`` arguments (width, SE) and the head's."""
    return FrameMobileNet.from_config(FrameMNConfig.from_reference(**reference_kwargs), num_classes)


def build_frame_dymn(num_classes: int = 447, **reference_kwargs: Any) -> FrameDyMN:
    """Frame-level DyMN from the width, the ``(freq, time)`` strides and the reference DyMN arguments
    (``context_ratio`` ... ``use_dy_blocks``, as :meth:`tympan.models.dymn.DynamicConfig.from_reference`)."""
    return FrameDyMN.from_config(FrameDyMNConfig.from_reference(**reference_kwargs), num_classes)
