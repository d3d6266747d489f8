"""Pieces of work: a whole short file, the windows of a span of a long one, or a segment of one to pool.

A piece knows how to read its samples (:meth:`load`: decode, mono, resample; what DataLoader workers do) and what to
compute from them (:meth:`compute`: the network). Pieces of one long file are independent, so workers run them in
parallel and each reads only its own span (:func:`tympan.audio.io.read_span`): memory stays flat in the file length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .network import Network

__all__ = [
    "ClipPiece",
    "FrameWindowPiece",
    "Outputs",
    "Piece",
    "PooledPiece",
    "Source",
    "TimestampPiece",
    "WindowPiece",
    "window_starts",
]

# A file path, or a mono waveform at the network's rate (the in-memory input of the Python API).
Source = str | Tensor


def read(source: Source, sample_rate: int, start: int = 0, stop: int | None = None) -> Tensor:
    """Samples ``[start, stop)`` of a source at ``sample_rate`` (the whole source by default)."""
    if isinstance(source, Tensor):
        return source[start:stop]
    from ..audio.io import read_span

    return torch.from_numpy(read_span(source, sample_rate, start, stop))


@dataclass
class Outputs:
    """What a piece computed (tensors on the CPU) and notes on what was done to its audio."""

    values: dict[str, Tensor]
    notes: list[str] = field(default_factory=list)

    def __getstate__(self) -> dict[str, Any]:
        """Values as numpy arrays, pickled inline: a tensor crossing from a DataLoader worker would travel as a
        shared-memory segment with its file descriptor sent over a socket, which costs far more than copying these
        small arrays (measured: the main process spent 0.6 s of an hour's timeline reading them back)."""
        return {"values": {name: value.numpy() for name, value in self.values.items()}, "notes": self.notes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.values = {name: torch.from_numpy(value) for name, value in state["values"].items()}
        self.notes = state["notes"]


@dataclass(frozen=True)
class Piece:
    """Part ``part`` of ``parts`` of the work on input ``index`` (``file``: its name in the records)."""

    index: int
    file: str
    source: Source
    part: int = 0
    parts: int = 1

    def load(self, network: Network) -> Tensor:
        raise NotImplementedError

    def compute(self, network: Network, samples: Tensor) -> Outputs:
        raise NotImplementedError


@dataclass(frozen=True)
class ClipPiece(Piece):
    """A whole file in one forward pass (zero-padded to the network's minimum input)."""

    def load(self, network: Network) -> Tensor:
        return read(self.source, network.sample_rate)

    def compute(self, network: Network, samples: Tensor) -> Outputs:
        return compute_clips(network, [samples])[0]


def compute_clips(network: Network, clips: list[Tensor]) -> list[Outputs]:
    """Outputs of whole clips, each zero-padded to the minimum input; clips of equal length run as one batch."""
    padded = [network.pad(clip) for clip in clips]
    outputs: list[Outputs] = [Outputs({}, notes) for _, notes in padded]
    by_length: dict[int, list[int]] = {}
    for position, (waveform, _) in enumerate(padded):
        by_length.setdefault(waveform.numel(), []).append(position)
    for positions in by_length.values():
        values = network.forward(torch.stack([padded[p][0] for p in positions]))
        for row, position in enumerate(positions):
            outputs[position].values.update({name: value[row] for name, value in values.items()})
    return outputs


@dataclass(frozen=True)
class TimestampPiece(Piece):
    """A whole file's HEAR timestamp embeddings (``variant``: see :data:`tympan.hear.VARIANTS`)."""

    variant: str = "base"

    def load(self, network: Network) -> Tensor:
        return read(self.source, network.sample_rate)

    def compute(self, network: Network, samples: Tensor) -> Outputs:
        embeddings, times = network.timestamp_embeddings(samples, self.variant)
        return Outputs({"embedding": embeddings, "timestamps": times})


def window_starts(total: int, window: int, hop: int, tail: str = "end") -> list[int]:
    """Start samples of the windows of ``window`` samples every ``hop`` over ``total`` samples.

    ``tail="end"``: windows at ``i·hop`` while they fit, and a last one ending at the end of the audio when the grid
    misses it; audio shorter than one window is one window of all of it. ``tail="pad"``: ``ceil((total − window) /
    hop) + 1`` windows at ``i·hop`` (at least one), the last one zero-padded (EfficientAT ``windowed_inference.py``).
    """
    if tail == "pad":
        return [i * hop for i in range(max(-(-(total - window) // hop) + 1, 1))]
    starts = list(range(0, max(total - window, 0) + 1, hop))
    if total > window and starts[-1] + window < total:
        starts.append(total - window)
    return starts


@dataclass(frozen=True)
class WindowPiece(Piece):
    """The windows starting at ``starts`` (samples), of ``window`` samples, in an input of ``total`` samples."""

    starts: tuple[int, ...] = ()
    window: int = 0
    total: int = 0
    batch_size: int = 16

    def load(self, network: Network) -> Tensor:
        return read(self.source, network.sample_rate, self.starts[0], self.starts[-1] + self.window)

    def compute(self, network: Network, samples: Tensor) -> Outputs:
        windows, notes = self._cut(network, samples)
        return Outputs(self._forward(network, windows), notes)

    def _cut(self, network: Network, samples: Tensor) -> tuple[Tensor, list[str]]:
        """The windows ``[windows, window]`` of this piece's span, padded where the input ends early."""
        notes: list[str] = []
        windows = []
        for start in self.starts:
            piece = samples[start - self.starts[0] :][: self.window]
            if self.total < self.window:  # the whole input is shorter than one window
                piece, notes = network.pad(piece)
            elif piece.numel() < self.window:  # tail="pad"
                padding = self.window - piece.numel()
                notes = [f"the last window was zero-padded by {padding / network.sample_rate:.3f} s (tail='pad')"]
                piece = torch.nn.functional.pad(piece, (0, padding))
            windows.append(piece)
        return torch.stack(windows), notes

    def _forward(self, network: Network, windows: Tensor) -> dict[str, Tensor]:
        batches = [network.forward(batch) for batch in windows.split(self.batch_size)]
        return {name: torch.cat([values[name] for values in batches]) for name in batches[0]}


@dataclass(frozen=True)
class FrameWindowPiece(WindowPiece):
    """Windows scored frame by frame by a frame-level model: ``frames``, logits ``[windows, classes, frames]``."""

    def _forward(self, network: Network, windows: Tensor) -> dict[str, Tensor]:
        return {"frames": torch.cat([network.forward_frames(b) for b in windows.split(self.batch_size)])}


@dataclass(frozen=True)
class PooledPiece(Piece):
    """Feature-map frames summed per ``hop`` for the frames whose centres fall in ``keep`` (samples), computed on
    ``keep`` with ``context`` samples of audio on both sides (the receptive field reaches beyond a frame)."""

    keep: tuple[int, int] = (0, 0)
    hop: int = 0
    context: int = 0
    total: int = 0

    def _span(self) -> tuple[int, int]:
        return max(self.keep[0] - self.context, 0), min(self.keep[1] + self.context, self.total)

    def load(self, network: Network) -> Tensor:
        return read(self.source, network.sample_rate, *self._span())

    def compute(self, network: Network, samples: Tensor) -> Outputs:
        offset = self._span()[0]
        if samples.numel() < network.min_samples:
            samples = torch.nn.functional.pad(samples, (0, network.min_samples - samples.numel()))
        feature_map = network.feature_map(samples)  # [frames', D]
        frames_per_feature = network.frames(samples.numel()) / feature_map.shape[0]
        centres = offset + (torch.arange(feature_map.shape[0]) + 0.5) * frames_per_feature * network.hop_length
        inside = (centres >= self.keep[0]) & (centres < self.keep[1])
        first = self.keep[0] // self.hop
        segments = torch.div(centres[inside], self.hop, rounding_mode="floor").long() - first
        count = (self.keep[1] - 1) // self.hop - first + 1
        sums = torch.zeros(count, feature_map.shape[1]).index_add_(0, segments, feature_map[inside])
        counts = torch.zeros(count).index_add_(0, segments, torch.ones(len(segments)))
        return Outputs({"sums": sums, "counts": counts})
