"""The mel frontend of PaSST, EfficientAT and the DCASE23 systems (reference ``AugmentMelSTFT``).

Reference: ``kkoutini/PaSST`` ``models/preprocess.py``, ``fschmid56/EfficientAT`` ``models/preprocess.py``,
``fschmid56/cpjku_dcase23`` ``models/mel.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import ConfigError

__all__ = ["MelFrontendConfig"]

# Reference constructor argument names -> our field names.
_REFERENCE_NAMES = {"sr": "sample_rate", "hopsize": "hop_length"}
_IGNORED_REFERENCE_ARGS = {"htk": False, "norm": 1}  # accepted by the reference, fixed there too


@dataclass(frozen=True)
class MelFrontendConfig:
    """Settings of :class:`MelFrontend`; the defaults are the PaSST / EfficientAT AudioSet frontend.

    Attributes:
        sample_rate: expected input rate in Hz.
        n_mels: number of mel bands.
        win_length: STFT window in samples (symmetric Hann, zero-padded to ``n_fft``).
        hop_length: STFT hop in samples.
        n_fft: FFT size.
        freqm: maximal frequency-mask width in bands (training only; 0 disables).
        timem: maximal time-mask width in frames (training only; 0 disables).
        fmin: lowest filterbank edge in Hz.
        fmax: highest filterbank edge in Hz; None means ``sample_rate // 2 - fmax_aug_range // 2``.
        fmin_aug_range: training-time jitter range of ``fmin`` in Hz.
        fmax_aug_range: training-time jitter range of ``fmax`` in Hz.
    """

    sample_rate: int = 32000
    n_mels: int = 128
    win_length: int = 800
    hop_length: int = 320
    n_fft: int = 1024
    freqm: int = 48
    timem: int = 192
    fmin: float = 0.0
    fmax: float | None = None
    fmin_aug_range: int = 10
    fmax_aug_range: int = 2000

    def __post_init__(self) -> None:
        positive = ("sample_rate", "n_mels", "win_length", "hop_length", "n_fft")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"MelFrontendConfig.{name} must be positive, got {getattr(self, name)}")
        if self.win_length > self.n_fft:
            raise ConfigError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        if min(self.freqm, self.timem, self.fmin_aug_range, self.fmax_aug_range) < 0:
            raise ConfigError("masking widths and jitter ranges must be >= 0")
        if not 0 <= self.fmin < self.effective_fmax <= self.sample_rate / 2 + self.fmax_aug_range / 2:
            raise ConfigError(
                f"need 0 <= fmin < fmax <= Nyquist; got fmin={self.fmin}, fmax={self.effective_fmax} "
                f"at {self.sample_rate} Hz"
            )

    @property
    def effective_fmax(self) -> float:
        """The upper filterbank edge used in eval mode."""
        return self.sample_rate // 2 - self.fmax_aug_range // 2 if self.fmax is None else self.fmax

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` input samples (pre-emphasis drops one, the STFT is centred)."""
        return 1 + (num_samples - 1) // self.hop_length

    @classmethod
    def from_reference(cls, **kwargs: Any) -> MelFrontendConfig:
        """Build from the reference ``AugmentMelSTFT`` keyword arguments (``sr``, ``hopsize``, ...)."""
        fields = {}
        for key, value in kwargs.items():
            if key in _IGNORED_REFERENCE_ARGS:
                if value != _IGNORED_REFERENCE_ARGS[key]:
                    raise ConfigError(f"AugmentMelSTFT({key}={value!r}) is not supported by the reference either")
                continue
            fields[_REFERENCE_NAMES.get(key, key)] = None if value == "None" else value
        try:
            return cls(**fields)
        except TypeError as error:
            raise ConfigError(f"unknown mel frontend argument: {error}") from None

    def replace(self, **changes: Any) -> MelFrontendConfig:
        """A copy with ``changes`` applied (validated)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
