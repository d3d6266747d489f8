"""train.schedules: the reference LambdaLR factors at every epoch."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import load_reference
from tympan.errors import ConfigError
from tympan.train.schedules import cosine_with_warmup, exp_warmup_linear_down


@pytest.mark.parametrize("run", ["student_kd", "cpresnet_teacher", "passt_teacher", "qat"])
def test_exp_warmup_linear_down_matches_reference(run):
    case = load_reference("dcase23", "augment_loss_schedule_cases.pt")["lr_schedules"][run]
    args = case["args"]
    factor = exp_warmup_linear_down(
        args["warm_up_len"], args["ramp_down_len"], args["ramp_down_start"], args["last_lr_value"]
    )
    ours = [factor(epoch) for epoch in range(case["n_epochs"] + 1)]
    assert ours == pytest.approx(case["factors"], rel=1e-12, abs=0)


def test_exp_warmup_linear_down_known_values():
    student = exp_warmup_linear_down(14, 84, 50, 0.005)
    assert student(0) == pytest.approx(0.00957, abs=1e-5) and student(14) == student(50) == 1.0
    assert student(92) == pytest.approx(0.5025) and student(134) == student(149) == 0.005
    efficientat = exp_warmup_linear_down(8, 95, 80, 0.01)
    assert efficientat(0) == pytest.approx(0.0124, abs=1e-4) and efficientat(175) == 0.01
    with pytest.raises(ConfigError):
        exp_warmup_linear_down(5, 10, 5, 1.5)


def test_schedules_drive_lambda_lr():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=9e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, exp_warmup_linear_down(14, 84, 50, 0.005))
    for _ in range(149):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(4.5e-6)  # the trained checkpoint's final lr


def test_cosine_with_warmup():
    factor = cosine_with_warmup(10, 110)
    assert factor(0) == 0.0 and factor(5) == 0.5 and factor(10) == 1.0
    assert factor(60) == pytest.approx(0.5) and factor(110) == pytest.approx(0.0, abs=1e-12)
    assert factor(35) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    with pytest.raises(ConfigError):
        cosine_with_warmup(10, 10)
