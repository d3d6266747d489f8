"""LightningModules ("systems") that train any tympan network: tagging (BCE) and scene classification (CE).

A system receives a plain network (an ``nn.Module`` or a zoo / architecture name built with
:func:`tympan.models.create`) and adds the training logic of the papers around it:

* the mel frontend runs inside the module, on the training device, with its train-time augmentation (fmin/fmax
  jitter, frequency / time masking);
* waveform augmentation (time roll, gain, device impulse responses for chosen devices) and spectrogram
  augmentation (Freq-MixStyle, mixup) from :mod:`tympan.audio.augment`, each off unless configured;
* an optional knowledge-distillation term from a :class:`~tympan.distill.TeacherLogitStore` read by clip id:
  EfficientAT's ``λ·BCE(labels) + (1−λ)·BCE(sigmoid(teacher/T))`` for tagging, DCASE23's ``λ·CE + (1−λ)·KL·T²``
  for scenes (losses from :mod:`tympan.train.losses`);
* an injected optimiser (``optimizer``: a callable of the parameters, LightningCLI's ``OptimizerCallable``; in a
  recipe ``class_path: torch.optim.AdamW`` with its ``init_args``), with the references' per-epoch
  ``exp_warmup_linear_down`` factor, or the DCASE24 baseline's per-step ``cosine_with_warmup``;
* validation metrics of :mod:`tympan.eval.metrics` (mAP / d-prime; accuracy per device);
* every checkpoint carries the model's :class:`~tympan.models.spec.ModelSpec` (with the training frontend), its
  complexity and metrics (:mod:`tympan.models.tympan_checkpoint`), so :func:`tympan.load` rebuilds the model from
  the file alone.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from ..audio.augment import mix_targets, mixup, wavmix
from ..audio.augmentation import Augmentation
from ..audio.frontend import MelFrontend
from ..distill import TeacherLogitStore
from ..errors import ConfigError
from ..eval import metrics
from ..models.bundles import bundle
from ..models.registry import get_architecture
from ..models.spec import ModelSpec, spec_of
from ..models.tympan_checkpoint import TympanCheckpoint, attach_entry, entry, is_tympan_checkpoint, read_checkpoint
from . import losses
from .complexity import ComplexityLimits
from .schedules import cosine_with_warmup, exp_warmup_linear_down
from .transfer import backbone_norms, classifier_keys, load_pretrained, parameter_groups

__all__ = ["AudioSystem", "SceneSystem", "TaggingSystem", "describe_model"]

logger = logging.getLogger(__name__)


def _check_sample_rate(datamodule: Any, model_rate: int) -> None:
    """Refuse waveforms at another rate than the model's frontend: the mel bands would be silently wrong."""
    data_rate = getattr(datamodule, "sample_rate", None)
    if data_rate is not None and int(data_rate) != int(model_rate):
        raise ConfigError(
            f"the data module reads audio at {data_rate} Hz but the model's frontend expects {model_rate} Hz; "
            f"set data.sample_rate to {model_rate} (or train a model whose frontend runs at {data_rate} Hz)"
        )


def describe_model(model: nn.Module, labels: Sequence[str], multilabel: bool) -> dict[str, Any]:
    """Deprecated: the ``"tympan"`` entry of a checkpoint of ``model``; use ``AudioSystem.to_checkpoint`` or
    :func:`tympan.models.tympan_checkpoint.entry` of a :class:`~tympan.models.TympanCheckpoint`."""
    warnings.warn("describe_model is deprecated: a model's description is model.spec; checkpoints are written by "
                  "tympan.models.save_checkpoint", DeprecationWarning, stacklevel=2)  # fmt: skip
    return entry(TympanCheckpoint(spec_of(model).with_labels(labels, multilabel)))


def build_model(
    model: str | nn.Module,
    num_classes: int | None,
    checkpoint: str | None,
    model_kwargs: dict[str, Any] | None,
    labels: Sequence[str] | None = None,
    pretrained: bool = False,
) -> tuple[nn.Module, list[str]]:
    """A network from a name (zoo preset or architecture) or as given, headed for ``num_classes`` labels; a preset
    starts from its official weights with ``pretrained`` unless ``checkpoint`` names other ones. Its spec names
    ``labels`` (default: the spec's own where the head keeps its size, else ``class_0`` ...).

    Returns the network and the classifier keys re-initialised for the new labels (see
    :func:`tympan.train.transfer.load_pretrained`; empty when the checkpoint's head was kept or there is none).
    """
    if isinstance(model, nn.Module):
        network = model
    else:
        network = bundle(model, pretrained=pretrained and checkpoint is None, **(model_kwargs or {})).get_model()
    spec = spec_of(network)
    if num_classes is not None and num_classes != network.num_classes:
        logger.info("new classifier: %d -> %d classes", network.num_classes, num_classes)
        network.reset_classifier(num_classes)
    if labels is None:
        labels = spec.labels if spec.num_classes == network.num_classes else _numbered(network.num_classes)
    if len(labels) != network.num_classes:
        raise ConfigError(f"{len(labels)} labels for a head of {network.num_classes} classes")
    network.spec = spec.with_labels(labels)
    reinitialised: list[str] = []
    if checkpoint is not None and not isinstance(model, nn.Module):
        reinitialised = load_pretrained(
            network,
            checkpoint,
            labels,
            checkpoint_labels=spec.labels if spec.preset is not None else None,
            filter_fn=get_architecture(spec.arch).checkpoint_filter,
        )
    return network.train(), reinitialised


def _numbered(num_classes: int) -> list[str]:
    return [f"class_{i}" for i in range(num_classes)]


class AudioSystem(L.LightningModule):
    """Shared training logic; subclasses define the task loss and metrics.

    Args:
        model: a zoo preset (``"mn10_as"``), an architecture (``"cp_mobile"``) or a network with a ``spec``
            (:func:`tympan.models.create`, ``tympan.models.bundle(...).get_model()``).
        num_classes: outputs of the head; a new head is created when it differs from the model's.
        labels: class names (stored in checkpoints; default: the model's where its head keeps its size, else
            ``class_0`` ...).
        checkpoint: initial weights of a named model (any layout :func:`tympan.models.create` loads).
        pretrained: start a zoo preset from its official weights (the cache, downloaded when online), e.g. the
            ImageNet starts ``mn10_im`` / ``dymn10_im`` / ``passt_deit_bd_p16_384`` of the AudioSet recipes;
            ``checkpoint``, when given, is used instead.
        model_kwargs: keyword arguments of the architecture / preset.
        frontend: changes to the model's mel frontend for training, e.g. ``{"freqm": 48, "timem": 192}``.
        lr, weight_decay: Adam's peak learning rate and L2 penalty when no ``optimizer`` is given.
        adamw: deprecated: AdamW instead of Adam; pass ``optimizer`` (``torch.optim.AdamW`` with its arguments).
        warmup_epochs, rampdown_start, rampdown_epochs, last_lr_factor: the ``exp_warmup_linear_down`` schedule
            (stepped per epoch); ``rampdown_epochs=0`` keeps the rate constant after warm-up.
        warmup_steps, rampdown_start_step, rampdown_steps: the same schedule counted in optimizer steps (what a
            small data set needs: its epochs are a few steps each); not together with the per-epoch lengths. With
            ``cosine_with_warmup``, ``warmup_steps`` is its warm-up (DCASE24 baseline: 2,000).
        backbone_lr_factor: the rate of everything but the classifier is ``lr × backbone_lr_factor`` (fine-tuning:
            the fresh head learns faster than the pretrained backbone).
        layer_decay: layer-wise rate decay: each backbone layer learns ``layer_decay`` times slower than the next
            (None: the same rate for the whole backbone).
        freeze_backbone_bn: keep the backbone's BatchNorm layers in eval mode while training, so they use (and
            keep) the statistics of the pretrained weights instead of estimating them from a few clips per batch.
        lr_schedule: ``"exp_warmup_linear_down"`` (per epoch, the fields above) or ``"cosine_with_warmup"`` (per
            step: linear warm-up over ``warmup_steps``, then a cosine to 0 at the last step of the run).
        mixup_alpha: spectrogram mixup with ``λ ~ Beta(α, α)``, ``λ = max(λ, 1−λ)`` (0 disables).
        wavmix_p, wavmix_alpha: the waveform mixup of PaSST and EfficientAT (``MixupDataset``: rate 0.5,
            Beta(2, 2); 0 disables), after gain and roll; targets are mixed as one-hot / multi-hot vectors.
        mixstyle_p, mixstyle_alpha, roll_samples, gain_db, dir_folder, dir_prob, dir_devices: deprecated: the steps
            of ``augmentation`` (:meth:`tympan.audio.augmentation.Augmentation.from_settings` maps them).
        teacher_logits: a teacher-logit store (``tympan distill``; its path or the opened
            :class:`~tympan.distill.TeacherLogitStore`) enabling knowledge distillation.
        kd_lambda: weight of the label loss; the KD term gets ``1 − kd_lambda``.
        temperature: KD temperature.
        max_params, max_macs, complexity_seconds: deprecated: the fields of ``limits``.
        seed: seed of the augmentation draws (each step's generator is a function of seed, step and rank).
        optimizer: builds the optimiser from the parameter groups (``optimizer(params)``), e.g.
            ``functools.partial(torch.optim.AdamW, lr=5e-3, weight_decay=1e-4)``; its ``lr`` is the head's peak rate
            (the backbone's follows ``backbone_lr_factor`` / ``layer_decay``). Default: Adam at ``lr``.
        limits: complexity limits (DCASE23: ``ComplexityLimits(128_000, 30e6)``); fitting refuses a bigger model.
        augmentation: the waveform steps (device impulse responses, time roll, gain; before ``wavmix``) and the
            spectrogram steps (Freq-MixStyle; before ``mixup``) of :mod:`tympan.audio.augmentation`.
            The measured complexity is stored in every checkpoint either way.
    """

    multilabel: ClassVar[bool] = False

    def __init__(
        self,
        model: str | nn.Module = "mn10_as",
        num_classes: int | None = None,
        labels: list[str] | None = None,
        checkpoint: str | None = None,
        pretrained: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        frontend: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        adamw: bool = False,
        warmup_epochs: int = 0,
        rampdown_start: int = 0,
        rampdown_epochs: int = 0,
        last_lr_factor: float = 0.01,
        lr_schedule: Literal["exp_warmup_linear_down", "cosine_with_warmup"] = "exp_warmup_linear_down",
        warmup_steps: int = 0,
        rampdown_start_step: int = 0,
        rampdown_steps: int = 0,
        backbone_lr_factor: float = 1.0,
        layer_decay: float | None = None,
        freeze_backbone_bn: bool = False,
        mixup_alpha: float = 0.0,
        wavmix_p: float = 0.0,
        wavmix_alpha: float = 2.0,
        mixstyle_p: float = 0.0,
        mixstyle_alpha: float = 0.4,
        roll_samples: int = 0,
        gain_db: int = 0,
        dir_folder: str | None = None,
        dir_prob: float = 0.0,
        dir_devices: list[str] | None = None,
        teacher_logits: str | None = None,
        kd_lambda: float = 1.0,
        temperature: float = 1.0,
        max_params: int | None = None,
        max_macs: float | None = None,
        complexity_seconds: float = 1.0,
        seed: int = 0,
        optimizer: OptimizerCallable | None = None,
        limits: ComplexityLimits | None = None,
        augmentation: Augmentation | None = None,
    ):
        super().__init__()
        objects = ["optimizer", "limits", "augmentation"] + ["model"] * isinstance(model, nn.Module)
        self.save_hyperparameters(ignore=objects + ["teacher_logits"] * isinstance(teacher_logits, TeacherLogitStore))
        if optimizer is not None and (adamw or lr != 1e-3 or weight_decay != 0.0):
            raise ConfigError("give the learning rate and weight decay inside `optimizer`, not also as lr / "
                              "weight_decay / adamw")  # fmt: skip
        if adamw:
            warnings.warn("adamw=True is deprecated: pass optimizer=functools.partial(torch.optim.AdamW, lr=..., "
                          "weight_decay=...) (in a recipe: class_path torch.optim.AdamW)", DeprecationWarning,
                          stacklevel=2)  # fmt: skip
        self.optimizer_factory = optimizer or functools.partial(
            torch.optim.AdamW if adamw else torch.optim.Adam, lr=lr, weight_decay=weight_decay
        )
        if max_params is not None or max_macs is not None:
            warnings.warn("max_params / max_macs / complexity_seconds are deprecated: pass limits=ComplexityLimits("
                          "max_params, max_macs, seconds)", DeprecationWarning, stacklevel=2)  # fmt: skip
            limits = limits or ComplexityLimits(max_params, max_macs, complexity_seconds)
        self.limits = limits or ComplexityLimits(seconds=complexity_seconds)
        flat = Augmentation.from_settings(roll_samples, gain_db, dir_folder, dir_prob, dir_devices, mixstyle_p,
                                          mixstyle_alpha)  # fmt: skip
        if flat != Augmentation():
            if augmentation is not None:
                raise ConfigError("give the augmentation as `augmentation` or as the flat arguments, not both")
            warnings.warn("roll_samples / gain_db / dir_* / mixstyle_* are deprecated: pass augmentation="
                          "Augmentation(waveform=[...], mel=[...]) (tympan.audio.augmentation)", DeprecationWarning,
                          stacklevel=2)  # fmt: skip
        self.augmentation = augmentation or flat
        if (warmup_steps or rampdown_steps) and (warmup_epochs or rampdown_epochs):
            raise ConfigError("give the learning-rate schedule in epochs or in steps, not both")
        if backbone_lr_factor <= 0 or (layer_decay is not None and not 0.0 < layer_decay <= 1.0):
            raise ConfigError(
                f"need backbone_lr_factor > 0 and 0 < layer_decay <= 1, got {backbone_lr_factor}, {layer_decay}"
            )
        if not 0.0 <= kd_lambda <= 1.0:
            raise ConfigError(f"kd_lambda must be in [0, 1], got {kd_lambda}")
        if wavmix_p > 0 and teacher_logits:
            raise ConfigError("wavmix (waveform mixup) is not combined with distillation from stored teacher logits,"
                              " as in the references; use mixup_alpha for spectrogram mixup")  # fmt: skip
        self.model, self.reinitialised_keys = build_model(
            model, num_classes, checkpoint, model_kwargs, labels, pretrained
        )
        self.model.spec = spec_of(self.model).replace(multilabel=self.multilabel)
        self.frontend = MelFrontend(self.model.spec.frontend.replace(**(frontend or {})))
        self.labels = list(self.model.spec.labels)
        self.teacher_store = teacher_logits if isinstance(teacher_logits, TeacherLogitStore) else None
        self.device_names: list[str] = []
        self.complexity: dict[str, Any] | None = None
        self._classifier_keys: list[str] | None = None
        self._outputs: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    # ----------------------------------------------------------------------------------------------- inference
    def forward(self, waveform: Tensor) -> Tensor:
        """Logits ``[batch, classes]`` of waveforms ``[batch, samples]`` (eval-mode frontend when not training)."""
        return self.model(self.frontend(waveform).unsqueeze(1))

    # ------------------------------------------------------------------------------------------------ training
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        _check_sample_rate(datamodule, self.model.spec.sample_rate)
        self.device_names = list(getattr(datamodule, "device_names", []) or [])
        if self.hparams.get("teacher_logits") and self.teacher_store is None:
            self.teacher_store = TeacherLogitStore(self.hparams.teacher_logits)
            if stage == "fit" and datamodule is not None and "train" in getattr(datamodule, "datasets", {}):
                ids = datamodule.datasets["train"].ids
                missing = self.teacher_store.check(ids, self.model.num_classes, allow_missing=True)
                if missing:
                    logger.warning(
                        "%d of %d training clips (%.2f %%) have no teacher logits in %s: their distillation term is "
                        "zero, and they stay in the batch mean (as EfficientAT ex_audioset.py)",
                        missing, len(ids), 100 * missing / len(ids), self.teacher_store.path,
                    )

    def on_fit_start(self) -> None:
        self.complexity = self.limits.enforce(self.model, self.model.spec.frontend)

    def training_step(self, batch: dict[str, Any] | None, batch_idx: int) -> Tensor | None:
        if batch is None:  # every clip of the batch was unreadable (on_error="skip")
            return None
        generator = self._step_generator()
        names = self.device_names
        devices = [names[i] if 0 <= i < len(names) else "" for i in batch["device_index"].tolist()]
        audio = self.augmentation.augment_waveform(
            batch["audio"], generator, devices=devices, sample_rate=self.model.spec.sample_rate
        )
        target = batch["target"]
        if self.hparams.wavmix_p > 0:
            audio, wave_lam, wave_perm = wavmix(audio, self.hparams.wavmix_alpha, self.hparams.wavmix_p, generator)
            if target.dim() == 1:  # class indices of single-label data: mix them as one-hot vectors
                target = torch.nn.functional.one_hot(target, self.model.num_classes)
            target = mix_targets(target.float(), wave_lam, wave_perm)
        mel = self.frontend(audio, generator=generator).unsqueeze(1)
        mel = self.augmentation.augment_mel(mel, generator)
        teacher = available = None
        if self.teacher_store is not None:
            teacher, available = (t.to(mel.device) for t in self.teacher_store.lookup(batch["id"]))
        lam = perm = None
        if self.hparams.mixup_alpha > 0:
            mel, lam, perm = mixup(mel, self.hparams.mixup_alpha, generator=generator)
        logits = self.model(mel)
        label_loss = self.label_loss(logits, target, lam, perm)
        loss = label_loss
        if teacher is not None:
            kd_loss = self.kd_loss(logits, teacher, lam, perm, available)
            without = float((~available).sum())
            self.log("train/clips_without_teacher", without, reduce_fx="sum", on_step=False, on_epoch=True)
            loss = self.hparams.kd_lambda * label_loss + (1 - self.hparams.kd_lambda) * kd_loss
            self.log("train/kd_loss", kd_loss, batch_size=len(logits))
        self.log("train/label_loss", label_loss, batch_size=len(logits))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(logits))
        return loss

    def _step_generator(self) -> torch.Generator:
        """The source of every augmentation draw of this step: a function of (seed, step, rank) only.

        Resuming from a checkpoint therefore repeats the uninterrupted run's draws exactly, and DDP ranks draw
        independently, whatever else consumed the global random state.
        """
        seed = (self.hparams.seed * 1_000_003 + self.global_step) * 64 + self.global_rank
        return torch.Generator().manual_seed(seed)

    # ------------------------------------------------------------------------------------------------ eval
    def validation_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        if batch is None:
            return
        logits = self(batch["audio"])
        loss = self.label_loss(logits, batch["target"])
        self.log("val/loss", loss, batch_size=len(logits), sync_dist=True)
        self._outputs.append((batch["index"], logits.float(), batch["target"], batch["device_index"]))

    def on_validation_epoch_end(self) -> None:
        if not self._outputs:
            return
        index, logits, targets, devices = (torch.cat(parts) for parts in zip(*self._outputs, strict=True))
        self._outputs.clear()
        if self.trainer.world_size > 1:  # DistributedSampler pads with repeats: gather, then keep each clip once
            gathered = (self.all_gather(t).flatten(0, 1) for t in (index, logits, targets, devices))
            index, logits, targets, devices = gathered
        _, first = np.unique(index.cpu().numpy(), return_index=True)
        results = self.compute_metrics(logits[first].cpu().numpy(), targets[first].cpu().numpy(), devices[first])
        self.log_dict({f"val/{k}": v for k, v in results.items()})  # the same on every rank: computed from all clips

    def test_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self.on_validation_epoch_end()

    # ------------------------------------------------------------------------------------------- optimisers
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        if hp.backbone_lr_factor == 1.0 and hp.layer_decay is None:
            optimizer = self.optimizer_factory(self.model.parameters())
        else:  # rates relative to the optimiser's own: the head at 1, the backbone lower
            groups = parameter_groups(self.model, self.classifier_keys, 1.0, hp.backbone_lr_factor, hp.layer_decay)
            optimizer = self.optimizer_factory([{"params": g["params"]} for g in groups])
            for group, relative in zip(optimizer.param_groups, groups, strict=True):
                group["lr"] = optimizer.defaults["lr"] * relative["lr"]
        if hp.lr_schedule == "cosine_with_warmup":  # the run's length in steps, as the reference's transformers call
            factor = cosine_with_warmup(hp.warmup_steps, int(self.trainer.estimated_stepping_batches))
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        per_step = bool(hp.warmup_steps or hp.rampdown_steps)
        if per_step:
            lengths = (hp.warmup_steps, hp.rampdown_steps, hp.rampdown_start_step)
        elif hp.warmup_epochs or hp.rampdown_epochs:
            lengths = (hp.warmup_epochs, hp.rampdown_epochs, hp.rampdown_start)
        else:
            return {"optimizer": optimizer}
        factor = exp_warmup_linear_down(*lengths, hp.last_lr_factor)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        interval = "step" if per_step else "epoch"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    def train(self, mode: bool = True) -> AudioSystem:
        """Train / eval mode; with ``freeze_backbone_bn`` the backbone's BatchNorm layers stay in eval mode."""
        super().train(mode)
        if mode and self.hparams.freeze_backbone_bn:
            for norm in backbone_norms(self.model, self.classifier_keys):
                norm.eval()
        return self

    @property
    def classifier_keys(self) -> list[str]:
        """State-dict keys of the model's classifier (computed once)."""
        if self._classifier_keys is None:
            self._classifier_keys = classifier_keys(self.model)
        return self._classifier_keys

    # ------------------------------------------------------------------------------------------ checkpoints
    @property
    def spec(self) -> ModelSpec:
        """The spec of the trained model: the network's, with the frontend it trains with (its jitter ranges set
        the eval fmax: fmax_aug_range 1000 -> 15500 Hz at 32 kHz) and the data's clip length (the window that
        tagging and evaluation should use)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        clip_seconds = getattr(datamodule, "clip_seconds", None)
        spec = self.model.spec.replace(frontend=self.frontend.config)
        return spec.replace(clip_seconds=float(clip_seconds)) if clip_seconds else spec

    def provenance(self) -> dict[str, Any]:
        """How the weights were made, stored beside them: the measured complexity (subclasses add their task)."""
        return {"complexity": self.complexity}

    def to_checkpoint(self, metrics: dict[str, float] | None = None) -> TympanCheckpoint:
        """The model as a tympan checkpoint: spec, weights, ``metrics`` and provenance."""
        return TympanCheckpoint(self.spec, self.model.state_dict(), dict(metrics or {}), self.provenance())

    def describe(self) -> dict[str, Any]:
        """The ``"tympan"`` entry of this system's checkpoints (see :mod:`tympan.models.tympan_checkpoint`)."""
        return entry(self.to_checkpoint())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        attach_entry(checkpoint, self.to_checkpoint())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if is_tympan_checkpoint(checkpoint):
            self.complexity = read_checkpoint(checkpoint).provenance.get("complexity")

    # ------------------------------------------------------------------------------------ task-specific
    def label_loss(self, logits: Tensor, target: Tensor, lam: Tensor | None = None, perm: Tensor | None = None):
        """Loss against the dataset targets, mixed with the mixup draws ``lam``, ``perm`` when given."""
        raise NotImplementedError

    def kd_loss(
        self,
        logits: Tensor,
        teacher_logits: Tensor,
        lam: Tensor | None,
        perm: Tensor | None,
        teacher_available: Tensor | None = None,
    ) -> Tensor:
        """Distillation term; clips with ``teacher_available`` False contribute 0 (kept in the batch mean)."""
        raise NotImplementedError

    def compute_metrics(self, logits: np.ndarray, targets: np.ndarray, devices: Tensor) -> dict[str, float]:
        raise NotImplementedError


class TaggingSystem(AudioSystem):
    """Multi-label audio tagging (AudioSet, FSD50K): BCE with logits; KD = BCE against ``sigmoid(teacher / T)``."""

    multilabel = True

    def label_loss(self, logits: Tensor, target: Tensor, lam: Tensor | None = None, perm: Tensor | None = None):
        return losses.mixup_bce(logits, target, lam, perm)

    def kd_loss(
        self,
        logits: Tensor,
        teacher_logits: Tensor,
        lam: Tensor | None,
        perm: Tensor | None,
        teacher_available: Tensor | None = None,
    ) -> Tensor:
        return losses.kd_bce_loss(logits, teacher_logits, self.hparams.temperature, lam, perm, teacher_available)

    def compute_metrics(self, logits: np.ndarray, targets: np.ndarray, devices: Tensor) -> dict[str, float]:
        result = metrics.tagging_metrics(targets, logits)
        return {"mAP": result["mAP"], "roc_auc": result["roc_auc"], "d_prime": result["d_prime"]}


class SceneSystem(AudioSystem):
    """Single-label classification (acoustic scenes, ESC-50): CE; KD = DCASE23's ``KL(student/T ‖ teacher/T)·T²``."""

    def label_loss(self, logits: Tensor, target: Tensor, lam: Tensor | None = None, perm: Tensor | None = None):
        return losses.mixup_cross_entropy(logits, target, lam, perm)

    def kd_loss(
        self,
        logits: Tensor,
        teacher_logits: Tensor,
        lam: Tensor | None,
        perm: Tensor | None,
        teacher_available: Tensor | None = None,
    ) -> Tensor:
        if lam is not None:
            raise ConfigError("the KL distillation loss of DCASE23 is not defined with mixup; set mixup_alpha=0")
        return losses.kd_kl_loss(logits, teacher_logits, self.hparams.temperature, teacher_available)

    def compute_metrics(self, logits: np.ndarray, targets: np.ndarray, devices: Tensor) -> dict[str, float]:
        names = [self.device_names[i] if i >= 0 else "" for i in devices.tolist()] if self.device_names else None
        result = metrics.classification_metrics(targets, logits, self.labels, names)
        flat = {"accuracy": result["accuracy"], "macro_accuracy": result["macro_accuracy"]}
        flat.update({f"accuracy/{d}": v for d, v in result.get("accuracy_per_device", {}).items() if d})
        return flat
