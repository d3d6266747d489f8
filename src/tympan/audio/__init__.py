"""Audio input, the mel frontend and augmentations."""

from __future__ import annotations

from .augment import mask_along_axis
from .frontend import MelFrontend, MelFrontendConfig, kaldi_mel_banks

__all__ = ["MelFrontend", "MelFrontendConfig", "kaldi_mel_banks", "mask_along_axis"]
