"""The demo pipeline: generated corpus → teachers → stored ensemble logits → three CP-Mobile students → evaluation,
complexity, int8 and ONNX → tagging a long recording → report.

Each stage calls the package's public pieces through :mod:`tympan.demo.engine`; this module only decides what runs,
in which order, at which size, and collects the numbers.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import synthetic
from ..errors import ConfigError
from ..eval.metrics import classification_metrics
from . import engine, plots, report, workers

__all__ = ["DemoConfig", "DemoResult", "run_demo"]

logger = logging.getLogger(__name__)

DCASE_LIMITS = {"params": 128_000, "macs": 30_000_000}
TAGGING_SCENES = ("park", "street_traffic", "metro_station", "metro", "shopping_mall", "public_square")


@dataclass(frozen=True)
class Size:
    """How big each part of the run is; the full size fits 10 minutes on 2 CPU cores, the quick one about 1."""

    corpus: synthetic.CorpusConfig
    pretrain_corpus: synthetic.SourceCorpusConfig
    pretrain_epochs: int
    teacher_epochs: int
    passt_epochs: int
    student_epochs: int
    qat_epochs: int
    student_width: int
    teacher_width: int
    passt_dim: int
    passt_depth: int
    segment_seconds: float


FULL = Size(
    corpus=synthetic.CorpusConfig(train_per_class=150, val_per_class=20, test_per_class=20),
    pretrain_corpus=synthetic.SourceCorpusConfig(train_clips=2000, val_clips=200),
    pretrain_epochs=30,
    teacher_epochs=30,
    passt_epochs=30,
    student_epochs=8,
    qat_epochs=1,
    student_width=16,
    teacher_width=32,
    passt_dim=64,
    passt_depth=2,
    segment_seconds=6.0,
)
QUICK = Size(
    corpus=synthetic.CorpusConfig.quick(),
    pretrain_corpus=synthetic.SourceCorpusConfig(train_clips=96, val_clips=32),
    pretrain_epochs=1,
    teacher_epochs=1,
    passt_epochs=1,
    student_epochs=2,
    qat_epochs=1,
    student_width=16,
    teacher_width=16,
    passt_dim=48,
    passt_depth=1,
    segment_seconds=3.0,
)


@dataclass(frozen=True)
class DemoConfig:
    """What ``tympan demo`` was asked for.

    Attributes:
        output: folder for report.md, metrics.json, the figures and the exported model.
        quick: the small size (tests, a first look).
        dirs: folder of device impulse responses for DIR; None generates a set disjoint from the test devices.
        cache_dir: where the generated corpus is cached (default :func:`tympan.data.synthetic.default_cache_dir`).
        seed: seeds the corpus and every model initialisation.
        seeds: how many seeds to run (``seed``, ``seed + 1``, ...): the report gives each comparison's mean and
            standard error across them; only the first seed is deployed and tags the recording.
        workers: training runs side by side in worker processes (default: one per core, at most 3; 1 trains in
            this process, one run after the other).
    """

    output: Path = Path("demo_output")
    quick: bool = False
    dirs: Path | None = None
    cache_dir: Path | None = None
    seed: int = 0
    seeds: int = 1
    workers: int | None = None

    @property
    def size(self) -> Size:
        return QUICK if self.quick else FULL


@dataclass
class DemoResult:
    """Where the report landed and the numbers in it."""

    report: Path
    metrics_file: Path
    metrics: dict[str, Any]
    figures: list[Path] = field(default_factory=list)


class _Timer:
    """Seconds spent per named stage, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, stage: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        logger.info("demo: %s ...", stage)
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.seconds[stage] = time.perf_counter() - start
        return result


def _evaluate(logits: np.ndarray, split: engine.Split, labels: list[str]) -> dict[str, Any]:
    groups = {"seen": synthetic.SEEN_DEVICES, "unseen": synthetic.UNSEEN_DEVICES}
    result = classification_metrics(split.targets, logits, labels=labels, devices=split.devices, device_groups=groups)
    return {
        "accuracy": result["accuracy"],
        "accuracy_seen": result["accuracy_per_device_group"]["seen"],
        "accuracy_unseen": result["accuracy_per_device_group"]["unseen"],
        "per_device": {d: result["accuracy_per_device"][d] for d in synthetic.DEVICES},
        "confusion_matrix": result["confusion_matrix"],
    }


def _instance_accuracy(correct: np.ndarray, split: engine.Split, devices: Sequence[str]) -> np.ndarray:
    """Accuracy over ``devices`` of each test scene instance (clip ids are ``<instance>-<device>``; the test split
    records every instance by every device, so device groups compare on the same content)."""
    instances = np.unique([clip.rsplit("-", 1)[0] for clip in split.ids], return_inverse=True)[1]
    chosen = np.isin(split.devices, devices)
    hits = np.bincount(instances[chosen], weights=correct[chosen].astype(float), minlength=instances.max() + 1)
    return hits / np.bincount(instances[chosen], minlength=instances.max() + 1)


def _dir_folder(config: DemoConfig, folder: Path) -> tuple[Path, str]:
    """The impulse responses for DIR: the user's folder, or a generated set (new devices, not the test ones)."""
    if config.dirs is not None:
        return config.dirs, f"impulse responses from {config.dirs}"
    count = 24
    engine.write_impulse_responses(synthetic.device_impulse_responses(count), folder)
    return folder, f"{count} generated device responses (the corpus's microphone family, not the test devices)"


@dataclass
class _SeedRun:
    """Everything one seed trained and measured."""

    data: engine.Splits
    corpus: synthetic.Corpus
    teachers: list[str]
    models: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, list[float]]]
    students: dict[str, torch.nn.Module]
    checkpoints: dict[str, Path]
    ensemble: dict[str, Any]
    findings: dict[str, Any]


def _train_and_evaluate(
    config: DemoConfig,
    seed: int,
    output: Path,
    dirs: Path,
    passt_start: Path,
    pretraining: Future[workers.TrainedRun] | None,
    pool: workers.TrainingPool,
    timer: _Timer,
    prefix: str = "",
) -> _SeedRun:
    """Corpus, teachers, stored ensemble logits and the three students of one seed, evaluated per device.

    Runs start as soon as what they need is there: the CP-ResNet teacher and the student without KD at once, the
    PaSST teacher when its pre-training (``pretraining``, None when cached) is done, the KD students when both
    teachers' logits are stored."""
    size = config.size
    corpus_config = dataclasses.replace(size.corpus, seed=seed)
    corpus = timer.run(f"{prefix}corpus", synthetic.ensure_corpus, corpus_config, config.cache_dir)
    data = timer.run(f"{prefix}load audio", engine.load_splits, corpus)
    labels = corpus.labels
    models: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    logits_of: dict[str, np.ndarray] = {}

    def submit(name: str, recipe: engine.Recipe, checkpoint: Path) -> Future[workers.TrainedRun]:
        return pool.submit(data.metadata, labels, recipe, f"{prefix}train {name}", checkpoint)

    def collect(name: str, role: str, future: Future[workers.TrainedRun]) -> torch.nn.Module:
        run = future.result()
        trained = engine.load_trained(run.checkpoint)
        logits_of[name] = engine.predict(trained, data.test, labels)
        measured = engine.complexity(trained)
        timer.seconds[run.name] = run.seconds
        models[name] = {
            "role": role,
            "params": measured["params"],
            "macs": measured["macs"],
            "train_seconds": run.seconds,
            **_evaluate(logits_of[name], data.test, labels),
        }
        curves[name] = run.curve
        logger.info(
            "demo: %s: test accuracy %.1f %% (seen devices %.1f %%, unseen %.1f %%)",
            name,
            *(100 * models[name][key] for key in ("accuracy", "accuracy_seen", "accuracy_unseen")),
        )
        return trained

    teacher_specs = engine.teacher_recipes(size, len(labels), seed, dirs, passt_start)
    # students: same initialisation and schedule, only the training signal differs
    variants = {
        "student, no KD": engine.student_recipe(size, len(labels), seed, kd=False),
        "student + KD": engine.student_recipe(size, len(labels), seed, kd=True),
        "student + KD + DIR + FMS": engine.student_recipe(size, len(labels), seed, kd=True, dir_folder=dirs),
    }
    checkpoints = {name: output / "checkpoints" / f"student{index}.ckpt" for index, name in enumerate(variants)}
    cp_resnet, passt = teacher_specs
    alone = next(iter(variants))
    teacher_runs = {cp_resnet: submit(cp_resnet, teacher_specs[cp_resnet], output / "checkpoints" / "teacher0.ckpt")}
    student_runs = {alone: submit(alone, variants[alone], checkpoints[alone])}  # needs no teacher logits
    if pretraining is not None:
        pretraining.result()
    teacher_runs[passt] = submit(passt, teacher_specs[passt], output / "checkpoints" / "teacher1.ckpt")
    teachers = [collect(name, "teacher", run) for name, run in teacher_runs.items()]

    # the ensemble's logits, stored once for the KD students
    store = timer.run(
        f"{prefix}store ensemble logits", engine.store_teacher_logits, teachers, data, output / "teacher_logits.npy"
    )
    ensemble_logits = np.mean([logits_of[name] for name in teacher_specs], axis=0)
    ensemble = _evaluate(ensemble_logits, data.test, labels)
    for name, recipe in variants.items():
        if name not in student_runs:
            student_runs[name] = submit(name, recipe.with_store(store), checkpoints[name])
    students = {name: collect(name, "student", student_runs[name]) for name in variants}
    test = data.test
    alone_hits, kd, augmented = (logits_of[name].argmax(1) == test.targets for name in variants)
    unseen = np.isin(test.devices, synthetic.UNSEEN_DEVICES)
    findings = {
        "kd_vs_no_kd": report.compare(kd, alone_hits),
        "device_augmentation_unseen": report.compare(augmented[unseen], kd[unseen]),
        "seen_vs_unseen": report.compare(
            _instance_accuracy(alone_hits, test, synthetic.SEEN_DEVICES),
            _instance_accuracy(alone_hits, test, synthetic.UNSEEN_DEVICES),
        ),
        "ensemble_vs_student": report.compare(ensemble_logits.argmax(1) == test.targets, alone_hits),
        "unseen_clips": int(unseen.sum()),
    }
    return _SeedRun(data, corpus, list(teacher_specs), models, curves, students, checkpoints, ensemble, findings)


def run_demo(config: DemoConfig) -> DemoResult:
    """Run the whole demo and write ``report.md``, ``metrics.json`` and the figures into ``config.output``."""
    if config.seeds < 1:
        raise ConfigError(f"the demo needs at least one seed, got seeds={config.seeds}")
    size = config.size
    output = config.output
    output.mkdir(parents=True, exist_ok=True)
    timer = _Timer()
    start, cpu_start = time.perf_counter(), time.process_time()

    dirs, dir_source = _dir_folder(config, output / "generated_dirs")
    with workers.TrainingPool(config.workers) as pool:
        pretraining = timer.run("source corpus", engine.passt_pretraining, size, config.cache_dir)
        pending = None
        if pretraining.cached:
            logger.info("demo: reusing the pre-trained PaSST in %s", pretraining.checkpoint)
        else:  # trained once, then cached; the scene corpus is generated meanwhile
            pending = pool.submit(
                pretraining.corpus,
                synthetic.SOURCES,
                pretraining.recipe,
                "pre-train PaSST (source tagging)",
                pretraining.checkpoint,
            )
        run = _train_and_evaluate(config, config.seed, output, dirs, pretraining.checkpoint, pending, pool, timer)
        if pending is not None:
            timer.seconds[pending.result().name] = pending.result().seconds
        extra = [
            _train_and_evaluate(
                config, seed, output / f"seed-{seed}", dirs, pretraining.checkpoint, None, pool, timer, f"seed {seed}: "
            )
            for seed in range(config.seed + 1, config.seed + config.seeds)
        ]
    data, models, curves, labels = run.data, run.models, run.curves, run.corpus.labels

    # complexity against the DCASE limits, then int8 and ONNX of the best student
    complexity = {
        "CP-Mobile, DCASE23 submission size": engine.complexity(engine.dcase_student(len(labels))),
        "demo student": engine.complexity(next(iter(run.students.values()))),
    }
    best = max(run.students, key=lambda n: curves[n]["val_accuracy"][-1])  # chosen on validation, not on test
    forms = [{"name": "float32 (PyTorch)", "accuracy": models[best]["accuracy"], "note": "as trained"}]
    forms += timer.run("int8 + ONNX", engine.deploy, run.checkpoints[best], data, size.qat_epochs, output)
    # tag a long multi-scene recording with the best student
    tagging = timer.run(
        "tagging",
        engine.tag_recording,
        run.students[best],
        TAGGING_SCENES,
        size.segment_seconds,
        config.seed,
        labels,
        output / "timeline.png",
    )
    figures = {
        "per_device": plots.plot_per_device(
            {**models, "teacher ensemble": run.ensemble}, synthetic.UNSEEN_DEVICES, output / "per_device_accuracy.png"
        ),
        "confusion": plots.plot_confusion(
            models[best]["confusion_matrix"],
            labels,
            f"{best}: test confusion (all devices)",
            output / "confusion_matrix.png",
        ),
        "training_curves": plots.plot_training_curves(curves, output / "training_curves.png"),
        "timeline": output / "timeline.png",
    }
    timer.seconds["total"] = time.perf_counter() - start
    metrics = {
        "run": {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "quick": config.quick,
            "seconds": timer.seconds["total"],
            "cpu_seconds": time.process_time() - cpu_start,
            "threads": torch.get_num_threads(),
            "training_workers": pool.workers,
            "seed": config.seed,
            "seeds": list(range(config.seed, config.seed + config.seeds)),
            "dir_source": dir_source,
        },
        "corpus": {
            "root": str(run.corpus.root),
            "classes": labels,
            "seen_devices": list(synthetic.SEEN_DEVICES),
            "unseen_devices": list(synthetic.UNSEEN_DEVICES),
            "clips": {s: len(getattr(data, s).targets) for s in ("train", "val", "test")},
            "train_clips_per_device": {d: data.train.devices.count(d) for d in synthetic.SEEN_DEVICES},
        },
        "teachers": run.teachers,
        "students": list(run.students),
        "models": models,
        "ensemble": run.ensemble,
        "training_curves": curves,
        "findings": run.findings,
        "across_seeds": report.across_seeds([r.findings for r in (run, *extra)], [r.models for r in (run, *extra)]),
        "complexity": complexity,
        "dcase_limits": DCASE_LIMITS,
        "deployment": {"student": best, "forms": forms},
        "tagging": tagging,
        "figures": {name: str(path) for name, path in figures.items()},
        "timings": timer.seconds,
    }
    metrics_file = report.write_metrics(metrics, output / "metrics.json")
    report_file = report.write_report(metrics, output / "report.md")
    return DemoResult(report_file, metrics_file, metrics, list(figures.values()))
