"""Label sets as data: one CSV file per set in this folder, the row order being the logit order.

Each file has a header with at least the columns ``index`` (the logit column, 0..C-1 in order) and
``display_name``; other columns (AudioSet's ``mid``) are kept for whoever needs them but not returned here.

* ``tau22``: the 10 scenes of TAU Urban Acoustic Scenes 2022 Mobile in the order of the CP-JKU DCASE23 models
  (sklearn ``LabelEncoder`` on ``scene_label``, i.e. alphabetical).
* ``audioset``: the 527 AudioSet classes of ``class_labels_indices.csv``.
* ``audioset_strong``: the 447 classes of the AudioSet-Strong training labels, in the order of the PretrainedSED
  models' heads (``data_util/audioset_classes.py``, ``as_strong_train_classes``: sorted by name).
* ``fsd50k``: the 200 FSD50K classes, sorted by name as PaSST's FSD50K training indexes ``vocabulary.csv``.
* ``esc50``: the 50 ESC-50 categories in the order of the dataset's ``target`` column.
* ``openmic``: the 20 OpenMIC-2018 instruments in the order of its ``class-map.json``.

Whether a set is *multi-label* (several classes present at once: trained with BCE, scored with sigmoids, long files
aggregated by the maximum over windows) or single-label (mutually exclusive classes: cross-entropy, softmax, the
mean) is a property of the set, declared here beside the files: AudioSet, FSD50K and OpenMIC are multi-label (PaSST
``ex_audioset.py`` / ``ex_fsd50k.py`` / ``ex_openmic.py`` train them with BCE), ESC-50 and TAU22 single-label.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Sequence
from importlib import resources

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["get_labels", "is_multilabel", "list_label_sets", "top_indices", "top_labels"]

_MULTILABEL = {
    "audioset": True, "audioset_strong": True, "fsd50k": True, "openmic": True, "esc50": False, "tau22": False,
}  # fmt: skip


def list_label_sets() -> list[str]:
    """Names of the label sets shipped with tympan, sorted."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name.removesuffix(".csv") for f in files if f.name.endswith(".csv"))


def get_labels(name: str) -> list[str]:
    """The class names of label set ``name``, index ``i`` being logit column ``i``.

    Raises:
        ConfigError: there is no label set of that name.
        DataError: the label file is malformed (indices not 0..C-1 in order, or no ``display_name`` column).
    """
    return list(_read(name))


def is_multilabel(name: str) -> bool:
    """True when the classes of label set ``name`` are not mutually exclusive (sigmoid scores, max over windows).

    Raises:
        ConfigError: there is no label set of that name.
        DataError: a shipped label set declares neither (a new CSV must be added to ``_MULTILABEL``).
    """
    known = list_label_sets()
    if name not in known:
        raise ConfigError(f"unknown label set {name!r}; known label sets: {', '.join(known)}")
    if name not in _MULTILABEL:
        raise DataError(f"label set {name!r} does not declare whether it is multi-label; add it to _MULTILABEL")
    return _MULTILABEL[name]


def top_labels(scores: Sequence[float], labels: Sequence[str], top_k: int) -> list[tuple[str, float]]:
    """The ``top_k`` (label, score) pairs of one score vector, best first (ties in class order)."""
    return [(labels[i], float(scores[i])) for i in top_indices(np.asarray(scores)[None], top_k)[0]]


def top_indices(scores: np.ndarray, top_k: int) -> np.ndarray:
    """Class indices ``[rows, k]`` of the ``top_k`` scores of each row of ``scores [rows, classes]``, best first,
    ties in class order (NaN last): a stable sort's order without sorting whole rows (an hour's timeline, 527
    classes: 17 ms against 97 ms)."""
    keys = np.where(np.isnan(scores), -np.inf, scores)
    k = min(max(top_k, 0), keys.shape[1])
    if k == 0:
        return np.zeros((len(keys), 0), dtype=np.int64)
    kth = np.partition(keys, -k, axis=1)[:, -k, None]
    rows, columns = np.nonzero(keys >= kth)  # each row's top k, and any score tied with its k-th
    order = np.lexsort((columns, -keys[rows, columns], rows))
    rows, columns = rows[order], columns[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    return columns[rank < k].reshape(len(keys), k)


@functools.cache
def _read(name: str) -> tuple[str, ...]:
    known = list_label_sets()
    if name not in known:
        raise ConfigError(f"unknown label set {name!r}; known label sets: {', '.join(known)}")
    text = resources.files(__name__).joinpath(f"{name}.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "index" not in rows[0] or "display_name" not in rows[0]:
        raise DataError(f"label file {name}.csv needs a header with 'index' and 'display_name' columns")
    indices = [int(row["index"]) for row in rows]
    if indices != list(range(len(rows))):
        raise DataError(f"label file {name}.csv must list indices 0..{len(rows) - 1} in order")
    return tuple(row["display_name"] for row in rows)
