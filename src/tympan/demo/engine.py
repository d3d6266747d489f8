"""The demo's calls into the rest of tympan: data, models, training, complexity, deployment, tagging.

The pipeline (:mod:`tympan.demo.pipeline`) says what runs; this module says how, with the package's own pieces, so
that the demo exercises exactly the code a user would run on real data.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import soundfile
import torch
from torch import Tensor, nn

from ..audio.augmentation import Augmentation
from ..data import synthetic
from ..data.datamodule import AudioDataModule
from ..data.metadata import read_csv
from ..distill import compute_teacher_logits
from ..eval.complexity import check_dcase_limits, measure
from ..export import export_onnx
from ..models import create, frontend_of
from ..pipeline import AudioPipeline, load
from ..tagging import detect_events, plot_timeline, timeline
from ..train import SceneSystem, TaggingSystem, export_checkpoint
from ..train.quantize import load_quantized, quantize
from .workers import ProgressBoard, ProgressReport

__all__ = [
    "Pretraining",
    "Recipe",
    "Split",
    "Splits",
    "complexity",
    "dcase_student",
    "deploy",
    "load_splits",
    "load_trained",
    "passt_pretraining",
    "predict",
    "pretraining_recipe",
    "store_teacher_logits",
    "student_recipe",
    "tag_recording",
    "teacher_recipes",
    "train",
    "write_impulse_responses",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """The clips of one split in memory: waveforms [N, samples], class indices, devices and ids."""

    waveforms: Tensor
    targets: np.ndarray
    devices: list[str]
    ids: list[str]

    def count(self, devices: Sequence[str]) -> int:
        return sum(d in devices for d in self.devices)


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split
    labels: tuple[str, ...]
    metadata: Path


@dataclass(frozen=True)
class Recipe:
    """One training run: the network (architecture + arguments), schedule, loss and augmentation.

    Values follow the DCASE23 recipes unless the demo's minutes demand otherwise (epochs, batch size, learning rate).
    """

    arch: str
    model_kwargs: dict[str, Any]
    epochs: int
    learning_rate: float
    weight_decay: float
    batch_size: int = 32
    frontend: dict[str, Any] | None = None
    kd: bool = False
    kd_lambda: float = 0.02
    temperature: float = 2.0
    dir_folder: Path | None = None
    dir_probability: float = 0.6
    mixstyle: tuple[float, float] | None = None  # (probability, alpha)
    roll_samples: int = 4000
    store: Path | None = None
    start: Path | None = None  # pre-trained weights to fine-tune (a new head when the labels differ)
    multilabel: bool = False
    seed: int = 0

    def with_store(self, store: Path) -> Recipe:
        return replace(self, store=store) if self.kd else self


def load_splits(corpus: synthetic.Corpus) -> Splits:
    """Decode every clip of the corpus once (1 s clips: the whole demo corpus fits in memory)."""
    table = read_csv(corpus.metadata)
    parts = {}
    for split in ("train", "val", "test"):
        records = table.where(split=split).records
        audio = np.stack([soundfile.read(r.source, dtype="float32")[0] for r in records])
        parts[split] = Split(
            torch.from_numpy(audio),
            np.array([r.targets[0] for r in records]),
            [r.device for r in records],
            [r.id for r in records],
        )
    return Splits(**parts, labels=table.labels, metadata=corpus.metadata)


# --- models -----------------------------------------------------------------------------------------------------


def _passt_kwargs(size: Any, num_classes: int) -> dict[str, Any]:
    frames = 1 + (round(size.corpus.sample_rate * size.corpus.clip_seconds) - 1) // 320
    return {
        "num_classes": num_classes,
        "img_size": (128, frames),
        "patch_size": 16,
        "stride": 10,
        "embed_dim": size.passt_dim,
        "depth": size.passt_depth,
        "num_heads": 4,
        "s_patchout_f": 2,
    }


def pretraining_recipe(size: Any, seed: int = 0) -> Recipe:
    """The small PaSST on multi-label source tagging (BCE), the stand-in for the real teacher's AudioSet training."""
    return Recipe(
        "passt",
        _passt_kwargs(size, len(synthetic.SOURCES)),
        size.pretrain_epochs,
        2e-3,
        1e-3,
        frontend={"timem": 20, "fmax_aug_range": 1000},
        roll_samples=10000,
        multilabel=True,
        seed=seed,
    )


def teacher_recipes(size: Any, num_classes: int, seed: int, dir_folder: Path, passt_start: Path) -> dict[str, Recipe]:
    """DCASE23's two teacher families, both larger than the student, with their teacher augmentation (DIR on
    device ``a`` with p 0.4 / 0.6, Freq-MixStyle 0.8 / 0.4 and 0.4 / 0.4): the CP-ResNet trained from scratch, the
    PaSST fine-tuned from its source-tagging pre-training (``passt_start``)."""
    return {
        "CP-ResNet teacher": Recipe(
            "cp_resnet",
            {"n_classes": num_classes, "base_channels": size.teacher_width},
            size.teacher_epochs,
            3e-3,
            1e-3,
            dir_folder=dir_folder,
            dir_probability=0.4,
            mixstyle=(0.8, 0.4),
            seed=seed,
        ),
        "PaSST teacher (pre-trained)": Recipe(
            "passt",
            _passt_kwargs(size, num_classes),
            size.passt_epochs,
            1e-3,
            1e-3,
            dir_folder=dir_folder,
            dir_probability=0.6,
            mixstyle=(0.4, 0.4),
            frontend={"timem": 20, "fmax_aug_range": 1000},
            roll_samples=10000,
            start=passt_start,
            seed=seed,
        ),
    }


def student_recipe(size: Any, num_classes: int, seed: int, kd: bool, dir_folder: Path | None = None) -> Recipe:
    """A CP-Mobile student narrower than the submission (it must train in the demo's minutes), the DCASE23 KD
    loss (λ 0.02, T 2) and, with ``dir_folder``, DIR (p 0.6, device ``a``) and Freq-MixStyle (p 0.4, α 0.3).

    Every student has the same seed, hence the same initial weights and data order.
    """
    augment = dir_folder is not None
    return Recipe(
        "cp_mobile",
        {"n_classes": num_classes, "base_channels": size.student_width},
        size.student_epochs,
        3e-3,
        1e-4,
        kd=kd,
        dir_folder=dir_folder,
        mixstyle=(0.4, 0.3) if augment else None,
        seed=seed,
    )


def dcase_student(num_classes: int) -> nn.Module:
    """CP-Mobile at the DCASE23 submission size, for the complexity check."""
    return create("cp_mobile", n_classes=num_classes)


def write_impulse_responses(responses: Sequence[np.ndarray], folder: Path, sample_rate: int = 32000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, response in enumerate(responses):
        soundfile.write(folder / f"generated_device_{index:02d}.wav", response, sample_rate, subtype="FLOAT")
    return folder


# --- training ---------------------------------------------------------------------------------------------------


class _Curve(L.Callback):
    """Mean training loss and the validation metric of every epoch (validation runs before ``on_train_epoch_end``)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.curve: dict[str, list[float]] = {"train_loss": [], f"val_{metric}": []}
        self._losses: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, *args: Any) -> None:
        self._losses.append(float(outputs["loss"]))

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.curve["train_loss"].append(float(np.mean(self._losses)))
        self.curve[f"val_{self.metric}"].append(float(trainer.callback_metrics[f"val/{self.metric}"]))
        self._losses.clear()


class _Progress(L.Callback):
    """Reports a run's optimizer steps, epoch and last validation metric as ``(name, done, total, status)``."""

    def __init__(self, name: str, metric: str, report: ProgressReport) -> None:
        self.name, self.metric, self.report = name, metric, report
        self._status = ""

    def _send(self, trainer: L.Trainer) -> None:
        self.report(self.name, trainer.global_step, int(trainer.estimated_stepping_batches), self._status)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._send(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self._send(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value = float(trainer.callback_metrics[f"val/{self.metric}"])
        self._status = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, val {self.metric} {value:.3f}"
        self._send(trainer)


def train(
    metadata: Path,
    labels: Sequence[str],
    recipe: Recipe,
    name: str,
    checkpoint: Path | None = None,
    report: ProgressReport | None = None,
) -> tuple[nn.Module, dict[str, list[float]]]:
    """Train ``recipe`` on the corpus CSV ``metadata`` with :class:`tympan.train.SceneSystem` (or
    :class:`~tympan.train.TaggingSystem` for a multi-label recipe), its progress reported under ``name`` (to a
    :class:`~tympan.demo.workers.ProgressBoard` of its own by default); returns the network (eval mode) and its
    per-epoch curve, and writes a self-describing checkpoint when asked."""
    L.seed_everything(recipe.seed, verbose=False)
    datamodule = AudioDataModule(
        str(metadata),
        labels=labels,
        clip_seconds=1.0,
        batch_size=recipe.batch_size,
        check_files=False,
        seed=recipe.seed,
    )
    ramp = recipe.epochs // 2
    mixstyle_p, mixstyle_alpha = recipe.mixstyle or (0.0, 0.4)
    augment: dict[str, Any] = {
        "augmentation": Augmentation.from_settings(  # DIR on device a only, the one with most of the training clips
            roll_samples=recipe.roll_samples, dir_folder=str(recipe.dir_folder) if recipe.dir_folder else None,
            dir_prob=recipe.dir_probability, dir_devices=["a"], mixstyle_p=mixstyle_p, mixstyle_alpha=mixstyle_alpha,
        )
    }  # fmt: skip
    if recipe.kd:
        augment.update(teacher_logits=str(recipe.store), kd_lambda=recipe.kd_lambda, temperature=recipe.temperature)
    system_class = TaggingSystem if recipe.multilabel else SceneSystem
    system = system_class(
        recipe.arch,
        model_kwargs=recipe.model_kwargs,
        labels=list(labels),
        checkpoint=str(recipe.start) if recipe.start is not None else None,
        frontend=recipe.frontend,
        lr=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        warmup_epochs=max(1, recipe.epochs // 5),
        rampdown_start=ramp,
        rampdown_epochs=recipe.epochs - ramp,
        last_lr_factor=0.01,
        seed=recipe.seed,
        **augment,
    )
    metric = "mAP" if recipe.multilabel else "accuracy"
    curve = _Curve(metric)
    trainer = L.Trainer(
        max_epochs=recipe.epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[curve, _Progress(name, metric, report or ProgressBoard())],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(system, datamodule=datamodule)
    if checkpoint is not None:
        export_checkpoint(system, checkpoint, {k: float(v) for k, v in trainer.callback_metrics.items()})
    return system.model.eval(), curve.curve


@dataclass(frozen=True)
class Pretraining:
    """The small PaSST's source-tagging pre-training: its corpus, recipe and the cached checkpoint it writes."""

    corpus: Path
    recipe: Recipe
    checkpoint: Path

    @property
    def cached(self) -> bool:
        return self.checkpoint.exists()


def passt_pretraining(size: Any, cache_dir: Path | None) -> Pretraining:
    """The PaSST pre-training on source tagging of generated audio (the source corpus generated when missing). Its
    checkpoint lives next to the generated corpora (``$TYMPAN_CACHE/data`` by default), keyed by recipe and corpus,
    so that only the first run trains it."""
    recipe = pretraining_recipe(size)
    corpus = synthetic.ensure_source_corpus(size.pretrain_corpus, cache_dir)
    key = hashlib.sha256(repr((recipe, size.pretrain_corpus)).encode()).hexdigest()[:12]
    return Pretraining(corpus, recipe, corpus.parent.parent / f"passt-sources-{key}.ckpt")


def load_trained(checkpoint: Path) -> nn.Module:
    """The network of a checkpoint written by :func:`train`, in eval mode on the CPU."""
    return load(checkpoint=checkpoint, device="cpu").model.eval()


def _pipeline(model: nn.Module, labels: Sequence[str], backend: str = "torch") -> AudioPipeline:
    frontend = frontend_of(model)
    return AudioPipeline(model, frontend, labels, multilabel=False, clip_seconds=1.0, device="cpu", backend=backend)


def predict(model: nn.Module, split: Split, labels: Sequence[str], backend: str = "torch") -> np.ndarray:
    """Eval-mode logits [N, classes] of ``model`` with its own frontend on a split; ``backend`` is ``"torch"`` or
    ``"onnx"`` (through :class:`tympan.pipeline.AudioPipeline`) or ``"int8"`` (a model from ``tympan quantize``)."""
    if backend == "int8":
        frontend = frontend_of(model)
        with torch.inference_mode():
            return torch.cat([model(frontend(chunk).unsqueeze(1)) for chunk in split.waveforms.split(256)]).numpy()
    pipeline = _pipeline(model, labels, backend)
    return torch.cat([pipeline.forward_waveforms(chunk)[0] for chunk in split.waveforms.split(256)]).numpy()


def store_teacher_logits(teachers: Sequence[nn.Module], data: Splits, path: Path) -> Path:
    """The teachers' mean logits on the training clips, computed once into a teacher-logit store."""
    table = read_csv(data.metadata, labels=data.labels).where(split="train")
    compute_teacher_logits(list(teachers), table, path, clip_seconds=1.0, batch_size=128, device="cpu")
    return path


def complexity(model: nn.Module) -> dict[str, Any]:
    """Parameters and MACs for one 1-s clip (the DCASE counting rule) and whether they meet the DCASE limits."""
    config = model.frontend_config
    measured = measure(model, (1, 1, config.n_mels, config.num_frames(config.sample_rate)))
    check = check_dcase_limits(measured)
    return {"params": check.params, "macs": check.macs, "ok": check.passed, "summary": check.summary()}


def deploy(checkpoint: Path, data: Splits, epochs: int, output: Path) -> list[dict[str, Any]]:
    """int8 (quantisation-aware fine-tuning with ``tympan quantize``) and ONNX forms of a trained student, each with
    its test accuracy; the files land in ``output``."""
    result = quantize(
        checkpoint,
        data.metadata,
        epochs=epochs,
        output=output / "int8",
        batch_size=32,
        clip_seconds=1.0,
        accelerator="cpu",
        progress=False,
    )
    int8 = load_quantized(result.model_path)
    int8_accuracy = float((predict(int8, data.test, data.labels, "int8").argmax(1) == data.test.targets).mean())
    float_model = load(checkpoint=checkpoint, device="cpu").model
    path = output / "student.onnx"
    difference = export_onnx(float_model, path, seconds=1.0)
    onnx_accuracy = float((predict(float_model, data.test, data.labels, "onnx").argmax(1) == data.test.targets).mean())
    return [
        {
            "name": "int8 (QAT, torchao PT2E)",
            "accuracy": int8_accuracy,
            "note": f"{epochs} QAT epoch(s); weights {result.int8['weight_bytes']:,} B vs "
            f"{result.float['weight_bytes']:,} B in float32",
        },
        {
            "name": "ONNX (onnxruntime, float32)",
            "accuracy": onnx_accuracy,
            "note": f"{path.name}, {path.stat().st_size / 1024:.0f} KiB; max |difference| to PyTorch {difference:.1e}",
        },
    ]


def tag_recording(
    model: nn.Module, scenes: Sequence[str], segment_seconds: float, seed: int, labels: Sequence[str], figure: Path
) -> dict[str, Any]:
    """Tag a generated multi-scene recording: 1-s windows every 0.5 s, events, agreement with the true scenes."""
    device = synthetic.UNSEEN_DEVICES[0]
    recording = synthetic.generate_recording(scenes, segment_seconds, device=device, seed=seed + 1)
    result = timeline(
        _pipeline(model, labels), recording.waveform, sample_rate=recording.sample_rate, window=1.0, hop=0.5
    )
    events = detect_events(result, threshold=0.3, median_windows=3)
    plot_timeline(result, figure, events=events)

    def truth_at(second: float) -> str:
        return next((s for a, b, s in recording.segments if a <= second < b), recording.segments[-1][2])

    predicted = [labels[i] for i in result.scores.argmax(1)]
    agreement = np.mean([p == truth_at(c) for p, c in zip(predicted, result.centres, strict=True)])
    return {
        "seconds": result.duration,
        "device": device,
        "window": result.window,
        "hop": result.hop,
        "window_accuracy": float(agreement),
        "truth": [list(segment) for segment in recording.segments],
        "events": [
            {
                "onset": e.onset,
                "offset": e.offset,
                "label": e.label,
                "score": e.score,
                "truth": truth_at((e.onset + e.offset) / 2),
            }
            for e in events
        ],
    }
