"""``tympan train``: every argument after the command reaches LightningCLI, bundled recipes by name."""

from __future__ import annotations

import pytest
import yaml

from tympan.cli import main


def test_train_forwards_config_and_overrides(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", "esc50_finetune", "--trainer.max_epochs", "3", "--print_config"])
    assert exit_info.value.code in (0, None)
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["trainer"]["max_epochs"] == 3
    assert resolved["model"]["class_path"] == "tympan.train.SceneSystem"


def test_other_commands_still_refuse_unknown_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["complexity", "cp_mobile_dcase23", "--no-such-flag"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
