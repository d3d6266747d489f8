"""Training-time augmentations of waveforms and spectrograms.

Waveforms: device impulse responses (DIR, DCASE23), circular time roll, random gain, mixup. Spectrograms:
Freq-MixStyle (DCASE23), mixup, SpecAugment-style masking (torchaudio ``mask_along_axis_iid``, one mask per
example; the mel frontend uses it). Everything augments when called; call it in training only. Randomness comes
from an optional explicit ``torch.Generator`` (the global RNG otherwise, so Lightning's seeding applies).

Reference: ``fschmid56/cpjku_dcase23`` (``datasets/dcase23.py``, ``helpers/utils.py``), ``fschmid56/EfficientAT``
(``helpers/utils.py``, ``datasets/helpers/audiodatasets.py``), ``kkoutini/PaSST``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .io import load_audio

__all__ = [
    "DeviceImpulseResponses",
    "convolve_impulse_response",
    "freq_mixstyle",
    "gain",
    "mask_along_axis",
    "mix_frequency_statistics",
    "mix_targets",
    "mixup",
    "roll",
    "wavmix",
]

logger = logging.getLogger(__name__)


def mask_along_axis(
    x: Tensor, max_width: int, axis: int, *, value: float = 0.0, generator: torch.Generator | None = None
) -> Tensor:
    """Fill one random band per example along ``axis`` with ``value`` (SpecAugment, torchaudio ``iid_masks``).

    Width ``w = floor(u·max_width)`` and start ``floor(v·(size − w))`` with ``u, v ~ U[0, 1)`` per example, as
    torchaudio draws them, so every example gets its own mask (older torchaudio shared one across a batch).

    Args:
        x: ``[batch, ..., size, ...]``, at least 2-D; ``axis`` indexes the masked dimension.
        max_width: masks are 0 to ``max_width - 1`` long; 0 or 1 returns ``x`` unchanged.
        axis: the masked dimension (negative counts from the end), not the batch dimension.
        value: fill value.
        generator: optional source of randomness.

    Returns:
        A masked copy of ``x`` (``x`` itself when nothing can be masked).
    """
    if x.dim() < 2:
        raise ConfigError(f"mask_along_axis needs a batched tensor, got shape {tuple(x.shape)}")
    axis = axis % x.dim()
    if axis == 0:
        raise ConfigError("mask_along_axis masks a feature axis, not the batch axis 0")
    if max_width <= 1:
        return x
    device = generator.device if generator is not None else x.device
    size = x.shape[axis]
    width = torch.rand(x.shape[0], device=device, generator=generator) * max_width
    start = torch.rand(x.shape[0], device=device, generator=generator) * (size - width)
    start, end = start.long(), start.long() + width.long()
    positions = torch.arange(size, device=device)
    masked = (positions >= start[:, None]) & (positions < end[:, None])  # [batch, size]
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[axis] = size
    return x.masked_fill(masked.view(shape).to(x.device), value)


def _beta(alpha: float, size: int, generator: torch.Generator | None) -> Tensor:
    """``size`` draws of Beta(α, α); seeded from ``generator`` (torch samplers of Beta take no generator)."""
    if alpha <= 0:
        raise ConfigError(f"Beta(α, α) needs α > 0, got {alpha}")
    seed = int(torch.randint(2**62, (1,), generator=generator))
    return torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size)).float()


def _check_probability(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"a probability must be in [0, 1], got {p}")


def convolve_impulse_response(waveform: Tensor, impulse_response: Tensor) -> Tensor:
    """Full linear convolution with ``impulse_response``, cut to the input length (the reference DIR step).

    Causal, with no gain normalisation and no delay compensation, as ``scipy.signal.convolve(x, h, 'full')[:n]``.
    Computed by FFT in float64 and returned in the input's dtype.

    Args:
        waveform: ``[..., samples]``.
        impulse_response: ``[..., taps]``, broadcast against ``waveform``'s leading dimensions.

    Returns:
        ``[..., samples]``.
    """
    samples, taps = waveform.shape[-1], impulse_response.shape[-1]
    size = 1 << (samples + taps - 2).bit_length()  # a power of two >= samples + taps - 1
    spectrum = torch.fft.rfft(waveform.double(), n=size) * torch.fft.rfft(impulse_response.double(), n=size)
    return torch.fft.irfft(spectrum, n=size)[..., :samples].to(waveform.dtype)


class DeviceImpulseResponses(nn.Module):
    """Device impulse response (DIR) augmentation of the CP-JKU DCASE23 system.

    Each chosen example is, with probability ``p``, convolved with an impulse response drawn uniformly from the
    bank (:func:`convolve_impulse_response`). The reference applies it to device-``a`` recordings only: pass
    ``mask`` to choose the examples. The bank is a non-persistent buffer (no state-dict keys), moved to the
    input's device on use.

    Args:
        impulse_responses: 1-D tensors at the model's sample rate, in the order the indices refer to.
        names: one name per impulse response (e.g. file names), for logging and reproducibility.
    """

    def __init__(self, impulse_responses: Sequence[Tensor], names: Sequence[str] | None = None):
        super().__init__()
        if not impulse_responses:
            raise ConfigError("DeviceImpulseResponses needs at least one impulse response")
        if names is not None and len(names) != len(impulse_responses):
            raise ConfigError(f"got {len(names)} names for {len(impulse_responses)} impulse responses")
        self.names = list(names) if names is not None else [str(i) for i in range(len(impulse_responses))]
        taps = max(response.shape[-1] for response in impulse_responses)
        bank = torch.zeros(len(impulse_responses), taps)
        for row, response in zip(bank, impulse_responses, strict=True):
            row[: response.shape[-1]] = response.reshape(-1)  # zero taps do not change the cut convolution
        self.register_buffer("bank", bank, persistent=False)

    @classmethod
    def from_folder(cls, folder: str | Path, sample_rate: int) -> DeviceImpulseResponses:
        """Every ``*.wav`` under ``folder`` (recursively, sorted by path as the reference does), resampled.

        Raises:
            ConfigError: the folder does not exist or holds no ``.wav`` files.
        """
        folder = Path(folder).expanduser()
        paths = sorted(folder.rglob("*.wav")) if folder.is_dir() else []
        if not paths:
            raise ConfigError(f"no .wav impulse responses found under {folder}; point dir_folder at the DIR files")
        responses = [torch.from_numpy(load_audio(path, sample_rate)) for path in paths]
        logger.info("DIR augmentation with %d impulse responses from %s", len(paths), folder)
        return cls(responses, names=[path.relative_to(folder).as_posix() for path in paths])

    def __len__(self) -> int:
        return self.bank.shape[0]

    def forward(
        self,
        waveform: Tensor,
        p: float = 1.0,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        indices: Tensor | None = None,
    ) -> Tensor:
        """Convolve chosen examples of ``waveform`` ``[batch, samples]`` with random impulse responses.

        Args:
            waveform: ``[batch, samples]`` at the bank's sample rate.
            p: probability per chosen example.
            mask: bool ``[batch]``, the examples that may be augmented (e.g. device ``a``); all if None.
            generator: source of the draws (global RNG if None).
            indices: ``[batch]`` impulse-response indices to use instead of uniform draws.

        Returns:
            The augmented copy ``[batch, samples]``.
        """
        _check_probability(p)
        if waveform.dim() != 2:
            raise ConfigError(f"DIR augmentation takes [batch, samples], got shape {tuple(waveform.shape)}")
        batch = waveform.shape[0]
        device = generator.device if generator is not None else torch.device("cpu")
        chosen = torch.rand(batch, device=device, generator=generator) < p
        if indices is None:
            indices = torch.randint(len(self), (batch,), device=device, generator=generator)
        if mask is not None:
            chosen &= mask.to(device=device, dtype=torch.bool)
        rows = chosen.nonzero().flatten().to(waveform.device)
        if rows.numel() == 0:
            return waveform
        responses = self.bank.to(waveform.device)[indices.to(waveform.device)[rows]]
        return waveform.index_copy(0, rows, convolve_impulse_response(waveform[rows], responses))


def roll(waveform: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Circular shift of each example along the last axis by a uniform integer in ``[-max_shift, max_shift]``.

    Args:
        waveform: ``[batch, ..., samples]``.
        max_shift: in samples (DCASE23 student 4000, PaSST 10000 or 50, EfficientAT 4000).
        generator: source of the shifts.
    """
    shifts = torch.randint(-max_shift, max_shift + 1, (waveform.shape[0],), generator=generator)
    positions = torch.arange(waveform.shape[-1])
    source = (positions[None, :] - shifts[:, None]) % waveform.shape[-1]  # out[t] = x[t - shift]
    source = source.view(waveform.shape[0], *[1] * (waveform.dim() - 2), -1).expand_as(waveform)
    return waveform.gather(-1, source.to(waveform.device))


def gain(waveform: Tensor, max_db: int, generator: torch.Generator | None = None) -> Tensor:
    """Scale each example by ``10^(g/20)`` with an integer ``g`` uniform in ``[-max_db, max_db - 1]`` dB.

    This is the EfficientAT ``gain_augment`` (``randint(2·max_db) - max_db``; PaSST uses max_db = 7).
    """
    if max_db <= 0:
        raise ConfigError(f"gain needs max_db > 0, got {max_db}")
    decibels = torch.randint(2 * max_db, (waveform.shape[0],), generator=generator) - max_db
    factors = (10.0 ** (decibels.double() / 20.0)).to(device=waveform.device, dtype=waveform.dtype)
    return waveform * factors.view(-1, *[1] * (waveform.dim() - 1))


def mix_frequency_statistics(x: Tensor, lam: Tensor, perm: Tensor, eps: float = 1e-6) -> Tensor:
    """The deterministic core of Freq-MixStyle: per-frequency statistics mixed with another example's.

    ``mu``/``sig`` are the mean and unbiased standard deviation over (channel, time) of each example and frequency,
    detached; ``y = (x − mu)/sig · (λ·sig + (1−λ)·sig[perm]) + λ·mu + (1−λ)·mu[perm]``.

    Args:
        x: log-mel ``[batch, channels, n_mels, frames]``.
        lam: ``[batch]`` mixing weights.
        perm: ``[batch]`` partner of each example.
        eps: added to the variance.
    """
    mu = x.mean(dim=(1, 3), keepdim=True).detach()
    sig = (x.var(dim=(1, 3), keepdim=True) + eps).sqrt().detach()
    lam = lam.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    perm = perm.to(x.device)
    mixed_mu = mu * lam + mu[perm] * (1 - lam)
    mixed_sig = sig * lam + sig[perm] * (1 - lam)
    return (x - mu) / sig * mixed_sig + mixed_mu


def freq_mixstyle(
    x: Tensor, p: float = 0.4, alpha: float = 0.4, eps: float = 1e-6, generator: torch.Generator | None = None
) -> Tensor:
    """Freq-MixStyle (DCASE23): with probability ``p`` for the whole batch, mix per-frequency statistics.

    ``λ ~ Beta(α, α)`` per example and a random permutation; see :func:`mix_frequency_statistics`. The student
    recipe uses p = 0.4, α = 0.3.

    Args:
        x: log-mel ``[batch, channels, n_mels, frames]`` or ``[batch, n_mels, frames]``.
    """
    _check_probability(p)
    if x.dim() not in (3, 4):
        raise ConfigError(f"Freq-MixStyle takes [batch, (channels,) n_mels, frames], got shape {tuple(x.shape)}")
    if float(torch.rand(1, generator=generator)) >= p:
        return x
    lam = _beta(alpha, x.shape[0], generator)
    perm = torch.randperm(x.shape[0], generator=generator)
    if x.dim() == 3:
        return mix_frequency_statistics(x.unsqueeze(1), lam, perm, eps).squeeze(1)
    return mix_frequency_statistics(x, lam, perm, eps)


def mixup(
    x: Tensor, alpha: float = 0.3, p: float = 1.0, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Mixup of EfficientAT / PaSST: ``x' = λ·x + (1 − λ)·x[perm]`` with ``λ = max(λ, 1 − λ)``, ``λ ~ Beta(α, α)``.

    Works on waveforms ``[batch, samples]`` and spectrograms alike. Mix the targets with :func:`mix_targets`
    (cross-entropy and BCE are linear in the target, so this equals mixing the losses).

    Args:
        x: ``[batch, ...]``.
        alpha: Beta parameter (spectrogram mixup 0.3; waveform mixup 2.0).
        p: probability per example; unmixed examples get λ = 1.
        generator: source of the draws.

    Returns:
        ``(mixed, lam [batch], perm [batch])``.
    """
    _check_probability(p)
    batch = x.shape[0]
    lam = _beta(alpha, batch, generator)
    lam = torch.maximum(lam, 1 - lam)
    perm = torch.randperm(batch, generator=generator)
    if p < 1.0:
        lam = torch.where(torch.rand(batch, generator=generator) < p, lam, torch.ones_like(lam))
    lam, perm = lam.to(device=x.device, dtype=x.dtype), perm.to(x.device)
    weight = lam.view(-1, *[1] * (x.dim() - 1))
    return x * weight + x[perm] * (1 - weight), lam, perm


def wavmix(
    waveform: Tensor, alpha: float = 2.0, p: float = 0.5, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """PaSST's waveform mixup (``MixupDataset``): with probability ``p`` a clip is mixed with another one.

    Both waveforms are de-meaned before mixing and the mix after, as the reference does; clips drawn unmixed come
    back untouched (λ = 1). The partner is another clip of the batch (the reference draws it from the whole data
    set, which a shuffled batch samples alike). Mix the targets with :func:`mix_targets`.

    Args:
        waveform: ``[batch, samples]``.
        alpha: Beta parameter (the reference: 2).
        p: probability per clip (the reference's ``rate``: 0.5).
        generator: source of the draws.

    Returns:
        ``(mixed, lam [batch], perm [batch])``.
    """
    centred = waveform - waveform.mean(dim=-1, keepdim=True)
    mixed, lam, perm = mixup(centred, alpha, p, generator)
    mixed = mixed - mixed.mean(dim=-1, keepdim=True)
    untouched = (lam == 1).view(-1, *[1] * (waveform.dim() - 1))
    return torch.where(untouched, waveform, mixed), lam, perm


def mix_targets(targets: Tensor, lam: Tensor, perm: Tensor) -> Tensor:
    """``λ·y + (1 − λ)·y[perm]`` for float targets ``[batch, classes]`` (one-hot, multi-hot or soft)."""
    weight = lam.to(device=targets.device, dtype=targets.dtype).view(-1, *[1] * (targets.dim() - 1))
    return targets * weight + targets[perm.to(targets.device)] * (1 - weight)
