"""Model, mel frontend, labels and sample rate in one object: waveform (or file) in, named scores out.

:func:`load` takes everything from the model's bundle (:func:`tympan.models.bundle`: a zoo entry's spec, or a
tympan checkpoint's), so that callers never copy frontend settings by hand. The pipeline accepts
audio at any sample rate and channel count, single clips or batches, and pads clips shorter than the model's
minimum input (noting it), so tagging never fails on a short sound.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .audio.frontend import MelFrontendConfig
from .errors import AudioLoadError, ConfigError
from .labels import top_labels
from .models.bundles import ModelBundle, bundle
from .models.spec import DEFAULT_CLIP_SECONDS

__all__ = ["AudioPipeline", "Clip", "load"]

logger = logging.getLogger(__name__)

AudioInput = str | Path | np.ndarray | Tensor | Sequence[Any]
# Inference precisions: fp32 (the default), or fp16 autocast on CUDA as the references' GPU inference
# (EfficientAT inference.py / ex_audioset.py evaluate, PaSST trainer.precision=16).
PRECISIONS = ("32", "16-mixed")
# Shortest input every model accepts (the CNNs pool 32x in time, PaSST needs one 16-frame patch).
MIN_SECONDS = 0.5


def all_finite(tensor: Tensor) -> bool:
    """No NaN or inf in ``tensor``: its minimum and maximum (NaN propagates) are finite; 5x faster than
    ``isfinite(tensor).all()``, which writes a mask as large as the tensor."""
    return bool(torch.isfinite(torch.stack(torch.aminmax(tensor))).all())


@dataclass
class Clip:
    """One mono waveform at the pipeline's sample rate, with notes on what was done to it."""

    waveform: Tensor
    notes: list[str] = field(default_factory=list)


class AudioPipeline:
    """A model with its frontend and labels: ``pipeline(audio)`` gives class scores.

    Attributes:
        model: the network (eval mode).
        frontend: the mel frontend the model was trained with.
        labels: class names, index = logit column.
        multilabel: scores are sigmoids (tagging) rather than a softmax (scene classification).
        clip_seconds: the clip length the model was trained on (the default tagging window).
        backend: ``"torch"`` or ``"onnx"`` (the network runs in onnxruntime; the frontend stays in torch).
        precision: ``"32"`` (float32) or ``"16-mixed"`` (the network under float16 autocast, CUDA only; the mel
            matmul stays in float32).
    """

    def __init__(
        self,
        model: nn.Module,
        frontend: nn.Module,
        labels: Sequence[str],
        *,
        multilabel: bool,
        clip_seconds: float = DEFAULT_CLIP_SECONDS,
        device: str | torch.device | None = None,
        backend: str = "torch",
        name: str | None = None,
        precision: str = "32",
    ) -> None:
        if len(labels) != model.num_classes:
            raise ConfigError(f"{len(labels)} labels for a model with {model.num_classes} classes")
        if backend not in ("torch", "onnx"):
            raise ConfigError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "16-mixed" and (self.device.type != "cuda" or backend != "torch"):
            raise ConfigError(
                f"precision '16-mixed' (float16 autocast) runs on a CUDA device with the torch backend, not on "
                f"{self.device.type} / {backend}; use the default precision '32' there"
            )
        self.precision = precision
        self.model = model.eval().to(self.device)
        self.frontend = frontend.eval().to(self.device)
        self.labels = list(labels)
        self.multilabel = multilabel
        self.clip_seconds = clip_seconds
        self.name = name
        self.backend = backend
        self._onnx = None
        self._onnx_feature_map = None
        if backend == "onnx":
            from .export import OnnxNetwork

            self._onnx = OnnxNetwork.from_model(self.model, self.frontend_config, seconds=clip_seconds)

    @classmethod
    def from_bundle(cls, source: ModelBundle, **options: Any) -> AudioPipeline:
        """The pipeline of a bundle's model, frontend, labels and clip length (``options``: device, backend, ...)."""
        return cls(source.get_model(), source.get_frontend(), source.labels, multilabel=source.multilabel,
                   clip_seconds=source.clip_seconds, name=source.name, **options)  # fmt: skip

    def with_backend(self, backend: str) -> AudioPipeline:
        """The same model, frontend and labels on another backend (``"onnx"`` runs on the CPU)."""
        return AudioPipeline(
            self.model,
            self.frontend,
            self.labels,
            multilabel=self.multilabel,
            clip_seconds=self.clip_seconds,
            device="cpu" if backend == "onnx" else self.device,
            backend=backend,
            name=self.name,
            precision=self.precision,
        )

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context the network runs in: float16 autocast for ``precision="16-mixed"``, else nothing."""
        if self.precision == "16-mixed":
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    @property
    def frontend_config(self) -> MelFrontendConfig:
        return self.model.frontend_config

    @property
    def sample_rate(self) -> int:
        """Rate in Hz the model expects; inputs at other rates are resampled to it."""
        return self.frontend_config.sample_rate

    @property
    def min_samples(self) -> int:
        """Shorter clips are zero-padded to this many samples."""
        return round(MIN_SECONDS * self.sample_rate)

    # ---- input -------------------------------------------------------------------------------------------------

    def clips(self, audio: AudioInput, sample_rate: int | None = None) -> list[Clip]:
        """Turn any accepted input into mono clips at :attr:`sample_rate`.

        Args:
            audio: a file path; a waveform ``[samples]``; a batch ``[batch, samples]``; or a list of paths or
                waveforms (of any lengths).
            sample_rate: rate of array inputs in Hz (default: the pipeline's); ignored for files.

        Raises:
            AudioLoadError: a file cannot be decoded, or samples are not finite.
        """
        from .audio.io import load_audio, prepare_waveform

        if isinstance(audio, (str, Path)):
            items: list[Any] = [audio]
        elif isinstance(audio, (np.ndarray, Tensor)) and audio.ndim == 1:
            items = [audio]
        elif isinstance(audio, (np.ndarray, Tensor, Sequence)):
            items = list(audio)
        else:
            raise ConfigError(f"cannot tag a {type(audio).__name__}; pass a path, an array or a list of them")
        clips = []
        for item in items:
            if isinstance(item, (str, Path)):
                waveform = load_audio(item, sample_rate=self.sample_rate)
            else:
                waveform = prepare_waveform(item, sample_rate or self.sample_rate, self.sample_rate)
            clips.append(self._pad(torch.as_tensor(waveform, dtype=torch.float32)))
        return clips

    def _pad(self, waveform: Tensor) -> Clip:
        if waveform.ndim != 1:
            raise AudioLoadError(f"expected a mono waveform, got shape {tuple(waveform.shape)}")
        if waveform.numel() == 0:
            raise AudioLoadError("the audio is empty (0 samples)")
        if not all_finite(waveform):
            raise AudioLoadError("the audio holds non-finite samples (NaN or inf); repair or re-export the file")
        if waveform.numel() >= self.min_samples:
            return Clip(waveform)
        note = (
            f"audio of {waveform.numel()} samples ({waveform.numel() / self.sample_rate:.3f} s) was zero-padded "
            f"to the model's minimum input of {self.min_samples} samples"
        )
        return Clip(torch.nn.functional.pad(waveform, (0, self.min_samples - waveform.numel())), [note])

    # ---- computation -------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def forward_waveforms(self, waveforms: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``[batch, classes]`` and embeddings ``[batch, num_features]`` of equal-length waveforms."""
        if self._onnx is not None:
            return self._onnx(self.frontend(waveforms.to(self.device)).unsqueeze(1))
        with self.autocast():
            mel = self.frontend(waveforms.to(self.device)).unsqueeze(1)
            features = self.model.forward_features(mel)
            logits = self.model.forward_head(features)
        return logits.float(), features.float()

    @torch.inference_mode()
    def feature_map(self, waveform: Tensor) -> Tensor:
        """The last feature map of an EfficientAT CNN averaged over frequency, ``[D, time']``, of one waveform."""
        from .export import TimeFeatureMap

        mel = self.frontend(waveform[None].to(self.device)).unsqueeze(1)
        if self.backend == "onnx":
            return self._feature_map_network()(mel)[0][0]
        with self.autocast():
            return TimeFeatureMap(self.model)(mel)[0][0].float()

    def prepare_feature_map(self, num_samples: int) -> None:
        """Export (or find in the cache) the ONNX feature-map graph for waveforms of ``num_samples``, without running
        it: done once before worker processes fork, else each of them would export it."""
        if self.backend == "onnx":
            from .export import example_mel

            self._feature_map_network().prepare(example_mel(self.frontend_config, num_samples / self.sample_rate))

    def _feature_map_network(self) -> Any:
        from .export import OnnxNetwork, TimeFeatureMap

        if self._onnx_feature_map is None:
            self._onnx_feature_map = OnnxNetwork(self.model, graph=TimeFeatureMap)
        return self._onnx_feature_map

    def activate(self, logits: Tensor) -> Tensor:
        """Class scores from logits: sigmoid for multi-label sets, softmax for single-label ones."""
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)

    def run_clips(self, clips: list[Clip]) -> tuple[Tensor, Tensor]:
        """Logits and embeddings of clips of any lengths (equal lengths run as one batch)."""
        logits: list[Tensor | None] = [None] * len(clips)
        features: list[Tensor | None] = [None] * len(clips)
        by_length: dict[int, list[int]] = {}
        for index, clip in enumerate(clips):
            by_length.setdefault(clip.waveform.numel(), []).append(index)
        for indices in by_length.values():
            batch_logits, batch_features = self.forward_waveforms(torch.stack([clips[i].waveform for i in indices]))
            for row, index in enumerate(indices):
                logits[index], features[index] = batch_logits[row].cpu(), batch_features[row].cpu()
        return torch.stack(logits), torch.stack(features)  # type: ignore[arg-type]

    def scores(self, audio: AudioInput, sample_rate: int | None = None) -> np.ndarray:
        """Class scores ``[batch, classes]`` (``[classes]`` for a single path or 1-D waveform)."""
        logits, _ = self.run_clips(self.clips(audio, sample_rate))
        return _single(audio, self.activate(logits).numpy())

    __call__ = scores

    def embed(self, audio: AudioInput, sample_rate: int | None = None) -> np.ndarray:
        """Pooled embeddings ``[batch, num_features]`` (``[num_features]`` for a single input)."""
        _, features = self.run_clips(self.clips(audio, sample_rate))
        return _single(audio, features.numpy())

    def tag(
        self, audio: AudioInput, sample_rate: int | None = None, *, top_k: int = 5
    ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        """The ``top_k`` (label, score) pairs, best first: one list per clip, or one list for a single input."""
        scores = np.atleast_2d(self.scores(audio, sample_rate))
        ranked = [self.top(row, top_k) for row in scores]
        return ranked[0] if _is_single(audio) else ranked

    def top(self, scores: np.ndarray, top_k: int) -> list[tuple[str, float]]:
        """The ``top_k`` (label, score) pairs of one score vector, best first."""
        return top_labels(scores, self.labels, top_k)

    def __repr__(self) -> str:
        return (
            f"AudioPipeline({self.name or type(self.model).__name__}, {len(self.labels)} classes, "
            f"{self.sample_rate} Hz, backend={self.backend!r})"
        )


def _is_single(audio: AudioInput) -> bool:
    return isinstance(audio, (str, Path)) or (isinstance(audio, (np.ndarray, Tensor)) and audio.ndim == 1)


def _single(audio: AudioInput, values: np.ndarray) -> np.ndarray:
    return values[0] if _is_single(audio) else values


def load(
    name_or_arch: str | None = None,
    checkpoint: str | Path | dict[str, Any] | None = None,
    *,
    device: str | torch.device | None = None,
    backend: str = "torch",
    pretrained: bool = True,
    precision: str = "32",
    **kwargs: Any,
) -> AudioPipeline:
    """A ready pipeline: the model with its weights, its mel frontend, its labels and sample rate.

    Args:
        name_or_arch: a zoo preset (``"mn10_as"``) or an architecture (``"mn"``, random weights unless a checkpoint
            is given). May be None when ``checkpoint`` is a self-describing tympan fine-tuning checkpoint.
        checkpoint: weights (file or mapping) in any published layout; by default a preset's official weights from
            the cache (downloaded and verified when online, see :mod:`tympan.hub`).
        device: ``"cpu"``, ``"cuda"``, ...; default: CUDA where present.
        backend: ``"torch"`` or ``"onnx"`` (see :mod:`tympan.export`).
        pretrained: with False, a preset keeps random weights (tests, benchmarks).
        precision: ``"32"`` (default) or ``"16-mixed"``: float16 autocast on CUDA, as the references' GPU inference.
        **kwargs: model keyword arguments (see :func:`tympan.models.create`).

    Raises:
        UnknownModelError, ConfigError, CheckpointError: with a message that says what to do.
    """
    if name_or_arch is None and checkpoint is None:
        raise ConfigError("name a model (e.g. 'mn10_as'), or pass a self-describing tympan checkpoint")
    if name_or_arch is None:
        source = bundle(checkpoint)  # type: ignore[arg-type]
    else:
        source = bundle(name_or_arch, checkpoint=checkpoint, pretrained=pretrained, **kwargs)
    if source.checkpoint is None and source.entry is not None and source.entry.initial_weights:
        raise ConfigError(
            f"{name_or_arch!r} holds initial weights for training (an ImageNet start with an untrained head), "
            "not a model to run; train from it (`tympan train --config efficientat_audioset_kd`, or "
            f"tympan.models.create({name_or_arch!r}, pretrained=True)) or pick a trained preset"
        )
    if source.entry is None and source.weights is None and pretrained:
        logger.warning("architecture %r built with random weights (pass checkpoint=FILE for trained ones)", source.name)
    return AudioPipeline.from_bundle(source, device=device, backend=backend, precision=precision)
