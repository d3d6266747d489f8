from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tympan.analysis.influence import conjugate_gradient, influence, predicted_loo_change

WEIGHT_DECAY = 0.01


def _fit(x, y, dims):
    """L2-regularised logistic regression trained to (numerical) convergence with L-BFGS."""
    torch.manual_seed(0)
    model = nn.Linear(dims, 2).double()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-12,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        flat = torch.cat([p.flatten() for p in model.parameters()])
        loss = F.cross_entropy(model(x), y) + 0.5 * WEIGHT_DECAY * flat @ flat
        loss.backward()
        return loss

    optimizer.step(closure)
    return model


def test_conjugate_gradient_solves_spd_systems(generator):
    m = torch.randn(8, 8, generator=generator, dtype=torch.float64)
    a = m @ m.T + torch.eye(8, dtype=torch.float64)
    b = torch.randn(8, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(conjugate_gradient(lambda v: a @ v, b), torch.linalg.solve(a, b))


def test_influence_predicts_leave_one_out_retraining(generator):
    dims, n = 10, 200
    x = torch.randn(n, dims, generator=generator, dtype=torch.float64)
    y = ((x[:, 0] + 0.5 * torch.randn(n, generator=generator, dtype=torch.float64)) > 0).long()
    x_test, y_test = x[:3] + 0.3, y[:3]
    model = _fit(x, y, dims)
    scores = {
        method: influence(model, F.cross_entropy, (x, y), (x_test, y_test), weight_decay=WEIGHT_DECAY, method=method)
        for method in ("exact", "cg")
    }
    torch.testing.assert_close(scores["cg"], scores["exact"], atol=1e-8, rtol=1e-6)
    predicted = predicted_loo_change(scores["exact"], n)[0]

    def test_loss(fitted: nn.Module) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(fitted(x_test[:1]), y_test[:1]))

    left_out = list(range(0, n, 10))
    actual = [test_loss(_fit(x[torch.arange(n) != i], y[torch.arange(n) != i], dims)) - test_loss(model)
              for i in left_out]
    actual = torch.tensor(actual, dtype=torch.float64)
    correlation = torch.corrcoef(torch.stack([predicted[left_out], actual]))[0, 1]
    assert correlation > 0.95
