"""ONNX export of the networks and the onnxruntime backend of :class:`~tympan.pipeline.AudioPipeline`.

The graph takes the log-mel ``[batch, 1, n_mels, frames]`` and returns ``(logits, embedding)``; batch and frames
are dynamic. The mel frontend stays outside the graph, in PyTorch: it is an FFT plus one matmul, which
onnxruntime does not run faster, and keeping it outside leaves the graph free of STFT operators that not every
runtime supports (measured in ``benchmarks/bench_inference.py``). Every export is checked against PyTorch on a
random input; a difference above ``tolerance`` raises.

Exported graphs are cached on disk (:func:`graph_cache_dir`), keyed by a hash of the weights, the graph kind, the
opset, the torch version and the input shape (only the mel bands for a dynamic graph), so a second run of the same
model exports nothing. Sessions are made lazily in the process that runs them: a network can be prepared in one
process and run in DataLoader workers forked from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .audio.frontend import MelFrontendConfig
from .errors import ConfigError
from .files import write_atomically

__all__ = [
    "LogitsAndEmbedding",
    "OnnxNetwork",
    "TimeFeatureMap",
    "example_mel",
    "export_onnx",
    "graph_cache_dir",
    "max_difference",
]

logger = logging.getLogger(__name__)

OPSET = 17
TOLERANCE = 1e-4


class LogitsAndEmbedding(nn.Module):
    """The network as the exported graph exposes it: mel in, (logits, embedding) out."""

    output_names = ("logits", "embedding")

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        features = self.model.forward_features(mel)
        return self.model.forward_head(features), features


class TimeFeatureMap(nn.Module):
    """The last feature map of an EfficientAT CNN averaged over frequency: mel in, ``[batch, D, time']`` out.

    What the pooled timeline (:mod:`tympan.tagging`) pools per window.
    """

    output_names = ("feature_map",)

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, mel: Tensor) -> tuple[Tensor]:
        return (self.model.forward_intermediates(mel)[-1].mean(dim=2),)


def example_mel(config: MelFrontendConfig, seconds: float, batch: int = 1) -> Tensor:
    """A random mel input of ``seconds`` of audio: what graphs are traced and checked on."""
    frames = config.num_frames(round(seconds * config.sample_rate))
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 1, config.n_mels, frames, generator=generator)


def _onnx_bytes(graph: nn.Module, example: Tensor, *, dynamic: bool = True) -> bytes:
    axes = {"mel": {0: "batch", 3: "frames"}, **{name: {0: "batch"} for name in graph.output_names}} if dynamic else {}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes
        torch.onnx.export(
            graph.eval(),
            (example,),
            buffer,
            dynamo=False,
            input_names=["mel"],
            output_names=list(graph.output_names),
            dynamic_axes=axes,
            opset_version=OPSET,
        )
    return buffer.getvalue()


@contextlib.contextmanager
def _stdout_discarded() -> Iterator[None]:
    """File descriptor 1 to /dev/null: the TorchScript exporter switches its C++ log on at every export (torch 2.13
    tests the function ``_jit_is_onnx_log_enabled`` instead of calling it) and prints the whole graph to stdout when
    an export fails, which would corrupt ``tympan tag --format json`` on stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _export(graph: nn.Module, example: Tensor) -> tuple[bytes, bool]:
    """The graph with dynamic batch size and frames where the model allows it, else fixed to the example's shape.

    DyMN's context pooling (adaptive pooling to a size computed from the input) only exports with fixed shapes.
    """
    try:
        with _stdout_discarded():
            return _onnx_bytes(graph, example), True
    except torch.onnx.errors.OnnxExporterError as error:
        logger.info("ONNX export with dynamic shapes failed (%s); exporting for %s", error, tuple(example.shape))
        return _onnx_bytes(graph, example, dynamic=False), False


def _session(model_bytes: bytes, threads: int | None = None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _run(session: Any, mel: Tensor) -> tuple[Tensor, ...]:
    outputs = session.run(None, {"mel": mel.detach().cpu().numpy().astype(np.float32, copy=False)})
    return tuple(torch.from_numpy(output) for output in outputs)


def graph_cache_dir() -> Path:
    """Where exported graphs are kept: ``$TYMPAN_CACHE/onnx`` (default ``~/.cache/tympan/onnx``)."""
    from .hub import cache_dir

    return cache_dir() / "onnx"


def _weights_hash(graph: nn.Module) -> str:
    """SHA-256 of the graph's kind, parameters and buffers: a changed weight is a new graph."""
    digest = hashlib.sha256(type(graph).__name__.encode())
    for name, tensor in graph.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


class OnnxNetwork:
    """``network(mel) -> (logits, embedding)`` (or the outputs of another ``graph``) through onnxruntime, for inputs
    of any batch size and length.

    A graph is exported on first use, or read from the disk cache; models whose graph cannot take dynamic shapes get
    one graph per input shape (windowed tagging uses one or two). Each new export is checked against PyTorch.
    Sessions belong to the process that made them: after a fork, the child makes its own.

    Args:
        model: an :class:`~tympan.models.base.AudioModel`.
        graph: the module exported around ``model``: :class:`LogitsAndEmbedding` or :class:`TimeFeatureMap`.
        threads: intra-op threads (default: torch's setting when the session is made, so both backends use the same
            cores; 1 in DataLoader workers).
    """

    def __init__(
        self, model: nn.Module, *, graph: type[nn.Module] = LogitsAndEmbedding, threads: int | None = None
    ) -> None:
        self.graph = graph(model.eval().cpu()).eval()
        self.threads = threads
        self.dynamic = True
        self._weights = _weights_hash(self.graph)
        self._graphs: dict[tuple[int, ...] | None, bytes] = {}
        self._sessions: dict[tuple[int, ...] | None, Any] = {}
        self._pid = os.getpid()
        self._inherited: list[Any] = []

    @classmethod
    def from_model(cls, model: nn.Module, config: MelFrontendConfig, *, seconds: float = 10.0) -> OnnxNetwork:
        """The network of ``model``, exported (or read from the cache) at once for clips of ``seconds``."""
        network = cls(model)
        network.prepare(example_mel(config, seconds))
        return network

    def _key(self, mel: Tensor) -> tuple[int, ...] | None:
        return None if self.dynamic else tuple(mel.shape)

    def _cache_file(self, mel: Tensor, dynamic: bool) -> Path:
        shape = f"dyn{mel.shape[2]}" if dynamic else "x".join(map(str, mel.shape))
        version = torch.__version__.split("+")[0]
        return graph_cache_dir() / f"{self._weights}-{shape}-opset{OPSET}-torch{version}.onnx"

    def prepare(self, mel: Tensor) -> bytes:
        """The graph for inputs shaped like ``mel``: from memory, the disk cache, or exported, checked and cached."""
        if self._key(mel) in self._graphs:
            return self._graphs[self._key(mel)]
        example = mel.detach().cpu()
        for dynamic in (True, False) if self.dynamic else (False,):
            cached = self._cache_file(example, dynamic)
            if cached.exists():
                self.dynamic = dynamic
                self._graphs[self._key(example)] = cached.read_bytes()
                return self._graphs[self._key(example)]
        if self.dynamic:
            data, self.dynamic = _export(self.graph, example)
        else:
            data = _onnx_bytes(self.graph, example, dynamic=False)
        difference = _difference(self.graph, _session(data, 1), example)
        if difference > TOLERANCE:
            raise ConfigError(f"the ONNX graph differs from PyTorch by {difference:.2e}; use backend='torch'")
        try:
            write_atomically(self._cache_file(example, self.dynamic), data)
        except OSError as error:  # a read-only cache costs an export per run, nothing else
            logger.warning("cannot cache the ONNX graph in %s: %s", graph_cache_dir(), error)
        self._graphs[self._key(example)] = data
        return data

    def _session_for(self, mel: Tensor) -> Any:
        if self._pid != os.getpid():
            # Forked: the parent's sessions and their thread pools do not work here. They stay referenced, never
            # destroyed in this process (their destructor would wait for threads that were not copied).
            self._inherited.append(self._sessions)
            self._sessions, self._pid = {}, os.getpid()
        data = self.prepare(mel)
        key = self._key(mel)
        if key not in self._sessions:
            self._sessions[key] = _session(data, self.threads)
        return self._sessions[key]

    def __call__(self, mel: Tensor) -> tuple[Tensor, ...]:
        return _run(self._session_for(mel), mel)


@torch.no_grad()
def _difference(graph: nn.Module, session: Any, mel: Tensor) -> float:
    expected, actual = graph(mel), _run(session, mel)
    return max((a - b).abs().max().item() for a, b in zip(expected, actual, strict=True))


def max_difference(network: OnnxNetwork, mel: Tensor) -> float:
    """Largest absolute difference of the outputs between PyTorch and the ONNX network on ``mel``."""
    return _difference(network.graph, network._session_for(mel), mel)


def export_onnx(model: nn.Module, path: str | Path, *, seconds: float = 10.0, **_: Any) -> float:
    """Write ``model`` as an ONNX file (atomically) and return its max difference to PyTorch on a random input.

    Args:
        model: an :class:`~tympan.models.base.AudioModel` with ``frontend_config``.
        path: the ``.onnx`` file to write.
        seconds: clip length of the example input used for tracing and the check.

    Raises:
        ConfigError: the exported graph differs from PyTorch by more than the tolerance (nothing is written).
    """
    path = Path(path)
    example = example_mel(model.frontend_config, seconds, batch=2)
    graph = LogitsAndEmbedding(model.eval().cpu())
    data, dynamic = _export(graph, example)
    if not dynamic:
        logger.warning(
            "%s exported for inputs of %d frames only (%.1f s)", type(model).__name__, example.shape[-1], seconds
        )
    difference = _difference(graph, _session(data), example)
    if difference > TOLERANCE:
        raise ConfigError(f"the ONNX graph differs from PyTorch by {difference:.2e} (> {TOLERANCE}); not written")
    write_atomically(path, data)
    return difference
