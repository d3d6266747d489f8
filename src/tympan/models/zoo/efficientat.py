"""EfficientAT presets: the AudioSet checkpoints of ``fschmid56/EfficientAT`` release v0.0.1 and the ImageNet
starts the AudioSet recipes train from (data only).

``model_kwargs`` are the reference ``get_model`` arguments of each checkpoint (the width the name implies, the
head, the strides) and ``frontend`` the mel settings it was trained with, so ``create(name)`` builds the right
network and frontend (the reference leaves both to the user, issue #40). ``num_params`` are counted from the
reference code; MACs are the reference ``count_macs`` figures for 10 s at the preset's frontend (DyMN: dynamic
convolutions counted as static ones plus the kernel aggregation); scores are the AudioSet eval mAP of the
README table, or of the file name where the README has none. ``num_classes`` is fixed at 527: train on other
labels with ``model.reset_classifier(n)`` (or build the architecture with ``num_classes`` and load the checkpoint:
the head is then left freshly initialised, and logged). DyMN presets keep the kernel-attention
temperature at 1.0 (``T_max=1.0``), as the reference does for every AudioSet DyMN.

The ``*_im`` presets are the reference's ``pretrained_models`` of ImageNet pre-training (``models/mn/model.py``,
``models/dymn/model.py``): backbones adapted to one input channel with a 527-class head that is not trained
(``mn10_im_pytorch``: torchvision's ImageNet weights; the others: the authors' own ImageNet runs, issue #33: MN10
top-1 71.86 %, DyMN10 73.20 %). They are starts for the AudioSet recipes (README: ``--pretrained
--model_name=mn10_im``, ``--model_name=dymn10_im --pretrain_final_temp=30``), marked ``initial_weights``; the
DyMN starts begin at temperature 30 (``pretrain_final_temp=30``), the schedule's ``T_max``.
"""

from __future__ import annotations

from typing import Any

from ...audio.frontend import MelFrontendConfig
from .. import dymn, mobilenet
from ..registry import ModelEntry, register_architecture, register_preset

# DyMN checkpoints share MN's layout quirks, so both read through MN's filter.
for _arch, _network, _config in (("mn", mobilenet.MobileNet, mobilenet.MNConfig), ("dymn", dymn.DyMN, dymn.DyMNConfig)):
    register_architecture(
        _arch,
        _network.from_config,
        config=_config,
        default_frontend=MelFrontendConfig(),
        default_labels="audioset",
        checkpoint_filter=mobilenet.checkpoint_filter_fn,
    )

_RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1"
_SOURCE = "fschmid56/EfficientAT@a425fdce models/mn/model.py, models/dymn/model.py"
_LICENSE = "MIT (code and checkpoints; maintainer, issue #44)"
# 32 kHz, 128 mels, window 800, hop 320 (10 ms); the published recipes train without SpecAugment masking.
_FRONTEND = MelFrontendConfig(freqm=0, timem=0)
_AS = "AudioSet (2 M clips, balanced sampling), knowledge distillation from a PaSST ensemble, 200 epochs"
_AS_EXT = "AudioSet (2 M clips, balanced sampling), knowledge distillation from a PaSST ensemble, 300 epochs"
# Facts shared by every preset of an architecture (a preset may override any of them).
_FAMILIES: dict[str, dict[str, str]] = {
    "mn": {
        "family": "EfficientAT MN (MobileNetV3)",
        "paper": "Schmid, Koutini, Widmer: Efficient Large-Scale Audio Tagging via Transformer-to-CNN Knowledge "
        "Distillation, ICASSP 2023, https://arxiv.org/abs/2211.04772",
    },
    "dymn": {
        "family": "EfficientAT DyMN (dynamic MobileNet)",
        "paper": "Schmid, Koutini, Widmer: Dynamic Convolutional Neural Networks as Efficient Pre-trained Audio "
        "Models, IEEE/ACM TASLP 2024, https://arxiv.org/abs/2310.15648",
    },
}


def _preset(
    name: str,
    arch: str,
    file: str,
    num_params: int,
    macs: int | None,
    mean_ap: float | None,
    description: str,
    *,
    frontend: MelFrontendConfig = _FRONTEND,
    training_data: str = _AS,
    initial_weights: bool = False,
    **model_kwargs: Any,
) -> None:
    register_preset(
        ModelEntry(
            **_FAMILIES[arch],
            name=name,
            arch=arch,
            model_kwargs={"num_classes": 527, **model_kwargs},
            frontend=frontend,
            labels="audioset",
            description=description,
            checkpoint_url=f"{_RELEASE}/{file}",
            initial_weights=initial_weights,
            num_params=num_params,
            macs=macs,
            score={} if mean_ap is None else {"mAP": mean_ap},
            license=_LICENSE,
            source=_SOURCE,
            training_data=training_data,
        )
    )


# MN at every published width, ImageNet-pretrained backbone.
for _width, _tag, _params, _macs, _map in (
    (0.1, "01", 123_783, 18_000_000, 0.298),
    (0.2, "02", 324_695, 40_000_000, 0.378),
    (0.4, "04", 983_599, 111_000_000, 0.432),
    (0.5, "05", 1_431_239, 160_000_000, 0.443),
    (1.0, "10", 4_876_831, 541_000_000, 0.471),
    (2.0, "20", 17_909_287, 2_059_000_000, 0.478),
    (3.0, "30", 39_086_367, 4_555_000_000, 0.482),
    (4.0, "40", 68_427_303, 8_028_000_000, 0.484),
):
    _preset(f"mn{_tag}_as", "mn", f"mn{_tag}_as_mAP_{round(_map * 1000)}.pt", _params, _macs, _map,
            f"MN (MobileNetV3), width {_width}, {_AS}, ImageNet-pretrained backbone.", width_mult=_width)
    _preset(f"mn{_tag}_im", "mn", f"mn{_tag}_im.pt", _params, _macs, None,
            f"MN width {_width} pre-trained on ImageNet by the authors (one input channel, untrained 527-class head):"
            f" the initial weights of the AudioSet recipe for mn{_tag}_as.", width_mult=_width, initial_weights=True)

_preset("mn10_im_pytorch", "mn", "mn10_im_pytorch.pt", 4_876_831, 541_000_000, None,
        "MN width 1.0 with torchvision's ImageNet MobileNetV3-Large weights (one input channel, untrained 527-class "
        "head): the reference's first ImageNet start.", width_mult=1.0, initial_weights=True)

_MN40 = dict(num_params=68_427_303, macs=8_028_000_000, width_mult=4.0)
_preset("mn40_as_ext", "mn", "mn40_as_ext_mAP_487.pt", mean_ap=0.487,
        description=f"MN width 4.0, {_AS_EXT}: the best single MN.", training_data=_AS_EXT, **_MN40)
_preset("mn40_as_no_im_pre", "mn", "mn40_as_no_im_pre_mAP_483.pt", mean_ap=0.483,
        description=f"MN width 4.0, {_AS}, trained from scratch (no ImageNet pre-training).", **_MN40)

# mn10 trained at other time resolutions: the hop (ms) is part of the frontend.
for _hop_ms, _macs, _map in ((5, 1_071_000_000, 0.475), (15, 361_000_000, 0.463), (20, 274_000_000, 0.456),
                             (25, 219_000_000, 0.447)):
    _preset(f"mn10_as_hop_{_hop_ms}", "mn", f"mn10_as_hop_{_hop_ms}_mAP_{round(_map * 1000)}.pt", 4_876_831, _macs,
            _map, f"MN width 1.0, {_AS}, mel hop {_hop_ms} ms ({32 * _hop_ms} samples) instead of 10 ms.",
            frontend=_FRONTEND.replace(hop_length=32 * _hop_ms), width_mult=1.0)

# mn10 trained at other frequency resolutions: the number of mel bands is part of the frontend.
for _mels, _macs, _map in ((40, 208_000_000, 0.453), (64, 272_000_000, 0.461), (256, 1_079_000_000, 0.474)):
    _preset(f"mn10_as_mels_{_mels}", "mn", f"mn10_as_mels_{_mels}_mAP_{round(_map * 1000)}.pt", 4_876_831, _macs,
            _map, f"MN width 1.0, {_AS}, {_mels} mel bands instead of 128.",
            frontend=_FRONTEND.replace(n_mels=_mels), width_mult=1.0)

# mn10 with the fully-convolutional head (1x1 conv + BN, then pooling); fewer strides keep more resolution.
for _suffix, _strides, _map in (("", (2, 2, 2, 2), 0.465), ("_s2221", (2, 2, 2, 1), 0.466),
                                ("_s2211", (2, 2, 1, 1), 0.466)):
    _preset(f"mn10_as_fc{_suffix}", "mn", f"mn10_as_fc{_suffix}_mAP_{round(_map * 1000)}.pt", 3_478_638, None, _map,
            f"MN width 1.0, {_AS}, fully-convolutional head, block strides {_strides}.",
            width_mult=1.0, head_type="fully_convolutional", strides=_strides)

# DyMN: dynamic convolution, DY-ReLU and coordinate attention in every block.
for _width, _tag, _file, _params, _macs, _map, _readme in (
    (0.4, "04", "dymn04_as.pt", 1_961_239, 118_000_000, 0.450, "1.97 M"),
    (1.0, "10", "dymn10_as.pt", 10_548_479, 582_000_000, 0.477, "10.57 M"),
    (2.0, "20", "dymn20_as_mAP_493.pt", 39_966_143, 2_222_000_000, 0.491, "40.02 M"),
):
    _preset(f"dymn{_tag}_as", "dymn", _file, _params, _macs, _map,
            f"DyMN, width {_width}, {_AS}, ImageNet-pretrained. The README quotes {_readme} parameters "
            "(DeepSpeed profiler); the count here is the exact one of the code.", width_mult=_width, T_max=1.0)
    _preset(f"dymn{_tag}_im", "dymn", f"dymn{_tag}_im.pt", _params, _macs, None,
            f"DyMN width {_width} pre-trained on ImageNet (untrained 527-class head), at the temperature 30 that "
            f"pre-training ended with: the initial weights of the AudioSet recipe for dymn{_tag}_as.",
            width_mult=_width, pretrain_final_temp=30.0, initial_weights=True)

# DyMN with dynamic blocks only where MobileNetV3 has SE; the others are plain blocks without SE.
for _width, _tag, _params in ((0.4, "04", 1_829_287), (1.0, "10", 9_833_935)):
    _preset(f"dymn{_tag}_replace_se_as", "dymn", f"dymn{_tag}_replace_se_as.pt", _params, None, None,
            f"DyMN, width {_width}, {_AS}, dynamic blocks only in place of the SE blocks (4-6, 11-15); the "
            "reference never builds it (use_dy_blocks='replace_se') and misspells one URL.",
            width_mult=_width, T_max=1.0, use_dy_blocks="replace_se")
