from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tympan.analysis.robustness import adversarial_risk, fgsm, laplacian_mc, pc_stress, pgd
from tympan.errors import ConfigError


def _linear_binary(generator, dims=6):
    """Two-logit linear model whose decision function is wᵀx + b (logit 1 − logit 0)."""
    model = nn.Linear(dims, 2)
    with torch.no_grad():
        w = torch.randn(dims, generator=generator)
        model.weight.copy_(torch.stack([-w / 2, w / 2]))
        model.bias.copy_(torch.tensor([-0.1, 0.1]))
    return model, w, torch.tensor(0.2)


def test_pgd_l2_accuracy_equals_share_of_points_beyond_eps(generator):
    model, w, b = _linear_binary(generator)
    x = torch.randn(400, 6, generator=generator)
    y = model(x).argmax(1)  # every point starts correctly classified
    distance = (x @ w + b).abs() / w.norm()
    for eps in (0.1, 0.5, 1.0):
        adversarial = pgd(model, x, y, eps, norm="l2", steps=20, step_size=eps / 2)
        accuracy = (model(adversarial).argmax(1) == y).float().mean()
        expected = (distance > eps).float().mean()
        assert accuracy == pytest.approx(float(expected), abs=1 / 400)


def test_pgd_stays_in_ball_and_range(generator):
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.rand(32, 8, generator=generator) * 2 - 1
    y = torch.randint(0, 3, (32,), generator=generator)
    for norm in ("linf", "l2"):
        adversarial = pgd(model, x, y, 0.3, norm=norm, steps=10, random_start=True, clamp=(-1, 1), generator=generator)
        delta = adversarial - x
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert (size <= 0.3 + 1e-6).all()
        assert adversarial.min() >= -1 and adversarial.max() <= 1


def test_targeted_attack_reaches_its_target(generator):
    model = nn.Linear(4, 3)
    x = torch.randn(50, 4, generator=generator)
    target = (model(x).argmax(1) + 1) % 3
    adversarial = pgd(model, x, target, 50.0, norm="l2", steps=50, targeted=True)
    assert (model(adversarial).argmax(1) == target).float().mean() > 0.95


def test_fgsm_is_one_signed_step(generator):
    model, w, _ = _linear_binary(generator)
    x = torch.randn(5, 6, generator=generator)
    y = torch.zeros(5, dtype=torch.long)  # raising the loss of class 0 pushes along +w
    adversarial = fgsm(model, x, y, 0.25)
    torch.testing.assert_close(adversarial - x, 0.25 * w.sign().expand(5, -1))


def test_adversarial_risk_table(generator):
    model, _, _ = _linear_binary(generator)
    x = torch.randn(100, 6, generator=generator)
    y = model(x).argmax(1)
    points = adversarial_risk(model, [(x, y)], [0.0, 0.5, 5.0], norm="l2", steps=10)
    assert points[0].accuracy == 1.0 and points[0].risk == 0.0
    assert points[0].risk <= points[1].risk <= points[2].risk
    with pytest.raises(ConfigError, match="num_classes"):
        adversarial_risk(model, [(x, y)], [0.1], targeted=True)


def test_pc_stress_matches_the_sphere_cap_probability(generator):
    dims, delta = 5, 0.3
    model, w, b = _linear_binary(generator, dims)
    # A point at distance delta from the boundary, on the positive side.
    x = (delta - b / w.norm()) * w / w.norm()
    stress = pc_stress(model, x.unsqueeze(0), [0.2, 0.6, 1.2], num_directions=4000, generator=generator)[0]
    # P(flip) = P(u1 > delta/eps) for u uniform on the unit sphere in `dims` dimensions.
    samples = torch.randn(400_000, dims, generator=torch.Generator().manual_seed(9))
    first = samples[:, 0] / samples.norm(dim=1)
    for value, eps in zip(stress, (0.2, 0.6, 1.2), strict=True):
        expected = float((first > delta / eps).float().mean())
        assert float(value) == pytest.approx(expected, abs=4 * math.sqrt(0.25 / 4000) + 1e-3)


def test_laplacian_of_a_quadratic_is_twice_the_trace(generator):
    a = torch.randn(6, 6, generator=generator)
    x = torch.randn(3, 6, generator=generator)
    estimate = laplacian_mc(lambda z: ((z @ a) * z).sum(-1), x, 0.5, num_directions=20_000, generator=generator)
    torch.testing.assert_close(estimate, torch.full((3,), 2 * float(a.trace())), atol=0.15, rtol=0.05)


def test_pgd_rejects_unknown_norm():
    with pytest.raises(ConfigError):
        pgd(nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 0.1, norm="l1")
