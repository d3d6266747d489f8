"""Audio input, the mel frontend and augmentations."""

from __future__ import annotations

from .augment import (
    DeviceImpulseResponses,
    convolve_impulse_response,
    freq_mixstyle,
    gain,
    mask_along_axis,
    mix_frequency_statistics,
    mix_targets,
    mixup,
    roll,
    wavmix,
)
from .frontend import MelFrontend, MelFrontendConfig, kaldi_mel_banks
from .io import AudioInfo, audio_info, load_audio, prepare_waveform, stream_audio

__all__ = [
    "AudioInfo",
    "DeviceImpulseResponses",
    "MelFrontend",
    "MelFrontendConfig",
    "audio_info",
    "convolve_impulse_response",
    "freq_mixstyle",
    "gain",
    "kaldi_mel_banks",
    "load_audio",
    "mask_along_axis",
    "mix_frequency_statistics",
    "mix_targets",
    "mixup",
    "prepare_waveform",
    "roll",
    "stream_audio",
    "wavmix",
]
