"""Learning-rate factor schedules of the reference recipes, as functions for ``torch.optim.lr_scheduler.LambdaLR``.

``exp_warmup_linear_down`` is the per-epoch schedule of PaSST, EfficientAT and the DCASE23 systems
(``helpers/lr_schedule.py`` of ``fschmid56/cpjku_dcase23``): an exponential warm-up (Laine & Aila, arXiv
1610.02242), a plateau at 1, a linear ramp down to ``last_value``, then constant. ``cosine_with_warmup`` is the
per-step schedule of the DCASE24 baseline (``transformers.get_cosine_schedule_with_warmup``). :func:`plan_steps`
sizes a fine-tuning run in optimizer steps, so that a folder of a few dozen clips trains as long as it needs to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = [
    "StepPlan",
    "cosine_with_warmup",
    "exp_rampup",
    "exp_warmup_linear_down",
    "linear_rampdown",
    "plan_steps",
]

Schedule = Callable[[int], float]


def exp_rampup(length: int) -> Schedule:
    """``exp(−5·(1 − clip(e, 0.5, length)/length)²)`` for ``e < length``, then 1 (e = 0 counts as 0.5)."""

    def factor(epoch: int) -> float:
        if epoch >= length:
            return 1.0
        phase = 1.0 - min(max(epoch, 0.5), length) / length
        return math.exp(-5.0 * phase * phase)

    return factor


def linear_rampdown(length: int, start: int = 0, last_value: float = 0.0) -> Schedule:
    """1 until ``start``, then linearly down to ``last_value`` over ``length`` epochs, then ``last_value``."""

    def factor(epoch: int) -> float:
        if epoch <= start:
            return 1.0
        if epoch - start < length:
            return last_value + (1.0 - last_value) * (length - epoch + start) / length
        return last_value

    return factor


def exp_warmup_linear_down(warmup: int, rampdown_length: int, rampdown_start: int, last_value: float) -> Schedule:
    """The product of :func:`exp_rampup` and :func:`linear_rampdown`, stepped once per epoch.

    Recipes: DCASE23 student ``(14, 84, 50, 0.005)``, CP-ResNet ``(15, 85, 50, 0.005)``, PaSST teacher
    ``(3, 10, 3, 0.01)``, QAT ``(0, 16, 1, 0.1)``; EfficientAT AudioSet ``(8, 95, 80, 0.01)``; PaSST AudioSet
    ``(5, 50, 50, 0.01)``.

    Example:
        >>> scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, exp_warmup_linear_down(14, 84, 50, 0.005))
    """
    if min(warmup, rampdown_length, rampdown_start) < 0 or not 0.0 <= last_value <= 1.0:
        raise ConfigError(
            "exp_warmup_linear_down needs non-negative lengths and 0 <= last_value <= 1, got "
            f"warmup={warmup}, rampdown_length={rampdown_length}, rampdown_start={rampdown_start}, last={last_value}"
        )
    rampup, rampdown = exp_rampup(warmup), linear_rampdown(rampdown_length, rampdown_start, last_value)
    return lambda epoch: rampup(epoch) * rampdown(epoch)


def cosine_with_warmup(warmup_steps: int, total_steps: int, cycles: float = 0.5) -> Schedule:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to 0 at ``total_steps`` (stepped per step).

    The DCASE24 / DCASE25 Task 1 recipes: 2,000 warm-up steps (200 for the device-specific fine-tuning), the run's
    total optimiser steps (Lightning's ``estimated_stepping_batches``), half a cosine cycle.
    """
    if warmup_steps < 0 or total_steps <= warmup_steps:
        raise ConfigError(f"cosine_with_warmup needs 0 <= warmup_steps < total_steps, got {warmup_steps} warm-up of "
                          f"{total_steps} steps; lower warmup_steps or train for more steps")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * cycles * 2.0 * progress)))

    return factor


@dataclass(frozen=True)
class StepPlan:
    """The length and learning-rate schedule of a run, in optimizer steps (see :func:`plan_steps`)."""

    batch_size: int
    steps_per_epoch: int
    steps: int
    warmup_steps: int
    rampdown_start_step: int
    rampdown_steps: int

    @property
    def epochs(self) -> float:
        """Passes over the training clips that ``steps`` make."""
        return self.steps / self.steps_per_epoch


def plan_steps(
    train_clips: int,
    batch_size: int,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    min_steps: int = 0,
    warmup_fraction: float = 0.1,
    rampdown_start_fraction: float = 0.5,
) -> StepPlan:
    """Size a run in optimizer steps: ``steps`` exactly, or ``epochs`` passes but never fewer than ``min_steps``.

    Counting epochs alone makes the run depend on the data size: 43 clips at batch 32 are one step an epoch, and
    a warm-up of "2 epochs" is most of the run. Here the batch is at most the training set (every epoch is at least
    one full step), warm-up is the first ``warmup_fraction`` of the steps and the linear ramp-down runs from
    ``rampdown_start_fraction`` of them to the end.

    Raises:
        ConfigError: no training clip, a non-positive batch / length, or both ``epochs`` and ``steps``.
    """
    if train_clips < 1 or batch_size < 1:
        raise ConfigError(f"need at least one training clip and a positive batch size, got {train_clips}, {batch_size}")
    if epochs is not None and steps is not None:
        raise ConfigError("give the run length as epochs or as steps, not both")
    if (epochs is not None and epochs < 1) or (steps is not None and steps < 1) or min_steps < 0:
        raise ConfigError(f"epochs and steps must be at least 1 (min_steps >= 0), got {epochs}, {steps}, {min_steps}")
    if not 0.0 <= warmup_fraction <= rampdown_start_fraction <= 1.0:
        raise ConfigError("need 0 <= warmup_fraction <= rampdown_start_fraction <= 1")
    batch = min(batch_size, train_clips)
    per_epoch = train_clips // batch
    total = steps if steps is not None else max((epochs or 1) * per_epoch, min_steps)
    rampdown_start = round(rampdown_start_fraction * total)
    return StepPlan(batch, per_epoch, total, round(warmup_fraction * total), rampdown_start, total - rampdown_start)
