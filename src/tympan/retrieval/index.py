"""Search a folder of audio by text: embed every clip once into an index, then rank the clips for a query.

An index is a folder holding ``embeddings.npz`` (``[clips, shared_dim]`` unit-norm float32 audio embeddings) and
``index.json`` (the clip paths relative to the indexed folder, the files that could not be read and why, and the
retrieval checkpoint that made the embeddings, which :func:`search` loads to embed the query).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..audio.io import AUDIO_EXTENSIONS, find_audio_files
from ..data.decode import ClipLoader
from ..data.metadata import ClipRecord
from ..errors import AudioLoadError, DataError
from ..files import write_atomically
from .model import DualEncoder, load_dual_encoder

__all__ = ["RetrievalIndex", "SearchHit", "build_index", "search"]

logger = logging.getLogger(__name__)

FORMAT = "tympan-retrieval-index/1"
_EMBEDDINGS, _MANIFEST = "embeddings.npz", "index.json"


@dataclass
class RetrievalIndex:
    """Audio embeddings of the clips of one folder.

    Attributes:
        root: the indexed folder (absolute).
        files: clip paths relative to ``root``, one per embedding row.
        embeddings: ``[len(files), shared_dim]`` unit-norm audio embeddings.
        checkpoint: the retrieval checkpoint that made them (absolute path), or None when built from a model
            object; :func:`search` then needs the model.
        failed: unreadable files (relative path → reason).
    """

    root: str
    files: list[str]
    embeddings: np.ndarray
    checkpoint: str | None = None
    failed: dict[str, str] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write the index to the folder ``path`` (created)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, embeddings=self.embeddings.astype(np.float32))
        write_atomically(path / _EMBEDDINGS, buffer.getvalue())
        manifest = {"format": FORMAT, "root": self.root, "checkpoint": self.checkpoint, "files": self.files,
                    "failed": self.failed}  # fmt: skip
        write_atomically(path / _MANIFEST, json.dumps(manifest, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> RetrievalIndex:
        """Read an index written by :meth:`save`.

        Raises:
            DataError: the folder is not an index or its two files disagree.
        """
        path = Path(path)
        try:
            manifest = json.loads((path / _MANIFEST).read_text())
            with np.load(path / _EMBEDDINGS) as stored:
                embeddings = stored["embeddings"]
        except (OSError, ValueError, KeyError) as error:
            raise DataError(f"{path} is not a retrieval index ({error}); build one with `tympan index`") from None
        if manifest.get("format") != FORMAT or len(manifest["files"]) != len(embeddings):
            raise DataError(f"{path}: index.json and embeddings.npz do not belong together; rebuild the index")
        return cls(manifest["root"], manifest["files"], embeddings, manifest.get("checkpoint"), manifest["failed"])


@dataclass(frozen=True)
class SearchHit:
    """One ranked clip: 1-based rank, path relative to the index root, cosine similarity."""

    rank: int
    file: str
    score: float


def _audio_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    return find_audio_files([folder])


@torch.no_grad()
def build_index(
    model: DualEncoder | str | Path,
    folder: str | Path,
    *,
    batch_size: int = 8,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> RetrievalIndex:
    """Embed every audio file under ``folder`` (recursively) with the audio side of ``model``.

    Files that cannot be decoded are skipped and listed in :attr:`RetrievalIndex.failed` (and logged), so one
    broken file does not stop a long run. Each clip is cut to the model's ``max_seconds``.

    Args:
        model: a :class:`DualEncoder`, or the path of a retrieval checkpoint (recorded in the index).
        folder: the audio folder.
        batch_size: clips embedded together.
        progress: show a progress bar.
        device: where to run the model (default: the model's device; for a checkpoint, cuda where present).

    Raises:
        DataError: the folder holds no audio, or no file could be read.
    """
    folder = Path(folder).resolve()
    files = _audio_files(folder)
    if not files:
        raise DataError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {folder}")
    checkpoint = None
    if not isinstance(model, DualEncoder):
        checkpoint = str(Path(model).resolve())
        model = load_dual_encoder(model)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device is not None:
        model = model.to(device)
    model.eval()
    encoder = model.audio_encoder
    loader = ClipLoader(encoder.sample_rate)
    device = next(model.parameters()).device
    names, rows, failed = [], [], {}
    bar = tqdm(total=len(files), desc="indexing", unit="file", disable=not progress)
    for start in range(0, len(files), batch_size):
        waves, batch_names = [], []
        for path in files[start : start + batch_size]:
            relative = str(path.relative_to(folder))
            try:
                waves.append(torch.from_numpy(loader(ClipRecord(id=relative, source=str(path), targets=()))))
            except AudioLoadError as error:
                failed[relative] = str(error)
                logger.warning("skipped %s: %s", relative, error)
                continue
            batch_names.append(relative)
        bar.update(len(files[start : start + batch_size]) - len(waves))
        if not waves:
            continue
        lengths = torch.tensor([min(len(w), encoder.max_samples) for w in waves])
        batch = torch.zeros(len(waves), int(lengths.max()))
        for row, wave in enumerate(waves):
            batch[row, : lengths[row]] = wave[: lengths[row]]
        rows.append(model.embed_audio(batch.to(device), lengths.to(device)).float().cpu().numpy())
        names += batch_names
        bar.update(len(waves))
    bar.close()
    if not names:
        raise DataError(f"none of the {len(files)} audio files under {folder} could be read: {failed}")
    return RetrievalIndex(str(folder), names, np.concatenate(rows), checkpoint, failed)


@torch.no_grad()
def search(
    index: RetrievalIndex | str | Path,
    query: str,
    *,
    model: DualEncoder | None = None,
    top_k: int = 10,
) -> list[SearchHit]:
    """The ``top_k`` clips of ``index`` most similar to the text ``query``, best first (ties: index order).

    Args:
        index: a :class:`RetrievalIndex` or its folder.
        query: a caption-like description, e.g. ``"a dog barks while cars pass"``.
        model: the dual encoder that built the index (default: loaded from the index's checkpoint).
        top_k: number of hits (all clips if larger).

    Raises:
        DataError: the index names no checkpoint and no model is given.
    """
    if not isinstance(index, RetrievalIndex):
        index = RetrievalIndex.load(index)
    if model is None:
        if index.checkpoint is None:
            raise DataError("this index records no checkpoint; pass the model that built it")
        model = load_dual_encoder(index.checkpoint)
    model.eval()
    text = model.embed_text([query]).float().cpu().numpy()[0]
    if text.shape[0] != index.embeddings.shape[1]:
        raise DataError(
            f"the model embeds into {text.shape[0]} dimensions but the index holds {index.embeddings.shape[1]}; "
            "search with the model that built the index"
        )
    scores = index.embeddings @ text
    order = np.argsort(-scores, kind="stable")[: max(top_k, 0)]
    return [SearchHit(rank + 1, index.files[i], float(scores[i])) for rank, i in enumerate(order)]
