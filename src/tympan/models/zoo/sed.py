"""PretrainedSED presets: frame-level models of ``fschmid56/PretrainedSED`` release v0.0.1 (data only).

The frame MobileNets and the frame-level PaSST were trained on AudioSet-Strong (447 classes, 40-ms frames); the
MobileNets with knowledge distillation from the paper's transformer ensemble. They run on 16-kHz audio (the
wrappers' mel: 128 bands, 25-ms window, 10-ms hop). ``num_params`` are counted from the reference code (backbone +
strong and weak heads), which the README rounds to 1.62 M / 3.83 M for the MobileNets. The frame-level DyMNs are
tympan's: the same frame-level design on the DyMN blocks, without published weights (``num_params`` counted here).
"""

from __future__ import annotations

from typing import Any

from .. import frame, frame_passt
from ..registry import ModelEntry, get_architecture, register_architecture, register_preset

for _arch, _network, _config, _frontend in (
    ("frame_mn", frame.FrameMobileNet, frame.FrameMNConfig, frame.PRETRAINED_SED_FRONTEND),
    ("frame_passt", frame_passt.FramePaSST, frame_passt.FramePaSSTConfig, frame_passt.FPASST_FRONTEND),
    ("frame_dymn", frame.FrameDyMN, frame.FrameDyMNConfig, frame.PRETRAINED_SED_FRONTEND),
):
    register_architecture(
        _arch,
        _network.from_config,
        config=_config,
        default_frontend=_frontend,
        default_labels="audioset_strong",
        checkpoint_filter=frame.checkpoint_filter_fn,
    )

_RELEASE = "https://github.com/fschmid56/PretrainedSED/releases/download/v0.0.1"
_SOURCE = "fschmid56/PretrainedSED@1aa47e4 models/frame_mn/model.py, models/prediction_wrapper.py"
_FPASST_SOURCE = "fschmid56/PretrainedSED@1aa47e4 models/frame_passt/fpasst.py, models/prediction_wrapper.py"
_PAPER = (
    "Schmid, Morocutti, Foscarin, Schlüter, Koutini, Widmer: Effective Pre-Training of Audio Transformers for Sound "
    "Event Detection, ICASSP 2025, https://arxiv.org/abs/2409.09546"
)
_DATA = "AudioSet-Strong (frame-level labels of 447 classes), knowledge distillation from a transformer ensemble"


def _preset(name: str, arch: str, num_params: int, description: str, **facts: Any) -> None:
    """A preset of 447 AudioSet-Strong classes at 40-ms resolution on its architecture's PretrainedSED frontend."""
    width = facts.pop("width_mult", None)
    register_preset(
        ModelEntry(
            name=name,
            arch=arch,
            model_kwargs={"num_classes": 447, **({} if width is None else {"width_mult": width})},
            frontend=get_architecture(arch).default_frontend,
            labels="audioset_strong",
            description=f"{description} for sound event detection at 40-ms resolution (250 frames per 10 s)"
            + facts.pop("details"),
            num_params=num_params,
            **facts,
        )
    )


_PRETRAINED_SED = {"license": "MIT (PretrainedSED repository)", "paper": _PAPER}
for _width, _tag, _params in ((0.6, "06", 1_615_022), (1.0, "10", 3_830_798)):
    _preset(f"frame_mn{_tag}", "frame_mn", _params, f"Frame-level MobileNet of width {_width}",
            details=", PretrainedSED's low-complexity model.", width_mult=_width,
            checkpoint_url=f"{_RELEASE}/frame_mn{_tag}_strong_1.pt", source=_SOURCE, family="PretrainedSED frame MN",
            training_data=_DATA, **_PRETRAINED_SED)  # fmt: skip

_preset("fpasst", "frame_passt", 89_109_118, "Frame-level PaSST",
        details=": PaSST's transformer on one token per time column, from ImageNet DeiT-B through AudioSet (weak) "
        "to AudioSet-Strong; PretrainedSED's fPaSST (at most 10 s per window).",
        checkpoint_url=f"{_RELEASE}/fpasst_strong_1.pt", source=_FPASST_SOURCE, family="PretrainedSED frame PaSST",
        training_data="AudioSet-Strong (frame-level labels of 447 classes), from AudioSet weak pre-training",
        **_PRETRAINED_SED)  # fmt: skip

for _width, _tag, _params in ((0.4, "04", 1_837_958), (1.0, "10", 9_502_446)):
    _preset(f"frame_dymn{_tag}", "frame_dymn", _params, f"Frame-level DyMN of width {_width}",
            details=": the DyMN blocks with the frame MobileNet's strides. No public weights exist: train it (tympan "
            "finetune --task sed --no-pretrained) or distil it from a frame-level teacher.", width_mult=_width,
            license="MIT (tympan)", family="tympan frame DyMN", training_data="none (no public weights)",
            source="tympan, after fschmid56/EfficientAT@a425fdce models/dymn and PretrainedSED models/frame_mn",
            paper="Schmid, Koutini, Widmer: Dynamic Convolutional Neural Networks as Efficient Pre-trained Audio "
            "Models, IEEE/ACM TASLP 2024, https://arxiv.org/abs/2310.15648")  # fmt: skip
