"""The engine under Lightning's Trainer.predict: two CPU processes (gloo) give the records of one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

import tympan
from tympan import engine
from tympan.engine.jobs import TagJob
from tympan.engine.predict import predict_records
from tympan.engine.runner import run_job

from .._models import small_mn_state

RATE = 32000


def test_two_processes_give_the_records_of_one(tmp_path: Path) -> None:
    generator = np.random.default_rng(0)
    for i in range(5):  # clips of two lengths: work items of whole files, each batched by length
        soundfile.write(tmp_path / f"clip{i}.wav", 0.1 * generator.standard_normal(RATE // (1 + i % 2)), RATE)
    (tmp_path / "clip2_unreadable.wav").write_bytes(b"RIFF....WAVEjunk")
    network = engine.Network(tympan.load("mn", small_mn_state(), width_mult=0.4, device="cpu"))
    sources = [(str(p), str(p)) for p in engine.find_audio_files([tmp_path])]
    job = TagJob(network, files_per_item=2)  # three work items: the ranks get two and one
    single = list(run_job(job, sources, workers=0))
    records = predict_records(job, sources, tmp_path / "shards", accelerator="cpu", devices=2, strategy="ddp_fork")
    assert records is not None
    merged = list(records)
    assert [r.file for r in merged] == [r.file for r in single] == [s[0] for s in sources]
    assert [r.error is None for r in merged] == [r.error is None for r in single]
    assert "cannot decode" in next(r.error for r in merged if r.error)
    for a, b in zip(single, merged, strict=True):
        if a.error is None:
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-0.pkl", "shard-1.pkl"]
