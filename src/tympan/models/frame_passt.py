"""Frame-level PaSST ("fPaSST"): one transformer token per 40-ms time column, for sound event detection.

Paper: Schmid, Morocutti, Foscarin, Schlüter, Koutini, Widmer, "Effective Pre-Training of Audio Transformers for
Sound Event Detection", ICASSP 2025 (https://arxiv.org/abs/2409.09546); the column patches come from Schmid et
al., DCASE 2024 Workshop (https://arxiv.org/abs/2407.12997). Reference: ``fschmid56/PretrainedSED`` at ``1aa47e4``,
``models/frame_passt/fpasst.py`` and ``fpasst_wrapper.py``.

PaSST's 16×16 patches give one token per 160 ms of time, too coarse for 40-ms events. The frame-level PaSST keeps
PaSST's transformer (DeiT-B blocks, cls + dist tokens, separate frequency and time encodings) and replaces the
patches by full-height columns:

1. a stem of three 3×3 convolutions (GELU) reduces time and frequency by 4: ``[B, 64, F/4, T/4]``;
2. the 64 channels × F/4 bands are regrouped into 16 channels × F bands (a reshape), and
3. a ``(F, 2)`` convolution with one column of padding per side, whose first output column is dropped, gives one
   token per 4 mel frames: 250 tokens for 10 s at a 10-ms hop.

The patch tokens after the final norm are the sequence the :class:`~tympan.models.frame.FrameModel` heads read.
The published model has 250 time encodings (10 s); like PaSST, a shorter input uses the first ones (a random window
of them in training). A longer input is refused rather than cut, since a cut would stretch the frame grid: cut long
audio into windows of at most 10 s (``tympan detect`` does). Structured patchout is left out: the published SED
recipe trains without it (``frame_patchout=0``), and dropping columns would misalign the frame targets.

State-dict keys are the reference network's (``conv_in_1``, ``patch_embed.proj``, ``blocks.*``, ...) plus the
heads; the published checkpoint ``fpasst_strong_1.pt`` stores the network under ``model.`` (stripped by the generic
loader), a state dict of the reference's ``PredictionsWrapper`` under ``model.fpasst.``
(:func:`tympan.models.frame.checkpoint_filter_fn` removes that level).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .frame import MEL_FRAMES_PER_OUTPUT, PRETRAINED_SED_FRONTEND, FrameModel
from .passt import TransformerConfig, init_vit_weights, prepend_tokens, time_encodings, transformer_blocks
from .spec import renamed

# FPaSSTWrapper's AugmentMelSTFT: the frame MobileNets' mel, but with the periodic Hann window (its default).
FPASST_FRONTEND = replace(PRETRAINED_SED_FRONTEND, periodic_window=True)

__all__ = ["ColumnEmbed", "FramePaSST", "FramePaSSTConfig"]

_BLOCK_NORM_EPS = 1e-6
# Channels of the stem's convolutions; the last 64 × (n_mels / 4) values regroup into 16 rows of n_mels.
_STEM_CHANNELS = (16, 32, 64)
_COLUMN_CHANNELS = 16


class ColumnEmbed(nn.Module):
    """One token per time column: an ``(n_mels, 2)`` convolution over ``[B, 16, n_mels, T]`` that sees each column
    with its predecessor (one column of padding per side, the first output dropped): ``[B, E, 1, T]``."""

    def __init__(self, n_mels: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=(n_mels, 2), padding=(0, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)[..., 1:]


@dataclass(frozen=True)
class FramePaSSTConfig(TransformerConfig):
    """Architecture of the frame-level PaSST; the defaults are PretrainedSED's fPaSST.

    Attributes:
        n_mels: mel bands of the input (a multiple of 4: the stem halves them twice).
        time_encodings: time positions the model encodes (250: 10 s of 40-ms tokens; reference
            ``pos_embed_length``).
        mel_frames_per_output: mel frames per output frame (the tokens come at 1 per 4 mel frames).
    """

    n_mels: int = 128
    time_encodings: int = 250
    mel_frames_per_output: int = MEL_FRAMES_PER_OUTPUT

    @classmethod
    def from_reference(cls, **kwargs: Any) -> FramePaSSTConfig:
        """From the reference network's keyword arguments (``pos_embed_length``) or tympan's names."""
        return cls.from_dict(renamed(kwargs, {"pos_embed_length": "time_encodings"}))


class FramePaSST(FrameModel):
    """PretrainedSED's frame-level PaSST: mel ``[batch, 1, n_mels, frames]`` -> 40-ms frame logits.

    Args:
        num_classes: event classes (AudioSet-Strong: 447).
        n_mels: mel bands of the input (a multiple of 4: the stem halves them twice).
        pos_embed_length: time positions the model encodes (250: 10 s of 40-ms tokens; the reference's name).
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate: the
            transformer, as :class:`~tympan.models.passt.TransformerConfig` describes it.
        mel_frames_per_output: mel frames per output frame (the tokens come at 1 per 4 mel frames).

    Attributes:
        generator: optional ``torch.Generator`` (CPU) for the random window of time encodings in training; None
            uses torch's global generator.
    """

    num_tokens = 2  # cls and dist, as the DeiT the published model started from

    def __init__(
        self,
        num_classes: int = 447,
        n_mels: int = 128,
        pos_embed_length: int = 250,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        mel_frames_per_output: int = MEL_FRAMES_PER_OUTPUT,
    ) -> None:
        super().__init__(embed_dim, num_classes, mel_frames_per_output)
        if n_mels <= 0 or n_mels % 4 or pos_embed_length <= 0 or depth <= 0:
            raise ConfigError(f"need n_mels a positive multiple of 4 and pos_embed_length, depth > 0; got n_mels="
                              f"{n_mels}, pos_embed_length={pos_embed_length}, depth={depth}")  # fmt: skip
        self.n_mels = n_mels
        self.generator: torch.Generator | None = None
        first, second, third = _STEM_CHANNELS
        self.conv_in_1 = nn.Conv2d(1, first, 3, stride=2, padding=1)
        self.conv_in_2 = nn.Conv2d(first, second, 3, padding=1)
        self.conv_in_3 = nn.Conv2d(second, third, 3, stride=2, padding=1)
        self.stem_act = nn.GELU()
        self.patch_embed = ColumnEmbed(n_mels, _COLUMN_CHANNELS, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, embed_dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, 1, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, 1, pos_embed_length))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = transformer_blocks(
            depth, embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate
        )
        self.norm = nn.LayerNorm(embed_dim, eps=_BLOCK_NORM_EPS)
        for param in (self.cls_token, self.dist_token, self.new_pos_embed, self.freq_new_pos_embed,
                      self.time_new_pos_embed):  # fmt: skip
            nn.init.trunc_normal_(param, std=0.02)
        self.apply(init_vit_weights)

    @classmethod
    def from_config(cls, config: FramePaSSTConfig, num_classes: int = 447) -> FramePaSST:
        """The frame-level PaSST of ``config`` with ``num_classes`` events (the registry's builder)."""
        return cls(num_classes, config.n_mels, config.time_encodings,
                   mel_frames_per_output=config.mel_frames_per_output, **config.transformer_arguments())  # fmt: skip

    def _columns(self, mel: Tensor) -> Tensor:
        """The stem and the regrouping: ``[B, 1, n_mels, T]`` -> ``[B, 16, n_mels, T / 4]``."""
        if mel.shape[2] != self.n_mels:
            raise ConfigError(f"the frame-level PaSST was built for {self.n_mels} mel bands, got {mel.shape[2]}; use "
                              "the model's mel frontend (model.frontend_config)")  # fmt: skip
        x = self.stem_act(self.conv_in_1(mel))
        x = self.stem_act(self.conv_in_2(x))
        x = self.stem_act(self.conv_in_3(x))
        return x.reshape(x.shape[0], -1, self.n_mels, x.shape[-1])

    def forward_sequence(self, mel: Tensor) -> Tensor:
        """Patch tokens after the final norm, one per 4 mel frames: ``[batch, T / 4, embed_dim]``."""
        x = self.patch_embed(self._columns(mel))  # [B, E, 1, T']
        encodings = self.time_new_pos_embed.shape[-1]
        if x.shape[-1] > encodings + 1:
            seconds = encodings * self.mel_frames_per_output / 100
            raise ConfigError(
                f"the frame-level PaSST encodes {encodings} time columns ({seconds:g} s at a 10-ms hop) but got "
                f"{x.shape[-1]}; cut the audio into windows of at most that length (tympan detect does)"
            )
        x = x[..., :encodings]  # the one column a frame count not divisible by 4 can add
        x = x + time_encodings(self.time_new_pos_embed, x.shape[-1], self.training, self.generator)
        x = (x + self.freq_new_pos_embed).flatten(2).transpose(1, 2)
        x = self.pos_drop(prepend_tokens(x, self.cls_token, self.dist_token, self.new_pos_embed))
        return self.norm(self.blocks(x))[:, self.num_tokens :]
