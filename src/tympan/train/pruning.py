"""Magnitude pruning as a Lightning callback: a wide network pruned to a narrow one's parameter count.

The over-parameterisation study (:mod:`tympan.analysis.scaling`) compares a wide pruned CNN with a narrow dense one
at the same number of non-zero weights, as the DCASE20 code base (``kkoutini/cpjku_dcase20``) does.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from ..errors import ConfigError
from ..models.surgery import count_params

__all__ = ["MagnitudePruner"]


def _prunable(model: nn.Module) -> dict[str, nn.Module]:
    """Conv and linear layers whose weights are pruned (BN, GRN and biases are kept, as in the reference)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


class MagnitudePruner(Callback):
    """Magnitude pruning of conv / linear weights, ramped over epochs, as a Lightning callback.

    At the start of every training epoch the share of pruned weights is raised along the ramp and the masks are
    recomputed: the smallest ``|w|`` go, over all layers at once (``scope="global"``) or in each layer by the same
    share (``scope="layer"``). Weights are ranked, not thresholded, so ties cannot overshoot and the final count is
    exact. After every optimiser step the masks are applied again (Adam's momentum would revive pruned weights).

    Args:
        target_ratio: share of the prunable weights to remove at the end of the ramp.
        target_params: alternatively, the parameter count of the whole model to reach: the kept weights plus every
            parameter that is not pruned (BN, biases, GRN), which counts in full even where it happens to be 0.
        scope: ``"global"`` or ``"layer"``.
        ramp: ``"linear"`` or ``"exp"`` (fast at first: ``(1 − e^{−5t}) / (1 − e^{−5})``).
        ramp_epochs: epochs to reach the target (the reference uses 50).
        start_epoch: first (0-based) epoch with pruning; start after some dense training when the init has zero
            weights (CP-ResNet's Fixup): weights pruned while still 0 are never revived.
    """

    def __init__(
        self,
        target_ratio: float | None = None,
        target_params: int | None = None,
        scope: str = "global",
        ramp: str = "linear",
        ramp_epochs: int = 50,
        start_epoch: int = 0,
    ) -> None:
        if (target_ratio is None) == (target_params is None):
            raise ConfigError("give exactly one of target_ratio and target_params")
        if target_ratio is not None and not 0.0 <= target_ratio < 1.0:
            raise ConfigError(f"target_ratio must be in [0, 1), got {target_ratio}")
        if scope not in ("global", "layer"):
            raise ConfigError(f"scope must be 'global' or 'layer', got {scope!r}")
        if ramp not in ("linear", "exp"):
            raise ConfigError(f"ramp must be 'linear' or 'exp', got {ramp!r}")
        if ramp_epochs < 1 or start_epoch < 0:
            raise ConfigError("ramp_epochs must be >= 1 and start_epoch >= 0")
        self.target_ratio = target_ratio
        self.target_params = target_params
        self.scope = scope
        self.ramp = ramp
        self.ramp_epochs = ramp_epochs
        self.start_epoch = start_epoch
        self.masks: dict[str, Tensor] = {}

    # -------------------------------------------------------------------------------------- schedule
    def progress(self, epoch: int) -> float:
        """Share of the final pruning applied during ``epoch`` (0 before ``start_epoch``, 1 after the ramp)."""
        t = min(1.0, max(0.0, (epoch - self.start_epoch + 1) / self.ramp_epochs)) if epoch >= self.start_epoch else 0
        if self.ramp == "exp":
            return (1 - math.exp(-5 * t)) / (1 - math.exp(-5))
        return t

    def final_pruned(self, model: nn.Module) -> int:
        """Number of prunable weights removed at the end of the ramp."""
        layers = _prunable(model)
        prunable = sum(m.weight.numel() for m in layers.values())
        if self.target_ratio is not None:
            return round(self.target_ratio * prunable)
        fixed = count_params(model, nonzero=False) - prunable
        keep = self.target_params - fixed
        if keep < len(layers):
            raise ConfigError(
                f"target_params={self.target_params:,} leaves {keep} weights for {len(layers)} layers "
                f"({fixed:,} parameters are not prunable); raise the target"
            )
        return max(0, prunable - keep)

    # --------------------------------------------------------------------------------------- pruning
    @torch.no_grad()
    def prune(self, model: nn.Module, fraction: float = 1.0) -> None:
        """Recompute the masks for ``fraction`` of the final pruning and zero the pruned weights."""
        layers = _prunable(model)
        count = round(fraction * self.final_pruned(model))
        if self.scope == "global":
            magnitudes = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
            keep = torch.zeros(magnitudes.numel(), dtype=torch.bool, device=magnitudes.device)
            keep[torch.topk(magnitudes, magnitudes.numel() - count, sorted=False).indices] = True
            offset = 0
            for name, module in layers.items():
                size = module.weight.numel()
                self.masks[name] = keep[offset : offset + size].view_as(module.weight)
                offset += size
        else:
            for (name, module), pruned in zip(layers.items(), _shares(layers, count), strict=True):
                weights = module.weight.detach().abs().flatten()
                keep = torch.zeros(weights.numel(), dtype=torch.bool, device=weights.device)
                keep[torch.topk(weights, weights.numel() - pruned, sorted=False).indices] = True
                self.masks[name] = keep.view_as(module.weight)
        self.apply_masks(model)

    @torch.no_grad()
    def apply_masks(self, model: nn.Module) -> None:
        """Zero the pruned weights again (after an optimiser step)."""
        for name, module in _prunable(model).items():
            mask = self.masks.get(name)
            if mask is not None:
                module.weight.mul_(mask.to(module.weight.device))

    # ---------------------------------------------------------------------------------- Lightning hooks
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= self.start_epoch:
            self.prune(_network(pl_module), self.progress(trainer.current_epoch))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self.apply_masks(_network(pl_module))

    def state_dict(self) -> dict[str, Any]:
        return {"masks": {k: v.cpu() for k, v in self.masks.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.masks = dict(state_dict["masks"])


def _shares(layers: dict[str, nn.Module], count: int) -> list[int]:
    """``count`` split over the layers in proportion to their sizes (largest remainders get the rest), so the
    per-layer counts add up exactly; every layer keeps at least one weight."""
    sizes = np.array([m.weight.numel() for m in layers.values()])
    exact = count * sizes / sizes.sum()
    shares = np.minimum(np.floor(exact).astype(int), sizes - 1)
    for index in np.argsort(shares - exact):  # largest remainder first
        if shares.sum() >= count:
            break
        if shares[index] < sizes[index] - 1:
            shares[index] += 1
    return shares.tolist()


def _network(pl_module: nn.Module) -> nn.Module:
    return getattr(pl_module, "model", pl_module)
