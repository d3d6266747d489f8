"""``tympan finetune`` end to end on a small generated dataset; then ``evaluate`` and ``distill`` on its output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tympan
from tests.train._data import write_tone_dataset
from tests.train._tiny import TINY_FRONTEND
from tympan.cli import main
from tympan.distill import TeacherLogitStore
from tympan.models import build, create, read_checkpoint


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    csv = write_tone_dataset(root / "data", per_class=8)
    status = main([
        "finetune", "--data", str(csv), "--model", "tiny_test", "--epochs", "4", "--output", str(root / "run"),
        "--batch-size", "4", "--lr", "0.03", "--quiet", "--accelerator", "cpu",
    ])  # fmt: skip
    assert status == 0
    return root, csv


def test_finetune_writes_a_self_describing_checkpoint(finetuned, capsys):
    root, _ = finetuned
    stored = read_checkpoint(root / "run" / "model.ckpt")
    spec = stored.spec
    assert spec.arch == "tiny_test" and spec.labels == ("low", "mid")
    assert spec.frontend == TINY_FRONTEND and spec.multilabel is False
    assert stored.metrics["val/accuracy"] == 1.0
    assert spec.clip_seconds == pytest.approx(0.5)  # the median file duration, the window tagging uses
    assert tympan.load(checkpoint=root / "run" / "model.ckpt").clip_seconds == pytest.approx(0.5)
    params = sum(p.numel() for p in create("tiny_test", num_classes=2).parameters())
    assert stored.provenance["complexity"]["params"] == params
    assert all(k.startswith("model.") for k in torch.load(root / "run" / "model.ckpt", weights_only=True)["state_dict"])
    build(spec).load_state_dict(stored.state_dict)  # strict


def test_evaluate_prints_writes_json_and_plots(finetuned, capsys):
    root, csv = finetuned
    capsys.readouterr()
    status = main(["evaluate", str(root / "run" / "model.ckpt"), "--data", str(csv), "--clip-seconds", "0.5",
                   "--device", "cpu", "--output", str(root / "eval"), "--format", "json"])  # fmt: skip
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clips"] == 4 and result["accuracy"] == 1.0  # the test split
    assert set(result["accuracy_per_device"]) == {"a", "b"} and result["device_groups"]["seen"] == ["a", "b"]
    assert json.loads((root / "eval" / "metrics.json").read_text())["accuracy"] == 1.0
    assert (root / "eval" / "confusion_matrix.png").stat().st_size > 0
    assert (root / "eval" / "accuracy_per_device.png").stat().st_size > 0


def test_distill_stores_the_teacher_logits_by_id(finetuned, capsys):
    root, csv = finetuned
    capsys.readouterr()
    out = root / "teacher.npy"
    status = main(["distill", "--teacher", str(root / "run" / "model.ckpt"), "--data", str(csv), "--out", str(out),
                   "--clip-seconds", "0.5", "--device", "cpu"])  # fmt: skip
    assert status == 0 and json.loads(capsys.readouterr().out)["clips"] == 16
    store = TeacherLogitStore(out)
    labels = np.array([name.split("_")[0] for name in store.metadata["ids"]])
    predicted = np.array(["low", "mid"])[store.logits.argmax(axis=1)]
    assert (predicted == labels).mean() >= 0.9
