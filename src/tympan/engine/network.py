"""What the engine needs of a model, in one place: the only module of the engine that knows
:class:`~tympan.pipeline.AudioPipeline` (model, mel frontend and labels from :func:`tympan.load`).

The rest of the engine sees a :class:`Network`: waveforms in, logits and embeddings out; the feature map and head of
the EfficientAT CNNs for pooled timelines; labels and the rules for scores. The backend choice (onnxruntime where it
is faster on the CPU) is made here too.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["Network", "as_network", "load_network"]

logger = logging.getLogger(__name__)

# Architectures that onnxruntime runs faster than PyTorch eager on CPU (benchmarks/bench_inference.py: mn 2.7x,
# dymn 1.5x, cp_mobile 2.9x; PaSST 0.9x). DyMN exports with fixed shapes only (a graph per input length): it gets
# onnxruntime for windowed jobs, whose windows share one length, and not for folders of files of any length.
ONNX_FASTER = ("mn", "cp_mobile")
ONNX_FASTER_WINDOWED = ("mn", "dymn", "cp_mobile")
BACKENDS = ("auto", "torch", "onnx")

# Audio per model call on the CPU. Beyond about this much, a batch's activations outgrow the caches and every clip
# costs more; below it, batching still pays. Measured on one thread, ms per clip, one / four / eight clips per call:
# mn10_as 10-s clips 8.7 / 9.7 / 10.8 (onnxruntime) and 27.7 / 33.6 / 47.8 (PyTorch); 1-s clips 2.2 / 1.5 / 1.4.
CPU_SECONDS_PER_CALL = 16.0


class Network:
    """A model with its frontend and labels, as the engine runs it.

    Args:
        pipeline: an :class:`~tympan.pipeline.AudioPipeline`.
    """

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline

    @property
    def labels(self) -> list[str]:
        return self._pipeline.labels

    @property
    def multilabel(self) -> bool:
        """Scores are sigmoids (a long file's scores are the maximum over windows) rather than a softmax (the mean)."""
        return self._pipeline.multilabel

    @property
    def sample_rate(self) -> int:
        return self._pipeline.sample_rate

    @property
    def clip_samples(self) -> int:
        """The clip length the model was trained on, in samples: the default window."""
        return round(self._pipeline.clip_seconds * self.sample_rate)

    @property
    def min_samples(self) -> int:
        return self._pipeline.min_samples

    @property
    def device(self) -> torch.device:
        return self._pipeline.device

    @property
    def poolable(self) -> bool:
        """An EfficientAT CNN (MN, DyMN): its feature maps can be pooled per window (``method="pooled"``)."""
        from ..models.mobilenet import EfficientATNet

        return isinstance(self._pipeline.model, EfficientATNet)

    @property
    def modules(self) -> torch.nn.ModuleList:
        """The model and its frontend, for a framework that moves modules between devices (Lightning)."""
        return torch.nn.ModuleList([self._pipeline.model, self._pipeline.frontend])

    def to(self, device: torch.device) -> Network:
        """Run on ``device`` from now on (the torch backend)."""
        self._pipeline.device = torch.device(device)
        self.modules.to(device)
        return self

    def pad(self, waveform: Tensor) -> tuple[Tensor, list[str]]:
        """Check a mono waveform and zero-pad it to :attr:`min_samples`; the notes say what was done."""
        clip = self._pipeline._pad(waveform)
        return clip.waveform, clip.notes

    def forward(self, waveforms: Tensor) -> dict[str, Tensor]:
        """Outputs by name of equal-length waveforms, on the CPU: ``logits [batch, classes]`` and ``embedding
        [batch, D]``. On the CPU a large batch runs in calls of :data:`CPU_SECONDS_PER_CALL` of audio."""
        outputs = [self._pipeline.forward_waveforms(part) for part in waveforms.split(self.rows_per_call(waveforms))]
        return {
            "logits": torch.cat([logits for logits, _ in outputs]).cpu(),
            "embedding": torch.cat([embeddings for _, embeddings in outputs]).cpu(),
        }

    def rows_per_call(self, waveforms: Tensor) -> int:
        """Waveforms of this batch per model call: all on an accelerator, :data:`CPU_SECONDS_PER_CALL` of audio (at
        least one) on the CPU."""
        if self.device.type != "cpu":
            return max(len(waveforms), 1)
        return max(int(CPU_SECONDS_PER_CALL * self.sample_rate) // max(waveforms.shape[-1], 1), 1)

    @property
    def frame_seconds(self) -> float | None:
        """Hop of a frame-level model's outputs in seconds (0.04 for PretrainedSED's); None for a clip-level one."""
        from ..models.frame import FrameModel

        model, config = self._pipeline.model, self._pipeline.frontend_config
        if not isinstance(model, FrameModel):
            return None
        return model.mel_frames_per_output * config.hop_length / config.stft_sample_rate

    @torch.inference_mode()
    def forward_frames(self, waveforms: Tensor) -> Tensor:
        """Frame logits ``[batch, classes, frames]`` of equal-length waveforms (frame-level models), on the CPU; in
        calls of :meth:`rows_per_call` waveforms."""
        pipeline = self._pipeline
        parts = []
        with pipeline.autocast():
            for part in waveforms.split(self.rows_per_call(waveforms)):
                mel = pipeline.frontend(part.to(pipeline.device)).unsqueeze(1)
                parts.append(pipeline.model.forward_frames(mel).float().cpu())
        return torch.cat(parts)

    def feature_map(self, waveform: Tensor) -> Tensor:
        """The last feature map averaged over frequency, ``[frames', D]``, of one waveform (EfficientAT only)."""
        return self._pipeline.feature_map(waveform).T.cpu()

    def prepare_feature_map(self, samples: int) -> None:
        """Export (or find in the cache) the feature-map graph here, before worker processes fork (else each would)."""
        self._pipeline.prepare_feature_map(samples)

    def frames(self, samples: int) -> int:
        """Mel frames of a waveform of ``samples`` samples."""
        return self._pipeline.frontend_config.num_frames(samples)

    @property
    def feature_stride(self) -> int:
        """Samples per frame of the last feature map (EfficientAT only): its time down-sampling times the mel hop."""
        return self._pipeline.model.feature_info[-1]["reduction"] * self.hop_length

    @property
    def hop_length(self) -> int:
        """Samples per mel frame."""
        return self._pipeline.frontend_config.hop_length

    @torch.inference_mode()
    def head(self, embeddings: Tensor) -> Tensor:
        """Logits of pooled embeddings ``[n, D]`` (the classifier only)."""
        pipeline = self._pipeline
        with pipeline.autocast():
            return pipeline.model.forward_head(embeddings.float().to(pipeline.device)).float().cpu()

    @torch.inference_mode()
    def timestamp_embeddings(self, waveform: Tensor, variant: str) -> tuple[Tensor, Tensor]:
        """HEAR timestamp embeddings ``[rows, D]`` of one waveform and their times in ms (:mod:`tympan.hear`)."""
        from ..hear import wrap

        pipeline = self._pipeline
        hear_model = wrap(pipeline.model, pipeline.frontend, variant=variant, mode="embed_only")
        embeddings, times = hear_model.timestamp_embeddings(waveform[None].to(pipeline.device))
        return embeddings[0].cpu(), times[0].cpu()

    def activate(self, logits: Tensor) -> Tensor:
        """Scores from logits: sigmoid for multi-label sets, softmax for single-label ones."""
        return self._pipeline.activate(logits)


def as_network(model: Any) -> Network:
    """A :class:`Network` as is, or the network of an :class:`~tympan.pipeline.AudioPipeline`."""
    return model if isinstance(model, Network) else Network(model)


def load_network(
    model: str | None,
    checkpoint: Any = None,
    *,
    device: str | None = None,
    backend: str = "auto",
    precision: str = "32",
    windowed: bool = False,
    threads: int | None = 1,
    **kwargs: Any,
) -> Network:
    """The network of a zoo name or checkpoint (see :func:`tympan.load`) on the backend asked for.

    ``backend="auto"`` picks onnxruntime on the CPU for the architectures it runs faster (``windowed``: the job's
    inputs share one length), else PyTorch; a model that fails to export falls back to PyTorch. ``threads`` sets
    this process's intra-op threads (``torch.set_num_threads``; None leaves them): the engine's parallelism is its
    worker processes, and on small operations more threads only contend (on a busy machine, 10x slower loading).

    Raises:
        ConfigError: neither a model nor a checkpoint, or an unknown backend.
    """
    from ..pipeline import load

    if model is None and checkpoint is None:
        raise ConfigError("pass a model name (or the checkpoint of a tympan fine-tuned model)")
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if threads is not None:
        torch.set_num_threads(threads)
    pipeline = load(model, checkpoint, device=device, backend="torch", precision=precision, **kwargs)
    return Network(with_backend(pipeline, backend, windowed=windowed))


def with_backend(pipeline: Any, backend: str, *, windowed: bool = False) -> Any:
    """``pipeline`` on ``backend``, resolving ``"auto"`` (see :func:`load_network`)."""
    chosen = backend
    if backend == "auto":
        spec = getattr(pipeline.model, "spec", None)
        arch = spec.arch if spec is not None and spec.preset is not None else None
        faster = ONNX_FASTER_WINDOWED if windowed else ONNX_FASTER
        chosen = "onnx" if pipeline.device.type == "cpu" and arch in faster else "torch"
    if chosen == pipeline.backend:
        return pipeline
    try:
        return pipeline.with_backend(chosen)
    except (RuntimeError, ValueError, ConfigError) as error:
        if backend == "onnx":
            raise
        logger.info("ONNX export failed (%s); running PyTorch", error)
        return pipeline
