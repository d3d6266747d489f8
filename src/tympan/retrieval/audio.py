"""Audio encoder of the dual encoder: any tympan model's embedding, averaged over fixed-length segments.

Reference: ``OptimusPrimus/dcase2023_task6b`` ``train.py`` (``forward_audio``). Audio is cut to at most
``max_seconds`` (30 s), split into ``segment_seconds`` chunks (10 s, what the PaSST checkpoints were trained on),
the last one zero-padded; each chunk goes through the mel frontend (without gradients) and the model's
``forward_features`` (for PaSST the mean of the CLS and distillation tokens), and the clip embedding is the mean
over the ``ceil(length / segment)`` chunks that hold audio. Chunks that are pure padding are not computed at all
(the reference computes and then discards them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..audio.frontend import MelFrontend
from ..errors import ConfigError
from ..models.base import AudioModel
from ..models.bundles import frontend_of

__all__ = ["AudioEncoder"]


class AudioEncoder(nn.Module):
    """Waveforms ``[batch, samples]`` at ``sample_rate`` → clip embeddings ``[batch, num_features]``.

    Args:
        model: the network; its ``forward_features`` gives the per-segment embedding.
        frontend: the mel frontend the model expects (default: ``tympan.models.frontend_of(model)``).
        segment_seconds: length of the chunks the model sees.
        max_seconds: audio beyond this is ignored (the reference crops training audio to 30 s).
    """

    def __init__(
        self,
        model: AudioModel,
        frontend: MelFrontend | None = None,
        segment_seconds: float = 10.0,
        max_seconds: float = 30.0,
    ):
        super().__init__()
        if not 0 < segment_seconds <= max_seconds:
            raise ConfigError(f"need 0 < segment_seconds <= max_seconds; got {segment_seconds} and {max_seconds}")
        self.model = model
        self.frontend = frontend if frontend is not None else frontend_of(model)
        self.segment_seconds, self.max_seconds = segment_seconds, max_seconds
        self.num_features: int = model.num_features

    @classmethod
    def from_name(
        cls,
        name: str,
        *,
        checkpoint: Any = None,
        frontend_changes: Mapping[str, Any] | None = None,
        segment_seconds: float = 10.0,
        max_seconds: float = 30.0,
        **model_kwargs: Any,
    ) -> AudioEncoder:
        """Build the model with :func:`tympan.models.create` (preset or architecture) and wrap it.

        Args:
            name: preset or architecture name.
            checkpoint: weights of the audio model (path or state dict).
            frontend_changes: :class:`MelFrontendConfig` fields that differ from the model's frontend (the model
                then carries the changed config).
            segment_seconds, max_seconds: as for the constructor.
            **model_kwargs: keyword arguments of :func:`tympan.models.create`.
        """
        from ..models.registry import create

        model = create(name, checkpoint=checkpoint, **model_kwargs)
        if frontend_changes:
            model.spec = model.spec.replace(frontend=model.spec.frontend.replace(**frontend_changes))
        return cls(model, frontend_of(model), segment_seconds, max_seconds)

    @property
    def sample_rate(self) -> int:
        return self.frontend.config.sample_rate

    @property
    def segment_samples(self) -> int:
        return round(self.segment_seconds * self.sample_rate)

    @property
    def max_samples(self) -> int:
        return round(self.max_seconds * self.sample_rate)

    def num_segments(self, lengths: Tensor) -> Tensor:
        """Segments holding audio for clips of ``lengths`` samples: ``ceil(min(length, max) / segment)``, >= 1."""
        valid = lengths.clamp(1, self.max_samples)
        return torch.div(valid + self.segment_samples - 1, self.segment_samples, rounding_mode="floor")

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Segment-mean embedding of ``waveform`` ``[batch, samples]``.

        Args:
            waveform: zero-padded audio at :attr:`sample_rate`.
            lengths: ``[batch]`` true lengths in samples (default: all of ``samples``).
        """
        batch, samples = waveform.shape
        if lengths is None:
            lengths = torch.full((batch,), samples, device=waveform.device)
        counts = self.num_segments(lengths.to(waveform.device))
        total = int(counts.max()) * self.segment_samples
        waveform = waveform[:, :total]
        if waveform.shape[1] < total:
            waveform = nn.functional.pad(waveform, (0, total - waveform.shape[1]))
        segments = waveform.reshape(batch, -1, self.segment_samples)
        valid = torch.arange(segments.shape[1], device=waveform.device)[None] < counts[:, None]
        with torch.no_grad():
            mel = self.frontend(segments[valid]).unsqueeze(1)
        embeddings = self.model.forward_features(mel)
        owner = torch.arange(batch, device=waveform.device)[:, None].expand_as(valid)[valid]
        summed = embeddings.new_zeros(batch, embeddings.shape[1]).index_add(0, owner, embeddings)
        return summed / counts[:, None].to(embeddings.dtype)

    def extra_repr(self) -> str:
        return f"segment_seconds={self.segment_seconds}, max_seconds={self.max_seconds}, " + (
            f"segments<={math.ceil(self.max_seconds / self.segment_seconds)}"
        )
