"""Every bundled recipe parses against the constructors' signatures, and a recipe trains with overrides."""

from __future__ import annotations

import contextlib
import io

import pytest
import yaml

from tests.train._data import write_tone_dataset
from tympan.train.recipes import recipe_dir, resolve_recipe, train_from_config

from . import _tiny  # noqa: F401  (registers the tiny architecture)

RECIPES = sorted(recipe_dir().glob("*.yaml"))


def test_all_paper_recipes_exist():
    names = {p.stem for p in RECIPES}
    assert {"efficientat_audioset_kd", "passt_audioset", "dcase23_cpmobile_kd", "dcase23_cpresnet_teacher",
            "dcase23_passt_teacher", "esc50_finetune", "retrieval_clotho",
            "retrieval_clotho_audiocaps_wavcaps"} <= names  # fmt: skip


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_parses(recipe):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit) as exit_info:
        train_from_config(["--config", str(recipe), "--print_config"])
    assert exit_info.value.code in (0, None)
    resolved = yaml.safe_load(printed.getvalue())
    assert resolved["model"]["class_path"] == yaml.safe_load(recipe.read_text())["model"]["class_path"]


def test_bundled_recipes_are_named_by_file_or_by_name(tmp_path):
    assert resolve_recipe("esc50_finetune") == str(recipe_dir() / "esc50_finetune.yaml")
    assert resolve_recipe("esc50_finetune.yaml") == str(recipe_dir() / "esc50_finetune.yaml")
    own = tmp_path / "esc50_finetune.yaml"
    own.write_text("model: {}")
    assert resolve_recipe(str(own)) == str(own)  # a file the user names wins
    assert resolve_recipe("no_such_recipe") == "no_such_recipe"  # left for LightningCLI to report


def test_recipe_trains_with_overrides_and_links_the_classes(tmp_path):
    csv = write_tone_dataset(tmp_path / "data", per_class=8, classes=3)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {"class_path": "tympan.train.SceneSystem", "init_args": {"model": "tiny_test", "lr": 0.001}},
        "data": {"data": str(csv), "sample_rate": 8000, "clip_seconds": 0.5, "batch_size": 4},
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "enable_progress_bar": False, "logger": False,
                    "enable_checkpointing": False, "default_root_dir": str(tmp_path / "run")},
    }))  # fmt: skip
    metrics = train_from_config(["--config", str(recipe), "--trainer.max_epochs", "3", "--model.init_args.lr", "0.03"])
    assert metrics["val/accuracy"] == 1.0  # 3 linked classes, overridden learning rate
    with pytest.raises(SystemExit):
        train_from_config(["--config", str(recipe), "--model.init_args.no_such_field", "1"])
