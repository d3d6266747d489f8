"""The demo's training runs side by side in worker processes, with every run's progress bar drawn by the parent.

The demo's networks are small (40K–130K parameters on 1-s clips): a second intra-op thread speeds a training step up
by little and spins when the machine is busy, while two runs side by side keep two cores busy. So each worker runs
PyTorch on one thread, independent runs (the two teachers; the student without KD) overlap, and a run that needs
another's result (a fine-tuning after its pre-training, a KD student after the teacher logits) is submitted when that
result is there. Workers send ``(run, steps done, steps in all, status)`` messages; the parent draws the bars, so
lines from two processes never interleave. With one worker, runs train in this process, one after the other.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

__all__ = ["ProgressBoard", "ProgressReport", "TrainedRun", "TrainingPool", "default_workers"]

ProgressReport = Callable[[str, int, int, str], None]
MAX_WORKERS = 3  # the most runs the demo ever has ready at once (three students)


def default_workers() -> int:
    """One worker per core, up to the demo's widest stage."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


@dataclass(frozen=True)
class TrainedRun:
    """A finished training run: its self-describing checkpoint, per-epoch curve and wall seconds."""

    name: str
    checkpoint: Path
    curve: dict[str, list[float]]
    seconds: float


class ProgressBoard:
    """One tqdm bar per run, driven by ``(run, done, total, status)`` messages from this process or from workers."""

    def __init__(self) -> None:
        self._bars: dict[str, tqdm] = {}

    def __call__(self, name: str, done: int, total: int, status: str) -> None:
        bar = self._bars.get(name)
        if bar is None:
            bar = self._bars[name] = tqdm(total=total, desc=name, unit="step", dynamic_ncols=True, leave=True)
        bar.n = done
        bar.set_postfix_str(status, refresh=False)
        bar.refresh()
        if done >= total:
            bar.close()


_messages: Any = None  # in a worker: the queue to the parent's board


def _send(name: str, done: int, total: int, status: str) -> None:
    _messages.put((name, done, total, status))


def _start_worker(messages: Any) -> None:
    """Worker set-up: one intra-op thread, progress to the parent, Lightning's and torch's notes kept quiet (the
    parent's run says what happens; failures still reach it as exceptions)."""
    global _messages
    _messages = messages
    torch.set_num_threads(1)
    import lightning.pytorch  # noqa: F401  (its import sets its logger's level: quieten it afterwards)

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available" block nor tips per run
    logging.getLogger("torch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")


def _train(
    metadata: Path,
    labels: Sequence[str],
    recipe: Any,
    name: str,
    checkpoint: Path,
    report: ProgressReport | None = None,
) -> TrainedRun:
    from .engine import train  # the engine imports the whole training stack: only where a run trains

    start = time.perf_counter()
    _, curve = train(metadata, labels, recipe, name, checkpoint, report=report or _send)
    return TrainedRun(name, checkpoint, curve, time.perf_counter() - start)


class TrainingPool:
    """Runs :func:`tympan.demo.engine.train` calls in ``workers`` processes (in this process when 1).

    Use as a context manager; :meth:`submit` returns a future of the :class:`TrainedRun`.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._board = ProgressBoard()
        self._executor: ProcessPoolExecutor | None = None
        self._listener: threading.Thread | None = None

    def __enter__(self) -> TrainingPool:
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")  # no forked copies of a parent's threads and locks
            self._messages = context.Queue()
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_start_worker, initargs=(self._messages,)
            )
            self._listener = threading.Thread(target=self._draw, daemon=True)
            self._listener.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=exc_info[0] is not None)
            self._messages.put(None)
            self._listener.join()

    def _draw(self) -> None:
        while (message := self._messages.get()) is not None:
            self._board(*message)

    def submit(
        self, metadata: Path, labels: Sequence[str], recipe: Any, name: str, checkpoint: Path
    ) -> Future[TrainedRun]:
        """Train ``recipe`` under the bar ``name`` and write its checkpoint to ``checkpoint``."""
        if self._executor is not None:
            return self._executor.submit(_train, metadata, list(labels), recipe, name, checkpoint)
        future: Future[TrainedRun] = Future()
        try:
            future.set_result(_train(metadata, labels, recipe, name, checkpoint, self._board))
        except Exception as error:  # delivered through the future, as from a worker
            future.set_exception(error)
        return future
