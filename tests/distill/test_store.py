"""Teacher-logit store: write / read by id, provenance, id mismatches, ensemble averaging."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from tests.train._tiny import tiny_model
from tympan.audio.frontend import MelFrontend
from tympan.data import ClipLoader, read_data
from tympan.distill import TeacherLogitStore, compute_teacher_logits, write_store
from tympan.errors import DataError


def test_store_reads_rows_by_id_memory_mapped(tmp_path):
    logits = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = write_store(tmp_path / "t.npy", ["a", "b", "c", "d"], logits, {"teachers": ["x"]})
    store = TeacherLogitStore(path)
    assert isinstance(store.logits, np.memmap) and store.teachers == ["x"] and store.num_classes == 3
    np.testing.assert_array_equal(store[["c", "a"]].numpy(), logits[[2, 0]])
    store.check(["a", "d"], num_classes=3)
    with pytest.raises(DataError, match="1 of 2 clips have no teacher logits"):
        store.check(["a", "zz"])
    with pytest.raises(DataError, match="3 classes"):
        store.check(["a"], num_classes=10)
    with pytest.raises(DataError, match="'zz'"):
        store[["zz"]]
    with pytest.raises(DataError, match="unique"):
        write_store(tmp_path / "u.npy", ["a", "a"], logits[:2], {})
    with pytest.raises(DataError, match="tympan distill"):
        TeacherLogitStore(tmp_path / "missing.npy")


def test_ensemble_logits_are_the_mean_of_each_teacher_with_its_frontend(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["file,label"]
    for i in range(5):
        soundfile.write(tmp_path / f"{i}.wav", rng.normal(size=4000).astype(np.float32) * 0.1, 8000)
        lines.append(f"{i}.wav,{'ab'[i % 2]}")
    (tmp_path / "meta.csv").write_text("\n".join(lines) + "\n")
    teachers = [tiny_model(2, seed=1).eval(), tiny_model(2, seed=2, n_mels=12).eval()]
    teachers[1].frontend_config = teachers[1].frontend_config.replace(n_mels=12)  # another frontend
    store = compute_teacher_logits(teachers, tmp_path / "meta.csv", tmp_path / "logits.npy", clip_seconds=0.5,
                                   batch_size=2, device="cpu")
    table = read_data(tmp_path / "meta.csv")
    audio = torch.stack([torch.from_numpy(ClipLoader(8000, 4000)(r)) for r in table.records])
    with torch.no_grad():
        expected = sum(t(MelFrontend.from_config(t.frontend_config).eval()(audio).unsqueeze(1)) for t in teachers) / 2
    np.testing.assert_allclose(store[table.ids].numpy(), expected.numpy(), atol=1e-5)
    meta = json.loads((tmp_path / "logits.json").read_text())
    assert meta["ids"] == table.ids and len(meta["frontends"]) == 2 and meta["frontends"][1]["n_mels"] == 12


def test_lookup_marks_clips_without_logits_and_check_counts_them(tmp_path):
    logits = np.arange(6, dtype=np.float32).reshape(2, 3)
    store = TeacherLogitStore(write_store(tmp_path / "t.npy", ["a", "b"], logits, {}))
    values, available = store.lookup(["b", "zz", "a"])
    assert available.tolist() == [True, False, True]
    np.testing.assert_array_equal(values.numpy(), [logits[1], [0, 0, 0], logits[0]])
    assert store.check(["a", "zz"], allow_missing=True) == 1
    with pytest.raises(DataError, match="2 of 2 clips"):
        store.check(["yy", "zz"], allow_missing=True)
