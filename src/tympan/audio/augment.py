"""Training-time augmentations of waveforms and spectrograms.

Masking follows torchaudio's ``mask_along_axis_iid`` (the SpecAugment the reference frontends use), with one
mask per example. Randomness comes from an optional explicit ``torch.Generator`` (the global RNG otherwise, so
Lightning's seeding applies).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["mask_along_axis"]


def mask_along_axis(
    x: Tensor, max_width: int, axis: int, *, value: float = 0.0, generator: torch.Generator | None = None
) -> Tensor:
    """Fill one random band per example along ``axis`` with ``value`` (SpecAugment, torchaudio ``iid_masks``).

    Width ``w = floor(u·max_width)`` and start ``floor(v·(size − w))`` with ``u, v ~ U[0, 1)`` per example, as
    torchaudio draws them, so every example gets its own mask (older torchaudio shared one across a batch).

    Args:
        x: ``[batch, ..., size, ...]``, at least 2-D; ``axis`` indexes the masked dimension.
        max_width: masks are 0 to ``max_width - 1`` long; 0 or 1 returns ``x`` unchanged.
        axis: the masked dimension (negative counts from the end), not the batch dimension.
        value: fill value.
        generator: optional source of randomness.

    Returns:
        A masked copy of ``x`` (``x`` itself when nothing can be masked).
    """
    if x.dim() < 2:
        raise ConfigError(f"mask_along_axis needs a batched tensor, got shape {tuple(x.shape)}")
    axis = axis % x.dim()
    if axis == 0:
        raise ConfigError("mask_along_axis masks a feature axis, not the batch axis 0")
    if max_width <= 1:
        return x
    device = generator.device if generator is not None else x.device
    size = x.shape[axis]
    width = torch.rand(x.shape[0], device=device, generator=generator) * max_width
    start = torch.rand(x.shape[0], device=device, generator=generator) * (size - width)
    start, end = start.long(), start.long() + width.long()
    positions = torch.arange(size, device=device)
    masked = (positions >= start[:, None]) & (positions < end[:, None])  # [batch, size]
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[axis] = size
    return x.masked_fill(masked.view(shape).to(x.device), value)
