"""Running a job: inputs planned into pieces, pieces grouped into work items, items through DataLoader workers,
records assembled in input order.

On the CPU a worker runs a whole item (decode, mono, resample, then the network with one thread): parallelism comes
from items running side by side, not from intra-op threads on small operations. On an accelerator the workers
decode and the main process runs the network. An exception on a piece becomes the error of its input's record; a
worker process that dies (a decoder crash) costs only the input it was working on: the items after the last result
are retried one at a time, each in a fresh worker, until the one that kills its worker is found, and then that
item's pieces one by one.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from ..allocator import keep_freed_memory
from ..errors import AudioLoadError
from .jobs import Input, Job
from .network import Network
from .pieces import ClipPiece, Outputs, Piece, Source, compute_clips
from .records import Record, error_message

__all__ = [
    "WorkItems",
    "assemble",
    "compute_item",
    "default_workers",
    "keep_as_is",
    "plan_job",
    "run_job",
    "run_one",
    "source_of",
]

logger = logging.getLogger(__name__)

Outcome = Outputs | Tensor | BaseException
WORKER_DIED = "the worker process reading or running this file died (a crash of the decoder or the runtime)"


def default_workers() -> int:
    """Worker processes: one per core this process may run on; none on a single core (no gain, only copies)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores if cores > 1 else 0


def _items(pieces: list[Piece], files_per_item: int) -> list[list[Piece]]:
    """Consecutive whole-file pieces grouped ``files_per_item`` to an item; every other piece alone."""
    items: list[list[Piece]] = []
    for piece in pieces:
        previous = items[-1] if items else []
        joins = previous and isinstance(previous[0], ClipPiece) and len(previous) < files_per_item
        if isinstance(piece, ClipPiece) and joins:
            previous.append(piece)
        else:
            items.append([piece])
    return items


def _portable(error: BaseException) -> BaseException:
    """The error itself if it crosses a process boundary (pickles), else an :class:`AudioLoadError` saying it."""
    try:
        pickle.dumps(error)
    except Exception:  # any unpicklable exception: keep its message
        return AudioLoadError(error_message(error))
    return error


def compute_item(network: Network, item: list[Piece], loaded: list[Outcome]) -> list[Outcome]:
    """The network on the loaded pieces of an item: whole files batched, others one by one; errors stay per piece."""
    outcomes = list(loaded)
    clips = [i for i, piece in enumerate(item) if isinstance(piece, ClipPiece) and isinstance(loaded[i], Tensor)]
    if len(clips) > 1:
        try:
            for i, outputs in zip(clips, compute_clips(network, [loaded[i] for i in clips]), strict=True):
                outcomes[i] = outputs
        except Exception:  # one bad clip: run them one by one below, so that only its file fails
            logger.debug("a batch of %d clips failed; running them one by one", len(clips), exc_info=True)
    for i, piece in enumerate(item):
        if isinstance(outcomes[i], Tensor):
            try:
                outcomes[i] = piece.compute(network, outcomes[i])
            except Exception as error:  # this piece's file gets an error record, the others go on
                outcomes[i] = _portable(error)
    return outcomes


class WorkItems(Dataset):
    """Work items; getting one loads its pieces, and runs the network on them when ``compute`` is set."""

    def __init__(self, items: list[list[Piece]], network: Network, compute: bool) -> None:
        self.items, self.network, self.compute = items, network, compute

    def __len__(self) -> int:
        return len(self.items)

    @torch.inference_mode()
    def __getitem__(self, position: int) -> list[Outcome]:
        item = self.items[position]
        loaded: list[Outcome] = []
        for piece in item:
            try:
                loaded.append(piece.load(self.network))
            except Exception as error:  # this piece's file gets an error record, the others go on
                loaded.append(_portable(error))
        return compute_item(self.network, item, loaded) if self.compute else loaded


def keep_as_is(item: Any) -> Any:
    """The DataLoader's collate function: items are lists of pieces' outcomes, not tensors to stack."""
    return item


def _loader(dataset: Dataset, positions: range, workers: int) -> DataLoader:
    return DataLoader(
        Subset(dataset, positions),
        batch_size=None,
        num_workers=min(workers, len(positions)),
        collate_fn=keep_as_is,
        prefetch_factor=2 if workers else None,
        worker_init_fn=_init_worker if workers else None,
    )


def _init_worker(worker_id: int) -> None:
    keep_freed_memory()  # a worker is a process of the engine's own


def _died(error: RuntimeError) -> bool:
    return "exited unexpectedly" in str(error)


def _outcomes(dataset: WorkItems, workers: int) -> Iterator[list[Outcome]]:
    """The items' outcomes in order, in ``workers`` processes (0: in this one), surviving workers that die; this
    process's intra-op threads are the caller's again when the outcomes end."""
    if workers == 0:
        yield from (dataset[position] for position in range(len(dataset)))
        return
    threads = torch.get_num_threads()
    try:
        yield from _in_workers(dataset, workers)
    finally:
        torch.set_num_threads(threads)


def _in_workers(dataset: WorkItems, workers: int) -> Iterator[list[Outcome]]:
    position = 0
    while position < len(dataset):
        try:
            batches = _started(_loader(dataset, range(position, len(dataset)), workers))
            for outcomes in batches:
                position += 1
                if position == len(dataset):
                    _shut_down(batches)
                    # Alone now: what is left (the last file's record: a long timeline's classifier over all its
                    # windows, its median filter) may use the workers' cores. An hour's end: 0.29 -> 0.19 s on 2.
                    torch.set_num_threads(max(workers, torch.get_num_threads()))
                yield outcomes
        except RuntimeError as error:
            if not _died(error):
                raise
            logger.warning("a worker process died; finding the file that killed it")
            position = yield from _isolate(dataset, position, 2 * workers)


def _started(loader: DataLoader) -> Iterator[list[Outcome]]:
    """The loader's iterator, its workers forked with this process's objects frozen out of their garbage collector
    (the Python docs' advice for fork): a collection in a worker would otherwise write to every object's header and
    copy all the pages it shares with this process. A caller's own freeze (the CLI's) stays in place."""
    frozen_before = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        return iter(loader)
    finally:
        if not frozen_before:
            gc.unfreeze()


def _shut_down(batches: Iterator[list[Outcome]]) -> None:
    """Let the workers exit before the last item is used. Until they do, the pages this process had when it forked
    them are shared copy-on-write, and every page the main process then writes costs a copy: assembling an hour's
    timeline took 1 s of system time more with the workers alive than without."""
    try:
        next(batches, None)
    except RuntimeError:  # every item is in: a worker that dies on its way out loses nothing
        logger.debug("a worker died while exiting", exc_info=True)


def _alone(dataset: WorkItems, position: int) -> list[Outcome] | None:
    """The outcomes of one item in a fresh worker of its own, or None when it kills that worker."""
    try:
        return next(iter(_loader(dataset, range(position, position + 1), 1)))
    except RuntimeError as error:
        if not _died(error):
            raise
        return None


def _isolate(dataset: WorkItems, position: int, suspects: int) -> Iterator[list[Outcome]]:
    """Run the items from ``position`` one per fresh worker; in the first that kills its worker, each piece alone, so
    that only the piece that kills it fails. Returns where to go on: after that item, or after ``suspects`` items
    (those that may have been in flight at the crash) if none fails again."""
    end = min(position + suspects, len(dataset))
    for suspect in range(position, end):
        outcomes = _alone(dataset, suspect)
        if outcomes is None:
            item = dataset.items[suspect]
            singles = WorkItems([[piece] for piece in item], dataset.network, dataset.compute)
            alone = (_alone(singles, i) for i in range(len(item)))
            yield [AudioLoadError(WORKER_DIED) if result is None else result[0] for result in alone]
            return suspect + 1
        yield outcomes
    return end


def plan_job(job: Job, sources: Sequence[tuple[str, Source]]) -> tuple[list[Input | Record], list[list[Piece]]]:
    """Each source planned (an :class:`Input`, or the error record of an unreadable header) and the work items."""
    planned = job.inputs(sources)
    pieces = [piece for entry in planned if isinstance(entry, Input) for piece in job.plan(entry)]
    return planned, _items(pieces, job.files_per_item)


def assemble(job: Job, planned: list[Input | Record], outcomes: Iterator[Outcome]) -> Iterator[Record]:
    """Records in input order from the outcomes of the planned inputs' pieces, in the same order; each input's
    outcomes go to :meth:`Job.collect` as they arrive."""
    for entry in planned:
        if isinstance(entry, Record):
            yield entry
            continue
        pieces = job.plan(entry)
        outputs = _PieceOutputs(outcomes, len(pieces))
        try:
            record = job.collect(entry, pieces, outputs)
        except Exception as error:  # a piece's error, or e.g. a timeline of a file whose header lied about its length
            record = Record(entry.name, entry.index, error=error_message(error), exception=error)
        outputs.skip_rest()
        yield record
    next(outcomes, None)  # none is left: this lets their source end now (the caller's threads come back)


class _PieceOutputs(Iterator[Outputs]):
    """The outputs of one input's ``count`` pieces, taken from the job's outcomes as they are asked for: a piece's
    error is raised when its turn comes."""

    def __init__(self, outcomes: Iterator[Outcome], count: int) -> None:
        self._outcomes, self._left = outcomes, count

    def __next__(self) -> Outputs:
        if not self._left:
            raise StopIteration
        self._left -= 1
        outcome = next(self._outcomes)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]

    def skip_rest(self) -> None:
        """Take the outcomes of the pieces not asked for (after an error), so that the next input's come next."""
        for _ in range(self._left):
            next(self._outcomes)
        self._left = 0


def run_job(job: Job, sources: Sequence[tuple[str, Source]], *, workers: int | None = None) -> Iterator[Record]:
    """One record per source, in order (see the module docstring for where the work runs).

    Args:
        job: what to compute (:class:`~tympan.engine.jobs.TagJob`, ...).
        sources: (name, file path or mono waveform at the network's rate) pairs.
        workers: DataLoader worker processes (default :func:`default_workers`; 0 runs everything in this process).
    """
    network = job.network
    planned, items = plan_job(job, sources)
    compute_here = network.device.type != "cpu"
    workers = default_workers() if workers is None else workers
    workers = min(workers, len(items)) if len(items) > 1 else 0  # one item: a worker would only add a copy
    job.prepare()
    dataset = WorkItems(items, network, compute=not compute_here)
    outcomes = (
        outcome
        for item, loaded in zip(items, _outcomes(dataset, workers), strict=False)
        for outcome in (compute_item(network, item, loaded) if compute_here else loaded)
    )
    return assemble(job, planned, outcomes)


def source_of(network: Network, audio: Any, sample_rate: int | None = None) -> tuple[str, Source]:
    """(name, source) of a path, or of a waveform (any rate, mono or not) brought to the network's rate and mono."""
    if isinstance(audio, (str, os.PathLike)):
        return str(audio), str(audio)
    from ..audio.io import prepare_waveform

    rate = network.sample_rate
    return "<waveform>", torch.as_tensor(prepare_waveform(audio, sample_rate or rate, rate))


def run_one(job: Job, name: str, source: Source, *, workers: int | None = None) -> Record:
    """The record of a single input; its error, if any, is raised (the single-input Python API)."""
    record = next(run_job(job, [(name, source)], workers=workers))
    if record.exception is not None:
        raise record.exception
    return record
