"""PaSST: the Patchout faSt Spectrogram Transformer.

Paper: Koutini, Schlüter, Eghbal-zadeh, Widmer, "Efficient Training of Audio Transformers with Patchout",
Interspeech 2022 (arXiv 2110.05069). Reference code: ``kkoutini/PaSST`` @ 2a5c818a ``models/passt.py`` and
``kkoutini/passt_hear21`` @ 5f1cce6a; state-dict names follow the released checkpoints exactly.

A DeiT-style ViT (cls + dist token) on the log-mel spectrogram with overlapping 16×16 patches,
separate frequency and time positional encodings, and *Patchout*: during training whole time columns /
frequency rows (structured) or single patches (unstructured) are dropped, which shortens the sequence ~2.5×.

Input length rules (``T'`` = time patches of the input, ``Pt`` = time encodings of the model):

* ``T' < Pt``: eval uses the first ``T'`` encodings; training uses a random window of them (one offset per
  batch), which is how the 20 s / 30 s models learn all their encodings from 10 s clips.
* ``T' > Pt``: the patch grid is cut to its first ``Pt`` columns (the training repository's semantics, which
  the golden ``logits_long`` follows) and a warning is logged once per model. For long audio use a sliding
  window instead (:func:`tympan.hear.wrap` does that for scene embeddings).

The eval path has no data-dependent branches (the crop and the cut are static slices), so it exports.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import AudioModel
from .spec import ArchConfig, renamed

__all__ = [
    "Block",
    "PaSST",
    "PaSSTConfig",
    "TransformerConfig",
    "checkpoint_filter_fn",
    "init_vit_weights",
    "prepend_tokens",
    "time_encodings",
    "transformer_blocks",
]

logger = logging.getLogger(__name__)

_BLOCK_NORM_EPS = 1e-6  # blocks and final norm; the head LayerNorm keeps PyTorch's default 1e-5


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def time_encodings(encodings: Tensor, length: int, training: bool, generator: torch.Generator | None) -> Tensor:
    """The ``length`` time encodings ``[1, E, 1, length]`` of an input of ``length`` columns (at most as many as
    ``encodings`` holds): the first ones in eval, a random window of them in training (one offset per batch)."""
    offset = 0
    if training and length < encodings.shape[-1]:
        offset = int(torch.randint(encodings.shape[-1] - length + 1, (1,), generator=generator))
    return encodings[..., offset : offset + length]


def prepend_tokens(patches: Tensor, cls_token: Tensor, dist_token: Tensor | None, token_embed: Tensor) -> Tensor:
    """``[B, N, E]`` patch tokens after the cls (and dist) token, each token with its own encoding."""
    tokens = cls_token + token_embed[:, :1]
    if dist_token is not None:
        tokens = torch.cat((tokens, dist_token + token_embed[:, 1:]), dim=1)
    return torch.cat((tokens.expand(patches.shape[0], -1, -1), patches), dim=1)


def _drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole residual branches per example, rescaling the kept ones."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class PatchEmbed(nn.Module):
    """Overlapping patches: a ``patch_size`` conv with stride ``stride``, output kept as a grid ``[B, E, F', T']``."""

    def __init__(
        self, img_size: tuple[int, int], patch_size: int, stride: tuple[int, int], in_chans: int, embed_dim: int
    ):
        super().__init__()
        # The encoding grid uses integer division of the nominal input, not the conv formula (998 // 10 = 99).
        self.grid_size = (img_size[0] // stride[0], img_size[1] // stride[1])
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention with the fused kernel (same numbers as ``softmax(q·kᵀ/√d)·v``)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"embed_dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(batch, tokens, dim)))


class Mlp(nn.Module):
    """``fc1 → exact GELU → fc2``, with dropout after each."""

    def __init__(self, dim: int, hidden: int, drop: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        attn_drop: float,
        drop_path: float,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_BLOCK_NORM_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim, eps=_BLOCK_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = drop_path

    def forward(self, x: Tensor) -> Tensor:
        x = x + _drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        return x + _drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


def transformer_blocks(
    depth: int,
    dim: int,
    num_heads: int,
    mlp_ratio: float,
    qkv_bias: bool,
    drop: float,
    attn_drop: float,
    drop_path_rate: float,
) -> nn.Sequential:
    """``depth`` :class:`Block` s with stochastic depth growing linearly from 0 to ``drop_path_rate``."""
    rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
    return nn.Sequential(*(Block(dim, num_heads, mlp_ratio, qkv_bias, drop, attn_drop, rate) for rate in rates))


@dataclass(frozen=True)
class TransformerConfig(ArchConfig):
    """The transformer of PaSST and of the frame-level PaSST; the defaults are DeiT-B's.

    Attributes:
        embed_dim: token width ``E``.
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / ``E``.
        qkv_bias: bias in the qkv projection.
        drop_rate: dropout after the token embedding, in the MLP and after the attention projection.
        attn_drop_rate: dropout on the attention weights.
        drop_path_rate: stochastic depth, growing linearly to this rate over the blocks.
    """

    training_settings = frozenset({"drop_rate", "attn_drop_rate", "drop_path_rate"})

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def transformer_arguments(self) -> dict[str, Any]:
        """These fields as keyword arguments of the networks' constructors."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(TransformerConfig)}


@dataclass(frozen=True)
class PaSSTConfig(TransformerConfig):
    """Architecture of a PaSST; the defaults are the reference constructor's.

    Attributes:
        input_size: nominal input ``(n_mels, frames)``; sets the encoding grid (reference ``img_size``).
        patch_size: square patch side.
        stride: patch stride ``(frequency, time)`` (10 = the overlapping PaSST-S, 16 = no overlap).
        in_channels: input channels (reference ``in_chans``).
        distilled: add the DeiT distillation token (all released models do).
        patchout_time: structured patchout, time columns dropped in training (reference ``s_patchout_t``).
        patchout_freq: structured patchout, frequency rows dropped in training (reference ``s_patchout_f``).
        patchout_unstructured: unstructured patchout, patches dropped in training (reference ``u_patchout``).
    """

    training_settings = TransformerConfig.training_settings | {"patchout_time", "patchout_freq",
                                                               "patchout_unstructured"}  # fmt: skip

    input_size: tuple[int, int] = (128, 998)
    patch_size: int = 16
    stride: tuple[int, int] = (16, 16)
    in_channels: int = 1
    distilled: bool = False
    patchout_time: int = 0
    patchout_freq: int = 0
    patchout_unstructured: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", _pair(self.input_size))
        object.__setattr__(self, "stride", _pair(self.stride))

    @classmethod
    def from_reference(cls, **kwargs: Any) -> PaSSTConfig:
        """From the reference ``PaSST`` constructor's keyword arguments (``img_size``, ``in_chans``,
        ``s_patchout_t``, ...) or tympan's names."""
        return cls.from_dict(renamed(kwargs, _REFERENCE_NAMES))


_REFERENCE_NAMES = {"img_size": "input_size", "in_chans": "in_channels", "s_patchout_t": "patchout_time",
                    "s_patchout_f": "patchout_freq", "u_patchout": "patchout_unstructured"}  # fmt: skip


class PaSST(AudioModel):
    """PaSST on mel ``[batch, in_chans, n_mels, frames]``; the arguments are the reference constructor's.

    Args:
        u_patchout: unstructured patchout: patches dropped from the flattened sequence (training only).
        s_patchout_t: structured patchout: time columns dropped from the patch grid (training only).
        s_patchout_f: structured patchout: frequency rows dropped from the patch grid (training only).
        img_size: nominal input ``(n_mels, frames)``; sets the encoding grid ``(n_mels // fs, frames // ts)``.
        patch_size: square patch side.
        stride: patch stride ``(frequency, time)`` (10 = the overlapping PaSST-S, 16 = no overlap).
        in_chans: input channels.
        num_classes: classifier outputs.
        embed_dim: token width ``E``.
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / ``E``.
        qkv_bias: bias in the qkv projection.
        distilled: add the DeiT distillation token (all released models do).
        drop_rate: dropout after the token embedding, in the MLP and after the attention projection.
        attn_drop_rate: dropout on the attention weights.
        drop_path_rate: stochastic depth, growing linearly to this rate over the blocks.

    Attributes:
        generator: optional ``torch.Generator`` (CPU) for patchout and the random encoding offset in
            training; None uses torch's global generator (which Lightning seeds).
    """

    def __init__(
        self,
        u_patchout: int = 0,
        s_patchout_t: int = 0,
        s_patchout_f: int = 0,
        img_size: int | Sequence[int] = (128, 998),
        patch_size: int = 16,
        stride: int | Sequence[int] = 16,
        in_chans: int = 1,
        num_classes: int = 527,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        distilled: bool = False,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        img_size, stride = _pair(img_size), _pair(stride)
        if min(img_size) < patch_size:
            raise ConfigError(f"img_size {img_size} is smaller than one {patch_size}x{patch_size} patch")
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.num_tokens = 2 if distilled else 1
        self.u_patchout, self.s_patchout_t, self.s_patchout_f = u_patchout, s_patchout_t, s_patchout_f
        self.generator: torch.Generator | None = None
        self._warned_long_input = False

        self.patch_embed = PatchEmbed(img_size, patch_size, stride, in_chans, embed_dim)
        grid_f, grid_t = self.patch_embed.grid_size
        self._check_patchout(grid_f, grid_t, where=f"the encoding grid {grid_f}x{grid_t}")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if distilled else None
        self.new_pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, embed_dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, grid_f, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, 1, grid_t))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = transformer_blocks(
            depth, embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate
        )
        self.norm = nn.LayerNorm(embed_dim, eps=_BLOCK_NORM_EPS)
        self.head = nn.Sequential(nn.LayerNorm(embed_dim), self._classifier(num_classes))
        self.head_dist = self._classifier(num_classes) if distilled else None  # kept for the checkpoints; unused
        self._init_weights()

    @classmethod
    def from_config(cls, config: PaSSTConfig, num_classes: int = 527) -> PaSST:
        """The PaSST of ``config`` with ``num_classes`` outputs (the registry's builder)."""
        return cls(u_patchout=config.patchout_unstructured, s_patchout_t=config.patchout_time,
                   s_patchout_f=config.patchout_freq, img_size=config.input_size, patch_size=config.patch_size,
                   stride=config.stride, in_chans=config.in_channels, num_classes=num_classes,
                   distilled=config.distilled, **config.transformer_arguments())  # fmt: skip

    def _classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def _init_weights(self) -> None:
        """timm's ViT init: truncated normal (std 0.02) for Linear weights and the tokens/encodings."""
        for param in (self.cls_token, self.dist_token, self.new_pos_embed, self.freq_new_pos_embed):
            if param is not None:
                nn.init.trunc_normal_(param, std=0.02)
        nn.init.trunc_normal_(self.time_new_pos_embed, std=0.02)
        self.apply(init_vit_weights)

    def _check_patchout(self, grid_f: int, grid_t: int, where: str) -> None:
        if self.s_patchout_t >= grid_t or self.s_patchout_f >= grid_f:
            raise ConfigError(
                f"structured patchout (s_patchout_t={self.s_patchout_t}, s_patchout_f={self.s_patchout_f}) must "
                f"keep at least one column and row of {where} ({grid_f} rows x {grid_t} columns); lower it "
                "(the ESC-50 recipe uses s_patchout_t=10 on 5 s clips)"
            )
        kept = (grid_f - self.s_patchout_f) * (grid_t - self.s_patchout_t)
        if self.u_patchout >= kept:
            raise ConfigError(
                f"u_patchout={self.u_patchout} must be smaller than the {kept} patches left of {where}; lower it"
            )

    def reset_classifier(self, num_classes: int) -> None:
        """New ``head.1`` and ``head_dist`` with ``num_classes`` outputs; the head LayerNorm ``head.0`` is kept.

        This is what fine-tuning from an AudioSet PaSST does (the reference replaced the whole head by a bare
        Linear, which breaks the LayerNorm + Linear structure of the released checkpoints). The new layers take
        the model's device, dtype and train/eval mode.
        """
        self.num_classes = num_classes
        norm = self.head[0].weight
        self.head[1] = self._classifier(num_classes)
        if self.head_dist is not None:
            self.head_dist = self._classifier(num_classes)
        for module in (self.head[1], self.head_dist):
            if module is not None:
                module.apply(init_vit_weights)
                module.to(device=norm.device, dtype=norm.dtype).train(self.training)

    def _keep(self, x: Tensor, dim: int, drop: int) -> Tensor:
        """Keep a random subset of ``size - drop`` entries along ``dim``, in order, the same for the whole batch."""
        size = x.shape[dim]
        kept = torch.randperm(size, generator=self.generator)[: size - drop].sort().values.to(x.device)
        return x.index_select(dim, kept)

    def _embed_patches(self, mel: Tensor) -> Tensor:
        """Patch grid plus positional encodings, after patchout: ``[B, N, E]``."""
        x = self.patch_embed(mel)
        grid_f, grid_t = self.patch_embed.grid_size
        if x.shape[2] != grid_f:
            raise ConfigError(
                f"PaSST gets {mel.shape[2]} mel bins ({x.shape[2]} frequency patches) but was built for "
                f"{grid_f} frequency patches; use the mel frontend of the model (model.frontend_config)"
            )
        if x.shape[-1] > grid_t and not self._warned_long_input and not torch.compiler.is_compiling():
            logger.warning(
                "PaSST input has %d time patches but the model has %d time encodings: the input is cut to its "
                "first %d patches. Use a sliding window (tympan.hear) for long audio.",
                x.shape[-1],
                grid_t,
                grid_t,
            )
            self._warned_long_input = True
        x = x[..., :grid_t]
        num_t = x.shape[-1]
        x = x + time_encodings(self.time_new_pos_embed, num_t, self.training, self.generator) + self.freq_new_pos_embed
        if self.training:
            self._check_patchout(x.shape[2], num_t, where="this input's patch grid")
            if self.s_patchout_t:
                x = self._keep(x, 3, self.s_patchout_t)
            if self.s_patchout_f:
                x = self._keep(x, 2, self.s_patchout_f)
        x = x.flatten(2).transpose(1, 2)
        if self.training and self.u_patchout:
            x = self._keep(x, 1, self.u_patchout)
        return x

    def forward_input_sequence(self, mel: Tensor) -> Tensor:
        """The sequence entering the first block ``[B, num_tokens + N, E]`` (cls, dist, patches).

        Adapters that act between blocks (:mod:`tympan.models.congater`) start from here.
        """
        x = prepend_tokens(self._embed_patches(mel), self.cls_token, self.dist_token, self.new_pos_embed)
        return self.pos_drop(x)

    def forward_tokens(self, mel: Tensor) -> Tensor:
        """The whole output sequence after the final norm ``[B, num_tokens + N, E]`` (cls, dist, patches)."""
        return self.norm(self.blocks(self.forward_input_sequence(mel)))

    def forward_features(self, mel: Tensor) -> Tensor:
        """Embedding ``[B, E]``: the mean of the cls and dist token outputs (cls alone when not distilled)."""
        tokens = self.forward_tokens(mel)
        return tokens[:, : self.num_tokens].mean(dim=1)

    def forward_head(self, features: Tensor) -> Tensor:
        """Logits ``[B, num_classes]``: LayerNorm (eps 1e-5) + Linear on the embedding."""
        return self.head(features)


def init_vit_weights(module: nn.Module) -> None:
    """timm's ViT init of one module: Linear weights truncated normal (std 0.02), zero biases; LayerNorm 1 / 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _sum_input_channels(weight: Tensor, in_chans: int) -> Tensor:
    """Adapt an RGB patch conv to ``in_chans`` inputs as timm's ``adapt_input_conv`` does (1: sum the channels)."""
    if weight.shape[1] == in_chans:
        return weight
    if in_chans != 1:
        raise ConfigError(f"cannot adapt a {weight.shape[1]}-channel patch conv to in_chans={in_chans}")
    dtype = weight.dtype
    return weight.float().sum(dim=1, keepdim=True).to(dtype)


def _split_image_pos_embed(pos_embed: Tensor, num_tokens: int, grid: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """ImageNet ``pos_embed [1, tokens + g·g, E]`` → (token encodings, frequency ``[1,E,F,1]``, time ``[1,E,1,T]``).

    The square grid is resized bicubically to the PaSST grid, then averaged over time (frequency encodings)
    and over frequency (time encodings).
    """
    tokens, grid_embed = pos_embed[:, :num_tokens], pos_embed[0, num_tokens:]
    side = math.isqrt(grid_embed.shape[0])
    if side * side != grid_embed.shape[0]:
        raise ConfigError(f"pos_embed holds {grid_embed.shape[0]} grid positions, not a square grid")
    image = grid_embed.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=grid, mode="bicubic", align_corners=False)
    return tokens, image.mean(dim=3, keepdim=True), image.mean(dim=2, keepdim=True)


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """Convert foreign PaSST / DeiT checkpoints to ``model``'s layout before the strict load.

    * ImageNet DeiT (no ``time_new_pos_embed``): ``pos_embed`` is split into ``new_pos_embed`` and the
      frequency / time encodings (:func:`_split_image_pos_embed`); DeiT's classifiers ``head.*`` are dropped.
    * A ``hear21passt`` wrapper state dict: ``device_proxy`` is dropped and the ``net.`` prefix removed.
    * A 3-channel (RGB) patch conv is summed to one channel; an old 2-D ``patch_embed.proj.weight`` is reshaped.
    * Classifier tensors that are missing or whose class count differs from the model's (``head.*``,
      ``head_dist.*``) are taken from ``model`` itself (its fresh init), and this is logged: the rest loads
      strictly.
    """
    state = dict(state_dict)
    if "device_proxy" in state:  # a hear21passt wrapper: a dummy device parameter and the network under "net."
        del state["device_proxy"]
        state = {key.removeprefix("net."): value for key, value in state.items()}
    target = model.state_dict()
    if "time_new_pos_embed" not in state and "pos_embed" in state:
        logger.info("adapting ImageNet positional embeddings to PaSST's frequency/time encodings")
        grid = model.patch_embed.grid_size
        tokens, freq, time = _split_image_pos_embed(state.pop("pos_embed"), model.num_tokens, grid)
        state.update(new_pos_embed=tokens, freq_new_pos_embed=freq, time_new_pos_embed=time)
        for key in ("head.weight", "head.bias"):  # DeiT's bare Linear head has no place in PaSST's head
            state.pop(key, None)
    conv_key = "patch_embed.proj.weight"
    if conv_key in state:
        weight, expected = state[conv_key], target[conv_key].shape
        if weight.ndim < 4:
            weight = weight.reshape(expected[0], -1, *expected[2:])
        state[conv_key] = _sum_input_channels(weight, expected[1])
    replaced = [
        key
        for key in target
        if key.startswith(("head.", "head_dist.")) and (key not in state or state[key].shape != target[key].shape)
    ]
    if replaced:
        logger.info("classifier tensors taken from the model's own init (class count differs): %s", replaced)
        state.update({key: target[key] for key in replaced})
    return state


def build_passt(num_classes: int = 527, **reference_kwargs: Any) -> PaSST:
    """Build :class:`PaSST` from the reference constructor's keyword arguments."""
    return PaSST.from_config(PaSSTConfig.from_reference(**reference_kwargs), num_classes)
