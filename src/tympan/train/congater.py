"""Training ConGater gates with the reference recipe (``congater_ex.py``), as a Lightning system.

Per batch, sequential steps with one optimiser each: a task step at ω = 0 (backbone and head, cross-entropy),
then for every attribute a gate step at ω = 1 for that attribute (its gates, its adversary heads and — in ``"par"``
mode — the head) with ``CE + adversarial loss`` through gradient reversal. ``"post"`` mode trains the task first
and the gates afterwards: set :attr:`ConGaterSystem.phase` to ``"task"``, fit, then ``"gates"``, fit again
(:func:`fit_congater` does both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio.frontend import MelFrontend
from ..errors import ConfigError
from ..models.congater import AdversaryHeads, GatedModel

__all__ = ["ConGaterSystem", "fit_congater"]

Mode = Literal["par", "post"]
Phase = Literal["task", "gates", "both"]


class ConGaterSystem(L.LightningModule):
    """Trains a :class:`~tympan.models.congater.GatedModel` on batches ``{"mel" | "audio", "target",
    "<attribute>_index", ...}``.

    Args:
        model: the gated network.
        attribute_classes: number of values of every gated attribute (size the adversary heads from the data).
        mode: ``"par"`` (task and gate steps interleaved every batch) or ``"post"``.
        adversary_scale: λ of the gradient reversal (the reference's ``da_lambda``).
        num_adversary_heads: adversaries per attribute (3 in the reference).
        task_lr, gate_lr, weight_decay: AdamW settings (reference: 1e-5, 1e-4, 1e-3 for PaSST-S).
        frontend: turns ``batch["audio"]`` into mel when batches hold waveforms.
    """

    def __init__(
        self,
        model: GatedModel,
        attribute_classes: Mapping[str, int],
        mode: Mode = "par",
        adversary_scale: float = 1.0,
        num_adversary_heads: int = 3,
        task_lr: float = 1e-4,
        gate_lr: float = 1e-3,
        weight_decay: float = 1e-3,
        frontend: MelFrontend | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("par", "post"):
            raise ConfigError(f"mode must be 'par' or 'post', got {mode!r}")
        missing = set(model.attributes) - set(attribute_classes)
        if missing:
            raise ConfigError(f"attribute_classes lacks {sorted(missing)}")
        self.save_hyperparameters(ignore=["model", "frontend"])
        self.automatic_optimization = False
        self.model = model.train()  # zoo models come in eval mode, and Lightning keeps each module's mode
        self.frontend = frontend
        self.adversaries = nn.ModuleDict(
            {
                name: AdversaryHeads(model.num_features, attribute_classes[name], num_adversary_heads, adversary_scale)
                for name in model.attributes
            }
        )
        self.phase: Phase = "both" if mode == "par" else "task"

    def _mel(self, batch: Mapping[str, Tensor]) -> Tensor:
        if "mel" in batch:
            return batch["mel"]
        if self.frontend is None:
            raise ConfigError("batches hold 'audio' but the system has no frontend")
        with torch.no_grad():
            return self.frontend(batch["audio"]).unsqueeze(1)

    def task_parameters(self) -> list[nn.Parameter]:
        """Backbone and head: everything of the model that is not a gate."""
        gates = {id(p) for name in self.model.attributes for p in self.model.gate_parameters(name)}
        return [p for p in self.model.parameters() if id(p) not in gates]

    def gate_step_parameters(self, attribute: str) -> list[nn.Parameter]:
        """What one attribute's gate step trains: its gates and adversaries (+ the head in ``"par"`` mode)."""
        parameters = self.model.gate_parameters(attribute) + list(self.adversaries[attribute].parameters())
        if self.hparams.mode == "par":
            parameters += list(self.model.backbone.head.parameters())
        return parameters

    def training_step(self, batch: Mapping[str, Any], batch_index: int) -> None:
        mel, target = self._mel(batch), batch["target"]
        task_optimizer, *gate_optimizers = self.optimizers()
        if self.phase in ("task", "both"):
            loss = F.cross_entropy(self.model(mel), target)
            self._step(task_optimizer, loss)
            self.log("train/task_loss", loss, prog_bar=True)
        if self.phase in ("gates", "both"):
            for attribute, optimizer in zip(self.model.attributes, gate_optimizers, strict=True):
                features = self.model.forward_features(mel, {attribute: 1.0})
                task_loss = F.cross_entropy(self.model.backbone.forward_head(features), target)
                adversary_loss = self.adversaries[attribute].loss(features, batch[f"{attribute}_index"])
                self._step(optimizer, task_loss + adversary_loss)
                self.log(f"train/{attribute}_adversary_loss", adversary_loss)

    def _step(self, optimizer, loss: Tensor) -> None:
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

    def validation_step(self, batch: Mapping[str, Any], batch_index: int) -> None:
        mel, target = self._mel(batch), batch["target"]
        for attribute in (None, *self.model.attributes):
            omega = {} if attribute is None else {attribute: 1.0}
            accuracy = (self.model(mel, omega).argmax(1) == target).float().mean()
            self.log(f"val/accuracy_omega_{attribute or 'none'}", accuracy)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        task = torch.optim.AdamW(self.task_parameters(), lr=hp.task_lr, weight_decay=hp.weight_decay)
        gates = [
            torch.optim.AdamW(self.gate_step_parameters(name), lr=hp.gate_lr, weight_decay=hp.weight_decay)
            for name in self.model.attributes
        ]
        return [task, *gates]


def fit_congater(system: ConGaterSystem, train_loader, *, epochs: int, trainer_kwargs: dict | None = None) -> None:
    """Fit ``system`` as its mode says: one fit in ``"par"`` mode, task then gates in ``"post"`` mode."""
    phases: list[Phase] = ["both"] if system.hparams.mode == "par" else ["task", "gates"]
    for phase in phases:
        system.phase = phase
        options = {
            "max_epochs": epochs,
            "accelerator": "auto",
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            **(trainer_kwargs or {}),
        }
        L.Trainer(**options).fit(system, train_loader)
