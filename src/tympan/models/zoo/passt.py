"""PaSST presets: every published checkpoint of ``kkoutini/PaSST`` and ``kkoutini/passt_hear21``, the DeiT start of
PaSST training, and the PaSST teachers of ``fschmid56/cpjku_dcase23`` (data only).

Names are the reference ``get_model`` arch names (the ``hear21passt`` ones where the training repository has
none). ``model_kwargs`` are the reference ``PaSST`` constructor arguments of the checkpoint; patchout is a
training setting, not part of a checkpoint, so it is left to the caller: ``create(name, s_patchout_t=40,
s_patchout_f=4)`` (the AudioSet recipe for stride 10; 30 / 3 for stride 14, 20 / 1 for stride 16, issue #25).
Scores are the mAP / accuracy in the release names, unverified against the papers.

Reference names resolve too (:func:`~tympan.models.registry.list_aliases`): the training repository's config keys and
function names (``passt-s-f128-20sec-p16-s10-ap474-swa``, ``passt_s_f128_20sec_p16_s10_ap474_swa``, ...) and the
``hear21passt`` arch names (``passt_20sec``, ``openmic``, ``fsd50k-n``, ...).

The 20 s / 30 s checkpoints are published under the release tag ``v0.0.5`` by ``kkoutini/PaSST`` and
``hear21passt`` (both at HEAD) and under ``v0.0.3-audioset`` by the copy in ``cpjku_dcase23``: the first is the
checkpoint URL, the second a mirror tried when it fails (same file name, so one cache entry).
"""

from __future__ import annotations

from typing import Any

from ...audio.frontend import MelFrontendConfig
from .. import passt
from ..registry import ModelEntry, register_alias, register_architecture, register_preset

register_architecture(
    "passt",
    passt.PaSST.from_config,
    config=passt.PaSSTConfig,
    default_frontend=MelFrontendConfig(),
    default_labels="audioset",
    checkpoint_filter=passt.checkpoint_filter_fn,
)

_RELEASES = "https://github.com/kkoutini/PaSST/releases/download"
_SOURCE = "kkoutini/PaSST@2a5c818a models/passt.py; kkoutini/passt_hear21@5f1cce6a"
_LICENSE = "Apache-2.0 (code); weights published with the repository releases"
_FRONTEND = MelFrontendConfig()  # 32 kHz, 128 mels, window 800, hop 320: every AudioSet PaSST
_FAMILY = "PaSST (Patchout faSt Spectrogram Transformer)"
_PAPER = (
    "Koutini, Schlüter, Eghbal-zadeh, Widmer: Efficient Training of Audio Transformers with Patchout, "
    "Interspeech 2022, https://arxiv.org/abs/2110.05069"
)
_HEAR_PAPER = (
    "Koutini, Masoudian, Schmid, Eghbal-zadeh, Schlüter, Widmer: Learning General Audio Representations with "
    "Large-Scale Training of Patchout Audio Transformers, HEAR 2021 (PMLR 166), https://arxiv.org/abs/2211.13956"
)
_AUDIOSET = "AudioSet (2 M clips, balanced sampling, 10 s), from ImageNet DeiT-B-384 weights"


def _kwargs(
    stride: int = 10, frames: int = 998, depth: int = 12, num_classes: int = 527
) -> dict[str, Any]:
    return {
        "img_size": (128, frames),
        "patch_size": 16,
        "stride": (stride, stride),
        "in_chans": 1,
        "num_classes": num_classes,
        "embed_dim": 768,
        "depth": depth,
        "num_heads": 12,
        "mlp_ratio": 4.0,
        "qkv_bias": True,
        "distilled": True,
    }


def _preset(
    name: str,
    url: str,
    num_params: int,
    score: dict[str, float],
    description: str,
    *,
    labels: str = "audioset",
    frontend: MelFrontendConfig = _FRONTEND,
    training_data: str = _AUDIOSET,
    paper: str = _PAPER,
    clip_seconds: float = 10.0,
    mirrors: tuple[str, ...] = (),
    sha256: str | None = None,
    initial_weights: bool = False,
    license: str = _LICENSE,
    source: str = _SOURCE,
    **kwargs: Any,
) -> None:
    register_preset(
        ModelEntry(
            name=name,
            arch="passt",
            model_kwargs=_kwargs(**kwargs),
            frontend=frontend,
            labels=labels,
            description=description,
            checkpoint_url=url if url.startswith("https://") else f"{_RELEASES}/{url}",
            checkpoint_sha256=sha256,
            checkpoint_mirrors=tuple(m if m.startswith("https://") else f"{_RELEASES}/{m}" for m in mirrors),
            initial_weights=initial_weights,
            num_params=num_params,
            score=score,
            family=_FAMILY,
            paper=paper,
            training_data=training_data,
            clip_seconds=clip_seconds,
            license=license,
            source=source,
        )
    )


_AS = "AudioSet (2 M clips, balanced sampling), ImageNet DeiT-B-384 init, structured patchout"

# PaSST-S, stride 10 (overlapping patches), 10 s.
_preset("passt_s_swa_p16_128_ap476", "v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt", 86_153_758,
        {"mAP": 0.476}, f"PaSST-S, stride 10, {_AS} (t 40, f 4), SWA. The HEAR / hear21passt default.")
_preset("passt_s_kd_p16_128_ap486", "v.0.0.9/passt-s-kd-ap.486.pt", 86_153_758,
        {"mAP": 0.486}, f"PaSST-S, stride 10, {_AS}, knowledge distillation.")
_preset("passt_l_kd_p16_128_ap47", "v.0.0.10/passt-l-kd-ap.47.pt", 50_714_398,
        {"mAP": 0.4708}, f"PaSST-L (light: 7 blocks), stride 10, {_AS}, knowledge distillation.", depth=7)
_preset("passt_s_swa_p16_128_ap4761", "v0.0.2-audioset/passt-s-f128-p16-s10-ap.4761-swa.pt", 86_153_758,
        {"mAP": 0.4761}, f"PaSST-S, stride 10, {_AS}, SWA (second run).")
_preset("passt_s_p16_128_ap472", "v0.0.2-audioset/passt-s-f128-p16-s10-ap.472.pt", 86_153_758,
        {"mAP": 0.472}, f"PaSST-S, stride 10, {_AS}, without SWA.")

# Other strides (12, 14, 16 = no overlap).
_STRIDE_RUNS = (  # (name, release tag, stride, parameters, mAP)
    ("passt_s_swa_p16_s12_128_ap473", "ap.473-swa", 12, 86_139_934, 0.473),
    ("passt_s_p16_s12_128_ap470", "ap.470", 12, 86_139_934, 0.470),
    ("passt_s_swa_p16_s14_128_ap471", "ap.471-swa", 14, 86_129_950, 0.471),
    ("passt_s_p16_s14_128_ap469", "ap.469", 14, 86_129_950, 0.469),
    ("passt_s_swa_p16_s16_128_ap473", "ap.473-swa", 16, 86_122_270, 0.473),
    ("passt_s_p16_s16_128_ap468", "ap.468", 16, 86_122_270, 0.468),
)
for _name, _tag, _stride, _params, _map in _STRIDE_RUNS:
    _preset(_name, f"v0.0.2-audioset/passt-s-f128-p16-s{_stride}-{_tag}.pt", _params, {"mAP": _map},
            f"PaSST-S, stride {_stride}, {_AS}{', SWA' if 'swa' in _tag else ''}.", stride=_stride)

_preset("passt_u600_f128_p16_s16_ap_460", "v.0.0.7-audioset/passt-u600-f128-p16-s16-ap.460.pt", 86_122_270,
        {"mAP": 0.460}, f"PaSST-U, stride 16, {_AS.replace('structured', 'unstructured')} (600 patches).", stride=16)
_preset("passt_b_f128_p16_s16_ap_459", "v.0.0.7-audioset/passt-b-f128-p16-s16-ap.459.pt", 86_122_270,
        {"mAP": 0.459}, f"PaSST-B, stride 16, {_AS.replace(', structured patchout', '')}, no patchout.", stride=16)

# Longer inputs: more time encodings (trained with random encoding offsets on 10 s clips).
_preset("passt_s_f128_20sec_p16_s10_ap474", "v0.0.5/passt-s-f128-20sec-p16-s10-ap.474-swa.pt", 86_231_326,
        {"mAP": 0.474}, f"PaSST-S with 20 s of time encodings (200), stride 10, {_AS}, SWA.", frames=2000,
        mirrors=("v0.0.3-audioset/passt-s-f128-20sec-p16-s10-ap.474-swa.pt",))
_preset("passt_s_f128_30sec_p16_s10_ap473", "v0.0.5/passt-s-f128-30sec-p16-s10-ap.473-swa.pt", 86_308_126,
        {"mAP": 0.473}, f"PaSST-S with 30 s of time encodings (300), stride 10, {_AS}, SWA.", frames=3000,
        mirrors=("v0.0.3-audioset/passt-s-f128-30sec-p16-s10-ap.473-swa.pt",))

# Finer STFT hops (the HEAR journal paper's time-resolution study): 10 s = 3200 / 2000 frames.
_preset("passt_s_swa_f128_stfthop100_p16_s10_ap473",
        "v0.0.3-audioset/passt-s-f128-stfthop100-p16-s10-ap.473-swa.pt", 86_323_486, {"mAP": 0.473},
        f"PaSST-S on mels with a 100-sample hop (320 time encodings), stride 10, {_AS}, SWA.",
        frontend=_FRONTEND.replace(hop_length=100), frames=3200, paper=_HEAR_PAPER)
_preset("passt_s_swa_f128_stfthop160_p16_s10_ap473",
        "v0.0.3-audioset/passt-s-f128-stfthop160-p16-s10-ap.473-swa.pt", 86_231_326, {"mAP": 0.473},
        f"PaSST-S on mels with a 160-sample hop (200 time encodings), stride 10, {_AS}, SWA.",
        frontend=_FRONTEND.replace(hop_length=160), frames=2000, paper=_HEAR_PAPER)

# Fine-tunes of an AudioSet PaSST (head re-initialised for the new classes).
_FSD50K = "FSD50K development set (about 40,966 clips, 200 classes), from an AudioSet PaSST-S"
_preset("openmic_passt_s_f128_10sec_p16_s10_ap85", "v0.0.5/openmic-passt-s-f128-10sec-p16-s10-ap.85.pt",
        85_373_992, {"mAP": 0.85}, "PaSST-S fine-tuned on OpenMIC-2018 (20 instruments, masked BCE), t 40 / f 4.",
        labels="openmic", num_classes=20,
        training_data="OpenMIC-2018 train split (20 instruments, partial labels), from an AudioSet PaSST-S")
_preset("fsd50k_passt_s_f128_p16_s10_ap655", "v0.0.5/fsd50k-passt-s-f128-p16-s10-ap.655.pt", 85_650_832,
        {"mAP": 0.655}, "PaSST-S fine-tuned on FSD50K (200 classes), t 10 / f 4, no SpecAugment.",
        labels="fsd50k", num_classes=200, training_data=_FSD50K)
_preset("fsd50k_passt_s_n_f128_p16_s16_ap642", "v0.0.5/fsd50k-passt-s-n-f128-p16-s16-ap.642.pt", 85_619_344,
        {"mAP": 0.642}, "PaSST-N-S (stride 16, no overlap) fine-tuned on FSD50K (200 classes), t 10 / f 1.",
        labels="fsd50k", num_classes=200, stride=16, training_data=_FSD50K)
_preset("esc50_passt_s_n_f128_p16_s10_fold1_acc967", "v.0.0.6/esc50-passt-s-n-f128-p16-s10-fold1-acc.967.pt",
        85_420_132, {"accuracy": 0.967},
        "PaSST-S fine-tuned on ESC-50 folds 2-5 (50 classes, 5 s clips: 49 time patches, t 10 / f 3), tested on "
        "fold 1. One release per fold; the other folds' files follow the same pattern.",
        labels="esc50", num_classes=50, clip_seconds=5.0,
        training_data="ESC-50 folds 2-5 (1,600 clips of 5 s, 50 classes), from an AudioSet PaSST-S")
_OPENMIC = "OpenMIC-2018 (20,000 clips of 10 s, 20 instruments, partial labels), from an AudioSet PaSST-S"
_preset("openmic2008_passt_u_f128_p16_s10_ap85_swa", "v0.0.4-openmic/openmic2008.passt-u-f128-p16-s10-ap.85-swa.pt",
        85_373_992, {"mAP": 0.85},
        "PaSST fine-tuned on OpenMIC-2018 (20 instruments, masked BCE, structured patchout t 40 / f 4, wavmix; "
        "ex_openmic.py), the SWA average (from epoch 2, every epoch). The training repository's release.",
        labels="openmic", num_classes=20,
        training_data=_OPENMIC)
_preset("openmic2008_passt_u_f128_p16_s10_ap85", "v0.0.4-openmic/openmic2008.passt-u-f128-p16-s10-ap.85.pt",
        85_373_992, {"mAP": 0.85},
        "The same OpenMIC-2018 fine-tuning without the SWA average (the reference's config key carries two trailing "
        "spaces).", labels="openmic", num_classes=20,
        training_data=_OPENMIC)

# The start of PaSST training: ImageNet DeiT-B distilled at 384 x 384, converted by the PaSST checkpoint filter
# (patch embedding summed to one channel, positional embeddings split into frequency and time, head resized).
_preset("passt_deit_bd_p16_384", "https://dl.fbaipublicfiles.com/deit/deit_base_distilled_patch16_384-d0272ac0.pth",
        86_153_758, {},
        "ImageNet DeiT-B/16 distilled at 384 px (facebookresearch/deit): the initial weights of PaSST AudioSet "
        "training (ex_audioset.py: models.net.arch=passt_deit_bd_p16_384); its 1000-class head is replaced by an "
        "untrained 527-class one.",
        sha256="d0272ac0", initial_weights=True, training_data="ImageNet-1k (1.28 M images), DeiT distillation",
        paper="Touvron et al., Training data-efficient image transformers & distillation through attention, ICML 2021",
        license="Apache-2.0 (facebookresearch/deit)",
        source="facebookresearch/deit; kkoutini/PaSST@2a5c818a models/passt.py deit_base_distilled_patch16_384")

# The PaSST teachers of the CP-JKU DCASE23 submission: passt_s_swa_p16_128_ap476 fine-tuned on 1 s TAU22 clips with
# structured patchout t 0 / f 6 and mel jitter 1 / 1000 Hz (eval fmax 15500; run_passt_training.py).
_DCASE23 = "https://github.com/fschmid56/cpjku_dcase23/releases/download/ensemble_logits"
_DCASE23_FRONTEND = _FRONTEND.replace(timem=20, fmin_aug_range=1, fmax_aug_range=1000)
_DCASE23_RECIPES = {
    "dirfms": "device impulse responses (p 0.6) and Freq-MixStyle (p 0.4, alpha 0.4)",
    "fms": "Freq-MixStyle (p 0.4, alpha 0.4)",
}
for _recipe, _augmentation in _DCASE23_RECIPES.items():
    for _run in (1, 2, 3):
        _preset(f"passt_{_recipe}_{_run}", f"{_DCASE23}/passt_{_recipe}_{_run}.pt", 85_358_612, {},
                f"PaSST-S teacher of the DCASE23 Task 1 student, run {_run}: passt_s_swa_p16_128_ap476 fine-tuned "
                "on TAU Urban Acoustic Scenes 2022 Mobile (1 s clips, 10 scenes) with cross-entropy and "
                f"{_augmentation}, patchout t 0 / f 6, 25 epochs. Its logits, averaged with the CP-ResNet "
                "teachers', are the published ensemble logits.",
                labels="tau22", frontend=_DCASE23_FRONTEND, num_classes=10, clip_seconds=1.0,
                training_data="TAU Urban Acoustic Scenes 2022 Mobile development (139,620 clips of 1 s, 10 scenes)",
                license="weights published with the reference repository (no separate licence stated)",
                source="fschmid56/cpjku_dcase23@2e20abaa run_passt_training.py, run_teacher_validation.py")

# Names the reference repositories use for these checkpoints.
for _alias, _name in (
    ("passt-s-f128-20sec-p16-s10-ap474-swa", "passt_s_f128_20sec_p16_s10_ap474"),
    ("passt-s-f128-30sec-p16-s10-ap473-swa", "passt_s_f128_30sec_p16_s10_ap473"),
    ("passt_s_f128_20sec_p16_s10_ap474_swa", "passt_s_f128_20sec_p16_s10_ap474"),
    ("passt_s_f128_30sec_p16_s10_ap473_swa", "passt_s_f128_30sec_p16_s10_ap473"),
    ("passt_20sec", "passt_s_f128_20sec_p16_s10_ap474"),
    ("passt_30sec", "passt_s_f128_30sec_p16_s10_ap473"),
    ("stfthop100", "passt_s_swa_f128_stfthop100_p16_s10_ap473"),
    ("stfthop160", "passt_s_swa_f128_stfthop160_p16_s10_ap473"),
    ("openmic", "openmic_passt_s_f128_10sec_p16_s10_ap85"),
    ("fsd50k", "fsd50k_passt_s_f128_p16_s10_ap655"),
    ("fsd50k-n", "fsd50k_passt_s_n_f128_p16_s16_ap642"),
):
    register_alias(_alias, _name)
