from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tympan.analysis.receptive_field import receptive_field, reference_max_rf
from tympan.models import create
from tympan.models.cp_resnet import DCASE20_KWARGS, CPResNet, CPResNetConfig


class _ResidualNet(nn.Module):
    """Strided stem, a residual block with pooled shortcut, dilation and max-pooling: every rule at once."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 5, stride=2, padding=2)
        self.branch = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, (3, 1), padding=(1, 0)))
        self.pool = nn.MaxPool2d(2)
        self.dilated = nn.Conv2d(2, 2, 3, padding=2, dilation=2)
        self.head = nn.AdaptiveAvgPool2d(1)

    def forward_map(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.branch(x))
        return self.dilated(self.pool(x))

    def forward(self, x):
        return self.head(self.forward_map(x)).flatten(1)


@torch.no_grad()
def _empirical_extent(forward, shape):
    """Rows and columns of the input whose raising changes the centre output (positive weights, ones input).

    With positive weights every unit is monotone in its inputs, and on a constant input raising any element
    inside a max-pool window changes the maximum: the change is visible exactly within the receptive field.
    """
    _, _, rows, cols = shape

    def reached(masks):
        masks = torch.cat([torch.zeros_like(masks[:1]), masks])  # row 0: the unperturbed input, same batch
        out = forward(torch.ones(shape) + 100 * masks.unsqueeze(1))
        centre = out[:, 0, out.shape[2] // 2, out.shape[3] // 2]
        return int(((centre[1:] - centre[0]).abs() > 1e-3 * centre[0].abs()).sum())

    row_masks = torch.eye(rows).unsqueeze(2).expand(rows, rows, cols)
    col_masks = torch.eye(cols).unsqueeze(1).expand(cols, rows, cols)
    return reached(row_masks), reached(col_masks)


def _positive(model):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.abs() + 0.01)
    return model


def test_traced_field_matches_hand_arithmetic():
    fields = {f.name: f for f in receptive_field(_ResidualNet(), (1, 1, 64, 64))}
    assert (fields["stem"].freq.size, fields["stem"].freq.jump) == (5, 2)
    assert fields["branch.2"].freq.size == 5 + 2 * 2 + 2 * 2  # two 3-tall convs at jump 2
    assert fields["branch.2"].time.size == 5 + 2 * 2  # the second conv is 1 wide in time
    assert (fields["pool"].freq.size, fields["pool"].freq.jump) == (13 + 2, 4)
    assert fields["dilated"].freq.size == 15 + 2 * 2 * 4
    assert math.isinf(fields["head"].freq.size) and fields["head"].freq.is_global


def test_traced_field_equals_the_perturbation_support():
    model = _positive(_ResidualNet())
    fields = {f.name: f for f in receptive_field(model, (1, 1, 80, 80))}
    assert _empirical_extent(model.forward_map, (1, 1, 80, 80)) == (
        fields["dilated"].freq.size,
        fields["dilated"].time.size,
    )


def test_cp_resnet_field_equals_the_perturbation_support():
    model = create("cp_resnet", rho=4, base_channels=8, cut_channels_s3=0)
    _positive(model)
    model.eval()
    traced = receptive_field(model, (1, 1, 160, 96))
    last_map = [f for f in traced if not f.freq.is_global][-1]
    extent = _empirical_extent(model.forward_map, (1, 1, 160, 96))
    assert extent == (min(last_map.freq.size, 160), min(last_map.time.size, 96))


# The over-parameterisation / RF-regularisation papers' table (specs: congater_and_robustness.md §3.1).
PAPERS_MAX_RF = {0: 9, 3: 49, 5: 81, 7: 145, 9: 209, 12: 305, 15: 401}


@pytest.mark.parametrize(("rho", "expected"), sorted(PAPERS_MAX_RF.items()))
def test_dcase20_rho_rule_reproduces_the_papers_max_rf_table(rho, expected):
    config = CPResNetConfig.from_reference(rho=rho, **DCASE20_KWARGS)
    assert reference_max_rf(config) == expected


def test_true_field_of_the_dcase20_model_counts_its_pools():
    """rho 0 has one 3x3 conv: stem 5, +2·2 for the conv, and +2, +4, +8 for the three stage-1 pools."""
    model = CPResNet(CPResNetConfig.from_reference(rho=0, **DCASE20_KWARGS))
    last = [f for f in receptive_field(model, (1, 2, 256, 64)) if f.name.startswith("stage3")][-1]
    assert (last.freq.size, last.time.size) == (23, 23)
