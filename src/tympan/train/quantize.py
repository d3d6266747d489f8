"""Quantisation-aware fine-tuning and int8 export for the low-complexity track (DCASE23 ``run_qat.py``).

The reference takes the trained float CP-Mobile, fuses Conv + BN (+ ReLU), prepares it for QAT with the fbgemm
qconfig, fine-tunes it for 20 epochs with the same loss (observers and BN statistics frozen for the last epochs),
then converts it to int8 with ``torch.ao.quantization.convert``. Residual additions go through ``FloatFunctional``
and the global response norm is computed in float between a dequantise and a quantise.

``tympan`` does the same without touching the model classes: :func:`make_quantisable` swaps each CP-Mobile block /
CP-ResNet block for a twin with the same sub-modules whose additions and float islands eager-mode quantisation can
handle, fuses the conv groups and wraps the network in a quant / dequant pair. Fine-tuning is an ordinary
:class:`~tympan.train.SceneSystem` run through Lightning; :func:`quantize` reports accuracy and complexity of the
float and the int8 model on the same clips.
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
from torch.ao import quantization as tq
from torch.ao.nn.intrinsic import qat as nniqat
from torch.ao.nn.quantized import FloatFunctional

from ..errors import CheckpointError, ConfigError
from ..files import atomic_path
from ..models.cp_mobile import CPMobileBlock
from ..models.cp_resnet import BasicBlock

__all__ = [
    "QuantParamFreeze",
    "QuantisableNet",
    "QuantizeResult",
    "convert_int8",
    "evaluate_models",
    "load_quantized",
    "make_quantisable",
    "prepare_qat",
    "quantize",
    "state_bytes",
]

logger = logging.getLogger(__name__)

DEFAULT_ENGINE = "x86"  # fbgemm's successor on x86 CPUs; "fbgemm" gives the reference's qconfig


class _FloatIsland(nn.Module):
    """Runs ``inner`` in float: dequantise, compute, quantise again (with its own observer)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.dequant = tq.DeQuantStub()
        self.inner = inner
        self.quant = tq.QuantStub()

    def forward(self, x: Tensor) -> Tensor:
        return self.quant(self.inner(self.dequant(x)))


class _QuantisableCPMobileBlock(nn.Module):
    """:class:`CPMobileBlock` with the residual add through ``FloatFunctional`` and GRN computed in float."""

    def __init__(self, block: CPMobileBlock) -> None:
        super().__init__()
        self.block = block.block
        self.shortcut = block.shortcut
        norm = block.after_block_norm
        self.after_block_norm = norm if isinstance(norm, nn.Identity) else _FloatIsland(norm)
        self.after_block_activation = block.after_block_activation
        self.add = FloatFunctional() if block.shortcut is not None else None  # an unused observer breaks convert

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        if self.shortcut is not None:
            y = self.add.add(y, self.shortcut(x))
        return self.after_block_activation(self.after_block_norm(y))


class _QuantisableBasicBlock(nn.Module):
    """CP-ResNet's :class:`BasicBlock` with ``add + ReLU`` through ``FloatFunctional`` (fusable, quantisable)."""

    def __init__(self, block: BasicBlock) -> None:
        super().__init__()
        for name in ("conv1", "bn1", "relu1", "conv2", "bn2", "shortcut"):
            setattr(self, name, getattr(block, name))
        self.add_relu = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.add_relu.add_relu(y, self.shortcut(x))

    def fusion_groups(self) -> list[list[str]]:
        return [["conv1", "bn1", "relu1"], ["conv2", "bn2"]]


_TWINS: dict[type[nn.Module], type[nn.Module]] = {
    CPMobileBlock: _QuantisableCPMobileBlock,
    BasicBlock: _QuantisableBasicBlock,
}


class QuantisableNet(nn.Module):
    """``dequant(net(quant(mel)))``; carries the float model's ``frontend_config``, ``num_classes`` and how to
    rebuild it, so the training systems accept it like any tympan network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.net = net
        self.dequant = tq.DeQuantStub()
        for name in ("frontend_config", "num_classes", "num_features", "preset", "tympan_arch", "tympan_model_kwargs"):
            if hasattr(net, name):
                setattr(self, name, getattr(net, name))

    def forward(self, mel: Tensor) -> Tensor:
        return self.dequant(self.net(self.quant(mel)))

    def reset_classifier(self, num_classes: int) -> None:
        raise ConfigError("re-head the float model before quantisation-aware training, not the prepared one")


def _swap_blocks(module: nn.Module) -> None:
    for name, child in module.named_children():
        twin = _TWINS.get(type(child))
        if twin is not None:
            setattr(module, name, twin(child))
        _swap_blocks(getattr(module, name))


def _fusion_groups(sequential: nn.Sequential) -> list[list[str]]:
    """``[conv, bn]`` and ``[conv, bn, relu]`` runs of consecutive children."""
    names = list(sequential._modules)
    groups = []
    for i, name in enumerate(names[:-1]):
        if isinstance(sequential._modules[name], nn.Conv2d) and isinstance(
            sequential._modules[names[i + 1]], nn.BatchNorm2d
        ):
            group = [name, names[i + 1]]
            if i + 2 < len(names) and isinstance(sequential._modules[names[i + 2]], nn.ReLU):
                group.append(names[i + 2])
            groups.append(group)
    return groups


def _fuse(model: nn.Module) -> None:
    for module in list(model.modules()):
        groups = module.fusion_groups() if hasattr(module, "fusion_groups") else []
        if isinstance(module, nn.Sequential):
            groups = _fusion_groups(module)
        if groups:
            tq.fuse_modules(module, groups, inplace=True)


def make_quantisable(model: nn.Module) -> QuantisableNet:
    """An eval-mode float copy of ``model`` ready for ``prepare_qat``: block twins, Conv + BN (+ ReLU) fused,
    wrapped in quant / dequant stubs. Its outputs equal ``model``'s in eval mode up to float rounding.

    Supported: CP-Mobile, CP-ResNet and networks whose additions are inside such blocks (plain conv / linear
    stacks). Other networks fail later, in ``convert`` or the int8 forward.
    """
    net = copy.deepcopy(model).eval()
    _swap_blocks(net)
    _fuse(net)
    return QuantisableNet(net).eval()


def prepare_qat(model: nn.Module, engine: str = DEFAULT_ENGINE) -> QuantisableNet:
    """:func:`make_quantisable` then ``torch.ao.quantization.prepare_qat`` with the default QAT qconfig of
    ``engine`` (``"x86"`` or ``"fbgemm"`` for servers, ``"qnnpack"`` for ARM); returned in train mode."""
    if engine not in torch.backends.quantized.supported_engines:
        raise ConfigError(
            f"quantisation engine {engine!r} is not available in this torch build; "
            f"use one of {torch.backends.quantized.supported_engines}"
        )
    wrapped = make_quantisable(model)
    wrapped.qconfig = tq.get_default_qat_qconfig(engine)
    wrapped.qengine = engine
    wrapped.train()
    return tq.prepare_qat(wrapped, inplace=True)


def convert_int8(qat_model: nn.Module) -> nn.Module:
    """An int8 copy (CPU, eval) of a QAT-prepared model; the QAT model itself is left as it is."""
    engine = getattr(qat_model, "qengine", DEFAULT_ENGINE)
    torch.backends.quantized.engine = engine
    int8 = tq.convert(copy.deepcopy(qat_model).cpu().eval(), inplace=False)
    int8.qengine = engine
    return int8


class QuantParamFreeze(Callback):
    """From epoch ``freeze_epoch`` (0-based) on: observers off (fixed scales / zero points) and BN statistics frozen,
    as the reference's ``QuantParamFreezeCallback`` does for the last 4 of 20 epochs."""

    def __init__(self, freeze_epoch: int) -> None:
        self.freeze_epoch = freeze_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= self.freeze_epoch:
            pl_module.model.apply(tq.disable_observer)
            pl_module.model.apply(nniqat.freeze_bn_stats)

    def state_dict(self) -> dict[str, Any]:
        return {"freeze_epoch": self.freeze_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.freeze_epoch = state_dict["freeze_epoch"]


def state_bytes(model: nn.Module) -> int:
    """Size in bytes of ``model``'s serialised state dict (what a deployment would store)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def _weight_bytes(model: nn.Module) -> int:
    """Bytes of the stored weights and biases (int8 tensors count 1 byte per element, float32 biases 4)."""
    total = 0
    for key, value in model.state_dict().items():
        if key.endswith("_packed_params") and isinstance(value, tuple):
            value = [v for v in value if isinstance(v, Tensor)]
        values = value if isinstance(value, list) else [value]
        for tensor in values:
            if isinstance(tensor, Tensor) and (key.endswith(("weight", "bias", "gamma", "beta", "_packed_params"))):
                total += tensor.numel() * tensor.element_size()
    return total


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
    fused network it was converted from), ``weight_bytes`` and ``state_bytes``.
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
    engine: str = DEFAULT_ENGINE,
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
    linear decay to 0.1 from epoch 1 over 80 % of the epochs, observers and BN statistics frozen for the last
    ``freeze_epochs`` (default ``epochs // 5``). Writes ``output/model_int8.pt`` (read it with
    :func:`load_quantized`) and ``output/quantize.json``.

    Args:
        checkpoint: a self-describing tympan checkpoint of the float model (``tympan finetune``, the training
            systems' ``model.ckpt``).
        data: labelled clips as :class:`~tympan.data.AudioDataModule` reads them; the validation split (or the
            test split as the DCASE data has it) is where both models are evaluated.
        epochs: QAT epochs (0: post-training conversion with the observers calibrated on one training epoch
            without weight updates is *not* done; at least 1 is required).
        output: run folder.
        batch_size, clip_seconds, num_workers, accelerator, seed, progress, cache_dir: as in
            :func:`~tympan.train.finetune`.
        engine: quantisation backend (``"x86"``, ``"fbgemm"``, ``"qnnpack"``).
        calibration_batches: training batches that set the observers' ranges (eval mode, no updates) before
            fine-tuning; the moving-average observers would otherwise start from whatever they see first.
        system_kwargs: further :class:`~tympan.train.SceneSystem` arguments (KD from teacher logits, augmentation).

    Raises:
        CheckpointError: the checkpoint is not a self-describing tympan checkpoint.
        ConfigError: bad settings, or a network eager-mode quantisation cannot convert.
    """
    from ..data.datamodule import AudioDataModule
    from ..eval.complexity import measure
    from ..pipeline import load
    from .systems import SceneSystem

    if epochs < 1:
        raise ConfigError(f"QAT needs at least 1 epoch, got {epochs}")
    freeze_epochs = epochs // 5 if freeze_epochs is None else freeze_epochs
    if not 0 <= freeze_epochs < epochs:
        raise ConfigError(f"freeze_epochs must be in [0, epochs), got {freeze_epochs} for {epochs} epochs")
    L.seed_everything(seed, workers=True, verbose=False)
    output = Path(output)
    description = _description(checkpoint)
    pipeline = load(checkpoint=checkpoint, device="cpu")
    float_model = pipeline.model.cpu().eval()
    float_model.tympan_arch = description.get("arch")
    float_model.tympan_model_kwargs = dict(description.get("model_kwargs", {}))
    labels = list(pipeline.labels)

    module = AudioDataModule(
        str(data),
        labels=labels,
        sample_rate=float_model.frontend_config.sample_rate,
        clip_seconds=clip_seconds,
        batch_size=batch_size,
        num_workers=num_workers,
        cache_dir=str(cache_dir or output / "cache"),
        seed=seed,
    )
    qat_model = prepare_qat(float_model, engine)
    module.setup("fit")
    _calibrate(qat_model, pipeline.frontend, module.train_dataloader(), calibration_batches)
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
        {"float": float_model, "int8": int8_model}, pipeline.frontend, loader, module.device_names, labels
    )
    frontend = float_model.frontend_config
    shape = (1, 1, frontend.n_mels, frontend.num_frames(frontend.sample_rate))
    plain, fused = measure(float_model, shape), measure(float_model, shape, fuse_batchnorm=True)
    figures = {
        "float": {
            **scores["float"],
            "params": plain.params,
            "macs": plain.macs,
            "weight_bytes": _weight_bytes(float_model),
            "state_bytes": state_bytes(float_model),
        },
        "int8": {
            **scores["int8"],
            "params": fused.params,
            "macs": fused.macs,
            "weight_bytes": _weight_bytes(int8_model),
            "state_bytes": state_bytes(int8_model),
        },
    }
    model_path = output / "model_int8.pt"
    payload = {
        "tympan": {**description, "quantized": {"engine": engine, "epochs": epochs}, "metrics": figures["int8"]},
        "state_dict": int8_model.state_dict(),
    }
    output.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_path) as temporary:
        torch.save(payload, temporary)
    result = QuantizeResult(figures["float"], figures["int8"], qat_metrics, model_path, output)
    (output / "quantize.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    logger.info("int8 model written to %s", model_path)
    return result


@torch.no_grad()
def _calibrate(qat_model: nn.Module, frontend: nn.Module, loader: Any, batches: int) -> None:
    qat_model.eval()
    frontend = frontend.cpu().eval()
    for index, batch in enumerate(loader):
        if index >= batches:
            break
        if batch is not None:
            qat_model(frontend(batch["audio"]).unsqueeze(1))
    qat_model.train()


def _description(checkpoint: str | Path) -> dict[str, Any]:
    try:
        obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"cannot read checkpoint {str(checkpoint)!r}: {error}") from error
    if not isinstance(obj, dict) or not isinstance(obj.get("tympan"), dict) or not obj["tympan"].get("arch"):
        raise CheckpointError(
            f"{checkpoint} is not a self-describing tympan checkpoint; train or fine-tune the float model with "
            "tympan (tympan finetune / the training systems) first"
        )
    return dict(obj["tympan"])


def load_quantized(path: str | Path) -> nn.Module:
    """The int8 model written by :func:`quantize` (CPU, eval), with ``frontend_config`` and ``labels``.

    The file holds the description and the int8 state dict; the network is rebuilt, prepared and converted the
    same way, then loaded (strict).
    """
    from ..audio.frontend import MelFrontendConfig
    from ..models import create

    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)  # packed int8 params are not plain tensors
    except Exception as error:
        raise CheckpointError(f"cannot read quantised model {str(path)!r}: {error}") from error
    description = obj.get("tympan", {}) if isinstance(obj, dict) else {}
    if "quantized" not in description:
        raise CheckpointError(f"{path} is not an int8 model written by tympan quantize")
    model = create(description["arch"], **description.get("model_kwargs", {}))
    model.frontend_config = MelFrontendConfig(**description["frontend"])
    int8 = convert_int8(prepare_qat(model, description["quantized"]["engine"]))
    int8.load_state_dict(obj["state_dict"], strict=True)
    int8.labels = list(description.get("labels", []))
    return int8.eval()
