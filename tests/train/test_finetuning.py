"""Fine-tuning on small data: step-based run plans, per-group learning rates, frozen backbone BatchNorm, head
re-initialisation with a strict load of the rest, the stratified validation split, and a tiny end-to-end run."""

from __future__ import annotations

import functools
import logging

import numpy as np
import pytest
import torch

import tympan
from tests.train._data import RATE, TONES, write_tone_dataset
from tympan.data.metadata import ClipRecord, ClipTable
from tympan.data.splits import stratified_split
from tympan.errors import CheckpointError, ConfigError
from tympan.models import TympanCheckpoint, create, save_checkpoint
from tympan.train import SceneSystem, finetune
from tympan.train.schedules import plan_steps
from tympan.train.systems import build_model
from tympan.train.transfer import classifier_keys, parameter_groups

from ._tiny import tiny_model

# ------------------------------------------------------------------------------------------------ run plans


def test_a_small_set_runs_the_minimum_steps_with_warmup_and_rampdown_in_steps():
    plan = plan_steps(43, 32, epochs=8, min_steps=120)  # the case: 8 epochs of one step each
    assert (plan.batch_size, plan.steps_per_epoch, plan.steps) == (32, 1, 120)
    assert (plan.warmup_steps, plan.rampdown_start_step, plan.rampdown_steps) == (12, 60, 60)
    assert plan_steps(4000, 16, epochs=2, min_steps=120).steps == 500  # a large set: its epochs decide
    assert plan_steps(43, 16, steps=30, min_steps=120).steps == 30  # steps are exact


def test_the_batch_is_never_larger_than_the_training_set():
    plan = plan_steps(5, 16, epochs=1, min_steps=10)
    assert (plan.batch_size, plan.steps_per_epoch, plan.steps) == (5, 1, 10)
    with pytest.raises(ConfigError, match="epochs or as steps"):
        plan_steps(5, 16, epochs=1, steps=3)
    with pytest.raises(ConfigError):
        plan_steps(0, 16, epochs=1)


def test_the_step_schedule_is_stepped_per_optimizer_step():
    system = SceneSystem(tiny_model(3), lr=0.1, warmup_steps=4, rampdown_start_step=6, rampdown_steps=10,
                         last_lr_factor=0.01)  # fmt: skip
    config = system.configure_optimizers()
    scheduler, optimizer = config["lr_scheduler"]["scheduler"], config["optimizer"]
    assert config["lr_scheduler"]["interval"] == "step"
    rates = []
    for _ in range(17):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] < 0.01 and rates[4] == pytest.approx(0.1) and rates[6] == pytest.approx(0.1)
    assert rates[11] == pytest.approx(0.1 * (0.01 + 0.99 * 0.5)) and rates[16] == pytest.approx(0.001)
    with pytest.raises(ConfigError, match="epochs or in steps"):
        SceneSystem(tiny_model(3), warmup_steps=4, warmup_epochs=2)


# ---------------------------------------------------------------------------------- learning rates, BatchNorm


def test_the_head_learns_faster_and_layer_decay_slows_earlier_layers():
    model = create("cp_mobile_dcase23")
    head = classifier_keys(model)
    assert head == ["feed_forward.0.weight", *(f"feed_forward.1.{k}" for k in
                    ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"))]  # fmt: skip
    groups = parameter_groups(model, head, lr=1e-3, backbone_lr_factor=0.1)
    assert [g["lr"] for g in groups] == pytest.approx([1e-4] * (len(groups) - 1) + [1e-3])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    decayed = parameter_groups(model, head, lr=1e-3, backbone_lr_factor=0.1, layer_decay=0.5)
    rates = [g["lr"] for g in decayed]
    assert rates[-1] == 1e-3 and rates[-2] == pytest.approx(1e-4) and rates[-3] == pytest.approx(5e-5)
    assert rates[:-1] == sorted(rates[:-1]) and len(decayed) == 6  # in_c.0, in_c.1, s1, s2, s3; then the head


def test_frozen_backbone_batchnorm_keeps_its_statistics_in_training(generator):
    system = SceneSystem(tiny_model(3), freeze_backbone_bn=True, backbone_lr_factor=0.1).train()
    norm = system.model.conv[1]
    before = norm.running_mean.clone()
    batch = {"audio": torch.randn(4, 4000, generator=generator), "target": torch.tensor([0, 1, 2, 0]),
             "id": ["a", "b", "c", "d"], "index": torch.arange(4), "device_index": torch.zeros(4, dtype=torch.long)}
    system.training_step(batch, 0)
    assert not norm.training and system.model.training and torch.equal(norm.running_mean, before)
    free = SceneSystem(tiny_model(3)).train()
    free.training_step(batch, 0)
    assert free.model.conv[1].training and not torch.equal(free.model.conv[1].running_mean, before)


# ---------------------------------------------------------------------------------------- head re-initialisation


def _described(model, labels, path):
    return save_checkpoint(TympanCheckpoint(model.spec.with_labels(labels), model.state_dict()), path)


def test_other_labels_reinitialise_the_head_and_load_the_rest_strictly(tmp_path, caplog):
    source = tiny_model(4, seed=1)
    torch.save(source.state_dict(), tmp_path / "four.pt")
    with caplog.at_level(logging.INFO, logger="tympan.train.transfer"):
        network, reinitialised = build_model("tiny_test", 2, str(tmp_path / "four.pt"), None, ["x", "y"])
    assert reinitialised == ["head.weight", "head.bias"] and network.head.out_features == 2
    assert "re-initialised the classifier" in caplog.text and "head.weight, head.bias" in caplog.text
    assert torch.equal(network.conv[0].weight, source.conv[0].weight)
    assert torch.equal(network.conv[1].running_var, source.conv[1].running_var)
    broken = {k: v for k, v in source.state_dict().items() if k != "conv.0.bias"}
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=r"conv\.0\.bias"):  # the rest of the network still loads strictly
        build_model("tiny_test", 2, str(tmp_path / "broken.pt"), None, ["x", "y"])


def test_the_head_is_kept_only_for_the_same_labels(tmp_path):
    source = tiny_model(2, seed=1)
    _described(source, ["x", "y"], tmp_path / "described.ckpt")
    kept, reinitialised = build_model("tiny_test", 2, str(tmp_path / "described.ckpt"), None, ["x", "y"])
    assert reinitialised == [] and torch.equal(kept.head.weight, source.head.weight)
    renamed, reinitialised = build_model("tiny_test", 2, str(tmp_path / "described.ckpt"), None, ["y", "z"])
    assert reinitialised == ["head.weight", "head.bias"] and not torch.equal(renamed.head.weight, source.head.weight)


# ---------------------------------------------------------------------------------------- the validation split


def _table(counts: list[int], multi: list[tuple[int, ...]] | None = None) -> ClipTable:
    targets = multi or [(label,) for label, count in enumerate(counts) for _ in range(count)]
    records = tuple(ClipRecord(f"c{i}", f"c{i}.wav", t) for i, t in enumerate(targets))
    return ClipTable(records, tuple(f"l{i}" for i in range(len(counts))), multi_label=multi is not None, name="t")


def _labels(table: ClipTable, indices: list[int]) -> list[int]:
    return sorted(table.records[i].targets[0] for i in indices)


def test_the_split_holds_out_part_of_every_class_but_never_its_last_clip():
    table = _table([20, 5, 2, 1])
    train, val = stratified_split(table, 0.1, seed=3)
    assert _labels(table, val) == [0, 0, 1, 2]  # 10 % of 20, at least 1 of 5 and of 2, none of the single clip
    assert set(_labels(table, train)) == {0, 1, 2, 3} and sorted(train + val) == list(range(28))
    assert stratified_split(table, 0.1, seed=3) == (train, val)  # seeded
    assert stratified_split(table, 0.0) == (list(range(28)), [])


def test_a_set_too_small_to_hold_out_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="tympan.data.splits"):
        train, val = stratified_split(_table([1, 1, 1]), 0.2)
    assert (train, val) == ([0, 1, 2], []) and "too small to hold out validation clips" in caplog.text


def test_multi_label_clips_are_grouped_by_their_rarest_label():
    table = _table([6, 2], multi=[(0,), (0,), (0,), (0,), (0, 1), (0, 1)])
    train, val = stratified_split(table, 0.1)
    assert len(val) == 2 and {4, 5} & set(train) and {4, 5} & set(val)  # label 1 on both sides


# ---------------------------------------------------------------------------------------------- end to end


def test_finetune_from_a_checkpoint_with_other_labels_learns_three_tones(tmp_path, caplog):
    csv = write_tone_dataset(tmp_path / "data", per_class=6, classes=3, split=False)
    torch.save(tiny_model(4, seed=1).state_dict(), tmp_path / "pretrained.pt")
    with caplog.at_level(logging.INFO, logger="tympan"):
        result = finetune(csv, "tiny_test", checkpoint=tmp_path / "pretrained.pt", steps=40, lr=0.05,
                          output=tmp_path / "run", progress=False, accelerator="cpu")  # fmt: skip
    assert "re-initialised the classifier" in caplog.text and "backbone BatchNorm statistics frozen" in caplog.text
    assert "batch size 16 -> 15" in caplog.text and "training 40 optimizer steps" in caplog.text
    assert result.metrics["val/accuracy"] == 1.0  # one held-out clip per class
    t = np.arange(RATE // 2) / RATE
    rng = np.random.default_rng(7)
    fresh = np.stack([0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.normal(size=len(t)) for f in TONES.values()])
    scores = tympan.load(checkpoint=result.checkpoint, device="cpu")(fresh.astype(np.float32), RATE)
    assert list(np.array(result.labels)[scores.argmax(1)]) == list(TONES)


def test_finetune_takes_an_injected_optimiser_whose_rate_is_the_heads(tmp_path, caplog):
    csv = write_tone_dataset(tmp_path / "data", per_class=3, classes=2, split=False)
    sgd = functools.partial(torch.optim.SGD, lr=0.02, momentum=0.9)
    with caplog.at_level(logging.INFO, logger="tympan"):
        result = finetune(csv, "tiny_test", pretrained=False, steps=2, optimizer=sgd, backbone_lr_factor=0.5,
                          output=tmp_path / "run", progress=False, accelerator="cpu")  # fmt: skip
    assert "head lr 0.02, backbone lr 0.01" in caplog.text and result.checkpoint.is_file()
    with pytest.raises(ConfigError, match="inside `optimizer`"):
        finetune(csv, "tiny_test", optimizer=sgd, lr=0.1, output=tmp_path / "other")
