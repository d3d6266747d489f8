"""Teacher-logit store: write / read by id, provenance, id mismatches, ensemble averaging on the batch engine."""

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


@pytest.fixture
def clips(tmp_path):
    """meta.csv of five 8 kHz clips of 0.4 to 0.6 s, labels a / b."""
    rng = np.random.default_rng(0)
    lines = ["file,label"]
    for i in range(5):
        soundfile.write(tmp_path / f"{i}.wav", rng.normal(size=3200 + 400 * (i % 3)).astype(np.float32) * 0.1, 8000)
        lines.append(f"{i}.wav,{'ab'[i % 2]}")
    (tmp_path / "meta.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "meta.csv"


def _teachers(*rates: int) -> list[torch.nn.Module]:
    """Tiny teachers, each with another frontend (12 mels for the second) and the sample rate asked for."""
    teachers = []
    for seed, rate in enumerate(rates, 1):
        n_mels = 16 if seed == 1 else 12
        teacher = tiny_model(2, seed=seed, n_mels=n_mels).eval()
        teacher.frontend_config = teacher.frontend_config.replace(n_mels=n_mels, sample_rate=rate)
        teachers.append(teacher)
    return teachers


def _expected(teachers, table, clip_seconds):
    """The mean logits of the teachers, each clip decoded at each teacher's rate: the computation before the engine."""
    total = 0
    for teacher in teachers:
        rate = teacher.frontend_config.sample_rate
        loader = ClipLoader(rate, None if clip_seconds is None else round(clip_seconds * rate))
        frontend = MelFrontend.from_config(teacher.frontend_config).eval()
        with torch.no_grad():
            logits = [teacher(frontend(torch.from_numpy(loader(r))[None]).unsqueeze(1)) for r in table.records]
        total = total + torch.cat(logits)
    return (total / len(teachers)).numpy()


def test_ensemble_logits_are_the_mean_of_each_teacher_with_its_frontend(clips):
    teachers = _teachers(8000, 8000)
    store = compute_teacher_logits(teachers, clips, clips.with_name("logits.npy"), clip_seconds=0.5, batch_size=2,
                                   device="cpu")  # fmt: skip
    table = read_data(clips)
    np.testing.assert_allclose(store[table.ids].numpy(), _expected(teachers, table, 0.5), atol=1e-5)
    meta = json.loads(clips.with_name("logits.json").read_text())
    assert meta["ids"] == table.ids and len(meta["frontends"]) == 2 and meta["frontends"][1]["n_mels"] == 12


def test_teachers_at_two_rates_in_workers_and_an_unreadable_clip_left_out(clips):
    clips.with_name("3.wav").write_bytes(b"RIFF....WAVEjunk")
    teachers = _teachers(8000, 16000)  # two jobs, one per rate; full-length clips of three lengths
    out = clips.with_name("logits.npy")
    alone = compute_teacher_logits(teachers, clips, out, clip_seconds=None, num_workers=0, device="cpu")
    table = read_data(clips)
    readable = table.select([r.id != "3.wav" for r in table.records])
    assert alone.metadata["ids"] == readable.ids and list(alone.metadata["failed"]) == ["3.wav"]
    expected = _expected(teachers, readable, None)
    np.testing.assert_allclose(alone.logits, expected, atol=1e-5)
    parallel = compute_teacher_logits(teachers, clips, out, clip_seconds=None, num_workers=2, device="cpu")
    np.testing.assert_allclose(parallel.logits, expected, atol=1e-5)


def test_two_processes_store_the_logits_of_one(clips):
    clips.with_name("3.wav").write_bytes(b"RIFF....WAVEjunk")
    teachers = _teachers(8000)
    one = compute_teacher_logits(teachers, clips, clips.with_name("one.npy"), batch_size=2, num_workers=0,
                                 device="cpu")  # fmt: skip
    trainer = {"accelerator": "cpu", "devices": 2, "strategy": "ddp_fork", "shards": clips.with_name("shards")}
    two = compute_teacher_logits(teachers, clips, clips.with_name("two.npy"), batch_size=2, trainer=trainer)
    assert two.metadata["ids"] == one.metadata["ids"] and list(two.metadata["failed"]) == ["3.wav"]
    np.testing.assert_allclose(two.logits, one.logits, atol=1e-6)


def test_lookup_marks_clips_without_logits_and_check_counts_them(tmp_path):
    logits = np.arange(6, dtype=np.float32).reshape(2, 3)
    store = TeacherLogitStore(write_store(tmp_path / "t.npy", ["a", "b"], logits, {}))
    values, available = store.lookup(["b", "zz", "a"])
    assert available.tolist() == [True, False, True]
    np.testing.assert_array_equal(values.numpy(), [logits[1], [0, 0, 0], logits[0]])
    assert store.check(["a", "zz"], allow_missing=True) == 1
    with pytest.raises(DataError, match="2 of 2 clips"):
        store.check(["yy", "zz"], allow_missing=True)
