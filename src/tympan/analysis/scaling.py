"""Over-parameterisation study: width and depth of CP-ResNet / CP-Mobile at a fixed parameter budget.

Koutini et al., "Over-Parameterization and Generalization in Audio Classification" (ICML 2021 workshop, arXiv
2107.08933): wider CNNs generalise better to unseen recording devices, even at the same number of parameters. The
DCASE20 code base (``kkoutini/cpjku_dcase20``) holds the parameter count fixed while raising the width in two ways,
both available here:

* magnitude pruning of a wide network to the narrow one's non-zero count, with the pruned share ramped up over the
  first epochs (:class:`~tympan.train.pruning.MagnitudePruner`, a Lightning callback; masks survive optimiser steps);
* decomposition (:func:`~tympan.models.surgery.decompose_convs`): each k×k conv becomes
  ``1×1 (C_in → C_out/Z) → k×k → 1×1 (→ C_out)``.

Also frequency damping (:func:`~tympan.models.surgery.apply_frequency_damping`) and parameter counts that skip pruned
weights. The surgery lives in :mod:`tympan.models.surgery` and the callback in :mod:`tympan.train.pruning` (both
names stay importable from here); this module holds the study:
:func:`scaling_sweep` trains a width × depth × ρ family with one recipe through the training engine and reports
accuracy on seen and unseen devices.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models.surgery import (
    DecomposedConv2d,
    FrequencyDamping,
    apply_frequency_damping,
    count_params,
    damping_ramp,
    decompose_convs,
    decomposed_params,
)
from ..train.pruning import MagnitudePruner

__all__ = [
    "DecomposedConv2d",
    "FrequencyDamping",
    "MagnitudePruner",
    "ScalingSweep",
    "apply_frequency_damping",
    "build_family_model",
    "count_params",
    "damping_ramp",
    "decompose_convs",
    "decomposed_params",
    "plot_scaling",
    "scaling_sweep",
]

logger = logging.getLogger(__name__)

ARCHS = ("cp_resnet", "cp_mobile")
METHODS = ("prune", "decompose")


# ---------------------------------------------------------------------------------------------- families
def build_family_model(arch: str, width: int, depth: int = 0, rho: int | None = None, num_classes: int = 10):
    """One member of a width × depth × ρ family.

    * ``cp_resnet``: CP-ResNet (DCASE23 ρ mapping, no channel cuts) with widths ``(w, 2w, 4w)``; ``depth`` adds
      blocks to stage 1 beyond its second, which are 1×1 at every ρ, with the stage-1 pools kept after blocks 1
      and 2 — so depth changes the parameter count but not the receptive field (the DCASE20 depth restriction,
      read the other way).
    * ``cp_mobile``: CP-Mobile with base width ``w``; ``depth`` adds blocks to the last stage (their 3×3 depthwise
      convs do widen the receptive field); ``rho`` does not apply.
    """
    from ..models import create

    if arch == "cp_resnet":
        model = create(
            "cp_resnet",
            rho=8 if rho is None else rho,
            base_channels=width,
            cut_channels_s3=0,
            n_blocks=(2 + depth, 1, 1),
            maxpool_pos_stage1=(0, 1, 2),
            n_classes=num_classes,
        )
    elif arch == "cp_mobile":
        model = create("cp_mobile", base_channels=width, n_blocks=(3, 2, 1 + depth), num_classes=num_classes)
    else:
        raise ConfigError(f"unknown family {arch!r}; use one of {ARCHS}")
    return model


def _decomposition_for_budget(build: Callable[[], nn.Module], budget: int) -> tuple[nn.Module, int]:
    """The smallest decomposition factor (of every ungrouped conv, 1×1 included) whose model fits ``budget``
    parameters (the largest tried otherwise)."""
    model, factor = build(), 1
    for factor in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64):
        model = build() if factor == 1 else decompose_convs(build(), factor, include_pointwise=True)
        if count_params(model, nonzero=False) <= budget:
            break
    return model, factor


# --------------------------------------------------------------------------------------------------- sweep
@dataclass(frozen=True)
class ScalingSweep:
    """Rows of :func:`scaling_sweep` (one per trained model) and the files written."""

    rows: list[dict[str, Any]]
    files: dict[str, Path]


def scaling_sweep(
    data: str | Path,
    widths: Sequence[int],
    depths: Sequence[int] = (0,),
    rhos: Sequence[int | None] = (4,),
    fixed_params: int | None = None,
    *,
    arch: str = "cp_resnet",
    method: str = "prune",
    freq_damping: bool = False,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    frontend: dict[str, Any] | None = None,
    unseen_devices: Sequence[str] | None = None,
    output: str | Path | None = None,
    accelerator: str = "auto",
    seed: int = 0,
    progress: bool = False,
) -> ScalingSweep:
    """Train every width × depth × ρ member of a family with one recipe and compare seen / unseen devices.

    Args:
        data: scene clips with ``device`` and ``split`` columns (train / val / test), e.g. the synthetic corpus.
        widths, depths, rhos: the grid (see :func:`build_family_model`).
        fixed_params: parameter budget; members above it are pruned to it (``method="prune"``: non-zero count,
            per layer, dense for the first fifth of the epochs, then ramped linearly over a quarter) or decomposed
            with the smallest factor that fits (``method="decompose"``).
        arch: ``"cp_resnet"`` or ``"cp_mobile"``.
        freq_damping: frequency damping on every k×k kernel.
        epochs, batch_size, lr: the recipe (Adam, warm-up-free, linear decay over the second half).
        frontend: changes to the architecture's mel frontend; default 64 mel bins with 8-bin masking (quick).
        unseen_devices: devices of the unseen group; default: the test devices that no training clip has.
        output: folder for ``scaling.json``, ``scaling.csv`` and ``scaling.png`` (nothing written without it).
        accelerator, seed, progress: Lightning settings.

    Returns:
        the rows (arch, width, depth, rho, method, factor, params, nonzero_params, accuracy, seen, unseen,
        per-device accuracies) and the files written.
    """
    from ..data.datamodule import AudioDataModule

    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; use one of {METHODS}")
    if not widths or min(widths) < 1 or min(depths) < 0:
        raise ConfigError("widths must be positive and depths non-negative")
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    rhos = [None] if arch == "cp_mobile" else list(rhos)
    frontend = {"n_mels": 64, "freqm": 8} if frontend is None else frontend
    rows: list[dict[str, Any]] = []
    files: dict[str, Path] = {}
    for width, depth, rho in itertools.product(widths, depths, rhos):
        L.seed_everything(seed, workers=True, verbose=False)
        probe = AudioDataModule(str(data), batch_size=batch_size, seed=seed)
        build = functools.partial(build_family_model, arch, width, depth, rho, probe.num_classes)

        factor, callbacks = 1, []
        model = build()
        if fixed_params is not None and count_params(model, nonzero=False) > fixed_params:
            if method == "decompose":
                model, factor = _decomposition_for_budget(build, fixed_params)
            else:
                # Dense training first: Fixup zero-initialises convs and the classifier, and weights pruned while
                # still 0 would stay 0 (they rank lowest at every later step). Per-layer pruning: a global threshold
                # at this sparsity empties whole layers (the classifier first) and the network collapses to chance.
                start, ramp = max(1, epochs // 5), max(1, epochs // 4)
                callbacks.append(
                    MagnitudePruner(target_params=fixed_params, scope="layer", start_epoch=start, ramp_epochs=ramp)
                )
        if freq_damping:
            apply_frequency_damping(model)
        model.spec = model.spec.replace(frontend=model.spec.frontend.replace(**frontend))
        row = {
            "arch": arch,
            "width": width,
            "depth": depth,
            "rho": rho,
            "method": (method if (callbacks or factor > 1) else "dense"),
            "decomp_factor": factor,
            "freq_damping": freq_damping,
            "params": count_params(model, nonzero=False),
        }
        row.update(_train_and_test(model, probe, callbacks, epochs, lr, accelerator, seed, progress, unseen_devices))
        logger.info("scaling: %s", row)
        rows.append(row)
        files = _write(rows, Path(output)) if output is not None else {}  # after each member: long sweeps
    return ScalingSweep(rows, files)


def _train_and_test(model, module, callbacks, epochs, lr, accelerator, seed, progress, unseen) -> dict[str, Any]:
    from ..eval.metrics import classification_metrics
    from ..train.systems import SceneSystem

    module.sample_rate = model.frontend_config.sample_rate
    module.clip_seconds = None
    system = SceneSystem(
        model, labels=module.labels, lr=lr, rampdown_start=epochs // 2, rampdown_epochs=max(1, epochs - epochs // 2),
        last_lr_factor=0.01, seed=seed,
    )  # fmt: skip
    trainer = L.Trainer(
        max_epochs=epochs, accelerator=accelerator, devices=1, callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(system, datamodule=module)
    loader = module.test_dataloader() or module.val_dataloader()
    seen = module.datasets["train"].table.device_names if "train" in module.datasets else []
    system.eval()
    logits, targets, devices = [], [], []
    names = module.device_names
    with torch.no_grad():
        for batch in loader:
            if batch is None:
                continue
            logits.append(system(batch["audio"].to(system.device)).float().cpu())
            targets.append(batch["target"])
            devices += [names[i] if i >= 0 else "" for i in batch["device_index"].tolist()]
    present = sorted(set(devices) - {""})
    unseen = sorted(unseen) if unseen is not None else [d for d in present if d not in seen]
    result = classification_metrics(
        torch.cat(targets).numpy(), torch.cat(logits).numpy(), module.labels, devices,
        {"seen": [d for d in present if d not in unseen], "unseen": unseen},
    )  # fmt: skip
    groups = result["accuracy_per_device_group"]
    return {
        "nonzero_params": count_params(system.model, nonzero=True),
        "accuracy": float(result["accuracy"]),
        "seen": float(groups.get("seen", float("nan"))),
        "unseen": float(groups.get("unseen", float("nan"))),
        **{f"acc_{d}": float(v) for d, v in result["accuracy_per_device"].items() if d},
    }


def _write(rows: list[dict[str, Any]], output: Path) -> dict[str, Path]:
    output.mkdir(parents=True, exist_ok=True)
    files = {"json": output / "scaling.json", "csv": output / "scaling.csv", "png": output / "scaling.png"}
    plain = [{k: _nan_to_none(v) for k, v in row.items()} for row in rows]
    files["json"].write_text(json.dumps(plain, indent=1) + "\n")
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with files["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    plot_scaling(rows, files["png"])
    return files


def plot_scaling(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Accuracy vs width (seen solid, unseen dashed; one line per depth / ρ / method) and accuracy vs non-zero
    parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    keys = sorted({(r["depth"], str(r["rho"]), r["method"]) for r in rows})
    for index, (depth, rho, method) in enumerate(keys):
        group = sorted((r for r in rows if (r["depth"], str(r["rho"]), r["method"]) == (depth, rho, method)),
                       key=lambda r: r["width"])  # fmt: skip
        colour = f"C{index % 10}"
        label = f"depth {depth}, rho {rho}, {method}"
        widths = [r["width"] for r in group]
        left.plot(widths, [r["seen"] for r in group], "o-", color=colour, label=f"{label}: seen")
        left.plot(widths, [r["unseen"] for r in group], "s--", color=colour, label=f"{label}: unseen")
        nonzero = [r["nonzero_params"] for r in group]
        right.plot(nonzero, [r["seen"] for r in group], "o", color=colour)
        right.plot(nonzero, [r["unseen"] for r in group], "s", color=colour, fillstyle="none")
    left.set_xscale("log", base=2)
    left.set_xlabel("width (base channels)")
    left.set_ylabel("accuracy")
    left.set_title("accuracy vs width (solid: seen, dashed: unseen devices)")
    left.legend(fontsize=7)
    right.set_xscale("log")
    right.set_xlabel("non-zero parameters")
    right.set_title("accuracy vs non-zero parameters (filled: seen, open: unseen)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def _nan_to_none(value: float) -> float | None:
    return None if isinstance(value, float) and np.isnan(value) else value
