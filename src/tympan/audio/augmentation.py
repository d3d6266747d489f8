"""The augmentation of a training batch as one object, built in a recipe from ``class_path`` entries.

A training system receives an :class:`Augmentation`: waveform steps (device impulse responses, time roll, gain),
applied before the mel frontend, and spectrogram steps (Freq-MixStyle), applied after it, each in the order given;
the functions they call are those of :mod:`tympan.audio.augment`. Mixup and waveform mixup are not steps: they mix
the targets too, and the training system's loss needs their draws. In a recipe::

    augmentation:
      class_path: tympan.audio.augmentation.Augmentation
      init_args:
        waveform:
          - {class_path: tympan.audio.augmentation.DeviceImpulseResponse, init_args: {folder: dirs/, p: 0.6}}
          - {class_path: tympan.audio.augmentation.TimeRoll, init_args: {max_samples: 4000}}
        mel:
          - {class_path: tympan.audio.augmentation.FreqMixStyle, init_args: {p: 0.4, alpha: 0.3}}
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from .augment import DeviceImpulseResponses, freq_mixstyle, gain, roll

__all__ = [
    "Augmentation",
    "DeviceImpulseResponse",
    "FreqMixStyle",
    "Gain",
    "MelTransform",
    "TimeRoll",
    "WaveformTransform",
]


class _Step:
    """Steps compare and print by their settings, their public attributes (recipes and tests read them)."""

    def _settings(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._settings() == self._settings()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), repr(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._settings().items())})"


class WaveformTransform(_Step, ABC):
    """A waveform step: ``[batch, samples]`` at ``sample_rate`` in and out; ``devices`` names each clip's device."""

    @abstractmethod
    def __call__(
        self, audio: Tensor, generator: torch.Generator, *, devices: Sequence[str], sample_rate: int
    ) -> Tensor: ...


class MelTransform(_Step, ABC):
    """A spectrogram step: log-mel ``[batch, 1, n_mels, frames]`` in and out."""

    @abstractmethod
    def __call__(self, mel: Tensor, generator: torch.Generator) -> Tensor: ...


class TimeRoll(WaveformTransform):
    """Circular time roll by up to ± ``max_samples`` (DCASE23 student: 4000, DCASE24 baseline: 4410)."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples

    def __call__(
        self, audio: Tensor, generator: torch.Generator, *, devices: Sequence[str], sample_rate: int
    ) -> Tensor:
        return roll(audio, self.max_samples, generator=generator)


class Gain(WaveformTransform):
    """Random gain in ``[-max_db, max_db)`` dB (PaSST: 7)."""

    def __init__(self, max_db: int) -> None:
        self.max_db = max_db

    def __call__(
        self, audio: Tensor, generator: torch.Generator, *, devices: Sequence[str], sample_rate: int
    ) -> Tensor:
        return gain(audio, self.max_db, generator=generator)


class DeviceImpulseResponse(WaveformTransform):
    """The impulse responses under ``folder``, with probability ``p``, for clips of ``devices`` (DCASE23: ``a``).

    The files are read at the model's rate on first use.
    """

    def __init__(self, folder: str, p: float, devices: Sequence[str] = ("a",)) -> None:
        self.folder, self.p, self.devices = folder, p, tuple(devices)
        self._bank: DeviceImpulseResponses | None = None

    def __call__(
        self, audio: Tensor, generator: torch.Generator, *, devices: Sequence[str], sample_rate: int
    ) -> Tensor:
        if self._bank is None:
            self._bank = DeviceImpulseResponses.from_folder(self.folder, sample_rate)
        chosen = torch.tensor([device in self.devices for device in devices], device=audio.device)
        return self._bank(audio, p=self.p, mask=chosen, generator=generator)


class FreqMixStyle(MelTransform):
    """Freq-MixStyle with probability ``p`` per batch and ``Beta(alpha, alpha)`` weights (DCASE23: 0.4, 0.3)."""

    def __init__(self, p: float, alpha: float = 0.4) -> None:
        self.p, self.alpha = p, alpha

    def __call__(self, mel: Tensor, generator: torch.Generator) -> Tensor:
        return freq_mixstyle(mel, self.p, self.alpha, generator=generator)


class Augmentation(_Step):
    """The waveform steps, then (after the frontend) the spectrogram steps, each in order.

    Raises:
        ConfigError: a step in the wrong list.
    """

    def __init__(self, waveform: Sequence[WaveformTransform] = (), mel: Sequence[MelTransform] = ()) -> None:
        self.waveform, self.mel = tuple(waveform), tuple(mel)
        wrong = [type(t).__name__ for t in self.waveform if not isinstance(t, WaveformTransform)]
        wrong += [type(t).__name__ for t in self.mel if not isinstance(t, MelTransform)]
        if wrong:
            raise ConfigError(f"not augmentation steps of their list (waveform / mel): {wrong}")

    @classmethod
    def from_settings(
        cls,
        roll_samples: int = 0,
        gain_db: int = 0,
        dir_folder: str | None = None,
        dir_prob: float = 0.0,
        dir_devices: Sequence[str] | None = None,
        mixstyle_p: float = 0.0,
        mixstyle_alpha: float = 0.4,
    ) -> Augmentation:
        """The augmentation of the training systems' flat arguments (zero or None: off), in their order."""
        waveform: list[WaveformTransform] = []
        if dir_prob > 0 and dir_folder:
            waveform.append(DeviceImpulseResponse(dir_folder, dir_prob, tuple(dir_devices or ("a",))))
        if roll_samples > 0:
            waveform.append(TimeRoll(roll_samples))
        if gain_db > 0:
            waveform.append(Gain(gain_db))
        return cls(waveform, [FreqMixStyle(mixstyle_p, mixstyle_alpha)] if mixstyle_p > 0 else [])

    def with_mixstyle(self, p: float) -> Augmentation:
        """A copy whose Freq-MixStyle has probability ``p``: the steps' own ``alpha`` kept, one added where there is
        none, all removed for ``p == 0`` (DCASE25's per-device stage switches it off)."""
        others = [t for t in self.mel if not isinstance(t, FreqMixStyle)]
        styles = [FreqMixStyle(p, t.alpha) for t in self.mel if isinstance(t, FreqMixStyle)] or [FreqMixStyle(p)]
        return Augmentation(self.waveform, others + styles if p > 0 else others)

    def augment_waveform(
        self, audio: Tensor, generator: torch.Generator, *, devices: Sequence[str], sample_rate: int
    ) -> Tensor:
        for transform in self.waveform:
            audio = transform(audio, generator, devices=devices, sample_rate=sample_rate)
        return audio

    def augment_mel(self, mel: Tensor, generator: torch.Generator) -> Tensor:
        for transform in self.mel:
            mel = transform(mel, generator)
        return mel
