"""The mel frontends of the reference systems: ``AugmentMelSTFT`` (PaSST, EfficientAT, DCASE23) and the
torchaudio ``MelSpectrogram`` of the DCASE24 / DCASE25 Task 1 baselines.

Two kinds, chosen by :attr:`MelFrontendConfig.kind`:

* ``"kaldi"`` (``AugmentMelSTFT``): pre-emphasis → centred STFT (symmetric Hann) → power → Kaldi-style mel banks →
  ``log(x + 1e-5)`` → ``(x + 4.5) / 5``; masks fill the log-mel with 0.
* ``"htk"`` (torchaudio ``MelSpectrogram`` with its defaults): centred STFT (periodic Hann) → power → HTK mel banks
  without normalisation → ``log(x + 1e-5)``; masks fill the power with 0, i.e. the log-mel with ``log(1e-5)``.

Either kind can first resample its input (``resample_to``) with torchaudio's default windowed-sinc filter
(:class:`~tympan.audio.resample.SincResampler`), as the DCASE24 baseline does from 44.1 to 32 kHz inside the model.
In eval mode the numbers are the references' (to float32 rounding); unlike the references the eval filterbank is
built once and cached, and no random numbers are drawn. Training mode adds ``AugmentMelSTFT``'s fmin/fmax jitter
(one draw per batch) and per-example frequency/time masking.

Reference: ``kkoutini/PaSST`` ``models/preprocess.py``, ``fschmid56/EfficientAT`` ``models/preprocess.py``,
``fschmid56/cpjku_dcase23`` ``models/mel.py``; ``CPJKU/dcase2024_task1_baseline`` ``run_training.py``; mel banks as
``torchaudio.compliance.kaldi.get_mel_banks`` and ``torchaudio.functional.melscale_fbanks``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .augment import mask_along_axis
from .resample import SincResampler, resampled_length

__all__ = ["FRONTEND_KINDS", "MelFrontend", "MelFrontendConfig", "htk_mel_banks", "kaldi_mel_banks"]

PREEMPHASIS = 0.97
LOG_OFFSET = 1e-5
# The fixed normalisation of the kaldi frontend (published checkpoints): (log-mel + NORM_SHIFT) / NORM_SCALE.
NORM_SHIFT = 4.5
NORM_SCALE = 5.0
FRONTEND_KINDS = ("kaldi", "htk")

# Reference constructor argument names -> our field names.
_REFERENCE_NAMES = {"sr": "sample_rate", "hopsize": "hop_length"}
_IGNORED_REFERENCE_ARGS = {"htk": False, "norm": 1}  # accepted by the reference, fixed there too


@dataclass(frozen=True)
class MelFrontendConfig:
    """Settings of :class:`MelFrontend`; the defaults are the PaSST / EfficientAT AudioSet frontend.

    Attributes:
        sample_rate: expected input rate in Hz (the rate audio is loaded at for this model).
        n_mels: number of mel bands.
        win_length: STFT window in samples at the STFT rate (Hann, zero-padded to ``n_fft``).
        hop_length: STFT hop in samples at the STFT rate.
        n_fft: FFT size.
        freqm: maximal frequency-mask width in bands (training only; 0 disables).
        timem: maximal time-mask width in frames (training only; 0 disables).
        fmin: lowest filterbank edge in Hz.
        fmax: highest filterbank edge in Hz; None means ``rate // 2 - fmax_aug_range // 2`` (kaldi) or
            ``rate // 2`` (htk), with ``rate`` the STFT rate.
        fmin_aug_range: training-time jitter range of ``fmin`` in Hz.
        fmax_aug_range: training-time jitter range of ``fmax`` in Hz.
        kind: ``"kaldi"`` (``AugmentMelSTFT``) or ``"htk"`` (torchaudio ``MelSpectrogram``); see the module docstring.
        resample_to: the STFT rate in Hz when it differs from ``sample_rate``: the frontend resamples its input
            first (torchaudio's default windowed sinc). None: the STFT runs at ``sample_rate``.
        log_floor: None: ``log(mel + 1e-5)`` (EfficientAT, PaSST, DCASE23); a value: ``log(max(mel, log_floor))``,
            PretrainedSED's ``AugmentMelSTFT`` (1e-7): the two agree on sound and differ by up to 0.9 (after
            normalisation) in near-silence, so weights trained on one must run on it.
        periodic_window: the Hann window's form; None: the kind's own (kaldi symmetric as ``AugmentMelSTFT``, htk
            periodic as torchaudio). PretrainedSED's frame PaSST frontend uses a periodic window with the kaldi kind.
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
    kind: str = "kaldi"
    resample_to: int | None = None
    log_floor: float | None = None
    periodic_window: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in FRONTEND_KINDS:
            raise ConfigError(f"MelFrontendConfig.kind must be one of {FRONTEND_KINDS}, got {self.kind!r}")
        positive = ("sample_rate", "n_mels", "win_length", "hop_length", "n_fft", "stft_sample_rate")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"MelFrontendConfig.{name} must be positive, got {getattr(self, name)}")
        if self.win_length > self.n_fft:
            raise ConfigError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        if min(self.freqm, self.timem, self.fmin_aug_range, self.fmax_aug_range) < 0:
            raise ConfigError("masking widths and jitter ranges must be >= 0")
        if self.log_floor is not None and self.log_floor <= 0:
            raise ConfigError(f"MelFrontendConfig.log_floor must be positive (or None), got {self.log_floor}")
        if not 0 <= self.fmin < self.effective_fmax <= self.stft_sample_rate / 2 + self.fmax_aug_range / 2:
            raise ConfigError(
                f"need 0 <= fmin < fmax <= Nyquist; got fmin={self.fmin}, fmax={self.effective_fmax} "
                f"at {self.stft_sample_rate} Hz"
            )

    @property
    def stft_sample_rate(self) -> int:
        """The rate the STFT and the filterbank run at: ``resample_to`` when set, else ``sample_rate``."""
        return self.sample_rate if self.resample_to is None else self.resample_to

    @property
    def periodic(self) -> bool:
        """Whether the Hann window is periodic (``periodic_window``, else the kind's default)."""
        return self.kind == "htk" if self.periodic_window is None else self.periodic_window

    def log(self, mel: Tensor) -> Tensor:
        """The log of mel power: ``log(mel + 1e-5)``, or ``log(max(mel, log_floor))`` when a floor is set."""
        return torch.log(mel + LOG_OFFSET) if self.log_floor is None else torch.log(mel.clamp(min=self.log_floor))

    @property
    def effective_fmax(self) -> float:
        """The upper filterbank edge used in eval mode."""
        if self.fmax is not None:
            return self.fmax
        nyquist = self.stft_sample_rate // 2
        return nyquist - self.fmax_aug_range // 2 if self.kind == "kaldi" else nyquist

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` input samples at ``sample_rate`` (after any resampling the STFT is
        centred; kaldi's pre-emphasis drops one sample)."""
        samples = resampled_length(num_samples, self.sample_rate, self.stft_sample_rate)
        return 1 + (samples - (self.kind == "kaldi")) // self.hop_length

    @property
    def min_samples(self) -> int:
        """The shortest input (at ``sample_rate``) whose STFT input is longer than the reflect padding."""
        needed = self.n_fft // 2 + 1 + (self.kind == "kaldi")  # samples at the STFT rate
        return needed if self.resample_to is None else 1 + (needed - 1) * self.sample_rate // self.stft_sample_rate

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


def _kaldi_mel(frequency: float) -> float:
    return 1127.0 * math.log(1.0 + frequency / 700.0)


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> Tensor:
    """Kaldi triangular mel filterbank ``[n_mels, n_fft // 2 + 1]`` (float32, zero Nyquist column).

    Built with the same float32 operations as ``torchaudio.compliance.kaldi.get_mel_banks`` (band edges in
    double precision, per-bin mel values and slopes in float32): a float64 filterbank would move the log-mel by
    up to 1.3e-4, which the reference parity data resolves.

    Args:
        n_mels: number of triangles (> 3, as Kaldi requires).
        n_fft: FFT size (even); bins ``0 .. n_fft/2 - 1`` at ``i · sample_rate / n_fft`` Hz get weights.
        sample_rate: in Hz.
        fmin: lower edge in Hz.
        fmax: upper edge in Hz, at most the Nyquist frequency.

    Raises:
        ConfigError: for invalid sizes or edges.
    """
    nyquist = 0.5 * sample_rate
    if n_mels <= 3 or n_fft <= 0 or n_fft % 2:
        raise ConfigError(f"Kaldi mel banks need n_mels > 3 and an even n_fft, got n_mels={n_mels}, n_fft={n_fft}")
    if not (0.0 <= fmin < nyquist and 0.0 < fmax <= nyquist and fmin < fmax):
        raise ConfigError(f"mel banks need 0 <= fmin < fmax <= {nyquist:g} Hz (Nyquist), got fmin={fmin}, fmax={fmax}")
    mel_low, mel_high = _kaldi_mel(fmin), _kaldi_mel(fmax)
    delta = (mel_high - mel_low) / (n_mels + 1)
    band = torch.arange(n_mels, dtype=torch.float32).unsqueeze(1)
    left = mel_low + band * delta
    centre = mel_low + (band + 1.0) * delta
    right = mel_low + (band + 2.0) * delta
    bin_hz = (sample_rate / n_fft) * torch.arange(n_fft // 2, dtype=torch.float32)
    mel = (1127.0 * (1.0 + bin_hz / 700.0).log()).unsqueeze(0)
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return nn.functional.pad(banks, (0, 1))


def htk_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> Tensor:
    """HTK-scale triangular mel filterbank ``[n_mels, n_fft // 2 + 1]`` without normalisation (float32).

    The filterbank of torchaudio's ``MelSpectrogram`` defaults (``melscale_fbanks(..., norm=None,
    mel_scale="htk")``, transposed): ``n_mels + 2`` points equally spaced on ``2595·log10(1 + f/700)`` between the
    edges, triangles between neighbours, evaluated at ``n_fft // 2 + 1`` bins spread evenly over
    ``0 .. sample_rate // 2`` (the Nyquist bin included), in the same float32 operations.

    Raises:
        ConfigError: for invalid sizes or edges.
    """
    nyquist = 0.5 * sample_rate
    if n_mels <= 0 or n_fft <= 0:
        raise ConfigError(f"HTK mel banks need positive n_mels and n_fft, got n_mels={n_mels}, n_fft={n_fft}")
    if not (0.0 <= fmin < fmax <= nyquist):
        raise ConfigError(f"mel banks need 0 <= fmin < fmax <= {nyquist:g} Hz (Nyquist), got fmin={fmin}, fmax={fmax}")
    bin_hz = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    mel_low, mel_high = (2595.0 * math.log10(1.0 + f / 700.0) for f in (fmin, fmax))
    points = 700.0 * (10.0 ** (torch.linspace(mel_low, mel_high, n_mels + 2) / 2595.0) - 1.0)  # band edges in Hz
    widths = points[1:] - points[:-1]
    offsets = points.unsqueeze(0) - bin_hz.unsqueeze(1)  # [bins, n_mels + 2]
    up = -offsets[:, :-2] / widths[:-1]
    down = offsets[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(up, down), min=0.0).T.contiguous()


_MEL_BANKS = {"kaldi": kaldi_mel_banks, "htk": htk_mel_banks}


_PIECE_BYTES = 4 << 20  # spectrum bytes per piece of a batch (measured: 1-4 MB fastest for 128 and 256 bands)
MEL_BLOCK = 16  # mel bands per block of the eval product (measured fastest among 8, 16, 32 on 128 and 256 bands)


def mel_blocks(basis: Tensor, block: int = MEL_BLOCK) -> tuple[tuple[int, int, int, int], ...]:
    """``(first_band, end_band, first_bin, end_bin)`` per block of ``block`` bands: the bins where they are non-zero.

    Each triangle covers a few bins, so the filterbank is >90 % zeros; multiplying each block of bands by its own
    range of bins only does the same sums (without the zero terms) in a tenth of the time of the dense product.
    """
    nonzero = basis != 0
    blocks = []
    for start in range(0, basis.shape[0], block):
        bins = nonzero[start : start + block].any(0).nonzero()
        first, end = (int(bins.min()), int(bins.max()) + 1) if len(bins) else (0, 1)
        blocks.append((start, min(start + block, basis.shape[0]), first, end))
    return tuple(blocks)


def _cat(tensors: list[Tensor], dim: int) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=dim)


class MelFrontend(nn.Module):
    """Waveform ``[batch, samples]`` → log-mel ``[batch, n_mels, frames]``: ``AugmentMelSTFT`` or ``MelSpectrogram``.

    ``frames = config.num_frames(samples)``: ``1 + (samples - 1) // hop_length`` for the kaldi kind (pre-emphasis
    drops one sample), ``1 + samples // hop_length`` for htk (the STFT is centred with reflect padding), counted
    after the resampler when ``resample_to`` is set. A 1-D input ``[samples]`` gives ``[n_mels, frames]``. The
    frontend has no parameters and adds no keys to a state dict; its window, resampling kernels and eval filterbank
    are non-persistent buffers that follow ``.to(device)``. Resampling and the mel matmul run in float32 (the
    module's dtype) even under autocast.

    Args:
        config: the settings; alternatively give the reference ``AugmentMelSTFT`` keyword arguments
            (``n_mels``, ``sr``, ``win_length``, ``hopsize``, ``n_fft``, ``freqm``, ``timem``, ``fmin``, ``fmax``,
            ``fmin_aug_range``, ``fmax_aug_range``, ``htk``, ``norm``) or our field names.

    Example:
        >>> frontend = MelFrontend(n_mels=128, sr=32000, win_length=800, hopsize=320).eval()
        >>> frontend(torch.zeros(2, 32000)).shape
        torch.Size([2, 128, 100])
    """

    def __init__(self, config: MelFrontendConfig | None = None, **reference_kwargs: Any):
        super().__init__()
        if config is not None and reference_kwargs:
            raise ConfigError("give either a MelFrontendConfig or keyword arguments, not both")
        self.config = config if config is not None else MelFrontendConfig.from_reference(**reference_kwargs)
        cfg = self.config
        self.register_buffer("window", torch.hann_window(cfg.win_length, periodic=cfg.periodic), persistent=False)
        self.resampler = SincResampler(cfg.sample_rate, cfg.resample_to) if cfg.resample_to is not None else None
        basis = _MEL_BANKS[cfg.kind](cfg.n_mels, cfg.n_fft, cfg.stft_sample_rate, cfg.fmin, cfg.effective_fmax)
        self.register_buffer("mel_basis", basis, persistent=False)
        self._mel_blocks = mel_blocks(basis)

    @classmethod
    def from_config(cls, config: MelFrontendConfig) -> MelFrontend:
        """The frontend of ``config`` (e.g. ``model.frontend_config``)."""
        return cls(config)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.config.to_dict().items())

    def forward(self, waveform: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Log-mel of ``waveform`` ``[batch, samples]`` (or ``[samples]``) at ``config.sample_rate``.

        Args:
            waveform: float audio in [-1, 1]; cast to the module's dtype (float32 unless converted).
            generator: training mode only: the source of the jitter and mask draws (global RNG if None).

        Returns:
            ``[batch, n_mels, frames]`` (``[n_mels, frames]`` for 1-D input).

        Raises:
            ConfigError: for non-float input, a wrong number of dimensions, or fewer samples than the STFT
                reflect padding needs.
        """
        x = self._check_input(waveform)
        if self.resampler is not None:
            x = self.resampler(x)
        cfg = self.config
        basis = self._training_basis(generator) if self.training else self.mel_basis
        if x.device.type == "cpu" and torch.get_num_threads() == 1:
            # In pieces of ~4 MB of spectrum (rows of a batch, or frames of a long row: 3x faster than one large
            # spectrum, no page faults) and a banded product. Only on one thread: with several, each of these small
            # ops opens a parallel region, and on a busy machine every region waits for a descheduled thread
            # (measured 5x slower than one large op per step).
            blocks = mel_blocks(basis) if self.training else self._mel_blocks  # jitter moves the bands
            frame_bytes = 8 * (cfg.n_fft // 2 + 1)
            rows = max(1, _PIECE_BYTES // (frame_bytes * (1 + x.shape[1] // cfg.hop_length)))
            step = max(1, _PIECE_BYTES // frame_bytes)
            mel = _cat([self._log_mel(part, basis, blocks, step) for part in x.split(rows)], dim=0)
        else:  # one large kernel per step: accelerators, several threads
            mel = self._log_mel(x, basis, None, None)
        if self.training:  # kaldi masks the log-mel with 0; htk masks the power with 0, i.e. the log of 0
            fill = 0.0 if cfg.kind == "kaldi" else float(cfg.log(torch.zeros(())))
            mel = mask_along_axis(mel, cfg.freqm, axis=1, value=fill, generator=generator)
            mel = mask_along_axis(mel, cfg.timem, axis=2, value=fill, generator=generator)
        if cfg.kind == "kaldi":
            mel = mel.add_(NORM_SHIFT).div_(NORM_SCALE)  # in place: one allocation less
        return mel[0] if waveform.dim() == 1 else mel

    def _log_mel(
        self, x: Tensor, basis: Tensor, blocks: tuple[tuple[int, int, int, int], ...] | None, step: int | None
    ) -> Tensor:
        """Log-mel (:meth:`MelFrontendConfig.log`) of waveforms ``[batch, samples]``, ``step`` frames at a time
        (None: all at once);
        the mel product by ``blocks`` (see :func:`mel_blocks`) or dense."""
        cfg = self.config
        if cfg.kind == "kaldi":
            x = x[:, 1:] - PREEMPHASIS * x[:, :-1]
        half = cfg.n_fft // 2
        # Reflect padding as torch.stft(center=True) pads, by copying: 8x faster than the reflect-pad kernel.
        padded = torch.cat([x[:, 1 : half + 1].flip(1), x, x[:, -half - 1 : -1].flip(1)], dim=1)
        frames = 1 + x.shape[1] // cfg.hop_length  # as torch.stft(center=True) on x
        mels = []
        for first in range(0, frames, step or frames):
            end = min(first + (step or frames), frames)
            spectrum = torch.stft(
                padded[:, first * cfg.hop_length : (end - 1) * cfg.hop_length + cfg.n_fft], cfg.n_fft,
                hop_length=cfg.hop_length, win_length=cfg.win_length, window=self.window, center=False,
                normalized=False, onesided=True, return_complex=True,
            )
            power = spectrum.real.square().add_(spectrum.imag.square())  # as the reference's re² + im², 5x faster
            with torch.autocast(device_type=power.device.type, enabled=False):
                power = power.to(basis.dtype)
                if blocks is None:
                    mel = torch.matmul(basis, power)
                else:
                    mel = _cat([basis[a:b, c:d] @ power[:, c:d] for a, b, c, d in blocks], dim=1)
            mels.append(cfg.log(mel))
        return _cat(mels, dim=2)

    def _check_input(self, waveform: Tensor) -> Tensor:
        if not isinstance(waveform, Tensor):
            raise ConfigError(f"MelFrontend takes a torch.Tensor, got {type(waveform).__name__}; "
                              "use torch.from_numpy(array) first")
        if not waveform.is_floating_point():
            raise ConfigError(f"MelFrontend needs a float waveform in [-1, 1], got dtype {waveform.dtype}; "
                              "convert integer PCM with tympan.audio.prepare_waveform")
        if waveform.dim() not in (1, 2):
            raise ConfigError(f"MelFrontend takes [batch, samples] or [samples], got shape {tuple(waveform.shape)}; "
                              "mix channels to mono (or squeeze a channel dimension of size 1) first")
        minimum = self.config.min_samples
        if waveform.shape[-1] < minimum:
            raise ConfigError(f"MelFrontend needs at least {minimum} samples (more than n_fft // 2 at the STFT for "
                              f"the reflect padding), got {waveform.shape[-1]}; pad short clips first")
        x = waveform.unsqueeze(0) if waveform.dim() == 1 else waveform
        return x.to(self.window.dtype)

    def _training_basis(self, generator: torch.Generator | None) -> Tensor:
        """The filterbank with the reference's jitter: one fmin and one fmax draw for the whole batch."""
        cfg = self.config
        fmin, fmax = cfg.fmin, cfg.effective_fmax
        if cfg.fmin_aug_range > 1:  # randint(1) is always 0: no draw
            fmin = fmin + int(torch.randint(cfg.fmin_aug_range, (1,), generator=generator))
        if cfg.fmax_aug_range > 1:
            fmax = fmax + cfg.fmax_aug_range // 2 - int(torch.randint(cfg.fmax_aug_range, (1,), generator=generator))
        fmax = min(fmax, cfg.stft_sample_rate / 2)  # the reference would fail above Nyquist
        basis = _MEL_BANKS[cfg.kind](cfg.n_mels, cfg.n_fft, cfg.stft_sample_rate, fmin, fmax)
        return basis.to(device=self.mel_basis.device, dtype=self.mel_basis.dtype)
