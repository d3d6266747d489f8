"""The bundled recipes hold the reference settings the golden data cannot see (issue 13), read from the YAML files.

Each row: recipe, dotted path into the YAML, the reference value, and where the reference sets it.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tympan.audio.frontend import MelFrontendConfig
from tympan.models import get_preset
from tympan.train.recipes import recipe_dir

SETTINGS = [
    # cpjku_dcase23 run_passt_training.py
    ("dcase23_passt_teacher", "model.init_args.model_kwargs.s_patchout_t", 0, "--s_patchout_t 0"),
    ("dcase23_passt_teacher", "model.init_args.model_kwargs.s_patchout_f", 6, "--s_patchout_f 6"),
    ("dcase23_passt_teacher", "model.init_args.frontend.fmin_aug_range", 1, "--fmin_aug_range 1"),
    ("dcase23_passt_teacher", "model.init_args.frontend.fmax_aug_range", 1000, "--fmax_aug_range 1000"),
    ("dcase23_passt_teacher", "trainer.precision", 32, "pl.Trainer without precision: fp32"),
    # EfficientAT ex_esc50.py: wavmix on unless --no_wavmix; MixupDataset(beta=2, rate=0.5)
    ("esc50_finetune", "model.init_args.wavmix_p", 0.5, "MixupDataset rate 0.5"),
    ("esc50_finetune", "model.init_args.wavmix_alpha", 2.0, "MixupDataset beta 2"),
    ("esc50_finetune", "model.init_args.mixup_alpha", 0.3, "--mixup_alpha 0.3"),
    # PaSST helpers/swa_callback.py: swa_epoch_start 50 -> 0-based start 49, swa_freq 5
    ("passt_audioset", "trainer.callbacks.0.init_args.start_epoch", 49, "swa_epoch_start 50"),
    ("passt_audioset", "trainer.callbacks.0.init_args.every_n_epochs", 5, "swa_freq 5"),
    # precision: PaSST default_conf trainer precision=16; EfficientAT released models fp16 (README)
    ("passt_audioset", "trainer.precision", "16-mixed", "ex_audioset.py default_conf precision=16"),
    ("efficientat_audioset_kd", "trainer.precision", "16-mixed", "README: all models trained with half precision"),
    ("efficientat_dymn_audioset_kd", "trainer.precision", "16-mixed", "README: half precision"),
    # DESED_task dcase2023_task4_baseline confs/default.yaml: batch_size [12, 12, 24] (synth, weak, unlabelled)
    ("dcase_task4_desed", "data.weak_fraction", 0.5, "12 synthetic + 12 weak clips per batch"),
    ("dcase_task4_desed", "model.init_args.warmup_epochs", 50, "n_epochs_warmup: 50"),
    ("dcase_task4_desed", "trainer.max_epochs", 200, "n_epochs: 200"),
    ("dcase_task4_desed", "model.init_args.optimizer.init_args.lr", 0.001, "opt lr: 0.001"),
    # PretrainedSED ex_audioset_strong.py
    ("audioset_strong_frame_mn_kd", "model.init_args.kd_lambda", 0.1, "--distillation_loss_weight 0.9"),
    ("audioset_strong_frame_mn_kd", "model.init_args.optimizer.init_args.lr", 0.003, "--max_lr 0.003"),
    ("audioset_strong_frame_mn_kd", "model.init_args.warmup_steps", 5000, "--warmup_steps 5000"),
    ("audioset_strong_frame_mn_kd", "trainer.max_epochs", 120, "--n_epochs 120"),
    ("audioset_strong_frame_mn_kd", "trainer.precision", "16-mixed", "--precision 16"),
]

# The initial weights each recipe starts from (EfficientAT README, ex_esc50.py; PaSST ex_audioset.py; cpjku_dcase23).
STARTS = {
    "efficientat_audioset_kd": "mn10_im",
    "efficientat_dymn_audioset_kd": "dymn10_im",
    "passt_audioset": "passt_deit_bd_p16_384",
    "esc50_finetune": "mn10_as",
    "dcase23_passt_teacher": "passt_s_swa_p16_128_ap476",
}

FP32_RECIPES = [
    "dcase23_cpmobile_kd",
    "dcase23_cpresnet_teacher",
    "dcase23_passt_teacher",
    "dcase24_baseline",
    "dcase25_device_specific",
    "dcase_task4_desed",
    "esc50_finetune",
]


def _recipe(name: str) -> dict[str, Any]:
    return yaml.safe_load((recipe_dir() / f"{name}.yaml").read_text())


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        tree = tree[int(key)] if isinstance(tree, list) else tree[key]
    return tree


@pytest.mark.parametrize(("recipe", "path", "expected", "source"), SETTINGS, ids=lambda v: str(v))
def test_recipe_follows_the_reference(recipe: str, path: str, expected: Any, source: str) -> None:
    assert _get(_recipe(recipe), path) == expected, f"{recipe}: {path} should be {expected!r} ({source})"


def test_dcase23_passt_teacher_evaluates_mels_up_to_15500_hz() -> None:
    init = _recipe("dcase23_passt_teacher")["model"]["init_args"]
    trained = get_preset(init["model"]).frontend.replace(**init["frontend"])
    assert trained.effective_fmax == 15500 and MelFrontendConfig().effective_fmax == 15000


@pytest.mark.parametrize(  # the retrieval recipes state their fp16 in their own headers
    "recipe", sorted(p.stem for p in recipe_dir().glob("*.yaml") if not p.stem.startswith("retrieval"))
)
def test_every_recipe_says_which_precision_it_follows(recipe: str) -> None:
    text = (recipe_dir() / f"{recipe}.yaml").read_text()
    assert "# Precision:" in text
    precision = str(_recipe(recipe)["trainer"].get("precision", 32))
    assert (precision == "32") is (recipe in FP32_RECIPES)


@pytest.mark.parametrize(("recipe", "start"), sorted(STARTS.items()))
def test_recipes_start_from_the_references_initial_weights(recipe: str, start: str) -> None:
    init = _recipe(recipe)["model"]["init_args"]
    assert init["model"] == start and init["pretrained"] is True and "checkpoint" not in init
    assert get_preset(start).initial_weights is start.endswith(("_im", "_384"))
