"""Audio input, the mel frontend and augmentations."""

from __future__ import annotations

from .augment import mask_along_axis
from .frontend import MelFrontend, MelFrontendConfig, kaldi_mel_banks
from .io import AudioInfo, audio_info, load_audio, prepare_waveform, stream_audio

__all__ = [
    "AudioInfo",
    "MelFrontend",
    "MelFrontendConfig",
    "audio_info",
    "kaldi_mel_banks",
    "load_audio",
    "mask_along_axis",
    "prepare_waveform",
    "stream_audio",
]
