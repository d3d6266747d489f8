"""Label sets as data: one CSV file per set in this folder, the row order being the logit order.

Each file has a header with at least the columns ``index`` (the logit column, 0..C-1 in order) and
``display_name``; other columns (AudioSet's ``mid``) are kept for whoever needs them but not returned here.

* ``tau22``: the 10 scenes of TAU Urban Acoustic Scenes 2022 Mobile in the order of the CP-JKU DCASE23 models
  (sklearn ``LabelEncoder`` on ``scene_label``, i.e. alphabetical).
* ``audioset``: the 527 AudioSet classes of ``class_labels_indices.csv``.
* ``fsd50k``: the 200 FSD50K classes, sorted by name as PaSST's FSD50K training indexes ``vocabulary.csv``.
* ``esc50``: the 50 ESC-50 categories in the order of the dataset's ``target`` column.
* ``openmic``: the 20 OpenMIC-2018 instruments in the order of its ``class-map.json``.
"""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources

from ..errors import ConfigError, DataError

__all__ = ["get_labels", "is_multilabel", "list_label_sets"]

# Label sets whose classes are not mutually exclusive (a clip may carry several): scored with a sigmoid.
_MULTILABEL = frozenset({"audioset", "fsd50k", "openmic"})


def list_label_sets() -> list[str]:
    """Names of the label sets shipped with tympan, sorted."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name.removesuffix(".csv") for f in files if f.name.endswith(".csv"))


def is_multilabel(name: str) -> bool:
    """Whether a clip of label set ``name`` may carry several classes at once (AudioSet, FSD50K, OpenMIC)."""
    return name in _MULTILABEL


def get_labels(name: str) -> list[str]:
    """The class names of label set ``name``, index ``i`` being logit column ``i``.

    Raises:
        ConfigError: there is no label set of that name.
        DataError: the label file is malformed (indices not 0..C-1 in order, or no ``display_name`` column).
    """
    return list(_read(name))


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
