"""Knowledge distillation: a teacher-logit store computed once and read by clip id during training."""

from __future__ import annotations

from .compute import compute_teacher_logits
from .store import TeacherLogitStore, write_store

__all__ = ["TeacherLogitStore", "compute_teacher_logits", "write_store"]
