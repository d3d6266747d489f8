"""Adversarial risk and prediction-change stress ("On Data Augmentation and Adversarial Risk", arXiv 2007.02650).

The reference (``eghbalz/rethink_da_for_ar``) attacks through the external MadryLab ``robustness`` package and has
no FGSM; here PGD (L∞ and L2, targeted or not, optional random start) and FGSM are our own, on any input the model
takes (waveforms or spectrograms). Prediction-change stress counts how often random perturbations on the ε-sphere
change the prediction; :func:`laplacian_mc` is its smooth, Laplacian-based form.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = [
    "RiskPoint",
    "adversarial_risk",
    "fgsm",
    "laplacian_mc",
    "pc_stress",
    "pgd",
    "sphere_directions",
]

Norm = Literal["linf", "l2"]
_TINY = 1e-12


def _per_sample_norm(x: Tensor) -> Tensor:
    """L2 norm of each example, shaped to broadcast against ``x``."""
    return x.flatten(1).norm(dim=1).clamp_min(_TINY).view(-1, *([1] * (x.dim() - 1)))


def _project(delta: Tensor, eps: float, norm: Norm) -> Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _per_sample_norm(delta)).clamp(max=1.0)


def sphere_directions(shape: Sequence[int], count: int, generator: torch.Generator | None = None) -> Tensor:
    """``count`` directions uniform on the unit L2 sphere of ``shape``: ``[count, *shape]``."""
    directions = torch.randn((count, *shape), generator=generator)
    return directions / _per_sample_norm(directions)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    norm: Norm = "linf",
    steps: int = 200,
    step_size: float | None = None,
    targeted: bool = False,
    random_start: bool = False,
    clamp: tuple[float, float] | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient descent: the adversarial inputs within the ε-ball around ``x``.

    Args:
        model: maps inputs to logits; its mode (train/eval) is left as it is.
        x: clean inputs ``[batch, ...]``.
        y: true labels (untargeted: the loss is raised) or target labels (``targeted``: the loss is lowered).
        eps: radius of the ball in the chosen norm.
        norm: ``"linf"`` (signed-gradient steps) or ``"l2"`` (normalised-gradient steps).
        steps: iterations (200 in the reference).
        step_size: step length; default ε/5 as in the reference.
        random_start: start from a uniform point in the ball instead of ``x``.
        clamp: valid input range, e.g. ``(-1, 1)`` for waveforms; None leaves inputs unbounded.
    """
    if norm not in ("linf", "l2"):
        raise ConfigError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if eps < 0 or steps < 1:
        raise ConfigError(f"need eps >= 0 and steps >= 1, got eps={eps}, steps={steps}")
    step_size = eps / 5 if step_size is None else step_size
    x = x.detach()
    delta = torch.zeros_like(x)
    if random_start:
        if norm == "linf":
            delta = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x) * eps
        else:
            radius = torch.rand(x.shape[0], generator=generator).to(x) ** (1 / x[0].numel())
            delta = (
                sphere_directions(x.shape[1:], x.shape[0], generator).to(x) * eps * radius.view_as(_per_sample_norm(x))
            )
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        delta.requires_grad_(True)
        adversarial = x + delta if clamp is None else (x + delta).clamp(*clamp)
        loss = loss_fn(model(adversarial), y)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            step = grad.sign() if norm == "linf" else grad / _per_sample_norm(grad)
            delta = _project(delta + sign * step_size * step, eps, norm)
            if clamp is not None:
                delta = (x + delta).clamp(*clamp) - x
    return (x + delta).detach()


def fgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    targeted: bool = False,
    clamp: tuple[float, float] | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> Tensor:
    """Fast gradient sign method: one L∞ step of length ε (PGD with one step, no random start)."""
    return pgd(model, x, y, eps, norm="linf", steps=1, step_size=eps, targeted=targeted, clamp=clamp, loss_fn=loss_fn)


@dataclass(frozen=True)
class RiskPoint:
    """Accuracy and loss under attack at one ε; ``risk = 1 − accuracy``."""

    eps: float
    accuracy: float
    loss: float

    @property
    def risk(self) -> float:
        return 1.0 - self.accuracy


def adversarial_risk(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    eps_grid: Sequence[float],
    *,
    norm: Norm = "linf",
    steps: int = 200,
    targeted: bool = False,
    num_classes: int | None = None,
    **pgd_kwargs,
) -> list[RiskPoint]:
    """Error rate under PGD for every ε of ``eps_grid`` (ε = 0 is the clean accuracy).

    Targeted attacks aim at ``(y + 1) mod (num_classes − 1)``, the reference's choice of target.
    """
    batches = list(batches)
    if targeted and num_classes is None:
        raise ConfigError("targeted attacks need num_classes to choose the target (y + 1) mod (num_classes - 1)")
    points = []
    for eps in eps_grid:
        correct, loss_sum, count = 0, 0.0, 0
        for x, y in batches:
            goal = (y + 1) % (num_classes - 1) if targeted else y
            adversarial = (
                x if eps == 0 else pgd(model, x, goal, eps, norm=norm, steps=steps, targeted=targeted, **pgd_kwargs)
            )
            with torch.no_grad():
                logits = model(adversarial)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            count += len(y)
        points.append(RiskPoint(float(eps), correct / count, loss_sum / count))
    return points


@torch.no_grad()
def pc_stress(
    model: nn.Module,
    x: Tensor,
    eps_grid: Sequence[float],
    *,
    num_directions: int = 1000,
    batch_size: int = 250,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Prediction-change stress ``[batch, len(eps_grid)]``: the share of ε-sphere perturbations that flip the class.

    As the reference (``pcstress/basic.py``): M directions uniform on the unit L2 sphere, the same for every ε, and
    the count of perturbed inputs ``x + ε·u`` whose argmax differs from the clean prediction, divided by M.
    """
    predicted = model(x).argmax(1)
    flips = torch.zeros(len(x), len(eps_grid))
    for i in range(len(x)):
        directions = sphere_directions(x.shape[1:], num_directions, generator).to(x)
        for j, eps in enumerate(eps_grid):
            for chunk in directions.split(batch_size):
                flips[i, j] += int((model(x[i] + eps * chunk).argmax(1) != predicted[i]).sum())
    return flips / num_directions


@torch.no_grad()
def laplacian_mc(
    f: Callable[[Tensor], Tensor],
    x: Tensor,
    eps: float,
    *,
    num_directions: int = 1000,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Monte-Carlo Laplacian of ``f`` at each example of ``x``: ``(2d/ε²)·(mean_{‖u‖=1} f(x + εu) − f(x))``.

    Uses the mean-value property of the sphere (``mean f − f(x) = ε²/(2d)·Δf + O(ε⁴)``). Directions come in
    antithetic pairs (u, −u), so odd terms cancel exactly and a quadratic ``f`` gets its Laplacian up to the
    sampling error of ``uᵀAu`` alone. ``f`` maps ``[n, ...]`` to ``[n]`` or ``[n, k]``; the result has the same
    trailing shape per example.
    """
    if num_directions < 2:
        raise ConfigError("num_directions must be at least 2 (antithetic pairs)")
    dims = x[0].numel()
    results = []
    for example in x:
        half = sphere_directions(example.shape, math.ceil(num_directions / 2), generator).to(x)
        directions = torch.cat([half, -half])
        mean_on_sphere = f(example + eps * directions).mean(0)
        results.append((2 * dims / eps**2) * (mean_on_sphere - f(example.unsqueeze(0))[0]))
    return torch.stack(results)
