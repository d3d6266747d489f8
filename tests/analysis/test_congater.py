from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from tympan.analysis.attribute_probe import LabelledSplit, congater_sweep, omega_grid
from tympan.errors import ConfigError
from tympan.models import create
from tympan.models.congater import (
    AdversaryHeads,
    ConGater,
    ControlGate,
    GatedModel,
    gradient_reversal,
    recorded_gates,
)
from tympan.train.congater import ConGaterSystem, fit_congater


def _tiny_passt(num_classes=4):
    torch.manual_seed(0)
    return create(
        "passt", img_size=(32, 40), patch_size=8, stride=(8, 8), embed_dim=32, depth=2, num_heads=2,
        num_classes=num_classes, s_patchout_t=0, s_patchout_f=0,
    )


def _mel(generator, n=6):
    return torch.randn(n, 1, 32, 40, generator=generator)


@pytest.mark.parametrize("placement", ["last", "all"])
def test_omega_zero_is_exactly_the_backbone(placement, generator):
    backbone = _tiny_passt()
    gated = GatedModel(backbone, ["device", "city"], placement=placement).eval()
    with torch.no_grad():
        # trained-looking gates: ω = 0 must ignore them entirely
        for parameter in gated.gaters.parameters():
            parameter.normal_(generator=generator)
        mel = _mel(generator)
        assert torch.equal(gated(mel, {"device": 0.0, "city": 0.0}), backbone(mel))
        assert not torch.equal(gated(mel, {"device": 1.0}), backbone(mel))


@pytest.mark.parametrize(("placement", "count"), [("last", 1), ("all", 2)])
def test_recorded_gates_are_the_gates_applied(placement, count, generator):
    gated = GatedModel(_tiny_passt(), ["device"], placement=placement).eval()
    mel = _mel(generator)
    with torch.no_grad():
        for parameter in gated.gaters.parameters():
            parameter.normal_(generator=generator)
    with torch.no_grad(), recorded_gates(gated) as gates:
        gated(mel, {"device": 0.0})
        assert gates == []  # no gate is applied at omega = 0
        gated(mel, {"device": 1.0})
    assert len(gates) == count
    tokens = gated.backbone.forward_input_sequence(mel)
    assert all(gate.shape == tokens.shape for gate in gates)
    if placement == "all":  # the first block's gate is computed from the input tokens
        assert torch.allclose(gates[0], gated.gaters[0](tokens, {"device": 1.0}))
    assert not gated.gaters[0]._forward_hooks  # the hooks are removed afterwards


def test_cnn_backbones_are_gated_on_the_embedding(generator):
    backbone = create("cp_resnet", rho=2, base_channels=8, cut_channels_s3=0, num_classes=3)
    gated = GatedModel(backbone, ["device"]).eval()
    mel = torch.randn(2, 1, 64, 20, generator=generator)
    with torch.no_grad():
        assert torch.equal(gated(mel), backbone(mel))
    with pytest.raises(ConfigError, match="transformer"):
        GatedModel(backbone, ["device"], placement="all")


def test_gate_starts_near_identity_and_falls_with_omega(generator):
    gate = ControlGate(16)
    h = torch.randn(5, 16, generator=generator)
    assert (gate(h, 1.0) - 1).abs().max() < 3e-3
    with torch.no_grad():
        gate.layers[-1].weight.normal_(generator=generator)
    values = torch.stack([gate(h, w) for w in torch.linspace(0, 1, 11).tolist()])
    assert torch.equal(values[0], torch.ones_like(values[0]))
    assert (values[1:] <= values[:-1] + 1e-7).all()
    torch.testing.assert_close(values[-1], torch.sigmoid(gate.layers(h)))


def test_three_attribute_gates_multiply(generator):
    gater = ConGater(8, ["device", "city", "season"])
    with torch.no_grad():
        for parameter in gater.parameters():
            parameter.normal_(generator=generator)
    h = torch.randn(3, 8, generator=generator)
    omega = {"device": 1.0, "city": 0.5, "season": 0.25}
    expected = gater.gates["device"](h, 1.0) * gater.gates["city"](h, 0.5) * gater.gates["season"](h, 0.25)
    torch.testing.assert_close(gater(h, omega), expected)
    with pytest.raises(ConfigError, match="no gate"):
        gater(h, {"weather": 1.0})


def test_gradient_reversal_flips_and_scales():
    x = torch.ones(3, requires_grad=True)
    (gradient_reversal(x, 0.7) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([-0.7, -1.4, -2.1]))


def test_adversary_heads_are_independent_mlps(generator):
    heads = AdversaryHeads(8, 5, num_heads=3)
    outputs = heads(torch.randn(4, 8, generator=generator))
    assert len(outputs) == 3 and all(o.shape == (4, 5) for o in outputs)


@pytest.mark.parametrize("mode", ["par", "post"])
def test_each_step_trains_only_its_parameters(mode):
    model = GatedModel(_tiny_passt(), ["device", "city"])
    system = ConGaterSystem(model, {"device": 3, "city": 2}, mode=mode)
    task, device_step, _ = system.configure_optimizers()
    task_ids = {id(p) for group in task.param_groups for p in group["params"]}
    device_ids = {id(p) for group in device_step.param_groups for p in group["params"]}
    gate_ids = {id(p) for p in model.gate_parameters("device")}
    head_ids = {id(p) for p in model.backbone.head.parameters()}
    assert gate_ids <= device_ids and not gate_ids & task_ids
    assert {id(p) for p in model.backbone.blocks.parameters()} <= task_ids
    assert not {id(p) for p in model.gate_parameters("city")} & device_ids
    assert (head_ids <= device_ids) == (mode == "par")


def _toy_batches(generator, n=24):
    mel = _mel(generator, n)
    target = torch.randint(0, 4, (n,), generator=generator)
    device = torch.randint(0, 3, (n,), generator=generator)
    mel = mel + device.view(-1, 1, 1, 1) * 0.5  # the device leaves a trace
    return mel, target, device


def test_training_moves_the_gates_and_the_sweep_reports_every_omega(generator):
    mel, target, device = _toy_batches(generator)
    model = GatedModel(_tiny_passt(), ["device"])
    before = [p.clone() for p in model.gate_parameters("device")]
    system = ConGaterSystem(model, {"device": 3}, mode="post", gate_lr=1e-2)
    items = [{"mel": m, "target": t, "device_index": d} for m, t, d in zip(mel, target, device, strict=True)]
    fit_congater(system, DataLoader(items, batch_size=8), epochs=1)
    assert any(not torch.equal(b, a) for b, a in zip(before, model.gate_parameters("device"), strict=True))

    split = LabelledSplit(mel, target, {"device": device})
    grid = omega_grid(["device"], [0.0, 1.0, 0.0])
    rows = congater_sweep(model, split, split, grid, device_names=["a", "b", "c"], probe_epochs=3)
    assert [r["omega"] for r in rows] == grid
    assert set(rows[0]["device_accuracy"]) <= {"a", "b", "c"}
    assert rows[0] == rows[2]  # a fresh, identically seeded probe for every ω
    assert 0 <= rows[1]["device_probe_balanced_accuracy"] <= 1
