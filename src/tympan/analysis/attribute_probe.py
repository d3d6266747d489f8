"""How much attribute information is left in an embedding: fresh attacker probes over a grid of ConGater ω.

As the reference's ``attack_congater.py``: freeze the network; for every ω, train a *new* MLP attacker
(dim → dim ReLU → classes) on the training-split embeddings to predict the attribute, and report its accuracy and
balanced accuracy on the test split next to the task accuracy (overall and per device). A co-trained adversary
is no evidence of removal; a fresh probe is.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import Tensor, nn
from tqdm.auto import tqdm

from .congater import GatedModel, recorded_gates

__all__ = ["LabelledSplit", "congater_sweep", "embed", "omega_grid", "train_probe"]


@dataclass(frozen=True)
class LabelledSplit:
    """Model inputs with their task targets and attribute labels (e.g. ``{"device": ..., "city": ...}``)."""

    inputs: Tensor
    targets: Tensor
    attributes: Mapping[str, Tensor]


@torch.no_grad()
def embed(model: GatedModel, inputs: Tensor, omega: Mapping[str, float], batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Embeddings and logits of ``inputs`` at ``omega``, in eval mode."""
    model.eval()
    features = torch.cat([model.forward_features(chunk, omega) for chunk in inputs.split(batch_size)])
    return features, model.backbone.forward_head(features)


def train_probe(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    epochs: int = 60,
    batch_size: int = 80,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """A fresh attacker MLP trained (AdamW) to predict ``labels`` from frozen ``features``."""
    dim = features.shape[1]
    probe = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, num_classes))
    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator)
        for batch in order.split(batch_size):
            optimizer.zero_grad()
            F.cross_entropy(probe(features[batch]), labels[batch]).backward()
            optimizer.step()
    return probe.eval()


def _accuracy(predicted: Tensor, target: Tensor) -> float:
    return float((predicted == target).float().mean())


def congater_sweep(
    model: GatedModel,
    train: LabelledSplit,
    test: LabelledSplit,
    omegas: Sequence[Mapping[str, float]],
    *,
    device_names: Sequence[str] | None = None,
    probe_epochs: int = 60,
    seed: int = 0,
    progress: bool = False,
) -> list[dict]:
    """One row per ω setting: task accuracy (overall, per device) and fresh-probe accuracy per attribute.

    Probes are trained on ``train`` and scored on the test examples whose attribute value occurs in ``train``.

    Returns:
        rows with keys ``omega`` (dict), ``task_accuracy``, ``device_accuracy`` (name → accuracy, when the test split
        has a ``device`` attribute), ``gate_mean`` / ``gate_share_below_half`` (the gate values applied to the test
        clips; 1 / 0 at ω = 0) and, per attribute, ``probe_accuracy`` / ``probe_balanced_accuracy``.
    """
    rows = []
    for omega in tqdm(omegas, desc="omega sweep", disable=not progress, file=sys.stderr):
        train_features, _ = embed(model, train.inputs, omega)
        with recorded_gates(model) as gates:
            test_features, test_logits = embed(model, test.inputs, omega)
        values = torch.cat([g.flatten() for g in gates]) if gates else torch.ones(1)
        predicted = test_logits.argmax(1)
        row: dict = {
            "omega": dict(omega),
            "task_accuracy": _accuracy(predicted, test.targets),
            "gate_mean": float(values.mean()),
            "gate_share_below_half": float((values < 0.5).float().mean()),
        }
        if "device" in test.attributes:
            devices = test.attributes["device"]
            names = device_names or [str(i) for i in range(int(devices.max()) + 1)]
            row["device_accuracy"] = {
                names[d]: _accuracy(predicted[devices == d], test.targets[devices == d])
                for d in devices.unique().tolist()
            }
        for name, labels in train.attributes.items():
            num_classes = int(max(labels.max(), test.attributes[name].max())) + 1
            generator = torch.Generator().manual_seed(seed)  # the same fresh start for every ω
            probe = train_probe(train_features, labels, num_classes, epochs=probe_epochs, generator=generator)
            truth = test.attributes[name]
            seen = torch.isin(truth, labels)  # a probe cannot name values it never saw (e.g. unseen devices)
            with torch.no_grad():
                guess = probe(test_features[seen]).argmax(1)
            truth = truth[seen]
            row[f"{name}_probe_accuracy"] = _accuracy(guess, truth)
            row[f"{name}_probe_balanced_accuracy"] = float(balanced_accuracy_score(truth.numpy(), guess.numpy()))
        rows.append(row)
    return rows


def omega_grid(attributes: Sequence[str], values: Sequence[float]) -> list[dict[str, float]]:
    """Every combination of ``values`` for the attributes (ω = 0 everywhere first)."""
    grids = np.meshgrid(*[np.asarray(values, dtype=float)] * len(attributes), indexing="ij")
    combos = np.stack([g.ravel() for g in grids], axis=1)
    return [dict(zip(attributes, map(float, combo), strict=True)) for combo in combos]
