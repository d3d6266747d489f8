"""``tympan finetune`` end to end on a small generated dataset, and the checkpoint it writes."""

from __future__ import annotations

import json

import torch

from tests.train._data import write_tone_dataset
from tests.train._tiny import TINY_FRONTEND
from tympan.cli import main
from tympan.models import create


def test_finetune_writes_a_self_describing_checkpoint(tmp_path, capsys):
    csv = write_tone_dataset(tmp_path / "data", per_class=8)
    status = main([
        "finetune", "--data", str(csv), "--model", "tiny_test", "--epochs", "4", "--output", str(tmp_path / "run"),
        "--batch-size", "4", "--lr", "0.03", "--mixup", "0", "--quiet", "--accelerator", "cpu",
    ])  # fmt: skip
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["labels"] == ["low", "mid"] and printed["metrics"]["val/accuracy"] == 1.0
    checkpoint = torch.load(tmp_path / "run" / "model.ckpt", weights_only=True)
    description = checkpoint["tympan"]
    assert description["arch"] == "tiny_test" and description["labels"] == ["low", "mid"]
    assert description["frontend"] == TINY_FRONTEND.to_dict() and description["multilabel"] is False
    params = sum(p.numel() for p in create("tiny_test", num_classes=2).parameters())
    assert description["complexity"]["params"] == params
    assert all(k.startswith("model.") for k in checkpoint["state_dict"])
    model = create(description["arch"], **description["model_kwargs"])
    model.load_state_dict({k[6:]: v for k, v in checkpoint["state_dict"].items()})  # strict
