"""Runs of the analysis tools on a user's data and checkpoints, with the tables and plots the CLI writes.

Each function returns plain data (lists of dicts); :mod:`tympan.cli` only formats it. Clips are loaded once,
turned into mel spectrograms with each model's own frontend, and held in memory: these are evaluation-sized
studies (a test split), not training runs over a whole corpus.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from ..audio.frontend import MelFrontend, MelFrontendConfig
from ..data.decode import ClipLoader
from ..data.metadata import ClipTable
from ..errors import AudioLoadError, CheckpointError, DataError
from ..files import atomic_path
from .attribute_probe import LabelledSplit
from .congater import GatedModel
from .robustness import adversarial_risk, pc_stress

__all__ = [
    "CongaterRun",
    "evaluate_congater",
    "labelled_split",
    "plot_congater_tradeoff",
    "plot_risk_curves",
    "robustness_study",
    "train_congater",
]

logger = logging.getLogger(__name__)

ATTRIBUTES = ("device", "city")


def labelled_split(
    table: ClipTable,
    frontend_config: MelFrontendConfig,
    *,
    split: str | None = None,
    seconds: float = 1.0,
    max_clips: int | None = None,
    attribute_names: dict[str, list[str]] | None = None,
) -> tuple[LabelledSplit, dict[str, list[str]], list[str]]:
    """Mel inputs ``[n, 1, n_mels, frames]``, targets and device/city indices of one split, in memory.

    Args:
        max_clips: at most this many clips, a seeded random subset of the split (the same one on every call).
        attribute_names: value names per attribute from another split, so that indices agree between splits.

    Returns:
        the split, the attribute value names used, and the files that could not be read (skipped and logged).
    """
    records = [r for r in table.records if split is None or r.split == split]
    if max_clips is not None and len(records) > max_clips:  # a seeded subset: meta files are often sorted by class
        chosen = np.random.default_rng(0).choice(len(records), max_clips, replace=False)
        records = [records[i] for i in sorted(chosen)]
    if not records:
        raise DataError(f"no clips in split {split!r} of {table.name or 'the data'}")
    names = {a: list((attribute_names or {}).get(a, [])) for a in ATTRIBUTES}
    for attribute in ATTRIBUTES:
        for record in records:
            value = getattr(record, attribute)
            if value and value not in names[attribute]:
                names[attribute].append(value)
    loader = ClipLoader(frontend_config.sample_rate, round(seconds * frontend_config.sample_rate))
    waveforms, kept, failed = [], [], []
    for record in records:
        try:
            waveforms.append(torch.from_numpy(loader(record)))
            kept.append(record)
        except AudioLoadError as error:
            logger.warning("skipping %s", error)
            failed.append(record.source)
    frontend = MelFrontend.from_config(frontend_config).eval()
    with torch.no_grad():
        mel = torch.cat([frontend(chunk).unsqueeze(1) for chunk in torch.stack(waveforms).split(64)])
    attributes = {
        a: torch.tensor([names[a].index(getattr(r, a)) for r in kept])
        for a in ATTRIBUTES
        if all(getattr(r, a) for r in kept)
    }
    targets = torch.tensor([r.targets[0] for r in kept])
    return LabelledSplit(mel, targets, attributes), names, failed


def robustness_study(
    checkpoints: Sequence[str | Path],
    table: ClipTable,
    *,
    split: str | None = "test",
    eps_grid: Sequence[float] = (0.0, 0.01, 0.05, 0.1),
    norm: str = "linf",
    steps: int = 20,
    stress_eps: Sequence[float] = (0.1, 0.5, 1.0),
    stress_directions: int = 100,
    max_clips: int | None = 200,
    seconds: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[dict]:
    """Adversarial risk and prediction-change stress of every checkpoint on the same clips.

    Attacks act on the normalised log-mel input of each model (the spectrogram domain of the paper's audio
    experiments); ε is in those units. Clips are cut or padded to ``seconds`` (default: each model's clip length).
    """
    from ..pipeline import load  # the pipeline pulls in the model zoo; import it only when a study runs

    rows = []
    bar = tqdm(total=len(checkpoints) * (len(eps_grid) + 1), desc="robustness", disable=not progress, file=sys.stderr)
    for checkpoint in checkpoints:
        pipeline = load(checkpoint=checkpoint, device="cpu")
        data, _, _ = labelled_split(
            table, pipeline.frontend_config, split=split, max_clips=max_clips, seconds=seconds or pipeline.clip_seconds
        )
        model = pipeline.model
        batches = list(zip(data.inputs.split(64), data.targets.split(64), strict=True))
        points = []
        for eps in eps_grid:  # one at a time, for the progress bar
            bar.set_postfix_str(f"{Path(checkpoint).name}: PGD ε={eps:g}")
            points += adversarial_risk(model, batches, [eps], norm=norm, steps=steps)
            bar.update()
        bar.set_postfix_str(f"{Path(checkpoint).name}: stress")
        stress = pc_stress(
            model,
            data.inputs,
            stress_eps,
            num_directions=stress_directions,
            generator=torch.Generator().manual_seed(seed),
        )
        rows.append(
            {
                "checkpoint": str(checkpoint),
                "clips": len(data.targets),
                "norm": norm,
                "risk": [{"eps": p.eps, "accuracy": p.accuracy, "risk": p.risk, "loss": p.loss} for p in points],
                "stress": [
                    {"eps": float(e), "mean": float(s)} for e, s in zip(stress_eps, stress.mean(0), strict=True)
                ],
            }
        )
        bar.update()
    bar.close()
    return rows


def plot_risk_curves(rows: Sequence[dict], path: str | Path) -> Path:
    """Accuracy under attack vs ε and stress vs ε, one line per checkpoint."""
    figure = Figure(figsize=(10, 4))
    left, right = figure.subplots(1, 2)
    for row in rows:
        name = Path(row["checkpoint"]).stem if Path(row["checkpoint"]).stem != "model" else row["checkpoint"]
        left.plot([p["eps"] for p in row["risk"]], [p["accuracy"] for p in row["risk"]], marker="o", label=name)
        right.plot([p["eps"] for p in row["stress"]], [p["mean"] for p in row["stress"]], marker="o", label=name)
    left.set(
        xlabel=f"ε ({rows[0]['norm'] if rows else ''}, log-mel units)",
        ylabel="accuracy under PGD",
        title="Adversarial robustness",
        ylim=(0, 1.02),
    )
    right.set(
        xlabel="ε (L2 sphere)", ylabel="share of flipped predictions", title="Prediction-change stress", ylim=(0, 1.02)
    )
    for axis in (left, right):
        axis.grid(alpha=0.3)
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return Path(path)


def plot_congater_tradeoff(rows: Sequence[dict], attribute: str, path: str | Path) -> Path:
    """Task accuracy (overall and per device) and fresh-probe accuracy against ω of ``attribute``."""
    single = [r for r in rows if all(v == 0 for k, v in r["omega"].items() if k != attribute)]
    omegas = [r["omega"].get(attribute, 0.0) for r in single]
    figure = Figure(figsize=(6.5, 4.2))
    axis = figure.subplots()
    axis.plot(omegas, [r["task_accuracy"] for r in single], marker="o", linewidth=2.5, label="task accuracy")
    key = f"{attribute}_probe_balanced_accuracy"
    if single and key in single[0]:
        axis.plot(omegas, [r[key] for r in single], marker="s", linewidth=2.5, label=f"{attribute} probe (balanced)")
    devices = sorted({d for r in single for d in r.get("device_accuracy", {})})
    for device in devices:
        values = [r.get("device_accuracy", {}).get(device, np.nan) for r in single]
        axis.plot(omegas, values, linestyle="--", alpha=0.6, label=f"task, device {device}")
    axis.set(xlabel=f"ω ({attribute})", ylabel="accuracy", ylim=(0, 1.02), title="ConGater trade-off")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return Path(path)


@dataclass
class CongaterRun:
    """A trained gated model and what is needed to rebuild and evaluate it (saved by ``tympan congater train``).

    Attributes:
        model: the gated network (eval mode after loading).
        spec: how to rebuild it: ``model`` (zoo or architecture name), ``model_kwargs``, ``num_classes``,
            ``attributes``, ``placement``.
        names: the value names of every attribute, index ``i`` being the adversaries' class ``i``.
    """

    model: GatedModel
    spec: dict
    names: dict[str, list[str]]

    def save(self, path: str | Path) -> Path:
        """Write the model and its description atomically (no half-written file after a crash)."""
        with atomic_path(path) as temporary:
            torch.save({"congater": self.spec, "names": self.names, "state_dict": self.model.state_dict()}, temporary)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> CongaterRun:
        """Rebuild the gated model of a file written by :meth:`save` (strict state-dict loading)."""
        from ..models import create
        from ..models.checkpoint import read_checkpoint_file

        payload = read_checkpoint_file(path, kind="ConGater checkpoint")
        if not isinstance(payload, dict) or "congater" not in payload:
            raise CheckpointError(f"{path} is not a ConGater checkpoint (written by `tympan congater train`)")
        spec = payload["congater"]
        backbone = create(spec["model"], num_classes=spec["num_classes"], **spec["model_kwargs"])
        model = GatedModel(backbone, spec["attributes"], placement=spec["placement"])
        model.load_state_dict(payload["state_dict"])
        return cls(model.eval(), spec, payload["names"])


def train_congater(
    table: ClipTable,
    *,
    model: str = "passt",
    model_kwargs: dict | None = None,
    placement: str = "last",
    epochs: int = 5,
    batch_size: int = 32,
    adversary_scale: float = 1.0,
    gate_lr: float = 1e-3,
    max_clips: int | None = None,
    seed: int = 0,
) -> CongaterRun:
    """Train a gated model on the ``train`` split: task and gate steps interleaved (the paper's ``"par"`` mode).

    The default backbone is a small PaSST (2 blocks, 64-d, 16×16 patches without overlap) for 1-s clips, which
    trains in minutes on a CPU; pass ``model``/``model_kwargs`` for another one.
    """
    import lightning as L
    from torch.utils.data import DataLoader

    from ..models import create
    from ..train.congater import ConGaterSystem, fit_congater

    L.seed_everything(seed, verbose=False)
    kwargs = model_kwargs or (
        {
            "img_size": (128, 100),
            "patch_size": 16,
            "stride": (16, 16),
            "embed_dim": 64,
            "depth": 2,
            "num_heads": 2,
            "s_patchout_t": 0,
            "s_patchout_f": 0,
        }
        if model == "passt"
        else {}
    )
    backbone = create(model, num_classes=len(table.labels), **kwargs)
    train, names, _ = labelled_split(table, backbone.frontend_config, split="train", max_clips=max_clips)
    attributes = [a for a in ATTRIBUTES if a in train.attributes]
    if not attributes:
        raise DataError("the data has no device or city column to control; ConGater needs at least one")
    gated = GatedModel(backbone, attributes, placement=placement)
    system = ConGaterSystem(
        gated, {a: len(names[a]) for a in attributes}, mode="par", adversary_scale=adversary_scale, gate_lr=gate_lr
    )
    items = [
        {"mel": mel, "target": target, **{f"{a}_index": train.attributes[a][i] for a in attributes}}
        for i, (mel, target) in enumerate(zip(train.inputs, train.targets, strict=True))
    ]
    loader = DataLoader(items, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    fit_congater(system, loader, epochs=epochs)
    spec = {
        "model": model,
        "model_kwargs": kwargs,
        "num_classes": len(table.labels),
        "attributes": attributes,
        "placement": placement,
    }
    return CongaterRun(gated.eval(), spec, {a: names[a] for a in attributes})


def evaluate_congater(
    run: CongaterRun,
    table: ClipTable,
    *,
    omegas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    max_clips: int | None = None,
    probe_epochs: int = 60,
    seed: int = 0,
    progress: bool = False,
) -> list[dict]:
    """Sweep ω per attribute: task accuracy on ``test`` and fresh probes trained on ``train``, scored on ``test``."""
    from .attribute_probe import congater_sweep

    config = run.model.backbone.frontend_config
    train, names, _ = labelled_split(table, config, split="train", max_clips=max_clips, attribute_names=run.names)
    test, names, _ = labelled_split(table, config, split="test", max_clips=max_clips, attribute_names=names)
    attributes = [a for a in run.spec["attributes"] if a in train.attributes and a in test.attributes]
    if not attributes:
        raise DataError(f"the data has none of the gated attributes {run.spec['attributes']} in both splits")
    grid = [{}] + [{a: float(w)} for a in attributes for w in omegas if w != 0]
    rows = congater_sweep(
        run.model,
        train,
        test,
        grid,
        device_names=names.get("device"),
        probe_epochs=probe_epochs,
        seed=seed,
        progress=progress,
    )
    for row in rows:
        row["omega"] = {a: row["omega"].get(a, 0.0) for a in attributes}
    return rows
