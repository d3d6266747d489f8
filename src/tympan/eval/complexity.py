"""Model complexity: parameters, multiply-accumulates (MACs) and peak activation memory, and the DCASE limits.

Two MAC counting rules, because the field uses two:

* ``"dcase"`` — what the DCASE Task 1 organisers' NeSsi tool reports (``torchinfo.summary``, versions 1.7 / 1.8),
  reproduced exactly: for every leaf module, each parameter named ``weight`` / ``bias`` costs its element count
  times the output positions for convolutions (batch × H_out × W_out, so a conv bias counts once per output) and
  times the batch size for any other module (BatchNorm costs 2·C, a Linear its parameter count); activations,
  pooling, additions, GRN and functional ops cost nothing. This is the rule of the challenge ranking: CP-Mobile
  126,952 parameters / 28,893,268 MACs, CP-ResNet 128K 127,684 / 28,840,396 (``../shared/reference/dcase23/``
  ``complexity.json``). It ignores the tokens of a Linear applied to a sequence, so it says little about
  transformers.
* ``"full"`` — every multiply-accumulate of convolutions (dynamic ones included), matrix products and attention,
  counted at the ATen level from the shapes (``torch.utils.flop_counter`` formulas, MACs = FLOPs / 2), plus the
  fused CPU attention kernel that PyTorch's flop counter does not know (``softmax(q·kᵀ)·v`` costs
  ``2·B·H·L·S·E`` MACs). Biases and elementwise work (norms, activations) are not counted, as in the EfficientAT
  and PaSST papers (mn10_as: 0.54 G MACs for 10 s).

Peak activation memory is the largest working set of any single ATen operation: the distinct storages of its
tensor inputs and outputs, parameters and buffers excluded, in bytes of the dtype the model runs in. It is the
lower bound on the activation memory of a layer-by-layer executor (EfficientAT's ``peak_memory_cnn`` counts the
same for convolutions), not the allocator's high-water mark.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry, sdpa_flop_count

from ..errors import ConfigError

__all__ = [
    "DCASE_MAX_MACS",
    "DCASE_MAX_PARAM_BYTES",
    "RULES",
    "Complexity",
    "DcaseCheck",
    "LayerComplexity",
    "ModelComplexity",
    "check_dcase_limits",
    "fuse_conv_bn",
    "measure",
    "measure_model",
]

RULES = ("dcase", "full")
DCASE_MAX_PARAM_BYTES = 128_000  # 128 K parameters at 8 bits (DCASE 2023 and 2024 Task 1)
DCASE_MAX_MACS = 30_000_000  # per 1 s clip


@dataclass(frozen=True)
class LayerComplexity:
    """One module's own share: its direct parameters and the MACs counted inside it (not in its children)."""

    name: str
    class_name: str
    params: int
    macs: int
    output_shape: tuple[int, ...] | None


@dataclass(frozen=True)
class Complexity:
    """What :func:`measure` found for one input shape.

    Attributes:
        params: number of parameter elements (trainable or not; BN running statistics are buffers, not counted).
        macs: multiply-accumulates of one forward pass under ``rule``.
        peak_activation_bytes: largest activation working set of one operation (see the module docstring).
        rule: ``"dcase"`` or ``"full"``.
        input_shape: the measured input ``(batch, channels, n_mels, frames)``.
        layers: per-module rows, in execution order, for modules with parameters or MACs.
    """

    params: int
    macs: int
    peak_activation_bytes: int
    rule: str
    input_shape: tuple[int, ...]
    layers: tuple[LayerComplexity, ...] = field(default=(), repr=False)

    def layer(self, name: str) -> LayerComplexity:
        """The row of module ``name`` (its qualified name in the model)."""
        for row in self.layers:
            if row.name == name:
                return row
        raise ConfigError(f"no module {name!r} with parameters or MACs was measured")


@dataclass(frozen=True)
class DcaseCheck:
    """The DCASE Task 1 complexity limits applied to one model.

    Attributes:
        params: parameter count.
        macs: MACs for one 1 s clip.
        param_bits: bits per parameter of the submitted model (8 for an int8 model, 16 for fp16 as the DCASE24
            baseline).
        max_param_bytes: parameter memory limit in bytes.
        max_macs: MAC limit per 1 s clip.
    """

    params: int
    macs: int
    param_bits: int = 8
    max_param_bytes: int = DCASE_MAX_PARAM_BYTES
    max_macs: int = DCASE_MAX_MACS

    @property
    def param_bytes(self) -> int:
        return math.ceil(self.params * self.param_bits / 8)

    @property
    def params_ok(self) -> bool:
        return self.param_bytes <= self.max_param_bytes

    @property
    def macs_ok(self) -> bool:
        return self.macs <= self.max_macs

    @property
    def passed(self) -> bool:
        return self.params_ok and self.macs_ok

    def summary(self) -> str:
        """One line: PASS / FAIL and both comparisons."""
        verdict = "PASS" if self.passed else "FAIL"
        memory = "ok" if self.params_ok else "too large"
        compute = "ok" if self.macs_ok else "too many"
        return (
            f"{verdict}: parameters {self.params:,} x {self.param_bits} bit = {self.param_bytes:,} B "
            f"(limit {self.max_param_bytes:,} B, {memory}); MACs per 1 s {self.macs:,} "
            f"(limit {self.max_macs:,}, {compute})"
        )


def check_dcase_limits(complexity: Complexity, *, param_bits: int = 8) -> DcaseCheck:
    """Compare a complexity measured on **one 1 s clip** (batch 1) with the DCASE Task 1 limits.

    Args:
        complexity: from :func:`measure` on ``(1, 1, n_mels, frames of 1 s)``, normally with ``rule="dcase"``.
        param_bits: bits per parameter as submitted (8: the 128,000-parameter limit; 16: 64,000 parameters).

    Raises:
        ConfigError: the complexity was measured with a batch other than 1.
    """
    if complexity.input_shape[0] != 1:
        raise ConfigError(f"the DCASE limits are for one clip; measure with batch 1, not {complexity.input_shape}")
    if param_bits <= 0:
        raise ConfigError(f"param_bits must be positive, got {param_bits}")
    return DcaseCheck(params=complexity.params, macs=complexity.macs, param_bits=param_bits)


@dataclass(frozen=True)
class ModelComplexity:
    """:func:`measure_model`'s answer for one zoo model or architecture.

    Attributes:
        model: the name measured.
        seconds: audio length of the measured input.
        complexity: the measurement on ``seconds`` of audio.
        dcase: the DCASE limits applied to the same model measured on one 1 s clip with the same rule.
    """

    model: str
    seconds: float
    complexity: Complexity
    dcase: DcaseCheck

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the figures and the DCASE verdict, without the per-layer rows."""
        return {
            "model": self.model,
            "seconds": self.seconds,
            "input_shape": list(self.complexity.input_shape),
            "rule": self.complexity.rule,
            "params": self.complexity.params,
            "macs": self.complexity.macs,
            "peak_activation_bytes": self.complexity.peak_activation_bytes,
            "dcase": {
                "params": self.dcase.params,
                "param_bytes": self.dcase.param_bytes,
                "macs_per_second": self.dcase.macs,
                "max_param_bytes": self.dcase.max_param_bytes,
                "max_macs": self.dcase.max_macs,
                "params_ok": self.dcase.params_ok,
                "macs_ok": self.dcase.macs_ok,
                "passed": self.dcase.passed,
            },
        }


def measure_model(
    name: str,
    *,
    seconds: float | None = None,
    rule: str | None = None,
    fuse_batchnorm: bool = False,
    param_bits: int = 8,
) -> ModelComplexity:
    """Measure a zoo model (or an architecture with its defaults) on the mel of ``seconds`` of audio.

    The input shape comes from the model's own frontend (``n_mels``, frames of ``seconds`` at its sample rate),
    batch 1.

    Args:
        name: a preset (``"cp_mobile_dcase23"``, ``"mn10_as"``) or an architecture name.
        seconds: audio length; default 1 s for scene models (TAU22 labels, the DCASE unit) and 10 s otherwise
            (the unit of the AudioSet papers).
        rule: ``"dcase"`` or ``"full"``; default ``"dcase"`` for scene models and ``"full"`` otherwise.
        fuse_batchnorm: fold BatchNorm into the preceding convs first (see :func:`measure`).
        param_bits: bits per parameter for the DCASE memory limit.

    Raises:
        UnknownModelError: no such model.
        ConfigError: a non-positive length or an unknown rule.
    """
    from ..labels import get_labels
    from ..models.registry import create

    model = create(name)
    scene_model = model.spec.labels == tuple(get_labels("tau22"))
    seconds = (1.0 if scene_model else 10.0) if seconds is None else float(seconds)
    rule = ("dcase" if scene_model else "full") if rule is None else rule
    if seconds <= 0:
        raise ConfigError(f"seconds must be positive, got {seconds}")

    def shape(length: float) -> tuple[int, int, int, int]:
        frontend = model.frontend_config
        return 1, 1, frontend.n_mels, frontend.num_frames(round(length * frontend.sample_rate))

    complexity = measure(model, shape(seconds), rule=rule, fuse_batchnorm=fuse_batchnorm)
    one_second = complexity if seconds == 1.0 else measure(model, shape(1.0), rule=rule, fuse_batchnorm=fuse_batchnorm)
    return ModelComplexity(name, seconds, complexity, check_dcase_limits(one_second, param_bits=param_bits))


def measure(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    rule: str = "dcase",
    fuse_batchnorm: bool = False,
) -> Complexity:
    """Count parameters, MACs and peak activation memory of one forward pass of ``model`` on zeros.

    The model runs in eval mode without gradients (its mode is restored afterwards); MACs depend on shapes only.

    Args:
        model: any ``nn.Module`` taking one tensor.
        input_shape: e.g. ``(1, 1, 256, 64)`` for CP-Mobile on 1 s.
        rule: ``"dcase"`` (torchinfo / NeSsi, the challenge rule) or ``"full"`` (every conv, matmul and attention
            product); see the module docstring.
        fuse_batchnorm: measure a copy with every ``Conv2d`` + ``BatchNorm2d`` pair folded into one conv, as the
            reference does before quantisation (this *raises* the DCASE count: a conv bias costs one MAC per output).

    Raises:
        ConfigError: unknown rule or an empty / non-positive shape.
    """
    if rule not in RULES:
        raise ConfigError(f"unknown MAC counting rule {rule!r}; use one of {RULES}")
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) <= 0:
        raise ConfigError(f"input_shape must be positive sizes, got {tuple(input_shape)}")
    if fuse_batchnorm:
        model = fuse_conv_bn(model)
    reference = next(iter(model.parameters()), None)
    dtype = reference.dtype if reference is not None else torch.float32
    device = reference.device if reference is not None else torch.device("cpu")
    x = torch.zeros(shape, dtype=dtype, device=device)

    recorder = _Recorder(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), recorder.hooked(), _OpCounter(recorder):
            model(x)
    finally:
        model.train(was_training)

    macs_by_module = recorder.dcase_macs if rule == "dcase" else recorder.full_macs
    layers = tuple(
        LayerComplexity(name, type(module).__name__, own, macs_by_module.get(name, 0), recorder.output_shapes.get(name))
        for name, module, own in recorder.rows()
        if own or macs_by_module.get(name, 0)
    )
    return Complexity(
        params=sum(p.numel() for p in model.parameters()),
        macs=sum(macs_by_module.values()),
        peak_activation_bytes=recorder.peak_bytes,
        rule=rule,
        input_shape=shape,
        layers=layers,
    )


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` where each ``Conv2d`` directly followed by a ``BatchNorm2d`` inside an
    ``nn.Sequential`` (conv-norm-act blocks, classifier heads) is replaced by one conv with bias and an Identity."""
    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, norm = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv, norm)
                module._modules[second] = nn.Identity()
    return fused


class _Recorder:
    """Per-module bookkeeping of one forward pass: the module stack, output shapes, MACs under both rules."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = {id(m): name for name, m in model.named_modules()}
        self.order: dict[str, None] = {}  # modules in the order they first ran
        self.stack: list[str] = []
        self.output_shapes: dict[str, tuple[int, ...]] = {}
        self.dcase_macs: dict[str, int] = {}
        self.full_macs: dict[str, int] = {}
        self.peak_bytes = 0
        self.weight_storages = {
            t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers()) if t.numel()
        }

    @contextmanager
    def hooked(self) -> Iterator[None]:
        with ExitStack() as stack:
            for module in self.model.modules():
                stack.enter_context(module.register_forward_pre_hook(self._enter))
                stack.enter_context(module.register_forward_hook(self._leave, always_call=True))
            yield

    def _enter(self, module: nn.Module, args: Any) -> None:
        name = self.names[id(module)]
        self.order.setdefault(name)
        self.stack.append(name)

    def _leave(self, module: nn.Module, args: Any, output: Any) -> None:
        name = self.stack.pop()
        first = next((t for t in tree_flatten(output)[0] if isinstance(t, Tensor)), None)
        if first is None:
            return
        self.output_shapes[name] = tuple(first.shape)
        if not any(True for _ in module.children()):
            self.dcase_macs[name] = self.dcase_macs.get(name, 0) + _torchinfo_macs(module, tuple(first.shape))

    def add_op(self, macs: int, working_bytes: int) -> None:
        if macs:
            owner = self.stack[-1] if self.stack else ""
            self.full_macs[owner] = self.full_macs.get(owner, 0) + macs
        self.peak_bytes = max(self.peak_bytes, working_bytes)

    def rows(self) -> Iterator[tuple[str, nn.Module, int]]:
        modules = dict(self.model.named_modules())
        # Modules that never ran still own parameters; list them after the executed ones.
        for name in [*self.order, *(n for n in modules if n not in self.order)]:
            module = modules[name]
            yield name, module, sum(p.numel() for p in module.parameters(recurse=False))


def _torchinfo_macs(module: nn.Module, output_shape: tuple[int, ...]) -> int:
    """MACs of one call of a leaf module as torchinfo 1.7 / 1.8 ``calculate_macs`` counts them."""
    macs = 0
    is_conv = "Conv" in type(module).__name__
    for name, param in module.named_parameters(recurse=False):
        if name in ("weight", "bias"):
            positions = output_shape[:1] + output_shape[2:] if is_conv else output_shape[:1]
            macs += param.numel() * math.prod(positions)
        elif "weight" in name or "bias" in name:  # recurrent layers' weight_ih_l0 and the like
            macs += param.numel() * math.prod(output_shape[:2])
    return macs


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args: Any, **kwargs: Any) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _shape(value: Any) -> Any:
    return tuple(value.shape) if isinstance(value, Tensor) else value


_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


class _OpCounter(TorchDispatchMode):
    """Sees every ATen op of the forward pass: adds its MACs (by the flop-counter formulas) to the running module
    and tracks the largest activation working set."""

    def __init__(self, recorder: _Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        macs = 0
        if packet in _EXTRA_FORMULAS:
            shapes = [_shape(a) for a in args]
            macs = _EXTRA_FORMULAS[packet](*shapes) // 2
        elif packet in flop_registry:
            macs = flop_registry[packet](*args, **kwargs, out_val=out) // 2
        self.recorder.add_op(macs, self._working_bytes(args, kwargs, out))
        return out

    def _working_bytes(self, args: Any, kwargs: Any, out: Any) -> int:
        storages: dict[int, int] = {}
        for value in tree_flatten((args, kwargs, out))[0]:
            if isinstance(value, Tensor) and value.numel():
                storage = value.untyped_storage()
                pointer = storage.data_ptr()
                if pointer not in self.recorder.weight_storages:
                    storages[pointer] = storage.nbytes()
        return sum(storages.values())
