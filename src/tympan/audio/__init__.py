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
from .frontend import MelFrontend, MelFrontendConfig, htk_mel_banks, kaldi_mel_banks
from .io import (
    AUDIO_EXTENSIONS,
    AudioInfo,
    audio_info,
    find_audio_files,
    load_audio,
    prepare_waveform,
    read_span,
    stream_audio,
)
from .resample import SincResampler

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "DeviceImpulseResponses",
    "MelFrontend",
    "MelFrontendConfig",
    "SincResampler",
    "audio_info",
    "convolve_impulse_response",
    "find_audio_files",
    "freq_mixstyle",
    "gain",
    "htk_mel_banks",
    "kaldi_mel_banks",
    "load_audio",
    "mask_along_axis",
    "mix_frequency_statistics",
    "mix_targets",
    "mixup",
    "prepare_waveform",
    "read_span",
    "roll",
    "stream_audio",
    "wavmix",
]
