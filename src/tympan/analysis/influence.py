"""Influence of training examples on test predictions (Koh & Liang 2017), as in arXiv 2007.02650 v1.

The paper's code was never published; this follows the standard definition
``I(z, z_test) = −∇θL(z_test)ᵀ H⁻¹ ∇θL(z)`` with ``H`` the Hessian of the mean training loss (plus an L2 term).
Upweighting ``z`` by ε changes the test loss by about ε·I, so removing it (ε = −1/n) changes it by ``−I/n``
(:func:`predicted_loo_change`), which tests check against leave-one-out retraining. Inverse-Hessian-vector
products come from the dense Hessian (``"exact"``, small parameter sets such as a last layer) or from
conjugate gradients on Hessian-vector products (``"cg"``), which never forms ``H``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, hessian, jvp, vmap

from ..errors import ConfigError

__all__ = ["conjugate_gradient", "influence", "predicted_loo_change"]

LossFn = Callable[[Tensor, Tensor], Tensor]


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, *, max_steps: int = 200, tol: float = 1e-10
) -> Tensor:
    """Solve ``A s = b`` for a symmetric positive definite ``A`` given only ``v ↦ A v``."""
    solution = torch.zeros_like(b)
    residual = b.clone()
    direction = residual.clone()
    residual_sq = residual @ residual
    for _ in range(max_steps):
        if residual_sq.sqrt() <= tol * b.norm().clamp_min(1e-30):
            break
        product = matvec(direction)
        alpha = residual_sq / (direction @ product)
        solution = solution + alpha * direction
        residual = residual - alpha * product
        new_residual_sq = residual @ residual
        direction = residual + (new_residual_sq / residual_sq) * direction
        residual_sq = new_residual_sq
    return solution


def influence(
    model: nn.Module,
    loss_fn: LossFn,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    parameters: Sequence[str] | None = None,
    weight_decay: float = 0.0,
    method: Literal["exact", "cg"] = "cg",
    damping: float = 0.0,
    cg_steps: int = 200,
) -> Tensor:
    """Influence ``[n_test, n_train]`` of every training example on every test example's loss.

    Args:
        model: the trained model (at, or near, a minimum of the training objective).
        loss_fn: per-batch mean loss ``loss_fn(logits, targets)``.
        train, test: ``(inputs, targets)`` tensors.
        parameters: names of the parameters to differentiate (e.g. only the classifier); default all trainable.
        weight_decay: λ of the ``λ/2·‖θ‖²`` term of the training objective (part of the Hessian).
        method: ``"exact"`` (dense Hessian) or ``"cg"`` (conjugate gradients on Hessian-vector products).
        damping: added to the Hessian diagonal, for non-convex models.
    """
    if method not in ("exact", "cg"):
        raise ConfigError(f"method must be 'exact' or 'cg', got {method!r}")
    named = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    names = list(named) if parameters is None else list(parameters)
    unknown = [n for n in names if n not in named]
    if unknown:
        raise ConfigError(f"unknown parameter names {unknown}; the model has {list(named)}")
    fixed = {n: p for n, p in named.items() if n not in names}
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    theta = torch.cat([named[n].flatten() for n in names])

    def unflatten(flat: Tensor) -> dict[str, Tensor]:
        return {n: chunk.view(shape) for n, chunk, shape in zip(names, flat.split(sizes), shapes, strict=True)}

    def sample_loss(flat: Tensor, x: Tensor, y: Tensor) -> Tensor:
        logits = functional_call(model, {**fixed, **unflatten(flat)}, (x.unsqueeze(0),))
        return loss_fn(logits, y.unsqueeze(0))

    def objective(flat: Tensor) -> Tensor:
        logits = functional_call(model, {**fixed, **unflatten(flat)}, (train[0],))
        return loss_fn(logits, train[1]) + 0.5 * (weight_decay + damping) * (flat @ flat)

    per_sample_grad = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    train_grads = per_sample_grad(theta, *train)
    test_grads = per_sample_grad(theta, *test)
    if method == "exact":
        solved = torch.linalg.solve(hessian(objective)(theta), test_grads.T).T
    else:
        gradient = grad(objective)

        def hvp(v: Tensor) -> Tensor:
            return jvp(gradient, (theta,), (v,))[1]

        solved = torch.stack([conjugate_gradient(hvp, g, max_steps=cg_steps) for g in test_grads])
    return -solved @ train_grads.T


def predicted_loo_change(influence_scores: Tensor, num_train: int) -> Tensor:
    """Predicted change of each test loss when one training example is left out: ``−I/n``."""
    return -influence_scores / num_train
