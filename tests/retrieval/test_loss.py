"""The multi-positive symmetric InfoNCE against a numpy oracle and its special cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tympan.errors import ConfigError
from tympan.retrieval import contrastive_loss


def _numpy_loss(audio: np.ndarray, text: np.ndarray, tau: float, clip_ids: np.ndarray) -> float:
    logits = audio @ text.T / abs(tau)

    def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    positives = clip_ids[:, None] == clip_ids[None, :]
    return float(-0.5 * (log_softmax(logits, 0)[positives].mean() + log_softmax(logits, 1)[positives].mean()))


def _unit(generator: torch.Generator, rows: int, dim: int = 8) -> torch.Tensor:
    return F.normalize(torch.randn(rows, dim, generator=generator, dtype=torch.float64), dim=1)


def test_matches_numpy_oracle_with_repeated_clips(generator):
    audio, text = _unit(generator, 6), _unit(generator, 6)
    clip_ids = torch.tensor([0, 1, 0, 2, 1, 0])
    tau = torch.tensor([-0.05], dtype=torch.float64)  # the absolute value is used
    loss = contrastive_loss(audio, text, tau, clip_ids)
    assert loss.item() == pytest.approx(_numpy_loss(audio.numpy(), text.numpy(), -0.05, clip_ids.numpy()), rel=1e-12)


def test_unique_clips_give_the_clip_loss_and_it_is_symmetric(generator):
    audio, text = _unit(generator, 5), _unit(generator, 5)
    tau, ids = torch.tensor([0.1], dtype=torch.float64), torch.arange(5)
    logits = audio @ text.T / 0.1
    clip = 0.5 * (F.cross_entropy(logits, ids) + F.cross_entropy(logits.T, ids))
    assert contrastive_loss(audio, text, tau, ids).item() == pytest.approx(clip.item(), rel=1e-12)
    assert contrastive_loss(text, audio, tau, ids).item() == pytest.approx(clip.item(), rel=1e-12)


def test_hand_computed_two_by_two():
    # logits = identity (tau 1): each row / column softmax gives log p = 1 - log(1 + e) on the diagonal and
    # -log(1 + e) off it. Unique clips: only the diagonal is positive. One clip: all four cells are positive.
    eye, tau = torch.eye(2, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    assert contrastive_loss(eye, eye, tau, torch.tensor([0, 1])).item() == pytest.approx(np.log1p(np.e) - 1)
    assert contrastive_loss(eye, eye, tau, torch.tensor([5, 5])).item() == pytest.approx(np.log1p(np.e) - 0.5)


def test_gradient_reaches_tau_and_both_sides(generator):
    audio = _unit(generator, 4).requires_grad_()
    text = _unit(generator, 4).requires_grad_()
    tau = torch.tensor([0.01], dtype=torch.float64, requires_grad=True)
    contrastive_loss(audio, text, tau, torch.tensor([0, 1, 2, 0])).backward()
    assert tau.grad is not None and tau.grad.abs().item() > 0
    assert audio.grad.abs().sum() > 0 and text.grad.abs().sum() > 0


def test_shape_mismatch_is_a_config_error():
    with pytest.raises(ConfigError, match="clip_ids"):
        contrastive_loss(torch.zeros(3, 4), torch.zeros(2, 4), torch.ones(1), torch.arange(3))
