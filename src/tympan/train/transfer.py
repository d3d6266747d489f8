"""Transfer from pretrained weights: which keys are the classifier, strict loading of everything else, the parameter
groups of fine-tuning and the backbone's BatchNorm layers.

Fine-tuning a network trained on other labels changes three things and keeps the rest:

* the **classifier** is re-initialised when the new label set differs from the checkpoint's (another class count,
  or other names where the checkpoint records them); every other tensor loads strictly, so a wrong model name or
  width still fails loudly. The classifier is found without a table of head names: it is exactly what the family's
  ``reset_classifier`` replaces (one linear layer of an MLP head, PaSST's two heads, CP-Mobile's conv + BN);
* the **learning rates**: the fresh head starts from nothing and learns at the peak rate, the backbone, already
  good, at a fraction of it (``backbone_lr_factor``), and optionally each earlier layer at a further ``layer_decay``
  (layer-wise rate decay, as BEiT / data2vec fine-tuning does);
* the **BatchNorm statistics** of the backbone, estimated on a large data set, are better than what a batch of a
  few clips can estimate: :func:`backbone_norms` names the layers to keep in eval mode while training.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..models.checkpoint import load_checkpoint, prepare_state_dict, read_checkpoint_file
from ..models.registry import CheckpointFilter
from ..models.tympan_checkpoint import is_tympan_checkpoint, read_checkpoint

__all__ = ["backbone_norms", "classifier_keys", "load_pretrained", "parameter_groups"]

logger = logging.getLogger(__name__)


def classifier_keys(model: nn.Module) -> list[str]:
    """State-dict keys of ``model``'s classifier: the tensors that ``reset_classifier`` replaces (found on a copy).

    Raises:
        AttributeError: the model has no ``reset_classifier``.
    """
    probe = copy.deepcopy(model)
    before = probe.state_dict(keep_vars=True)
    probe.reset_classifier(probe.num_classes)
    return [key for key, value in probe.state_dict(keep_vars=True).items() if before.get(key) is not value]


def load_pretrained(
    model: nn.Module,
    source: str | Path | Mapping[str, Any],
    labels: Sequence[str] | None = None,
    *,
    checkpoint_labels: Sequence[str] | None = None,
    filter_fn: CheckpointFilter | None = None,
) -> list[str]:
    """Load pretrained weights into ``model``, already headed for ``labels``; returns the re-initialised keys.

    The checkpoint's classifier is kept only when it fits the model's head and, where both label sets are known,
    names the same labels in the same order; otherwise the model keeps its fresh head and the log names its keys.
    Every other key loads strictly.

    Args:
        model: the network with its (possibly new) head.
        source: a checkpoint file or state dict (any layout :func:`tympan.models.checkpoint.read_state_dict` reads).
        labels: the new label set, in head order.
        checkpoint_labels: the checkpoint's label set when the caller knows it (a preset's labels); a self-describing
            tympan checkpoint records its own, which take precedence.
        filter_fn: the family's checkpoint conversion.

    Raises:
        CheckpointError: anything but the classifier does not fit.
    """
    content = read_checkpoint_file(source) if isinstance(source, (str, Path)) else source
    if is_tympan_checkpoint(content):
        stored = read_checkpoint(content)
        content, checkpoint_labels = stored.state_dict, stored.spec.labels
    state = prepare_state_dict(model, content, filter_fn)
    head, expected = classifier_keys(model), model.state_dict()
    fits = all(key in state and state[key].shape == expected[key].shape for key in head)
    same_labels = labels is None or checkpoint_labels is None or list(labels) == list(checkpoint_labels)
    if fits and same_labels:
        load_checkpoint(model, state)
        return []
    load_checkpoint(model, state, reinitialise=head)
    reason = "other labels" if fits else "another number of classes"
    logger.info("re-initialised the classifier (the checkpoint's head is for %s): %s", reason, ", ".join(head))
    return head


def parameter_groups(
    model: nn.Module,
    head: Sequence[str],
    lr: float,
    backbone_lr_factor: float = 1.0,
    layer_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the head at ``lr``, the backbone at ``lr × backbone_lr_factor``.

    With ``layer_decay`` the backbone's last layer keeps that rate and each earlier one gets ``layer_decay`` times
    the rate of the next. Layers are the model's direct children, with containers (``nn.Sequential``,
    ``nn.ModuleList``) opened one level, in registration order; parameters owned by the model itself (PaSST's
    tokens and positional embeddings) count as the first layer.
    """
    head_names = set(head)
    layers = _layers(model)
    rates: dict[int, list[nn.Parameter]] = {}
    head_params = []
    for name, parameter in model.named_parameters():
        if name in head_names:
            head_params.append(parameter)
        elif parameter.requires_grad:
            rates.setdefault(_layer_index(name, layers), []).append(parameter)
    last = max(rates, default=0)
    groups = [
        {"params": params, "lr": lr * backbone_lr_factor * (layer_decay or 1.0) ** (last - index)}
        for index, params in sorted(rates.items())
    ]
    return groups + ([{"params": head_params, "lr": lr}] if head_params else [])


def backbone_norms(model: nn.Module, head: Sequence[str]) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers outside the classifier (the ones whose statistics came with the pretrained weights)."""
    head_modules = {key.rsplit(".", 1)[0] for key in head}
    return [
        module
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and name not in head_modules
    ]


def _layers(model: nn.Module) -> list[str]:
    """Module-name prefixes of the layers, in order (see :func:`parameter_groups`)."""
    names = []
    for name, child in model.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
            names.extend(f"{name}.{inner}" for inner, _ in child.named_children())
        else:
            names.append(name)
    return names


def _layer_index(parameter: str, layers: Sequence[str]) -> int:
    """1-based index of the layer holding ``parameter``; 0 for parameters of the model itself."""
    return next((i + 1 for i, prefix in enumerate(layers) if parameter.startswith(prefix + ".")), 0)
