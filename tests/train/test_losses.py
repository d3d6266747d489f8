"""train.losses: DCASE23 KL distillation (golden values), EfficientAT BCE distillation, mixup label losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import load_reference
from tympan.errors import ConfigError
from tympan.train.losses import (
    dcase23_kd_loss,
    efficientat_kd_loss,
    kd_bce_loss,
    kd_kl_loss,
    mixup_bce,
    mixup_cross_entropy,
)


def test_dcase23_kd_loss_matches_reference():
    case = load_reference("dcase23", "augment_loss_schedule_cases.pt")["kd_loss"]
    student, teacher, labels = case["student_logits"], case["teacher_logits_raw"], case["labels"]
    temperature, kd_lambda = case["temperature"], case["kd_lambda"]
    torch.testing.assert_close(F.log_softmax(teacher / temperature, -1), case["teacher_log_probs_T"])
    torch.testing.assert_close(kd_kl_loss(student, teacher, temperature), case["kd_loss_times_T2"], rtol=1e-6, atol=0)
    torch.testing.assert_close(mixup_cross_entropy(student, labels), case["label_loss"], rtol=1e-6, atol=0)
    loss = dcase23_kd_loss(student, labels, teacher, temperature, kd_lambda)
    torch.testing.assert_close(loss, case["loss"], rtol=1e-6, atol=0)
    assert abs(loss.item() - 0.75472) < 1e-5


def test_kd_kl_loss_properties():
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    assert kd_kl_loss(logits, logits).abs() < 1e-7
    # mean over batch × classes: 'batchmean' divided by the class count
    batchmean = F.kl_div(F.log_softmax(logits / 2, -1), F.softmax(logits.flip(0) / 2, -1), reduction="batchmean")
    torch.testing.assert_close(kd_kl_loss(logits, logits.flip(0), 2.0), batchmean / 10 * 4)
    with pytest.raises(ConfigError):
        kd_kl_loss(logits, logits, 0.0)
    with pytest.raises(ConfigError, match="kd_lambda"):
        dcase23_kd_loss(logits, torch.zeros(4, dtype=torch.long), logits, kd_lambda=1.5)


def _efficientat_reference(y_hat, y, teacher_logits, temperature, kd_lambda, lam, perm, unknown):
    """The ex_audioset.py training-step arithmetic, written out with explicit per-example terms."""
    bs = y_hat.shape[0]
    y_mix = y * lam.reshape(bs, 1) + y[perm] * (1.0 - lam.reshape(bs, 1))
    label_loss = F.binary_cross_entropy_with_logits(y_hat, y_mix, reduction="none").mean()
    soft = torch.sigmoid(teacher_logits / temperature)
    kd = F.binary_cross_entropy_with_logits(y_hat, soft, reduction="none").mean(dim=1) * lam + \
        F.binary_cross_entropy_with_logits(y_hat, soft[perm], reduction="none").mean(dim=1) * (1.0 - lam)
    kd[unknown] = kd[unknown] * 0
    return kd_lambda * label_loss + (1 - kd_lambda) * kd.mean()


def test_efficientat_kd_loss_matches_reference_arithmetic():
    g = torch.Generator().manual_seed(1)
    y_hat, teacher = torch.randn(6, 527, generator=g), torch.randn(6, 527, generator=g) * 3
    y = (torch.rand(6, 527, generator=g) < 0.02).float()
    lam = torch.tensor([0.9, 0.6, 0.75, 1.0, 0.5, 0.8])
    perm = torch.tensor([3, 0, 5, 1, 2, 4])
    unknown = torch.tensor([False, True, False, False, False, False])
    expected = _efficientat_reference(y_hat, y, teacher, 1.0, 0.1, lam, perm, unknown)
    ours = efficientat_kd_loss(y_hat, y, teacher, 1.0, 0.1, lam, perm, teacher_available=~unknown)
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=0)
    # without mixup and with every teacher present: plain means
    plain = efficientat_kd_loss(y_hat, y, teacher, temperature=2.0)
    direct = 0.1 * F.binary_cross_entropy_with_logits(y_hat, y) + 0.9 * F.binary_cross_entropy_with_logits(
        y_hat, torch.sigmoid(teacher / 2.0))
    torch.testing.assert_close(plain, direct)
    # BCE is linear in the target: the mixed-teacher form equals the reference's weighted sum
    mixed_teacher = lam[:, None] * torch.sigmoid(teacher) + (1 - lam[:, None]) * torch.sigmoid(teacher[perm])
    torch.testing.assert_close(kd_bce_loss(y_hat, teacher, 1.0, lam, perm),
                               F.binary_cross_entropy_with_logits(y_hat, mixed_teacher), rtol=1e-5, atol=1e-7)


def test_mixup_label_losses():
    g = torch.Generator().manual_seed(2)
    logits, labels = torch.randn(5, 50, generator=g), torch.randint(50, (5,), generator=g)
    lam, perm = torch.tensor([0.7, 0.5, 1.0, 0.9, 0.6]), torch.tensor([1, 2, 3, 4, 0])
    expected = (F.cross_entropy(logits, labels, reduction="none") * lam
                + F.cross_entropy(logits, labels[perm], reduction="none") * (1 - lam)).mean()
    torch.testing.assert_close(mixup_cross_entropy(logits, labels, lam, perm), expected)
    torch.testing.assert_close(mixup_cross_entropy(logits, labels), F.cross_entropy(logits, labels))
    targets = (torch.rand(5, 50, generator=g) < 0.1).float()
    torch.testing.assert_close(mixup_bce(logits, targets), F.binary_cross_entropy_with_logits(logits, targets))
    mixed = lam[:, None] * targets + (1 - lam[:, None]) * targets[perm]
    torch.testing.assert_close(mixup_bce(logits, targets, lam, perm),
                               F.binary_cross_entropy_with_logits(logits, mixed))


def test_a_mixup_partner_without_teacher_logits_drops_only_its_share():
    g = torch.Generator().manual_seed(3)
    y_hat, teacher = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    lam, perm = torch.tensor([0.7, 0.6, 0.8]), torch.tensor([1, 2, 0])
    available = torch.tensor([True, True, False])
    own = F.binary_cross_entropy_with_logits(y_hat, torch.sigmoid(teacher), reduction="none").mean(dim=1)
    partner = F.binary_cross_entropy_with_logits(y_hat, torch.sigmoid(teacher[perm]), reduction="none").mean(dim=1)
    # clip 2 has no logits: its term is 0; clip 1 mixes with clip 2: only its own share remains
    expected = torch.stack([own[0] * 0.7 + partner[0] * 0.3, own[1] * 0.6, torch.tensor(0.0)]).mean()
    torch.testing.assert_close(kd_bce_loss(y_hat, teacher, 1.0, lam, perm, available), expected)
    kl = kd_kl_loss(y_hat, teacher, 2.0, available)
    torch.testing.assert_close(kl, kd_kl_loss(y_hat[:2], teacher[:2], 2.0) * 2 / 3)
