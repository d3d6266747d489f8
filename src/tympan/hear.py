"""The HEAR 2021 API (hearbenchmark.com): scene and timestamp embeddings of any tympan model.

``load_model(model_file_path, **options)`` returns a :class:`HearModel`; ``get_scene_embeddings(audio, model)``
and ``get_timestamp_embeddings(audio, model)`` follow the HEAR rules: ``audio`` is ``[n_sounds, n_samples]``
mono in [-1, 1] at ``model.sample_rate``; outputs are float32, timestamps are window centres in milliseconds.

The windowing is that of ``kkoutini/passt_hear21`` @ 5f1cce6a (``PasstBasicWrapper``), so a PaSST wrapped here
gives the numbers of the ``hear21passt`` packages: reflect padding by half a window, windows every hop, one
embedding per window; timestamp embeddings of several window lengths (2-level) and of the log-mel itself
(2-level + mel) are concatenated. Unlike the reference, the windows go through the network in batches (same
numbers), windows are views of the audio (no copy of a 20-minute input per window), and audio shorter than half a
window is zero-padded instead of failing in the reflect padding.

:func:`wrap` builds the same around any :class:`~tympan.models.base.AudioModel` and mel frontend (CNNs too): the
embedding is ``forward_features``, the logits ``forward_head`` of it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import AudioLoadError, ConfigError
from .models import bundle
from .models.base import AudioModel

__all__ = ["VARIANTS", "HearModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model", "wrap"]

logger = logging.getLogger(__name__)

MODES = ("all", "embed_only", "logits")
HEAR_SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000)
# Timestamp-embedding variants of hear21passt: window scales of the levels, and mel frames appended per window.
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {"timestamp_window_scales": (1,), "timestamp_mel_frames": 0},
    "2level": {"timestamp_window_scales": (1, 5), "timestamp_mel_frames": 0},
    "2levelmel": {"timestamp_window_scales": (1, 4), "timestamp_mel_frames": 6},
}
DEFAULT_MODEL = "passt_s_swa_p16_128_ap476"
# Presets whose time encodings cover more than 10 s: scene embeddings take one pass up to that length, as
# hear21passt's base20sec / base30sec modules do (their scene hops for longer audio: 5 s / 10 s).
PRESET_WINDOWS: dict[str, dict[str, float]] = {
    "passt_s_f128_20sec_p16_s10_ap474": {"max_model_window_ms": 20000, "scene_hop_ms": 5000},
    "passt_s_f128_30sec_p16_s10_ap473": {"max_model_window_ms": 30000, "scene_hop_ms": 10000},
}


class HearModel(nn.Module):
    """A mel frontend and an :class:`AudioModel` with the HEAR windowing; see :func:`wrap` for the arguments."""

    def __init__(
        self,
        model: AudioModel,
        frontend: nn.Module,
        *,
        sample_rate: int,
        max_model_window_ms: float = 10000,
        timestamp_window_ms: float = 160,
        timestamp_hop_ms: float = 50,
        scene_hop_ms: float = 2500,
        mode: str = "all",
        timestamp_window_scales: Sequence[int] = (1,),
        timestamp_mel_frames: int = 0,
        hop_length: int | None = None,
        n_mels: int | None = None,
        max_batch_samples: int = 10_240_000,
    ):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        if sample_rate not in HEAR_SAMPLE_RATES:
            logger.warning("sample rate %d Hz is not one of the HEAR rates %s", sample_rate, HEAR_SAMPLE_RATES)
        if timestamp_mel_frames and (hop_length is None or n_mels is None):
            raise ConfigError("mel timestamp features need the frontend's hop_length and n_mels")
        self.model, self.frontend, self.mode = model, frontend, mode
        self.sample_rate = sample_rate
        self.max_model_window = self._samples(max_model_window_ms)
        self.timestamp_window = self._samples(timestamp_window_ms)
        self.timestamp_hop = self._samples(timestamp_hop_ms)
        self.scene_hop = self._samples(scene_hop_ms)
        self.timestamp_window_scales = tuple(int(s) for s in timestamp_window_scales)
        # A window of k frames' hops yields k mel frames (pre-emphasis drops a sample, the STFT is centred).
        self.mel_window = timestamp_mel_frames * hop_length if timestamp_mel_frames else 0
        self.max_batch_samples = max_batch_samples
        sizes = {"all": model.num_classes + model.num_features, "embed_only": model.num_features}
        self.scene_embedding_size = sizes.get(mode, model.num_classes)
        mel_size = timestamp_mel_frames * n_mels if timestamp_mel_frames else 0
        self.timestamp_embedding_size = self.scene_embedding_size * len(self.timestamp_window_scales) + mel_size

    def _samples(self, milliseconds: float) -> int:
        samples = int(milliseconds * self.sample_rate / 1000)
        if samples <= 0:
            raise ConfigError(f"a window or hop of {milliseconds} ms is shorter than one sample")
        return samples

    def forward(self, audio: Tensor) -> Tensor:
        """Embedding of whole clips ``[n_sounds, n_samples]`` → ``[n_sounds, scene_embedding_size]`` (by mode)."""
        mel = self.frontend(audio).unsqueeze(1)
        features = self.model.forward_features(mel)
        if self.mode == "embed_only":
            return features
        logits = self.model.forward_head(features)
        return logits if self.mode == "logits" else torch.cat((logits, features), dim=1)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _windowed(self, audio: Tensor, window: int, hop: int, embed: Any) -> Tensor:
        """``embed`` of every window (centred on sample ``i·hop``), batched: ``[n_sounds, n_windows, D]``."""
        pad = window // 2
        mode = "reflect" if pad < audio.shape[-1] else "constant"  # reflect needs more audio than the padding
        padded = F.pad(audio.unsqueeze(1), (pad, pad), mode=mode).squeeze(1)
        windows = padded.unfold(-1, window, hop)  # a view [n_sounds, n_windows, window]
        n_sounds, n_windows = windows.shape[:2]
        per_batch = max(1, self.max_batch_samples // (window * n_sounds))
        device = self._device()
        outputs = []
        for start in range(0, n_windows, per_batch):
            chunk = windows[:, start : start + per_batch]
            result = embed(chunk.reshape(-1, window).to(device))
            outputs.append(result.reshape(n_sounds, chunk.shape[1], -1).to(audio.device))
        return torch.cat(outputs, dim=1)

    def _mel_features(self, audio: Tensor) -> Tensor:
        """The flattened log-mel of a window, bin-major ``[n, n_mels · frames]``."""
        return self.frontend(audio).flatten(1)

    def timestamps(self, audio: Tensor) -> Tensor:
        """Centres of the timestamp windows in ms, ``[n_sounds, n_timestamps]`` float32."""
        count = audio.shape[-1] // self.timestamp_hop + 1
        centres = torch.arange(count) * self.timestamp_hop * 1000.0 / self.sample_rate  # float32, as the reference
        return centres.expand(audio.shape[0], -1).to(audio.device)

    def timestamp_embeddings(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """HEAR timestamp embeddings ``[n_sounds, n_timestamps, timestamp_embedding_size]`` and their timestamps."""
        audio = _check_audio(audio)
        levels = [
            self._windowed(audio, self.timestamp_window * scale, self.timestamp_hop, self)
            for scale in self.timestamp_window_scales
        ]
        if self.mel_window:
            levels.append(self._windowed(audio, self.mel_window, self.timestamp_hop, self._mel_features))
        embeddings = torch.cat(levels, dim=-1)
        timestamps = self.timestamps(audio)
        if embeddings.shape[1] != timestamps.shape[1]:  # only for odd windows; never for the presets
            timestamps = timestamps[:, : embeddings.shape[1]]
        return embeddings, timestamps

    def scene_embeddings(self, audio: Tensor) -> Tensor:
        """HEAR scene embeddings ``[n_sounds, scene_embedding_size]``: one forward up to ``max_model_window``
        samples, else the mean over windows of that length every ``scene_hop``."""
        audio = _check_audio(audio)
        if audio.shape[-1] <= self.max_model_window:
            return self(audio.to(self._device())).to(audio.device)
        return self._windowed(audio, self.max_model_window, self.scene_hop, self).mean(dim=1)


def _check_audio(audio: Any) -> Tensor:
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(audio)
    if not isinstance(audio, Tensor) or audio.ndim != 2 or audio.shape[-1] == 0:
        shape = tuple(audio.shape) if hasattr(audio, "shape") else type(audio).__name__
        raise AudioLoadError(f"HEAR audio must be a [n_sounds, n_samples] tensor of mono audio, got {shape}")
    return audio.float()


def wrap(
    model: AudioModel,
    frontend: nn.Module,
    *,
    variant: str = "base",
    sample_rate: int | None = None,
    **wrapper_config: Any,
) -> HearModel:
    """The HEAR model around ``model`` and its mel ``frontend`` (``[B, samples] → [B, n_mels, frames]``).

    Args:
        model: any :class:`AudioModel` (PaSST, MobileNet, ...), in eval mode or not (the API sets eval).
        frontend: the mel frontend the model expects, e.g. ``tympan.models.frontend_of(model)``.
        variant: ``"base"``, ``"2level"`` (timestamp windows ×1 and ×5) or ``"2levelmel"`` (×1, ×4 and the
            flattened log-mel of a 6-frame window), as the ``hear21passt`` modules of the same names.
        sample_rate: input rate in Hz; by default the frontend's (``frontend.config.sample_rate`` or
            ``model.spec.sample_rate``).
        **wrapper_config: ``max_model_window_ms`` (10000; 20000 / 30000 for the 20 s / 30 s PaSST presets, see
            :data:`PRESET_WINDOWS`), ``timestamp_window_ms`` (160), ``timestamp_hop_ms`` (50), ``scene_hop_ms``
            (2500; 5000 / 10000 for the 20 s / 30 s presets), ``mode`` (``"all"``: logits then embedding;
            ``"embed_only"``; ``"logits"``), ``timestamp_window_scales`` / ``timestamp_mel_frames`` (override the
            variant), ``max_batch_samples`` (audio samples per network call; bounds memory for long inputs).
            ``sample_rate``, ``scene_embedding_size`` and ``timestamp_embedding_size`` are accepted when they
            agree with what the model gives (as stored in a ``hear21passt`` config).

    Raises:
        ConfigError: an unknown variant or option, or a size that contradicts the model.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown HEAR variant {variant!r}; choose one of {sorted(VARIANTS)}")
    config = getattr(frontend, "config", None) or getattr(model, "frontend_config", None)
    declared = {k: wrapper_config.pop(k) for k in ("scene_embedding_size", "timestamp_embedding_size")
                if k in wrapper_config}
    if sample_rate is None:
        if config is None:
            raise ConfigError("pass sample_rate: neither the frontend nor the model tells it")
        sample_rate = config.sample_rate
    elif config is not None and sample_rate != config.sample_rate:
        raise ConfigError(f"sample_rate={sample_rate} contradicts the frontend's {config.sample_rate} Hz; resample the "
                          "audio to the frontend's rate instead")
    preset = getattr(model, "preset", None)
    windows = PRESET_WINDOWS.get(preset.name, {}) if preset is not None else {}
    options = {**VARIANTS[variant], **windows, **wrapper_config}
    if options["timestamp_mel_frames"] and config is not None:
        options.setdefault("hop_length", config.hop_length)
        options.setdefault("n_mels", config.n_mels)
    try:
        hear_model = HearModel(model, frontend, sample_rate=sample_rate, **options)
    except TypeError as error:
        raise ConfigError(f"unknown HEAR wrapper option: {error}") from None
    for key, value in declared.items():
        if getattr(hear_model, key) != value:
            raise ConfigError(f"{key}={value} does not fit this model and mode ({getattr(hear_model, key)})")
    return hear_model.eval()


def load_model(model_file_path: str = "", **options: Any) -> HearModel:
    """HEAR entry point: a zoo model with its frontend, wrapped for the HEAR API.

    Args:
        model_file_path: checkpoint of the model (strict load); empty: the preset's published weights, from the
            tympan cache or downloaded into it (:mod:`tympan.hub`).
        **options: ``model`` (zoo preset, default ``"passt_s_swa_p16_128_ap476"``, or an architecture such as
            ``"passt"`` together with ``model_kwargs``, its constructor arguments, for a model trained with another
            configuration) and :func:`wrap`'s options (``variant``, ``mode``, window sizes, ...).
    """
    name = options.pop("model", DEFAULT_MODEL)
    model_kwargs = options.pop("model_kwargs", {})
    source = bundle(name, checkpoint=model_file_path or None, pretrained=not model_file_path, **model_kwargs)
    hear_model = wrap(source.get_model(), source.get_frontend(), **options)
    if torch.cuda.is_available():
        hear_model = hear_model.cuda()
    return hear_model


def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """``[n_sounds, model.scene_embedding_size]`` float32 embeddings of whole clips."""
    model.eval()
    with torch.no_grad():
        return model.scene_embeddings(audio)


def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """``([n_sounds, n_timestamps, model.timestamp_embedding_size], [n_sounds, n_timestamps])`` float32;
    timestamps are window centres in milliseconds, every ``timestamp_hop_ms``."""
    model.eval()
    with torch.no_grad():
        return model.timestamp_embeddings(audio)
