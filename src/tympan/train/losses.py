"""Losses of the reference recipes: label losses with mixup, and knowledge distillation from stored teacher logits.

* DCASE23 (``fschmid56/cpjku_dcase23`` ``run_training.py``): ``λ·CE + (1 − λ)·KL(student/T ‖ teacher/T)·T²``
  with the KL averaged over batch × classes (not ``batchmean``), λ = 0.02, T = 2.
* EfficientAT AudioSet (``fschmid56/EfficientAT`` ``ex_audioset.py``): ``0.1·BCE(ŷ, y_mix) + 0.9·BCE(ŷ,
  sigmoid(teacher/T))`` with T = 1; under mixup the teacher term is ``λ·BCE(t) + (1 − λ)·BCE(t[perm])`` per example,
  and examples without teacher logits contribute 0 (still counted in the mean).

Where a mixup partner has no teacher logits, its share ``(1 − λ)·BCE(ŷ, t[perm])`` is dropped (the reference reads
an arbitrary row there, the last one of its array, for index −1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..audio.augment import mix_targets
from ..errors import ConfigError

__all__ = [
    "dcase23_kd_loss",
    "efficientat_kd_loss",
    "kd_bce_loss",
    "kd_kl_loss",
    "mixup_bce",
    "mixup_cross_entropy",
]


def _check_lambda(kd_lambda: float) -> None:
    if not 0.0 <= kd_lambda <= 1.0:
        raise ConfigError(f"kd_lambda must be in [0, 1], got {kd_lambda}")


def mixup_cross_entropy(
    logits: Tensor, labels: Tensor, lam: Tensor | None = None, perm: Tensor | None = None
) -> Tensor:
    """Mean cross-entropy; with mixup ``λ·CE(ŷ, y) + (1 − λ)·CE(ŷ, y[perm])`` per example (ESC-50 recipes).

    Args:
        logits: ``[batch, classes]``.
        labels: class indices ``[batch]`` or float targets ``[batch, classes]``.
        lam, perm: the mixup draws of :func:`tympan.audio.augment.mixup`, or None.
    """
    targets = F.one_hot(labels, logits.shape[-1]).to(logits.dtype) if labels.dim() == 1 else labels.to(logits.dtype)
    if lam is not None:
        targets = mix_targets(targets, lam, perm)
    return F.cross_entropy(logits, targets)  # CE is linear in the target: equals the mixed losses


def mixup_bce(logits: Tensor, targets: Tensor, lam: Tensor | None = None, perm: Tensor | None = None) -> Tensor:
    """Mean binary cross-entropy with logits against (mixup-mixed) multi-hot ``targets`` ``[batch, classes]``."""
    targets = targets.to(logits.dtype)
    if lam is not None:
        targets = mix_targets(targets, lam, perm)
    return F.binary_cross_entropy_with_logits(logits, targets)


def kd_kl_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 2.0, teacher_available: Tensor | None = None
) -> Tensor:
    """DCASE23 distillation term: ``KL(log_softmax(student/T) ‖ log_softmax(teacher/T))·T²``.

    The element-wise KL (``KLDivLoss(log_target=True, reduction='none')``) is averaged over batch × classes, as
    the reference does (``batchmean`` would be ``classes`` times larger).

    Args:
        student_logits: ``[batch, classes]``.
        teacher_logits: raw teacher (ensemble) logits ``[batch, classes]``; softened here with ``T``.
        temperature: T.
        teacher_available: bool ``[batch]``; examples without teacher logits contribute 0 to the batch mean.
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    student = F.log_softmax(student_logits / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.to(student.dtype) / temperature, dim=-1)
    per_element = F.kl_div(student, teacher, reduction="none", log_target=True)
    if teacher_available is not None:
        per_element = per_element * teacher_available.to(per_element)[:, None]
    return per_element.mean() * temperature**2


def dcase23_kd_loss(
    student_logits: Tensor, labels: Tensor, teacher_logits: Tensor, temperature: float = 2.0, kd_lambda: float = 0.02
) -> Tensor:
    """``λ·CE(student, labels) + (1 − λ)·kd_kl_loss(student, teacher, T)`` (λ weights the *label* loss)."""
    _check_lambda(kd_lambda)
    label_loss = F.cross_entropy(student_logits, labels)
    return kd_lambda * label_loss + (1 - kd_lambda) * kd_kl_loss(student_logits, teacher_logits, temperature)


def kd_bce_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    lam: Tensor | None = None,
    perm: Tensor | None = None,
    teacher_available: Tensor | None = None,
) -> Tensor:
    """EfficientAT distillation term: BCE with logits against ``sigmoid(teacher/T)``, mean over classes and batch.

    Args:
        student_logits: ``[batch, classes]``, or frame logits ``[batch, classes, frames]`` (no temperature on the
            student side, as the reference); the mean runs over every axis but the batch.
        teacher_logits: raw teacher logits of the same shape.
        temperature: T applied to the teacher only.
        lam, perm: mixup draws: the term becomes ``λ·BCE(ŷ, t) + (1 − λ)·BCE(ŷ, t[perm])`` per example.
        teacher_available: bool ``[batch]``; examples without teacher logits contribute 0 to the batch mean, and
            under mixup the share of a partner without them is dropped.
    """
    teacher = torch.sigmoid(teacher_logits.to(student_logits.dtype) / temperature)
    per_example = F.binary_cross_entropy_with_logits(student_logits, teacher, reduction="none").flatten(1).mean(1)
    if lam is not None:
        lam = lam.to(per_example)
        mixed = F.binary_cross_entropy_with_logits(student_logits, teacher[perm], reduction="none").flatten(1).mean(1)
        if teacher_available is not None:
            mixed = mixed * teacher_available[perm].to(mixed)
        per_example = per_example * lam + mixed * (1 - lam)
    if teacher_available is not None:
        per_example = per_example * teacher_available.to(per_example)
    return per_example.mean()


def efficientat_kd_loss(
    student_logits: Tensor,
    targets: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    kd_lambda: float = 0.1,
    lam: Tensor | None = None,
    perm: Tensor | None = None,
    teacher_available: Tensor | None = None,
) -> Tensor:
    """``λ·BCE(ŷ, y_mix) + (1 − λ)·kd_bce_loss(...)``: the AudioSet KD loss of EfficientAT (λ = 0.1, T = 1)."""
    _check_lambda(kd_lambda)
    label_loss = mixup_bce(student_logits, targets, lam, perm)
    kd_loss = kd_bce_loss(student_logits, teacher_logits, temperature, lam, perm, teacher_available)
    return kd_lambda * label_loss + (1 - kd_lambda) * kd_loss
