"""DCASE25 device-specific adaptation: both stages from one recipe on tiny data, routing by device, the saved file."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from tests.train._data import write_tone_dataset
from tympan.audio.frontend import MelFrontend
from tympan.cli import main
from tympan.models.device_specific import load_device_specific
from tympan.train.recipes import train_from_config

from . import _tiny  # registers the tiny architecture


def _recipe(tmp_path, csv) -> str:
    path = tmp_path / "dcase25_tiny.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"class_path": "tympan.train.SceneSystem",
                  "init_args": {"model": "tiny_test", "lr": 0.03, "adamw": True, "lr_schedule": "cosine_with_warmup",
                                "warmup_steps": 1, "roll_samples": 100}},
        "data": {"data": str(csv), "sample_rate": 8000, "clip_seconds": 0.5, "batch_size": 4},
        "trainer": {"max_epochs": 3, "accelerator": "cpu", "enable_progress_bar": False, "logger": False,
                    "enable_checkpointing": False, "enable_model_summary": False,
                    "default_root_dir": str(tmp_path / "run")},
        "device_specific": {"max_epochs": 2, "lr": 0.01, "warmup_steps": 1, "check_val_every_n_epoch": 1},
    }))  # fmt: skip
    return str(path)


def test_one_command_runs_both_stages_and_each_device_gets_its_own_model(tmp_path, capsys):
    csv = write_tone_dataset(tmp_path / "data", per_class=8, classes=3, devices=("a", "b"))
    assert main(["train", "--config", _recipe(tmp_path, csv)]) == 0  # `tympan train --config dcase25_...`
    results = json.loads(capsys.readouterr().out)
    for model in ("general", "device_specific"):  # evaluated per device on the test split
        assert {f"{model}/accuracy", f"{model}/macro_accuracy", f"{model}/accuracy/a", f"{model}/accuracy/b"} <= set(
            results)  # fmt: skip
    assert results["general/accuracy"] == results["val/accuracy"]  # stage 1's validation is the same clips

    routed = load_device_specific(tmp_path / "run" / "device_specific.ckpt")
    assert routed.devices == ["a", "b"] and routed.labels == ["high", "low", "mid"]
    general = routed.general.state_dict()
    for device in ("a", "b"):  # every parameter was fine-tuned, starting from the general model
        tuned = routed.per_device[device].state_dict()
        assert not torch.equal(tuned["conv.0.weight"], general["conv.0.weight"])
    assert not torch.equal(routed.per_device["a"].state_dict()["head.weight"],
                           routed.per_device["b"].state_dict()["head.weight"])  # fmt: skip

    mel = MelFrontend.from_config(routed.frontend_config).eval()(
        0.1 * torch.randn(4, 4000, generator=torch.Generator().manual_seed(0))).unsqueeze(1)  # fmt: skip
    with torch.no_grad():
        logits = routed(mel, ["b", "a", "s4", None])  # a mixed batch: known, unseen and unknown devices
        assert torch.equal(logits[0], routed.per_device["b"](mel[:1])[0])
        assert torch.equal(logits[1], routed.per_device["a"](mel[1:2])[0])
        assert torch.equal(logits[2:], routed.general(mel[2:]))
        assert torch.equal(routed(mel), routed.general(mel))  # no device metadata: the general model
        assert not torch.allclose(routed(mel, ["a"] * 4), routed.general(mel))

    import tympan

    pipeline = tympan.load(checkpoint=tmp_path / "run" / "device_specific.ckpt", device="cpu")  # the general one
    with torch.no_grad():
        assert torch.allclose(pipeline.model(mel), routed.general(mel), atol=1e-6)


def test_unknown_devices_and_files_are_refused(tmp_path):
    from tympan.errors import CheckpointError, ConfigError, DataError

    csv = write_tone_dataset(tmp_path / "data", per_class=4, classes=2, devices=("a", "b"))
    with pytest.raises(DataError, match="no training clips of device"):
        train_from_config(["--config", _recipe(tmp_path, csv), "--trainer.max_epochs", "1",
                           "--device_specific.devices", "[a, s7]"])  # fmt: skip
    with pytest.raises(CheckpointError, match="not a device-specific checkpoint"):
        torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
        load_device_specific(tmp_path / "plain.ckpt")
    from tympan.models.device_specific import DeviceSpecificModel

    with pytest.raises(ConfigError, match="at least one"):
        DeviceSpecificModel(_tiny.tiny_model(3), {})
    routed = DeviceSpecificModel.from_general(_tiny.tiny_model(3), ["a"])
    with pytest.raises(ConfigError, match="2 device names for a batch of 1"):
        routed(torch.zeros(1, 1, 16, 10), ["a", "b"])
