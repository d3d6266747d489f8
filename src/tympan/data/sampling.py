"""Class-balanced sampling of multi-label data (EfficientAT / PaSST AudioSet recipe).

Per-class counts over the training set, class weight ``scale / (count + offset)`` (``1000 / (count + 100)`` in the
references), sample weight = the **sum** over its positive classes; drawn with ``WeightedRandomSampler(weights,
num_samples=epoch_length, replacement=False)``. Under DDP, Lightning wraps the sampler in its distributed sampler
wrapper, so each process draws a disjoint share of the same epoch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from ..errors import ConfigError

__all__ = ["balanced_sampler", "class_balanced_weights"]


def class_balanced_weights(targets: np.ndarray, offset: float = 100.0, scale: float = 1000.0) -> np.ndarray:
    """Per-clip weights from a ``[clips, classes]`` 0/1 matrix; a clip without labels gets weight 0."""
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2:
        raise ConfigError(f"targets must be [clips, classes], got shape {targets.shape}")
    class_weights = scale / (targets.sum(axis=0) + offset)
    return targets @ class_weights


def balanced_sampler(
    targets: np.ndarray, epoch_length: int | None = None, offset: float = 100.0, seed: int | None = None
) -> WeightedRandomSampler:
    """A sampler drawing ``epoch_length`` clips (default: all) without replacement, class-balanced."""
    weights = class_balanced_weights(targets, offset)
    available = int((weights > 0).sum())
    epoch_length = available if epoch_length is None else epoch_length
    if epoch_length > available:
        raise ConfigError(f"epoch_length {epoch_length} exceeds the {available} labelled clips (no replacement)")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return WeightedRandomSampler(weights.tolist(), epoch_length, replacement=False, generator=generator)
