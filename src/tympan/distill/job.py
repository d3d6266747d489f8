"""Teacher logits as a job of the batch engine (:mod:`tympan.engine`): one record per clip, keyed by its id.

The clips of a :class:`~tympan.data.ClipTable` (files, or rows of an HDF5 file) are decoded by a
:class:`~tympan.data.ClipLoader` in the engine's DataLoader workers, clips of equal length share a forward pass,
a clip that cannot be read gets an error record, and the job runs under ``Trainer.predict`` on many GPUs or nodes as
the engine's other jobs do. The network of the job is a :class:`TeacherEnsemble`: each teacher with its own mel
frontend, the mean of their logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.decode import ClipLoader
from ..data.metadata import ClipRecord
from ..engine.jobs import Input, Job
from ..engine.pieces import ClipPiece, Outputs, Piece
from ..engine.records import Record

__all__ = ["TeacherEnsemble", "TeacherLogitsJob"]


class TeacherEnsemble:
    """Teachers sharing one sample rate, each with its own frontend, as the engine runs them: the mean of their
    logits (the references' ``EnsemblerModel``).

    Args:
        members: ``(model, frontend)`` pairs, in eval mode.
        sample_rate: the rate of every member's frontend.
    """

    def __init__(self, members: Sequence[tuple[nn.Module, nn.Module]], sample_rate: int) -> None:
        self.members = list(members)
        self.sample_rate = sample_rate

    @property
    def modules(self) -> nn.ModuleList:
        """Every member's model and frontend, for a framework that moves modules between devices (Lightning)."""
        return nn.ModuleList(module for member in self.members for module in member)

    @property
    def device(self) -> torch.device:
        return next(self.modules.parameters()).device

    def to(self, device: torch.device) -> TeacherEnsemble:
        self.modules.to(device)
        return self

    def pad(self, waveform: Tensor) -> tuple[Tensor, list[str]]:
        """Clips come at their length (the loader pads or cuts them to the store's clip length)."""
        return waveform, []

    @torch.inference_mode()
    def forward(self, waveforms: Tensor) -> dict[str, Tensor]:
        """The members' mean ``logits [batch, classes]`` of equal-length waveforms, on the CPU."""
        waveforms = waveforms.to(self.device)
        logits = [model(frontend(waveforms).unsqueeze(1)).float() for model, frontend in self.members]
        return {"logits": (sum(logits) / len(logits)).cpu()}


@dataclass(frozen=True)
class StoredClipPiece(ClipPiece):
    """A clip of a dataset (``source``: its :class:`~tympan.data.metadata.ClipRecord`), read by ``loader``."""

    loader: ClipLoader | None = None

    def load(self, network: TeacherEnsemble) -> Tensor:
        return torch.from_numpy(self.loader(self.source))


class TeacherLogitsJob(Job):
    """The logits of a :class:`TeacherEnsemble` for every clip: :attr:`Record.logits`, with the clip id as
    :attr:`Record.file`; sources are ``(clip id, ClipRecord)`` pairs.

    Args:
        ensemble: the teachers.
        loader: decodes a clip at the ensemble's rate, padded or cut to the store's clip length.
        batch_size: clips per work item, and per forward pass where they have one length.
    """

    def __init__(self, ensemble: TeacherEnsemble, loader: ClipLoader, *, batch_size: int = 16) -> None:
        super().__init__(ensemble, batch_size=batch_size, files_per_item=batch_size)
        self.loader = loader

    def inputs(self, sources: Sequence[tuple[str, ClipRecord]]) -> list[Input | Record]:
        """Every clip is an input; its length is known once decoded (0 here), and it is one piece anyway."""
        return [Input(index, clip_id, clip, 0) for index, (clip_id, clip) in enumerate(sources)]

    def plan(self, item: Input) -> list[Piece]:
        return [StoredClipPiece(item.index, item.name, item.source, loader=self.loader)]

    def finish(self, item: Input, pieces: list[Piece], outputs: list[Outputs]) -> Record:
        (output,) = outputs
        return Record(item.name, item.index, logits=output.values["logits"].numpy(), notes=output.notes)
