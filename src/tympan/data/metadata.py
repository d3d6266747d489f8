"""Clip lists: what a dataset contains, read from the layouts tympan supports.

Every reader returns a :class:`ClipTable` — one :class:`ClipRecord` per clip plus the label names — so that one
dataset class, one sampler and one DataModule serve all of them:

* generic CSV (``file``, ``label`` or ``labels`` (``;``-separated), optional ``device``, ``city``, ``split``,
  ``fold``, ``id``, ``caption``; paths relative to the CSV; comma- or tab-separated);
* a folder with one sub-folder per label;
* TAU Urban Acoustic Scenes 2022 Mobile (``meta.csv`` + ``evaluation_setup/fold1_{train,evaluate}.csv``; the device
  is the text after the last ``-`` of the file name, the city the part of ``identifier`` before the first ``-``);
* ESC-50 (``meta/esc50.csv`` with ``filename, fold, target, category``; audio in ``audio/`` or ``audio_32k/``);
* AudioSet in the PaSST / EfficientAT HDF5 layout (``audio_name``, ``mp3``, ``target`` packed with ``np.packbits``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..audio.io import AUDIO_EXTENSIONS, find_audio_files
from ..errors import DataError

__all__ = [
    "AUDIO_EXTENSIONS",
    "ClipRecord",
    "ClipTable",
    "read_audioset_hdf5",
    "read_csv",
    "read_data",
    "read_esc50",
    "read_folder",
    "read_split_file",
    "read_tau22",
    "resolve_training_split",
]

logger = logging.getLogger(__name__)

_SPLITS = ("train", "val", "test")
DCASE24_SPLITS = (5, 10, 25, 50, 100)  # percent of the DCASE23 training split (split{N}.csv)
_SPLIT_URL = "https://github.com/CPJKU/dcase2024_task1_baseline/releases/tag/files"


@dataclass(frozen=True)
class ClipRecord:
    """One clip: where its audio is and what is known about it.

    Attributes:
        id: unique clip id (the key of the teacher-logit store).
        source: audio file path, or the HDF5 file holding the clip when ``row`` is set.
        targets: indices of its labels (one for single-label data).
        row: row of the clip in the HDF5 file ``source``; None for plain files.
        device, city, split, fold, caption: optional metadata ("" / None when unknown).
    """

    id: str
    source: str
    targets: tuple[int, ...]
    row: int | None = None
    device: str = ""
    city: str = ""
    split: str = ""
    fold: int | None = None
    caption: str = ""


@dataclass(frozen=True)
class ClipTable:
    """The clips of a dataset and its label names; ``multi_label`` selects BCE (tagging) vs CE (scenes)."""

    records: tuple[ClipRecord, ...]
    labels: tuple[str, ...]
    multi_label: bool = False
    name: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def device_names(self) -> list[str]:
        """Sorted distinct recording devices (empty when unknown)."""
        return sorted({r.device for r in self.records if r.device})

    def select(self, keep: Iterable[bool] | Iterable[int]) -> ClipTable:
        """A table with the records at the given indices (or where the given mask is true)."""
        keep = list(keep)
        if keep and isinstance(keep[0], (bool, np.bool_)):
            keep = [i for i, flag in enumerate(keep) if flag]
        return replace(self, records=tuple(self.records[i] for i in keep))

    def restricted_to(self, names: Iterable[str]) -> ClipTable:
        """The records whose id, or whose file's name, is one of ``names`` (a split file's ``filename`` column)."""
        names = set(names)
        basenames = {Path(n).name for n in names}
        return self.select(r.id in names or Path(r.source).name in basenames for r in self.records)

    def recorded_by(self, devices: Iterable[str]) -> ClipTable:
        """The records of the given recording devices."""
        devices = set(devices)
        return self.select(r.device in devices for r in self.records)

    def where(self, *, split: str | None = None, folds: Sequence[int] | None = None) -> ClipTable:
        """Records of a split and/or a set of folds."""
        return self.select(
            (split is None or r.split == split) and (folds is None or r.fold in folds) for r in self.records
        )

    def target_matrix(self) -> np.ndarray:
        """``[clips, classes]`` 0/1 matrix of the labels (float32)."""
        matrix = np.zeros((len(self.records), len(self.labels)), dtype=np.float32)
        for i, record in enumerate(self.records):
            matrix[i, list(record.targets)] = 1.0
        return matrix

    def check_unique_ids(self) -> None:
        seen: set[str] = set()
        duplicates = [r.id for r in self.records if r.id in seen or seen.add(r.id)]
        if duplicates:
            raise DataError(
                f"{self.name or 'dataset'}: clip ids must be unique; repeated: {duplicates[:5]}. "
                "Add an `id` column to the CSV."
            )


def _open_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise DataError(f"cannot read the metadata file {path}: {error}") from None
    lines = text.splitlines()
    if not lines:
        raise DataError(f"the metadata file {path} is empty")
    delimiter = "\t" if lines[0].count("\t") > lines[0].count(",") else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    return [f.strip() for f in reader.fieldnames or []], rows


def _label_index(names: Iterable[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(sorted(set(names)))}


def read_csv(path: str | Path, labels: Sequence[str] | None = None) -> ClipTable:
    """Read the generic CSV layout (see the module docstring).

    Args:
        path: the CSV file; ``file`` paths are relative to its folder.
        labels: the label names in model order; default: the sorted distinct labels of the file.

    Raises:
        DataError: a required column is missing, a label is unknown, or a ``split`` value is not train/val/test.
    """
    path = Path(path)
    columns, rows = _open_table(path)
    if "file" not in columns or not ({"label", "labels"} & set(columns)):
        raise DataError(
            f"{path}: need a `file` column and a `label` (or `labels`, ';'-separated) column; got {columns}"
        )
    multi_label = "labels" in columns
    label_lists = [
        [x.strip() for x in row["labels"].split(";") if x.strip()] if multi_label else [row["label"]] for row in rows
    ]
    index = {n: i for i, n in enumerate(labels)} if labels is not None else _label_index(
        x for names in label_lists for x in names
    )
    records = []
    for number, (row, names) in enumerate(zip(rows, label_lists, strict=True), start=2):
        unknown = [n for n in names if n not in index]
        if unknown:
            raise DataError(f"{path}, line {number}: unknown label(s) {unknown}; known: {sorted(index)[:20]}")
        split = row.get("split", "")
        if split and split not in _SPLITS:
            raise DataError(f"{path}, line {number}: split must be one of {_SPLITS}, got {split!r}")
        fold = row.get("fold", "")
        records.append(
            ClipRecord(
                id=row.get("id") or row["file"],
                source=str(path.parent / row["file"]),
                targets=tuple(sorted(index[n] for n in names)),
                device=row.get("device", ""),
                city=row.get("city", ""),
                split=split,
                fold=int(fold) if fold else None,
                caption=row.get("caption", ""),
            )
        )
    table = ClipTable(tuple(records), tuple(sorted(index, key=index.get)), multi_label, name=str(path))
    table.check_unique_ids()
    return table


def read_folder(root: str | Path) -> ClipTable:
    """A folder with one sub-folder per label (sorted names = class order); ids are the relative paths."""
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no sub-folders; put the clips of each label in a sub-folder named after it")
    records = []
    for index, name in enumerate(classes):
        files = find_audio_files([root / name])
        records += [ClipRecord(id=str(f.relative_to(root)), source=str(f), targets=(index,)) for f in files]
    if not records:
        raise DataError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under the label folders of {root}")
    return ClipTable(tuple(records), tuple(classes), False, name=str(root))


def read_tau22(root: str | Path) -> ClipTable:
    """TAU22 Mobile development set: ``meta.csv`` rows; split ``train`` / ``test`` from ``evaluation_setup``."""
    root = Path(root)
    _, rows = _open_table(root / "meta.csv")
    splits: dict[str, str] = {}
    for split, name in (("train", "fold1_train.csv"), ("test", "fold1_evaluate.csv")):
        split_file = root / "evaluation_setup" / name
        if split_file.exists():
            splits.update((row["filename"], split) for row in _open_table(split_file)[1])
    index = _label_index(row["scene_label"] for row in rows)
    records = tuple(
        ClipRecord(
            id=row["filename"],
            source=str(root / row["filename"]),
            targets=(index[row["scene_label"]],),
            device=Path(row["filename"]).stem.rsplit("-", 1)[-1],
            city=row.get("identifier", "").split("-", 1)[0],
            split=splits.get(row["filename"], ""),
        )
        for row in rows
    )
    return ClipTable(records, tuple(index), False, name="tau22")


def resolve_training_split(split: int | str, data: str | Path) -> Path:
    """The file of a DCASE24 training split: a percentage (5, 10, 25, 50, 100) or a path.

    A percentage names ``split{N}.csv`` of the DCASE24 Task 1 baseline, looked up in the dataset folder and in its
    ``split_setup/`` and ``evaluation_setup/`` folders (the baseline keeps them in ``split_setup/``). A path is taken
    as it is, else relative to the dataset folder.

    Raises:
        DataError: an unknown percentage, or no such file (the message says where the files are published).
    """
    root = Path(data) if Path(data).is_dir() else Path(data).parent
    text = str(split)
    if text.isdigit():
        if int(text) not in DCASE24_SPLITS:
            raise DataError(f"the DCASE24 training splits are {DCASE24_SPLITS} percent, got {split}")
        candidates = [root / folder / f"split{int(text)}.csv" for folder in ("", "split_setup", "evaluation_setup")]
    else:
        candidates = [Path(text), root / text]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DataError(
            f"no training split file for {split!r}; looked for {', '.join(str(c) for c in candidates)}. The DCASE24 "
            f"split files (split5.csv ... split100.csv) are published at {_SPLIT_URL}; put them in {root}."
        )
    return found


def read_split_file(path: str | Path) -> set[str]:
    """The clip names of a split file: its ``filename`` column (DCASE24 ``split{N}.csv``), or ``file`` / ``id``."""
    columns, rows = _open_table(Path(path))
    column = next((c for c in ("filename", "file", "id") if c in columns), None)
    if column is None:
        raise DataError(f"{path}: a split file needs a `filename` (or `file`, `id`) column; got {columns}")
    return {row[column] for row in rows if row[column]}


def read_esc50(root: str | Path) -> ClipTable:
    """ESC-50: 50 classes ordered by ``target``, folds 1–5 (``where(folds=...)`` selects them)."""
    root = Path(root)
    _, rows = _open_table(root / "meta" / "esc50.csv")
    audio = next((root / d for d in ("audio_32k", "audio") if (root / d).is_dir()), root / "audio")
    names = {int(row["target"]): row["category"] for row in rows}
    records = tuple(
        ClipRecord(
            id=row["filename"],
            source=str(audio / row["filename"]),
            targets=(int(row["target"]),),
            fold=int(row["fold"]),
        )
        for row in rows
    )
    return ClipTable(records, tuple(names[i] for i in sorted(names)), False, name="esc50")


def read_audioset_hdf5(
    paths: str | Path | Sequence[str | Path],
    labels: Sequence[str] | None = None,
    split: str = "",
    num_classes: int = 527,
) -> ClipTable:
    """AudioSet (or FSD50K) HDF5 files of PaSST / EfficientAT; several files are concatenated in order.

    The id of a clip is its ``audio_name`` after the first ``Y`` and without the extension (``Y--4gqARaEJE.mp3`` ->
    ``--4gqARaEJE``), as the EfficientAT teacher-logit index uses. ``target`` is unpacked to ``num_classes`` bits
    (``np.packbits`` pads to a multiple of 8), or to ``len(labels)`` when labels are given.
    """
    import h5py

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    records = []
    num_classes = len(labels) if labels is not None else num_classes
    for path in paths:
        with h5py.File(path, "r") as file:
            missing = {"audio_name", "mp3", "target"} - set(file.keys())
            if missing:
                raise DataError(f"{path}: not a PaSST-layout HDF5 file (missing datasets {sorted(missing)})")
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in file["audio_name"][:]]
            packed = file["target"][:]
        bits = np.unpackbits(packed, axis=1) if packed.dtype == np.uint8 else (packed > 0.5)
        for row, (name, target) in enumerate(zip(names, bits[:, :num_classes], strict=True)):
            clip_id = name.split("Y", 1)[-1].rsplit(".", 1)[0] if name.startswith("Y") else name.rsplit(".", 1)[0]
            records.append(
                ClipRecord(id=clip_id, source=str(path), row=row, targets=tuple(np.flatnonzero(target).tolist()),
                           split=split)
            )
    label_names = tuple(labels) if labels is not None else tuple(str(i) for i in range(num_classes))
    table = ClipTable(tuple(records), label_names, True, name="audioset")
    table.check_unique_ids()
    return table


def read_data(path: str | Path, labels: Sequence[str] | None = None) -> ClipTable:
    """Read any supported layout, recognised from ``path``.

    A ``.csv``/``.tsv`` file -> generic CSV; ``.h5``/``.hdf``/``.hdf5`` -> AudioSet HDF5; a folder with ``meta.csv`` and
    ``evaluation_setup/`` -> TAU22; with ``meta/esc50.csv`` -> ESC-50; with a ``meta.csv`` only -> generic CSV; any
    other folder -> one sub-folder per label.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"the data path {path} does not exist")
    if path.is_file():
        if path.suffix.lower() in (".h5", ".hdf", ".hdf5"):
            return read_audioset_hdf5(path, labels)
        return read_csv(path, labels)
    if (path / "meta.csv").exists() and (path / "evaluation_setup").is_dir():
        return read_tau22(path)
    if (path / "meta" / "esc50.csv").exists():
        return read_esc50(path)
    if (path / "meta.csv").exists():
        return read_csv(path / "meta.csv", labels)
    return read_folder(path)
