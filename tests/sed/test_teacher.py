"""A frame-level teacher store: computed from a frame model on an event table, read back with its time axis."""

from __future__ import annotations

from pathlib import Path

import torch

from tympan import load
from tympan.distill import TeacherLogitStore
from tympan.sed.corpus import generate_event_set
from tympan.sed.teacher import compute_frame_teacher_logits
from tympan.train import losses


def test_frame_teacher_logits_round_trip(tmp_path: Path) -> None:
    table = generate_event_set(tmp_path / "data", files=3, seconds=2.0, max_events=1, seed=1)
    torch.manual_seed(0)
    teacher = load("frame_mn", num_classes=3, width_mult=0.1, device="cpu", pretrained=False)
    teacher.labels = ["babble", "hum", "rain"]
    path = compute_frame_teacher_logits([teacher], table, tmp_path / "teacher", clip_seconds=2.0)
    store = TeacherLogitStore(path)
    logits, available = store.lookup(["clip_0001.wav", "missing.wav"])
    assert logits.shape == (2, 3, 50) and available.tolist() == [True, False]
    assert store.num_classes == 3 and store.metadata["labels"] == teacher.labels
    student = torch.zeros(2, 3, 50, requires_grad=True)
    loss = losses.kd_bce_loss(student, logits, 2.0, teacher_available=available)
    loss.backward()
    assert torch.isfinite(loss) and student.grad[1].abs().sum() == 0  # no teacher: no distillation term
