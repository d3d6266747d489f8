"""One worker thread runs all of the service's model work, and batches what arrives together.

Requests put their clips in a bounded queue and wait on a future. The worker takes everything waiting (after at
most ``max_wait`` seconds for company), runs clips of equal length through the network as one batch (up to
``max_batch`` rows) and other work, such as the timeline of a long upload, in turn. When ``max_pending`` jobs are
waiting, new ones are refused with :class:`tympan.errors.ServiceBusyError` (the service answers 503) rather than
queued without bound. A single worker also means the model is never run by two threads at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, ServiceBusyError
from ..pipeline import AudioPipeline

__all__ = ["BatchQueue"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Job:
    future: Future[Any]
    waveform: Tensor | None = None  # a clip to score, batched with others of its length
    call: Callable[[], Any] | None = None  # or work that runs alone


class BatchQueue:
    """The service's model worker: clips of equal length waiting together become one forward pass.

    Args:
        pipeline: the model to run.
        max_batch: most clips per forward pass.
        max_pending: most jobs waiting or running; more are refused.
        max_wait: seconds the worker waits for more clips after the first one arrives at an idle queue.

    Example:
        >>> with BatchQueue(pipeline) as jobs:
        ...     scores = jobs.scores(waveform).result()
    """

    def __init__(
        self, pipeline: AudioPipeline, *, max_batch: int = 16, max_pending: int = 64, max_wait: float = 0.002
    ) -> None:
        if max_batch < 1 or max_pending < 1 or max_wait < 0:
            raise ConfigError(
                f"need max_batch >= 1, max_pending >= 1, max_wait >= 0; got {max_batch}, {max_pending}, {max_wait}"
            )
        self.pipeline = pipeline
        self.max_batch, self.max_pending, self.max_wait = max_batch, max_pending, max_wait
        self.clips_scored = self.forward_passes = 0  # their ratio is the mean batch size
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Jobs waiting or running."""
        return self._pending

    def start(self) -> BatchQueue:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="tympan-model", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Finish the jobs already queued, then end the worker."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def __enter__(self) -> BatchQueue:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def scores(self, waveform: Tensor) -> Future[np.ndarray]:
        """Class scores ``[classes]`` of one mono clip at the model's rate (at least ``min_samples`` long).

        Raises:
            ServiceBusyError: ``max_pending`` jobs are waiting.
        """
        return self._submit(_Job(Future(), waveform=waveform))

    def call(self, work: Callable[[], T]) -> Future[T]:
        """Run ``work()`` on the worker, in turn with the batches (for work that uses the model on its own).

        Raises:
            ServiceBusyError: ``max_pending`` jobs are waiting.
        """
        return self._submit(_Job(Future(), call=work))

    def _submit(self, job: _Job) -> Future[Any]:
        if self._thread is None:
            raise RuntimeError("the batch queue is not started")
        with self._lock:
            if self._pending >= self.max_pending:
                raise ServiceBusyError(f"the service is busy ({self._pending} requests waiting); retry shortly")
            self._pending += 1
        self._jobs.put(job)
        return job.future

    def _done(self, job: _Job, result: Any = None, error: BaseException | None = None) -> None:
        with self._lock:
            self._pending -= 1
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                return
            jobs = [first]
            deadline = time.perf_counter() + self.max_wait
            while True:  # take what else is waiting, and what comes within max_wait
                try:
                    job = self._jobs.get(timeout=max(deadline - time.perf_counter(), 0.0))
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        by_length: dict[int, list[_Job]] = {}
        for job in jobs:
            if job.waveform is not None:
                by_length.setdefault(job.waveform.numel(), []).append(job)
        for same_length in by_length.values():
            for offset in range(0, len(same_length), self.max_batch):
                self._run_batch(same_length[offset : offset + self.max_batch])
        for job in jobs:
            if job.call is not None:
                try:
                    result = job.call()
                except Exception as error:  # the request that sent it gets the error
                    self._done(job, error=error)
                else:
                    self._done(job, result)

    def _run_batch(self, jobs: list[_Job]) -> None:
        try:
            logits, _ = self.pipeline.forward_waveforms(torch.stack([job.waveform for job in jobs]))
            scores = self.pipeline.activate(logits).cpu().numpy()
        except Exception as error:  # every request of the batch gets the error; the worker goes on
            logger.exception("a batch of %d clips failed", len(jobs))
            for job in jobs:
                self._done(job, error=error)
            return
        self.clips_scored += len(jobs)
        self.forward_passes += 1
        for job, row in zip(jobs, scores, strict=True):
            self._done(job, row)
