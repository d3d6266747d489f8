"""Audio-caption data: readers for ClothoV2, AudioCaps, WavCaps and a generic CSV, and the torch dataset.

Layouts (reference ``OptimusPrimus/dcase2023_task6b`` ``src/data/datasets``):

* **ClothoV2**: ``clotho_captions_{development,validation,evaluation}.csv`` (``file_name, caption_1..caption_5``)
  beside a folder of that split's audio (``development/``, or ``clotho_audio_development/``); the optional
  ``clotho_metadata_{split}.csv`` (ISO-8859-1) adds the ``keywords`` (``;``-separated).
* **AudioCaps**: ``dataset/{train,val,test}.csv`` (``audiocap_id, youtube_id, start_time, caption``), audio from a
  local AudioSet copy named ``Y<youtube_id>.*`` (or ``<youtube_id>.*``); rows without audio are skipped. Captions of
  the same video form one clip.
* **WavCaps**: ``json_files/<subset>/*.json``, each ``{"data": [{"id", "caption", ...}]}``; audio in
  ``<audio_dir>/<subset>/<id stem>.*`` (the reference: ``mp3/``); missing files are skipped (the reference's
  ``missing_files.json`` lists exactly those).
* **Generic CSV**: a ``file`` column (relative to the CSV) and either one ``caption`` per row (rows of the same file
  are grouped) or ``caption_1``, ``caption_2``, ...; optional ``id`` and ``split`` columns. The synthetic corpus
  (:mod:`tympan.data.synthetic`) writes this layout.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio.io import find_audio_files
from ..data.decode import ClipLoader
from ..data.metadata import ClipRecord
from ..errors import ConfigError, DataError

__all__ = [
    "CLOTHO_SPLITS",
    "WAVCAPS_SUBSETS",
    "CaptionDataset",
    "CaptionedClip",
    "collate_captions",
    "read_audiocaps",
    "read_caption_csv",
    "read_captions",
    "read_clotho",
    "read_wavcaps",
]

logger = logging.getLogger(__name__)

CLOTHO_SPLITS = {"train": "development", "val": "validation", "test": "evaluation"}
WAVCAPS_SUBSETS = ("AudioSet_SL", "FreeSound", "BBC_Sound_Effects", "SoundBible")
_CAPTION_COLUMN = re.compile(r"caption_(\d+)$")


@dataclass(frozen=True)
class CaptionedClip:
    """One audio clip and its human (or generated) captions."""

    id: str
    source: str
    captions: tuple[str, ...]
    keywords: tuple[str, ...] = ()


def _read_rows(path: Path, encoding: str = "utf-8-sig") -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding=encoding) as handle:
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(handle)]
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from None


def _caption_columns(row: Mapping[str, str]) -> list[str]:
    numbered = [(int(m.group(1)), key) for key in row if (m := _CAPTION_COLUMN.match(key))]
    return [key for _, key in sorted(numbered)]


def read_clotho(
    root: str | Path, split: str = "development", audio_dir: str | Path | None = None
) -> list[CaptionedClip]:
    """ClothoV2 clips of ``split`` (``development``/``validation``/``evaluation`` or ``train``/``val``/``test``)."""
    root, split = Path(root), CLOTHO_SPLITS.get(split, split)
    captions_file = root / f"clotho_captions_{split}.csv"
    if not captions_file.is_file():
        raise DataError(f"{captions_file} not found; give the folder holding the Clotho CSVs and the split's audio")
    if audio_dir is None:
        candidates = [root / split, root / f"clotho_audio_{split}"]
        audio_dir = next((c for c in candidates if c.is_dir()), candidates[0])
    keywords = {}
    metadata_file = root / f"clotho_metadata_{split}.csv"
    if metadata_file.is_file():
        keywords = {r["file_name"]: r.get("keywords", "") for r in _read_rows(metadata_file, "ISO-8859-1")}
    clips = []
    for row in _read_rows(captions_file):
        columns = _caption_columns(row)
        if "file_name" not in row or not columns:
            raise DataError(f"{captions_file}: need the columns file_name, caption_1 .. caption_5; got {list(row)}")
        words = tuple(k.strip() for k in keywords.get(row["file_name"], "").split(";") if k.strip())
        captions = tuple(row[c] for c in columns if row[c])
        clips.append(CaptionedClip(row["file_name"], str(Path(audio_dir) / row["file_name"]), captions, words))
    return clips


def _audio_files_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"audio folder {folder} not found")
    return {p.stem: p for p in find_audio_files([folder])}


def read_audiocaps(
    root: str | Path, audio_dir: str | Path, splits: Sequence[str] = ("train", "val", "test")
) -> list[CaptionedClip]:
    """AudioCaps clips of ``splits`` (the paper trains on all three), matched to a local AudioSet copy."""
    root = Path(root)
    files = _audio_files_by_stem(Path(audio_dir))
    grouped: dict[str, list[str]] = {}
    for split in splits:
        table = next((p for p in (root / "dataset" / f"{split}.csv", root / f"{split}.csv") if p.is_file()), None)
        if table is None:
            raise DataError(f"AudioCaps {split}.csv not found in {root} or {root / 'dataset'}")
        for row in _read_rows(table):
            if "youtube_id" not in row or "caption" not in row:
                raise DataError(f"{table}: need the columns youtube_id and caption; got {list(row)}")
            grouped.setdefault(row["youtube_id"], []).append(row["caption"])
    clips, missing = [], 0
    for video, captions in grouped.items():
        path = files.get(f"Y{video}") or files.get(video)
        if path is None:
            missing += 1
            continue
        clips.append(CaptionedClip(f"Y{video}", str(path), tuple(captions)))
    if missing:
        logger.warning("AudioCaps: %d of %d videos have no audio in %s; skipped", missing, len(grouped), audio_dir)
    return clips


def read_wavcaps(
    root: str | Path, audio_dir: str | Path | None = None, subsets: Sequence[str] = WAVCAPS_SUBSETS
) -> list[CaptionedClip]:
    """WavCaps clips (one caption each) of ``subsets``; audio in ``audio_dir/<subset>`` (default ``root/mp3``)."""
    root = Path(root)
    audio_root = Path(audio_dir) if audio_dir is not None else root / "mp3"
    clips, missing = [], 0
    for subset in subsets:
        json_files = sorted((root / "json_files" / subset).glob("*.json"))
        if not json_files:
            raise DataError(f"no WavCaps JSON in {root / 'json_files' / subset}")
        subset_dir = audio_root / subset
        files = _audio_files_by_stem(subset_dir) if subset_dir.is_dir() else {}
        for json_file in json_files:
            entries = json.loads(json_file.read_text(encoding="utf-8")).get("data", [])
            for entry in sorted(entries, key=lambda e: str(e["id"])):
                stems = [Path(str(entry["id"])).stem] + ([Path(entry["href"]).stem] if entry.get("href") else [])
                path = next((files[s] for s in stems if s in files), None)
                if path is None:
                    missing += 1
                    continue
                clips.append(CaptionedClip(f"{subset}/{stems[0]}", str(path), (entry["caption"],)))
    if missing:
        logger.warning("WavCaps: %d entries have no audio under %s and are skipped", missing, audio_root)
    return clips


def read_caption_csv(path: str | Path, split: str | None = None) -> list[CaptionedClip]:
    """The generic layout (module docstring); ``split`` keeps only the rows of that split."""
    path = Path(path)
    rows = _read_rows(path)
    if not rows or "file" not in rows[0] or not ("caption" in rows[0] or _caption_columns(rows[0])):
        raise DataError(f"{path}: need a `file` column and `caption` (or caption_1, caption_2, ...) columns")
    if split is not None:
        if "split" not in rows[0]:
            raise DataError(f"{path} has no `split` column; leave split unset or add the column")
        rows = [r for r in rows if r["split"] == split]
    columns = _caption_columns(rows[0]) if rows else []
    grouped: dict[str, tuple[str, list[str]]] = {}
    for row in rows:
        captions = [row[c] for c in columns if row[c]] if columns else [row["caption"]]
        key = row.get("id") or row["file"]
        grouped.setdefault(key, (row["file"], []))[1].extend(c for c in captions if c)
    return [
        CaptionedClip(key, str(path.parent / file), tuple(captions)) for key, (file, captions) in grouped.items()
    ]


_READERS = {"clotho": read_clotho, "audiocaps": read_audiocaps, "wavcaps": read_wavcaps, "csv": read_caption_csv}


def read_captions(source: Mapping[str, Any]) -> list[CaptionedClip]:
    """Read one data source described as data, e.g. ``{"format": "clotho", "root": "...", "split": "train"}``.

    ``format`` is ``clotho``, ``audiocaps``, ``wavcaps`` or ``csv``; the other keys are the reader's arguments.
    """
    arguments = dict(source)
    kind = arguments.pop("format", None)
    if kind not in _READERS:
        raise ConfigError(f"unknown caption data format {kind!r}; choose one of {sorted(_READERS)}")
    try:
        return _READERS[kind](**arguments)
    except TypeError as error:
        raise ConfigError(f"bad arguments for the {kind} reader: {error}") from None


class CaptionDataset(Dataset):
    """Audio with captions, as training pairs or as clips to evaluate.

    In training mode an item is one (clip, caption) pair, so a clip with 5 captions appears 5 times per epoch, and
    the audio is a random ``max_seconds`` crop (the reference). In evaluation mode an item is a clip with all its
    captions, cut to its first ``max_seconds``.

    Args:
        clips: the clips (from the ``read_*`` functions).
        sample_rate: rate of the returned audio in Hz (the audio encoder's).
        max_seconds: longest audio returned.
        train: pairs with random crops (True) or whole clips (False).
        cache_dir: cache of decoded, resampled audio (see :class:`tympan.data.decode.ClipLoader`).
    """

    def __init__(
        self,
        clips: Iterable[CaptionedClip],
        sample_rate: int,
        max_seconds: float = 30.0,
        train: bool = False,
        cache_dir: str | Path | None = None,
    ):
        self.clips = [c for c in clips if c.captions]
        if not self.clips:
            raise DataError("no clip with a caption to use; check the data paths and the split")
        self.train = train
        self.max_samples = round(max_seconds * sample_rate)
        self.loader = ClipLoader(sample_rate, cache_dir=cache_dir)
        self.items = [(i, j) for i, c in enumerate(self.clips) for j in range(len(c.captions))] if train else None

    def __len__(self) -> int:
        return len(self.items) if self.items is not None else len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip_index, caption_index = self.items[index] if self.items is not None else (index, None)
        clip = self.clips[clip_index]
        audio = self.loader(ClipRecord(id=clip.id, source=clip.source, targets=()))
        offset = 0
        if self.train and len(audio) > self.max_samples:
            offset = int(torch.randint(len(audio) - self.max_samples + 1, ()))
        audio = torch.from_numpy(np.ascontiguousarray(audio[offset : offset + self.max_samples]))
        captions = clip.captions if caption_index is None else (clip.captions[caption_index],)
        return {"audio": audio, "captions": captions, "clip": clip_index}


def collate_captions(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch items: ``audio`` zero-padded ``[batch, longest]``, ``lengths``, ``clip`` ids, ``captions`` (flat list)
    and ``caption_clip`` (the clip id of each caption)."""
    lengths = torch.tensor([len(item["audio"]) for item in items])
    audio = torch.zeros(len(items), int(lengths.max()))
    for row, item in enumerate(items):
        audio[row, : len(item["audio"])] = item["audio"]
    captions = [caption for item in items for caption in item["captions"]]
    caption_clip = torch.tensor([item["clip"] for item in items for _ in item["captions"]])
    return {
        "audio": audio,
        "lengths": lengths,
        "clip": torch.tensor([item["clip"] for item in items]),
        "captions": captions,
        "caption_clip": caption_clip,
    }
