from __future__ import annotations

import pytest
import torch
from torch import nn

from tympan.errors import CheckpointError
from tympan.models.checkpoint import load_checkpoint, read_state_dict


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model": sd},
        lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "hyper_parameters": {}},
        lambda sd: {"state_dict": {f"model.net.{k}": v for k, v in sd.items()}},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
    ],
    ids=["plain", "state_dict", "model", "lightning", "lightning_net", "ddp"],
)
def test_layouts_load_strictly(tmp_path, wrap):
    source, target = _net(), _net()
    torch.nn.init.normal_(source[0].weight)
    path = tmp_path / "ckpt.pt"
    torch.save(wrap(source.state_dict()), path)
    load_checkpoint(target, path)
    for key, value in source.state_dict().items():
        assert torch.equal(value, target.state_dict()[key])


def test_mismatch_names_missing_unexpected_and_shapes():
    state = _net().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["1.bias"]
    state["0.weight"] = torch.zeros(4, 1, 5, 5)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(_net(), state)
    message = str(info.value)
    assert "1.bias" in message and "extra.weight" in message and "(4, 1, 5, 5)" in message


def test_unreadable_files_raise_our_error(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        read_state_dict(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        read_state_dict({"epoch": 1})
