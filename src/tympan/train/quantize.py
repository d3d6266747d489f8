"""Quantisation-aware fine-tuning and int8 export for the low-complexity track (DCASE23 ``run_qat.py``).

The reference folds BatchNorm into the convs (eval-mode ``fuse_modules`` on Conv + BN (+ ReLU)), prepares the network
for QAT with the fbgemm qconfig, fine-tunes it with the same loss (observers frozen for the last 4 of 20 epochs) and
converts it to int8; the global response norm (GRN) is computed in float between a dequantise and a quantise.

``tympan`` follows the recipe on torchao's PT2E flow (eager-mode ``torch.ao.quantization`` is deprecated):
:func:`fold_batchnorm` folds each BN into the conv that feeds it, ``torch.export`` captures the network (batch and
frame count dynamic), torchao's ``X86InductorQuantizer`` annotates the graph (per-channel int8 weights, uint8
activations; Conv + ReLU and Conv + add (+ ReLU) quantised as one fused op; every GRN left in float) and
``prepare_qat_pt2e`` inserts the fake quantisers. Fine-tuning is an ordinary :class:`~tympan.train.SceneSystem` run
through Lightning; ``convert_pt2e`` gives the int8 graph, saved as an exported program (``torch.export.save``) with a
JSON sidecar. :func:`quantize` reports accuracy and complexity of the float and the int8 model on the same clips.

The int8 graph computes with int8 kernels only when compiled: ``torch.compile(model)`` (with
``torch._inductor.config.freezing = True``) lowers its quantise / dequantise patterns to oneDNN int8 convolutions
(VNNI / AMX on recent x86 CPUs). Run eagerly it simulates int8 with float convolutions and is slower than float.

torchao is imported on first use: the import takes seconds and the x86 quantizer registers inductor passes globally.
"""

from __future__ import annotations

import copy
import io
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.export import Dim
from torch.fx import GraphModule
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import ConfigError
from ..files import write_atomically
from ..models.bundles import bundle
from ..models.cp_mobile import GlobalResponseNorm
from ..models.spec import spec_of
from ..models.tympan_checkpoint import TympanCheckpoint, plain_modes, read_int8, save_int8

__all__ = [
    "QuantParamFreeze",
    "QuantizeResult",
    "convert_int8",
    "evaluate_models",
    "fold_batchnorm",
    "load_quantized",
    "prepare_qat",
    "quantize",
    "save_quantized",
]

logger = logging.getLogger(__name__)

FLOAT_MODULES = (GlobalResponseNorm,)  # left in float, as the reference's dequantise / quantise around GRN
# Batch and frame count stay symbolic (inferred ranges: a network that needs a minimum length gets one).
_DYNAMIC = ({0: Dim.AUTO, 3: Dim.AUTO},)


def fold_batchnorm(model: nn.Module, example: Tensor) -> nn.Module:
    """An eval-mode copy of ``model`` where each ``BatchNorm2d`` that normalises the output of a ``Conv2d`` is
    folded into that conv (and replaced by ``Identity``); the pairs are found by running ``example`` through it.

    Raises:
        ConfigError: the folded copy does not reproduce ``model`` (a conv output that is also used unnormalised).
    """
    folded = copy.deepcopy(model).eval()
    names = {module: name for name, module in folded.named_modules()}
    last: dict[str, tuple[nn.Module, Tensor]] = {}
    pairs: list[tuple[str, str]] = []

    def after_conv(conv: nn.Module, args: Any, output: Tensor) -> None:
        last["conv"] = (conv, output)

    def before_norm(norm: nn.Module, args: tuple[Tensor, ...]) -> None:
        if "conv" in last and args[0] is last["conv"][1]:
            pairs.append((names[last["conv"][0]], names[norm]))

    hooks = [m.register_forward_hook(after_conv) for m in folded.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_pre_hook(before_norm) for m in folded.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        expected = folded(example)
    for hook in hooks:
        hook.remove()
    for conv, norm in pairs:
        folded.set_submodule(conv, fuse_conv_bn_eval(folded.get_submodule(conv), folded.get_submodule(norm)))
        folded.set_submodule(norm, nn.Identity())
    with torch.no_grad():
        error = (folded(example) - expected).abs().max().item()
    if error > 1e-4 * (1 + expected.abs().max().item()):
        raise ConfigError(f"folding BatchNorm into the convs changed the outputs by {error:.2e}; this network uses a "
                          "conv output both normalised and not, which quantisation does not support")  # fmt: skip
    return folded


def _quantizer(model: nn.Module) -> Any:
    """The X86 inductor QAT recipe, with the :data:`FLOAT_MODULES` of ``model`` excluded."""
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config(is_qat=True))
    for name, module in model.named_modules():
        if isinstance(module, FLOAT_MODULES):
            quantizer.set_module_name_qconfig(name, None)
    return quantizer


def _carry(graph: GraphModule, source: nn.Module) -> GraphModule:
    """``graph`` with ``source``'s spec and sizes (``num_classes``, ``num_features``): what the training systems
    read from a network."""
    graph.spec = spec_of(source)
    graph.num_classes, graph.num_features = source.num_classes, source.num_features
    return graph


def prepare_qat(model: nn.Module, example: Tensor) -> GraphModule:
    """A QAT-ready graph of ``model``: BatchNorm folded, exported on ``example`` (``[batch >= 2, 1, mels, frames]``;
    batch and frames stay dynamic), fake quantisers inserted; in train mode, ``model`` itself untouched.

    The graph carries ``spec`` and ``num_classes``, so the training systems accept it like any network.
    """
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    folded = fold_batchnorm(model, example)
    program = torch.export.export(folded, (example,), dynamic_shapes=_DYNAMIC)
    return plain_modes(_carry(prepare_qat_pt2e(program.module(), _quantizer(folded)), model)).train()


def convert_int8(qat_model: GraphModule) -> GraphModule:
    """The int8 graph (CPU, eval) of a graph from :func:`prepare_qat`, which is left as it is."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    int8 = convert_pt2e(copy.deepcopy(qat_model).cpu())
    _drop_unused_tensors(int8)
    return plain_modes(_carry(int8, qat_model)).eval()


def _drop_unused_tensors(graph: GraphModule) -> None:
    """Remove the float weights that the int8 graph no longer reads (they would be exported and saved)."""
    used = {node.target for node in graph.graph.nodes if node.op == "get_attr"}
    unused = [name for name, _ in [*graph.named_parameters(), *graph.named_buffers()] if name not in used]
    for name in unused:
        owner, _, attribute = name.rpartition(".")
        delattr(graph.get_submodule(owner), attribute)


class QuantParamFreeze(Callback):
    """From epoch ``freeze_epoch`` (0-based) on: observers off, i.e. fixed scales and zero points, as the reference's
    ``QuantParamFreezeCallback`` does for the last 4 of 20 epochs (its BN freeze has nothing to do: BN is folded)."""

    def __init__(self, freeze_epoch: int) -> None:
        self.freeze_epoch = freeze_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from torchao.quantization.pt2e import disable_observer

        if trainer.current_epoch >= self.freeze_epoch:
            pl_module.model.apply(disable_observer)

    def state_dict(self) -> dict[str, Any]:
        return {"freeze_epoch": self.freeze_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.freeze_epoch = state_dict["freeze_epoch"]


def save_quantized(int8: GraphModule, example: Tensor, path: str | Path, checkpoint: TympanCheckpoint) -> Path:
    """Write ``int8`` as an exported program (``path``, e.g. ``model_int8.pt2``) with ``checkpoint``'s spec, metrics
    and provenance as its JSON sidecar (:func:`tympan.models.tympan_checkpoint.save_int8`)."""
    program = torch.export.export(int8, (example,), dynamic_shapes=_DYNAMIC)
    return save_int8(program, path, checkpoint)


def load_quantized(path: str | Path) -> nn.Module:
    """The int8 model written by :func:`quantize` (CPU, eval), owning its ``spec``, with ``frontend_config``,
    ``num_classes`` and ``labels`` for older callers; wrap it in ``torch.compile`` for int8 speed (see the module
    notes). ``tympan.models.bundle(path)`` gives it with its frontend."""
    model, stored = read_int8(path)
    model.frontend_config, model.labels = stored.spec.frontend, list(stored.spec.labels)
    model.num_classes = stored.spec.num_classes
    return model


def _tensor_bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, Tensor))


def _serialised_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@torch.no_grad()
def evaluate_models(
    models: dict[str, nn.Module], frontend: nn.Module, loader: Any, device_names: list[str], labels: list[str]
) -> dict[str, dict[str, Any]]:
    """Accuracy (overall and per device) of each model on the clips of ``loader``, on CPU, plus the agreement of
    every model's predictions with the first one's."""
    from ..eval.metrics import classification_metrics

    frontend = frontend.cpu().eval()
    scores: dict[str, list[Tensor]] = {name: [] for name in models}
    targets, devices = [], []
    for batch in loader:
        if batch is None:
            continue
        mel = frontend(batch["audio"].cpu()).unsqueeze(1)
        for name, model in models.items():
            scores[name].append(model.cpu().eval()(mel).float())
        targets.append(batch["target"])
        devices += [device_names[i] if i >= 0 else "" for i in batch["device_index"].tolist()]
    if not targets:
        raise ConfigError("no clips to evaluate on; the data needs a validation or test split")
    target = torch.cat(targets).numpy()
    first = None
    results = {}
    for name, parts in scores.items():
        logits = torch.cat(parts).numpy()
        predictions = logits.argmax(axis=1)
        first = predictions if first is None else first
        result = classification_metrics(target, logits, labels, devices if device_names else None)
        results[name] = {
            "accuracy": float(result["accuracy"]),
            "accuracy_per_device": {k: float(v) for k, v in result.get("accuracy_per_device", {}).items() if k},
            "agreement": float(np.mean(predictions == first)),
        }
    return results


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize` measured; ``float`` and ``int8`` hold accuracy and complexity of each model.

    Each of ``float`` / ``int8`` has ``accuracy``, ``accuracy_per_device``, ``agreement`` (share of clips where the
    prediction equals the float model's), ``params``, ``macs`` (DCASE rule, 1 s; the int8 figures are those of the
    BN-folded network it was converted from), ``weight_bytes`` (float: the parameters; int8: every tensor of the
    program: int8 weights, float biases and GRN scalars, per-channel scales and zero points) and ``state_bytes``
    (float: the serialised state dict; int8: the ``.pt2`` file).
    """

    float: dict[str, Any]
    int8: dict[str, Any]
    qat_metrics: dict[str, float]
    model_path: Path
    output_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_path": str(self.model_path), "output_dir": str(self.output_dir)}


def quantize(
    checkpoint: str | Path,
    data: str | Path,
    *,
    epochs: int = 20,
    output: str | Path = "quantized",
    batch_size: int = 64,
    lr: float = 5e-5,
    weight_decay: float = 1e-4,
    freeze_epochs: int | None = None,
    clip_seconds: float | None = None,
    num_workers: int = 0,
    accelerator: str = "auto",
    seed: int = 0,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    calibration_batches: int = 8,
    system_kwargs: dict[str, Any] | None = None,
) -> QuantizeResult:
    """Quantisation-aware fine-tuning of a trained scene model, then int8 conversion and a before / after report.

    The recipe is the reference's QAT run scaled to ``epochs``: Adam at ``lr`` (L2 ``weight_decay``), no warm-up,
    linear decay to 0.1 from epoch 1 over 80 % of the epochs, observers frozen for the last ``freeze_epochs``
    (default ``epochs // 5``). Writes ``output/model_int8.pt2`` with its sidecar ``output/model_int8.json`` (read
    them with :func:`load_quantized`) and ``output/quantize.json``.

    Args:
        checkpoint: a self-describing tympan checkpoint of the float model (``tympan finetune``, the training
            systems' ``model.ckpt``).
        data: labelled clips as :class:`~tympan.data.AudioDataModule` reads them; the validation split (or the
            test split as the DCASE data has it) is where both models are evaluated.
        epochs: QAT epochs (at least 1).
        output: run folder.
        batch_size, clip_seconds, num_workers, accelerator, seed, progress, cache_dir: as in
            :func:`~tympan.train.finetune`.
        calibration_batches: training batches that set the observers' ranges (eval mode, no updates) before
            fine-tuning; the moving-average observers would otherwise start from whatever they see first.
        system_kwargs: further :class:`~tympan.train.SceneSystem` arguments (KD from teacher logits, augmentation).

    Raises:
        CheckpointError: the checkpoint is not a self-describing tympan checkpoint.
        ConfigError: bad settings, or a network that cannot be folded or exported.
    """
    import torchao

    from ..data.datamodule import AudioDataModule
    from ..eval.complexity import measure
    from .systems import SceneSystem

    if epochs < 1:
        raise ConfigError(f"QAT needs at least 1 epoch, got {epochs}")
    freeze_epochs = epochs // 5 if freeze_epochs is None else freeze_epochs
    if not 0 <= freeze_epochs < epochs:
        raise ConfigError(f"freeze_epochs must be in [0, epochs), got {freeze_epochs} for {epochs} epochs")
    L.seed_everything(seed, workers=True, verbose=False)
    output = Path(output)
    source = bundle(checkpoint)
    float_model, float_frontend = source.get_model(), source.get_frontend()
    labels = source.labels

    module = AudioDataModule(
        str(data),
        labels=labels,
        sample_rate=source.sample_rate,
        clip_seconds=clip_seconds,
        batch_size=batch_size,
        num_workers=num_workers,
        cache_dir=str(cache_dir or output / "cache"),
        seed=seed,
    )
    module.setup("fit")
    frontend = source.spec.frontend
    frames = frontend.num_frames(round(module.clip_seconds * frontend.sample_rate))
    example = torch.randn(2, 1, frontend.n_mels, frames, generator=torch.Generator().manual_seed(seed))
    qat_model = prepare_qat(float_model, example)
    _calibrate(qat_model, float_frontend, module.train_dataloader(), calibration_batches)
    kwargs = {
        "labels": labels,
        "lr": lr,
        "weight_decay": weight_decay,
        "rampdown_start": min(1, epochs - 1),
        "rampdown_epochs": max(1, round(0.8 * epochs)),
        "last_lr_factor": 0.1,
        "seed": seed,
        **(system_kwargs or {}),
    }
    system = SceneSystem(qat_model, **kwargs)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        callbacks=[QuantParamFreeze(epochs - freeze_epochs)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(system, datamodule=module)
    qat_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    int8_model = convert_int8(system.model)

    loader = module.val_dataloader() or module.test_dataloader()
    if not loader:
        raise ConfigError(f"{data} has no validation or test clips to compare the float and int8 models on")
    scores = evaluate_models(
        {"float": float_model, "int8": int8_model}, float_frontend, loader, module.device_names, labels
    )
    shape = (1, 1, frontend.n_mels, frontend.num_frames(frontend.sample_rate))
    plain, folded = measure(float_model, shape), measure(fold_batchnorm(float_model, example), shape)
    model_path = output / "model_int8.pt2"
    quantized = {"flow": "torchao PT2E, X86InductorQuantizer", "torchao": torchao.__version__, "epochs": epochs,
                 "freeze_epochs": freeze_epochs}  # fmt: skip
    stored = source.checkpoint
    provenance = {**(stored.provenance if stored is not None else {}), "quantized": quantized}
    save_quantized(int8_model, example, model_path, TympanCheckpoint(source.spec, {}, qat_metrics, provenance))
    program = torch.export.load(model_path)
    figures = {
        "float": {
            **scores["float"],
            "params": plain.params,
            "macs": plain.macs,
            "weight_bytes": _tensor_bytes(float_model.parameters()),
            "state_bytes": _serialised_bytes(float_model),
        },
        "int8": {
            **scores["int8"],
            "params": folded.params,
            "macs": folded.macs,
            "weight_bytes": _tensor_bytes([*program.state_dict.values(), *program.constants.values()]),
            "state_bytes": model_path.stat().st_size,
        },
    }
    result = QuantizeResult(figures["float"], figures["int8"], qat_metrics, model_path, output)
    write_atomically(output / "quantize.json", json.dumps(result.to_dict(), indent=2) + "\n")
    logger.info("int8 model written to %s", model_path)
    return result


@torch.no_grad()
def _calibrate(qat_model: nn.Module, frontend: nn.Module, loader: Any, batches: int) -> None:
    frontend = frontend.cpu().eval()
    for index, batch in enumerate(loader):
        if index >= batches:
            break
        if batch is not None:
            qat_model(frontend(batch["audio"]).unsqueeze(1))
