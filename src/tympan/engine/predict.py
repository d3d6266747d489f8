"""The engine under Lightning's ``Trainer.predict``: the same jobs on many GPUs or nodes (DDP).

Every rank plans the whole job the same way and takes every ``world_size``-th work item (no sampler padding: no
item repeated, none lost); DataLoader workers decode, the rank's device runs the network. A prediction writer
appends each rank's outcomes, tagged with their item position, to a shard file of its own; after a barrier, rank 0
merges the shards by position (a streaming k-way merge: each shard is already in order) and assembles the records in
input order, exactly as the single-process runner does.
"""

from __future__ import annotations

import heapq
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from .jobs import Job
from .network import Network
from .pieces import Piece, Source
from .records import Record
from .runner import Outcome, WorkItems, assemble, compute_item, keep_as_is, plan_job

__all__ = ["EngineModule", "ShardWriter", "predict_records"]


class _RankItems(Dataset):
    """This rank's share of the work items (every ``world_size``-th from its rank), loaded, with their positions.

    The rank is read when the loader first asks, in the rank's process, after the launcher has started it. A rank
    left without items (fewer items than ranks) gets one empty item at position -1, as Lightning wants a batch."""

    def __init__(self, work: WorkItems) -> None:
        self.work = work

    @property
    def positions(self) -> Sequence[int]:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed else (0, 1)
        return range(rank, len(self.work), world) or [-1]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> tuple[int, list[Outcome]]:
        position = self.positions[index]
        return position, self.work[position] if position >= 0 else []


class EngineModule(L.LightningModule):
    """Runs the network on loaded work items: ``predict_step`` gives ``(position, outcomes)``."""

    def __init__(self, network: Network, items: list[list[Piece]]) -> None:
        super().__init__()
        self.network, self.items = network, items
        self.model = network.modules  # registered, so that Lightning moves it to the rank's device

    def on_predict_start(self) -> None:
        self.network.to(self.device)

    def predict_step(self, batch: tuple[int, list[Outcome]], batch_idx: int) -> tuple[int, list[Outcome]]:
        position, loaded = batch
        return position, compute_item(self.network, self.items[position], loaded) if position >= 0 else []


class ShardWriter(BasePredictionWriter):
    """Appends each rank's ``(position, outcomes)`` to ``folder/shard-<rank>.pkl`` as they come (flat memory)."""

    def __init__(self, folder: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.folder = Path(folder)
        self._handle: Any = None

    def shard(self, rank: int) -> Path:
        return self.folder / f"shard-{rank}.pkl"

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._handle = self.shard(trainer.global_rank).open("wb")

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, *args: Any) -> None:
        pickle.dump(prediction, self._handle)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._handle.close()

    def merged(self, ranks: int) -> Iterator[Outcome]:
        """Every rank's outcomes in item order."""
        shards = [_read(self.shard(rank)) for rank in range(ranks)]
        for _, outcomes in heapq.merge(*shards, key=lambda entry: entry[0]):
            yield from outcomes


def _read(path: Path) -> Iterator[tuple[int, list[Outcome]]]:
    with path.open("rb") as handle:
        while True:
            try:
                yield pickle.load(handle)
            except EOFError:
                return


def predict_records(
    job: Job,
    sources: Sequence[tuple[str, Source]],
    folder: str | Path,
    *,
    workers: int = 0,
    **trainer_options: Any,
) -> Iterator[Record] | None:
    """Run ``job`` under ``Trainer.predict``; the records in input order on rank 0 (read from the shards as they are
    consumed, so keep ``folder`` until then), None on the other ranks.

    Args:
        job, sources: as :func:`tympan.engine.runner.run_job`.
        folder: where the shards go (one file per rank; shared by all ranks, e.g. on a network file system).
        workers: DataLoader worker processes per rank (decoding).
        **trainer_options: ``accelerator``, ``devices``, ``num_nodes``, ``strategy``, ... of :class:`lightning.Trainer`.
    """
    planned, items = plan_job(job, sources)
    writer = ShardWriter(folder)
    trainer = L.Trainer(
        callbacks=[writer],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,  # the ranks share the items out themselves, without padding
        **trainer_options,
    )
    module = EngineModule(job.network, items)
    loader = DataLoader(
        _RankItems(WorkItems(items, job.network, compute=False)),
        batch_size=None,
        num_workers=workers,
        collate_fn=keep_as_is,
    )
    trainer.predict(module, loader, return_predictions=False)
    trainer.strategy.barrier()
    if not trainer.is_global_zero:
        return None
    return assemble(job, planned, writer.merged(trainer.world_size))  # streamed from the shards: flat memory
