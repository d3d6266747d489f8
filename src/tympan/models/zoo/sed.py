"""PretrainedSED presets: frame-level models of ``fschmid56/PretrainedSED`` release v0.0.1 (data only).

The frame MobileNets were trained on AudioSet-Strong (447 classes, 40-ms frames) with knowledge distillation from
the paper's transformer ensemble; they run on 16-kHz audio (``FrameMNWrapper``'s mel: 128 bands, 25-ms window,
10-ms hop). ``num_params`` are counted from the reference code (backbone + strong and weak heads), which the
README rounds to 1.62 M / 3.83 M.
"""

from __future__ import annotations

from .. import frame
from ..registry import ModelEntry, register_architecture, register_preset

register_architecture(
    "frame_mn",
    frame.build_frame_mn,
    default_frontend=frame.PRETRAINED_SED_FRONTEND,
    default_labels="audioset_strong",
    checkpoint_filter=frame.checkpoint_filter_fn,
)

_RELEASE = "https://github.com/fschmid56/PretrainedSED/releases/download/v0.0.1"
_SOURCE = "fschmid56/PretrainedSED@1aa47e4 models/frame_mn/model.py, models/prediction_wrapper.py"
_PAPER = (
    "Schmid, Morocutti, Foscarin, Schlüter, Koutini, Widmer: Effective Pre-Training of Audio Transformers for Sound "
    "Event Detection, ICASSP 2025, https://arxiv.org/abs/2409.09546"
)
_DATA = "AudioSet-Strong (frame-level labels of 447 classes), knowledge distillation from a transformer ensemble"

for _width, _tag, _params in ((0.6, "06", 1_615_022), (1.0, "10", 3_830_798)):
    register_preset(
        ModelEntry(
            name=f"frame_mn{_tag}",
            arch="frame_mn",
            model_kwargs={"num_classes": 447, "width_mult": _width},
            frontend=frame.PRETRAINED_SED_FRONTEND,
            labels="audioset_strong",
            description=f"Frame-level MobileNet of width {_width} for sound event detection at 40-ms resolution "
            "(250 frames per 10 s), PretrainedSED's low-complexity model.",
            checkpoint_url=f"{_RELEASE}/frame_mn{_tag}_strong_1.pt",
            num_params=_params,
            license="MIT (PretrainedSED repository)",
            source=_SOURCE,
            family="PretrainedSED frame MN",
            paper=_PAPER,
            training_data=_DATA,
        )
    )
