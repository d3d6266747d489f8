"""Language-based audio retrieval: a dual encoder trained contrastively, DCASE 2023 Task 6b evaluation, search.

Paper: Primus, Koutini, Widmer, "Advancing Natural-Language Based Audio Retrieval with PaSST and Large Audio-Caption
Data Sets", DCASE 2023 Workshop (arXiv 2308.04258), first place in DCASE 2023 Task 6b; reference code
``OptimusPrimus/dcase2023_task6b``. Training lives in :mod:`tympan.train.retrieval`, the metric in
:func:`tympan.eval.metrics.retrieval_metrics`.

Example:
    >>> from tympan.retrieval import build_index, search
    >>> index = build_index("retrieval.ckpt", "my_sounds/")           # doctest: +SKIP
    >>> search(index, "a dog barks while cars pass", top_k=5)          # doctest: +SKIP
"""

from __future__ import annotations

from .audio import AudioEncoder
from .datasets import (
    CaptionDataset,
    CaptionedClip,
    collate_captions,
    read_audiocaps,
    read_caption_csv,
    read_captions,
    read_clotho,
    read_wavcaps,
)
from .index import RetrievalIndex, SearchHit, build_index, search
from .loss import contrastive_loss
from .model import (
    DualEncoder,
    DualEncoderConfig,
    build_dual_encoder,
    fuse_similarities,
    load_dual_encoder,
    save_dual_encoder,
)
from .text import DEFAULT_TEXT_MODEL, TextEncoder, normalize_caption

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "AudioEncoder",
    "CaptionDataset",
    "CaptionedClip",
    "DualEncoder",
    "DualEncoderConfig",
    "RetrievalIndex",
    "SearchHit",
    "TextEncoder",
    "build_dual_encoder",
    "build_index",
    "collate_captions",
    "contrastive_loss",
    "fuse_similarities",
    "load_dual_encoder",
    "normalize_caption",
    "read_audiocaps",
    "read_caption_csv",
    "read_captions",
    "read_clotho",
    "read_wavcaps",
    "save_dual_encoder",
    "search",
]
