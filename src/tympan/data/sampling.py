"""Training samplers whose order is a pure function of ``(seed, epoch)``, also under DDP.

Lightning calls ``set_epoch`` at the start of every epoch, so a run resumed from a checkpoint draws exactly the
orders the uninterrupted run would have drawn, independent of whatever else consumed the global random state; after
a mid-epoch checkpoint, :meth:`resume` skips the clips already trained on in that epoch.

Class-balanced sampling is the EfficientAT / PaSST AudioSet recipe: per-class counts over the training set, class
weight ``scale / (count + offset)`` (``1000 / (count + 100)`` in the references), sample weight = the **sum** over
its positive classes; ``epoch_length`` clips drawn without replacement per epoch (100,000 for AudioSet).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from ..errors import ConfigError

__all__ = ["BalancedSampler", "ShuffleSampler", "class_balanced_weights"]


def class_balanced_weights(targets: np.ndarray, offset: float = 100.0, scale: float = 1000.0) -> np.ndarray:
    """Per-clip weights from a ``[clips, classes]`` 0/1 matrix; a clip without labels gets weight 0."""
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2:
        raise ConfigError(f"targets must be [clips, classes], got shape {targets.shape}")
    class_weights = scale / (targets.sum(axis=0) + offset)
    return targets @ class_weights


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class _Resumable(DistributedSampler):
    """Skips the clips of the batches already trained on in the epoch a mid-epoch checkpoint was saved in."""

    _resume: tuple[int, int] | None = None  # (epoch, samples of this rank to skip)

    def resume(self, epoch: int, samples: int) -> None:
        self._resume = (epoch, samples)

    def _skipping(self, indices: list[int]) -> Iterator[int]:
        if self._resume is not None and self._resume[0] == self.epoch:
            indices = indices[self._resume[1] :]
        self._resume = None
        return iter(indices)


class ShuffleSampler(_Resumable):
    """A permutation seeded by ``(seed, epoch)``; under DDP each process takes every ``world_size``-th index.

    Process ``r`` of ``n`` with per-process batch ``b`` gets ``perm[r::n]``, so the union of the ranks' k-th batches
    is ``perm[k·n·b : (k+1)·n·b]``: exactly the k-th batch of a single-process run with batch ``n·b``. (Being a
    ``DistributedSampler``, Lightning uses it as it is instead of wrapping it.)
    """

    def __init__(self, num_samples: int, seed: int = 0):
        num_replicas, rank = _world()
        super().__init__(range(num_samples), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)

    def __iter__(self) -> Iterator[int]:
        return self._skipping(list(super().__iter__()))


class BalancedSampler(_Resumable):
    """``epoch_length`` clips per epoch drawn without replacement with probabilities ∝ ``weights``.

    The draw is seeded by ``(seed, epoch)``; under DDP each process takes every ``world_size``-th drawn clip.
    """

    def __init__(self, weights: np.ndarray, epoch_length: int | None = None, seed: int = 0):
        self.weights = torch.as_tensor(np.asarray(weights), dtype=torch.float64)
        available = int((self.weights > 0).sum())
        epoch_length = available if epoch_length is None else epoch_length
        if not 0 < epoch_length <= available:
            raise ConfigError(f"epoch_length must be in 1..{available} (labelled clips, no replacement)")
        num_replicas, rank = _world()
        super().__init__(range(epoch_length), num_replicas=num_replicas, rank=rank, shuffle=False, seed=seed)
        self.epoch_length = epoch_length

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.epoch_length, replacement=False, generator=generator).tolist()
        drawn += drawn[: self.total_size - len(drawn)]  # pad to a multiple of the world size
        return self._skipping(drawn[self.rank : self.total_size : self.num_replicas])
