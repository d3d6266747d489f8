"""Sound event detection at frame resolution: strong labels, frame scores, events, and their metrics.

* :mod:`~tympan.sed.events`: event tables (DESED, AudioSet-Strong, CSV), weak label tables and frame targets;
* :mod:`~tympan.sed.data`: training batches of strong and weak-only items (``has_strong``);
* :mod:`~tympan.sed.postprocess`: median filtering, thresholds, merging → :class:`Event` lists;
* :mod:`~tympan.sed.detect`: frame scores of files of any length and :func:`detect` over files;
* :mod:`~tympan.sed.metrics`: PSDS1 / PSDS2, event- and segment-based F1 through ``sed_scores_eval``;
* :mod:`~tympan.sed.corpus`: a generated strong-labelled set with onsets known to the sample.
"""

from __future__ import annotations

from .events import EventTable, GroundTruth, WeakLabelTable, frame_targets, read_events, read_weak_labels
from .postprocess import Event, PostProcessing, decode_events, median_filter

__all__ = [
    "Event",
    "EventTable",
    "GroundTruth",
    "PostProcessing",
    "WeakLabelTable",
    "decode_events",
    "frame_targets",
    "median_filter",
    "read_events",
    "read_weak_labels",
]
