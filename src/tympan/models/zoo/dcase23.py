"""DCASE 2023 Task 1 presets of CP-JKU (CP-Mobile student, CP-ResNet teachers) and the DCASE24 baseline (no weights).

``model_kwargs`` are the reference ``get_model`` arguments. Parameter and MAC counts are those of the DCASE rule
(torchinfo, one 1 s clip; :func:`tympan.eval.complexity.measure` reproduces them exactly). Accuracies that the
available sources do not state are left out rather than guessed.
"""

from __future__ import annotations

from ..cp_mobile import DCASE23_FRONTEND, DCASE24_FRONTEND, CPMobile, CPMobileConfig
from ..cp_resnet import TEACHER_FRONTEND, CPResNet, CPResNetConfig
from ..registry import ModelEntry, register_architecture, register_preset

for _arch, _network, _config, _frontend in (
    ("cp_mobile", CPMobile, CPMobileConfig, DCASE23_FRONTEND),
    ("cp_resnet", CPResNet, CPResNetConfig, TEACHER_FRONTEND),
):
    register_architecture(_arch, _network, config=_config, default_frontend=_frontend, default_labels="tau22",
                          default_clip_seconds=1.0)  # fmt: skip

__all__ = ["CP_MOBILE_DCASE23", "CP_MOBILE_DCASE24_BASELINE"]

_REPOSITORY = "https://github.com/fschmid56/cpjku_dcase23"
_COMMIT = "2e20abaa64264f227c50696e5a43d4c706543ff4"
_CHECKPOINT_COMMIT = "8475c9c0e8a85e02d040a79589942be358067282"  # the commit that added the student checkpoint
_SOURCE = f"fschmid56/cpjku_dcase23@{_COMMIT[:8]}"
_LICENSE = "weights published with the reference repository (no separate licence stated)"
_DATA = "TAU Urban Acoustic Scenes 2022 Mobile development, train split of fold 1 (139,620 one-second clips)"
_CP_MOBILE_PAPER = (
    "Schmid, Morocutti, Masoudian, Koutini, Widmer: CP-JKU Submission to DCASE23: Efficient Acoustic Scene "
    "Classification with CP-Mobile, DCASE 2023 Challenge technical report, "
    "https://dcase.community/challenge2023/task-low-complexity-acoustic-scene-classification-results"
)
_CP_RESNET_PAPER = (
    "Koutini, Eghbal-zadeh, Dorfer, Widmer: The Receptive Field as a Regularizer in Deep Convolutional Neural "
    "Networks for Acoustic Scene Classification, EUSIPCO 2019, https://arxiv.org/abs/1907.01803; as DCASE23 "
    "teachers: Morocutti et al., Creating a Good Teacher for Knowledge Distillation in Acoustic Scene "
    "Classification, https://arxiv.org/abs/2503.11363"
)
# Facts every DCASE preset shares: 1 s clips, complexity counted with the challenge's rule.
_TASK1 = {"clip_seconds": 1.0, "macs_rule": "dcase"}

CP_MOBILE_DCASE23 = register_preset(
    ModelEntry(
        name="cp_mobile_dcase23",
        arch="cp_mobile",
        model_kwargs={
            "n_classes": 10,
            "in_channels": 1,
            "base_channels": 32,
            "channels_multiplier": 2.3,
            "expansion_rate": 3,
            "n_blocks": (3, 2, 1),
            "strides": {"b2": (2, 2), "b4": (2, 1)},
        },
        frontend=DCASE23_FRONTEND,
        labels="tau22",
        description=(
            f"CP-Mobile, the CP-JKU DCASE23 Task 1 submission (ranked first): {_DATA}, 150 epochs, knowledge "
            "distillation (KL, T = 2, lambda = 0.02) from an ensemble of 3 CP-ResNet and 3 PaSST teachers, device "
            "impulse responses (p 0.6), Freq-MixStyle (p 0.4, alpha 0.3), time roll, frequency masking 48. The float "
            "model before quantisation-aware training (W&B run c0a7nzin, epoch 149); about 126,952 parameters, "
            "28.9 M MACs per 1 s clip (below the 128 K / 30 M limits)."
        ),
        checkpoint_url=f"{_REPOSITORY}/raw/{_CHECKPOINT_COMMIT}/DCASE23_Task1/c0a7nzin/checkpoints/epoch=149-step=81900.ckpt",
        num_params=126_952,
        macs=28_893_268,
        license=_LICENSE,
        source=f"{_SOURCE} models/cp_mobile_clean.py, run_training.py",
        family="CP-Mobile (CP-JKU DCASE23)",
        paper=_CP_MOBILE_PAPER,
        training_data=f"{_DATA}; knowledge distillation from 3 CP-ResNet and 3 PaSST teachers",
        **_TASK1,
    )
)
"""The DCASE23 CP-Mobile student: a Lightning checkpoint whose ``model.`` prefix the loader strips."""

_TEACHER_KWARGS = {
    "rho": 8,
    "in_channels": 1,
    "n_classes": 10,
    "base_channels": 32,
    "cut_channels_s2": 0,
    "cut_channels_s3": 36,
    "channels_multiplier": 2,
    "n_blocks": (2, 1, 1),
    "s1_group": 1,
    "s2_group": 2,
    "s3_group": 1,
}
_TEACHER_RECIPES = {
    "dirfms": "device impulse responses (p 0.4) and Freq-MixStyle (p 0.8, alpha 0.4)",
    "fms": "Freq-MixStyle (p 0.8, alpha 0.4)",
}

for _recipe, _augmentation in _TEACHER_RECIPES.items():
    for _run in (1, 2, 3):
        register_preset(
            ModelEntry(
                name=f"cpr_128k_{_recipe}_{_run}",
                arch="cp_resnet",
                model_kwargs=_TEACHER_KWARGS,
                frontend=TEACHER_FRONTEND,
                labels="tau22",
                description=(
                    f"CP-ResNet 128K teacher (rho 8, widths 32/64/92, grouped stage 2), run {_run}: {_DATA}, "
                    f"150 epochs of cross-entropy with {_augmentation}, time roll, frequency masking 48; mels with "
                    "a 750-sample hop (43 frames per second). One of the teachers behind the DCASE23 student."
                ),
                checkpoint_url=f"{_REPOSITORY}/releases/download/ensemble_logits/cpr_128k_{_recipe}_{_run}.pt",
                num_params=127_684,
                macs=28_840_396,
                license=_LICENSE,
                source=f"{_SOURCE} models/cp_resnet.py, run_cp-resnet_training.py, run_teacher_validation.py",
                family="CP-ResNet (receptive-field regularised ResNet)",
                paper=_CP_RESNET_PAPER,
                training_data=_DATA,
                **_TASK1,
            )
        )

CP_MOBILE_DCASE24_BASELINE = register_preset(
    ModelEntry(
        name="cp_mobile_dcase24_baseline",
        arch="cp_mobile",
        model_kwargs={
            "n_classes": 10,
            "in_channels": 1,
            "base_channels": 32,
            "channels_multiplier": 1.8,
            "expansion_rate": 2.1,
            "n_blocks": (3, 2, 1),
            "strides": {"b2": (1, 1), "b3": (1, 2), "b4": (2, 1)},
            "use_grn": False,
        },
        frontend=DCASE24_FRONTEND,
        labels="tau22",
        description=(
            "The DCASE 2024 Task 1 baseline (also the DCASE 2025 general model): a simplified CP-Mobile without GRN "
            "(widths 32/56/104), trained from scratch with cross-entropy, Freq-MixStyle and time roll. The "
            "architecture only: no weights are published as a release. The reference's frontend: 44.1 kHz input "
            "resampled to 32 kHz inside the model (torchaudio's windowed sinc), torchaudio MelSpectrogram (HTK "
            "scale, no pre-emphasis, log(x + 1e-5)), 65 frames per second, so weights trained with the reference "
            "load and see the same input. 61,148 parameters (122,296 bytes at fp16), 29,419,156 MACs on 65 "
            "frames; macro accuracy on the development test split with 100 % of the training data 56.99 % (mean "
            "of 5 runs, reference README)."
        ),
        num_params=61_148,
        macs=29_419_156,
        score={"macro_accuracy": 0.5699},
        license="no weights published; the reference repository states no licence",
        source="CPJKU/dcase2024_task1_baseline@9948d196 models/baseline.py",
        family="CP-Mobile (DCASE24 Task 1 baseline)",
        paper=(
            "Schmid, Primus, Heittola, Mesaros, Martín-Morató, Koutini, Widmer: Data-Efficient Low-Complexity "
            "Acoustic Scene Classification in the DCASE 2024 Challenge, DCASE 2024 Workshop, "
            "https://arxiv.org/abs/2405.10018"
        ),
        training_data=f"{_DATA} (the 100 % subset of DCASE24; smaller subsets 50/25/10/5 %)",
        **_TASK1,
    )
)
"""The DCASE24 Task 1 baseline architecture (CP-Mobile without GRN)."""
