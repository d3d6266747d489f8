"""The sound-event-detection system: frame-level BCE on strong labels, clip-level BCE on weak ones, optional KD
from stored frame-level teacher logits.

It trains a :class:`~tympan.models.frame.FrameModel` with the shared machinery of :class:`AudioSystem`
(optimiser, schedules, frozen BatchNorm, checkpoints), adding what frame targets need:

* the time roll shifts waveform and targets together, by whole frames;
* spectrogram mixup mixes frame and clip targets (and the teacher's frame logits) with the same draws;
* the loss is ``BCE(frames) + weak_weight · BCE(clip)``, the frame term over the items with strong labels only
  (``has_strong``; weak-only items of a DESED ``weak.tsv`` have clip targets alone), the clip term over all, as the
  DCASE Task 4 baseline masks its batches (which applies the clip term to the weak items only); under mixup an item
  keeps frame targets only when both clips of its mix have them. With a teacher store (``[clips, classes, frames]``,
  memory-mapped, by clip id) ``λ · that + (1 − λ) · BCE(frames, sigmoid(teacher / T))``, as PretrainedSED trains
  its students (λ = 0.1 there: ``distillation_loss_weight=0.9``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio.augment import mix_targets, mixup
from ..errors import ConfigError
from ..models.frame import FrameModel
from . import losses
from .systems import AudioSystem

__all__ = ["SedSystem", "roll_frames"]


def roll_frames(
    waveform: Tensor, targets: Tensor, max_frames: int, samples_per_frame: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Circular time roll of waveforms ``[batch, samples]`` and frame targets ``[batch, classes, frames]`` by the
    same whole number of frames (uniform in ``[-max_frames, max_frames]``), so that the labels stay aligned."""
    shifts = torch.randint(-max_frames, max_frames + 1, (waveform.shape[0],), generator=generator).tolist()
    rolled = [torch.roll(w, s * samples_per_frame) for w, s in zip(waveform, shifts, strict=True)]
    shifted = [torch.roll(t, s, dims=-1) for t, s in zip(targets, shifts, strict=True)]
    return torch.stack(rolled), torch.stack(shifted)


class SedSystem(AudioSystem):
    """Frame-level sound event detection from strong and weak labels (see the module docstring).

    Args:
        weak_weight: weight of the clip-level loss on the weak head (over all items; the frame loss covers those
            with ``has_strong``). 0: the strong head only, as PretrainedSED on AudioSet-Strong.
        roll_seconds: time roll of up to ± this many seconds (0 disables).
        bn_momentum: BatchNorm momentum while training (None: the model's own). EfficientAT's 0.01 suits hundreds
            of epochs; after a short run from scratch the running statistics would still be near their initial
            values and the model in eval mode would score nothing, so :func:`tympan.train.finetune` sets 0.1 there.
        **kwargs: :class:`AudioSystem` arguments (``mixup_alpha``, ``teacher_logits``, ``kd_lambda``,
            ``temperature``, schedules, ...).
    """

    multilabel = True

    def __init__(
        self,
        *args: Any,
        weak_weight: float = 0.5,
        roll_seconds: float = 0.0,
        bn_momentum: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.save_hyperparameters("weak_weight", "roll_seconds", "bn_momentum")
        if not isinstance(self.model, FrameModel):
            raise ConfigError(f"sound event detection trains a frame-level model (e.g. frame_mn06), not "
                              f"{type(self.model).__name__}")  # fmt: skip
        if bn_momentum is not None:
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.momentum = bn_momentum
        self._val_losses: list[Tensor] = []

    def setup(self, stage: str) -> None:
        """:meth:`AudioSystem.setup`, and refuse a teacher store whose classes are in another order."""
        super().setup(stage)
        stored = self.teacher_store.metadata.get("labels") if self.teacher_store is not None else None
        if stored is not None and list(stored) != self.labels:
            raise ConfigError(
                f"the teacher logits of {self.teacher_store.path} are for other classes or another "
                f"order ({len(stored)} labels, first {stored[:3]}) than the model ({self.labels[:3]})"
            )

    @property
    def frame_seconds(self) -> float:
        """The output frame hop in seconds."""
        config = self.model.frontend_config
        return self.model.mel_frames_per_output * config.hop_length / config.stft_sample_rate

    def output_frames(self, samples: int) -> int:
        """Output frames of a clip of ``samples`` samples."""
        return self.model.output_frames(self.model.frontend_config.num_frames(samples))

    def forward(self, waveform: Tensor) -> Tensor:
        """Frame logits ``[batch, classes, frames]`` of waveforms ``[batch, samples]``."""
        return self.model.forward_frames(self.frontend(waveform).unsqueeze(1))

    def training_step(self, batch: dict[str, Any] | None, batch_idx: int) -> Tensor | None:
        if batch is None:
            return None
        hp, generator = self.hparams, self._step_generator()
        audio, strong, weak = batch["audio"], batch["target"].float(), batch["weak_target"].float()
        has_strong = batch["has_strong"].float()
        if hp.roll_seconds > 0:
            samples_per_frame = round(self.frame_seconds * self.model.frontend_config.sample_rate)
            audio, strong = roll_frames(audio, strong, round(hp.roll_seconds / self.frame_seconds),
                                        samples_per_frame, generator)  # fmt: skip
        mel = self.frontend(audio, generator=generator).unsqueeze(1)
        teacher = available = None
        if self.teacher_store is not None:
            teacher, available = (t.to(mel.device) for t in self.teacher_store.lookup(batch["id"]))
        lam = perm = None
        if hp.mixup_alpha > 0:
            mel, lam, perm = mixup(mel, hp.mixup_alpha, generator=generator)
            strong, weak = mix_targets(strong, lam, perm), mix_targets(weak, lam, perm)
            has_strong = has_strong * has_strong[perm]
        frame_logits, clip_logits = self.model.forward_detection(mel)
        label_loss = self._label_loss(frame_logits, clip_logits, strong, weak, has_strong)
        loss = label_loss
        if teacher is not None:
            teacher = _match_frames(teacher, frame_logits.shape[-1])
            kd_loss = losses.kd_bce_loss(frame_logits, teacher, hp.temperature, lam, perm, available)
            loss = hp.kd_lambda * label_loss + (1 - hp.kd_lambda) * kd_loss
            self.log("train/kd_loss", kd_loss, batch_size=len(mel))
        self.log("train/label_loss", label_loss, batch_size=len(mel))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(mel))
        return loss

    def _label_loss(
        self, frame_logits: Tensor, clip_logits: Tensor, strong: Tensor, weak: Tensor, has_strong: Tensor
    ) -> Tensor:
        """Frame BCE averaged over the items with ``has_strong`` (0 when none), plus the weighted clip BCE of all."""
        per_item = F.binary_cross_entropy_with_logits(frame_logits, strong, reduction="none").mean(dim=(1, 2))
        strong_loss = (per_item * has_strong).sum() / has_strong.sum().clamp(min=1)
        return strong_loss + self.hparams.weak_weight * F.binary_cross_entropy_with_logits(clip_logits, weak)

    def validation_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        if batch is None:
            return
        mel = self.frontend(batch["audio"]).unsqueeze(1)
        frame_logits, clip_logits = self.model.forward_detection(mel)
        loss = self._label_loss(frame_logits, clip_logits, batch["target"].float(), batch["weak_target"].float(),
                                batch["has_strong"].float())  # fmt: skip
        self.log("val/loss", loss, batch_size=len(mel), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        """Nothing beyond ``val/loss``: PSDS needs whole files and thresholds, see ``tympan evaluate --task sed``."""

    def provenance(self) -> dict[str, Any]:
        """The checkpoint's provenance, marked as a frame-level detector with its frame hop."""
        return {**super().provenance(), "task": "sed", "frame_seconds": self.frame_seconds}


def _match_frames(teacher: Tensor, frames: int) -> Tensor:
    """Teacher frame logits ``[batch, classes, T]`` on the student's ``frames`` (linear interpolation)."""
    if teacher.shape[-1] == frames:
        return teacher
    return F.interpolate(teacher, size=frames, mode="linear")
