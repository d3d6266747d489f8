"""A stratified validation split that never takes a class's last training clip.

A random share of a small data set can hold out every clip of a class (and then nothing teaches it) or none (and
then validation says nothing about it). Splitting class by class keeps the class mix of both sides and at least
one clip of every class in training.
"""

from __future__ import annotations

import logging

import numpy as np

from .metadata import ClipTable

__all__ = ["stratified_split"]

logger = logging.getLogger(__name__)


def stratified_split(table: ClipTable, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices ``(train, val)`` of ``table``, holding out about ``fraction`` of every class's clips.

    Each class with at least two clips holds out ``round(fraction × clips)`` of them, at least one and never its
    last; a class with a single clip keeps it for training. Multi-label clips are grouped by their rarest label.
    When no clip can be held out (every class has one clip), ``val`` is empty and a warning says so.

    Args:
        table: the clips.
        fraction: share to hold out, in ``[0, 1)``; 0 holds out nothing.
        seed: seed of the choice within each class.
    """
    if fraction <= 0 or len(table) == 0:
        return list(range(len(table))), []
    rng = np.random.default_rng(seed)
    counts = np.bincount([t for r in table.records for t in r.targets], minlength=table.num_classes)
    groups: dict[int, list[int]] = {}
    for index, record in enumerate(table.records):
        key = min(record.targets, key=lambda t: (counts[t], t)) if record.targets else -1
        groups.setdefault(key, []).append(index)
    val: list[int] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        held_out = min(len(members) - 1, max(1, round(fraction * len(members))))
        val.extend(rng.permutation(members)[:held_out].tolist())
    if not val:
        logger.warning(
            "%s is too small to hold out validation clips (no class has two clips): training on all %d clips "
            "without validation. Add clips, or give a CSV with a split column naming the validation clips.",
            table.name or "the data", len(table),
        )
    held = set(val)
    return [i for i in range(len(table)) if i not in held], sorted(val)
