"""QAT and int8 export (torchao PT2E) on tiny CP-Mobile / CP-ResNet networks, generated tones and the real DCASE23
CP-Mobile.

Conversions are the slow part (seconds each on CPU), so there are three per module, shared by the tests: a tiny
CP-Mobile prepared, fine-tuned for a few steps and converted (``tiny``), one end-to-end ``quantize`` run
(``quantized``, whose saved program the reload test reads) and the real DCASE23 checkpoint.
"""

from __future__ import annotations

import copy
import shutil
from types import SimpleNamespace

import pytest
import torch
from torchao.quantization.pt2e import FakeQuantizeBase, disable_fake_quant, disable_observer

from tests.conftest import load_reference
from tympan.audio.frontend import MelFrontend
from tympan.cli import main
from tympan.errors import CheckpointError, ConfigError
from tympan.models import bundle, create
from tympan.models.cp_mobile import GlobalResponseNorm
from tympan.train import SceneSystem, export_checkpoint
from tympan.train.quantize import (
    QuantParamFreeze,
    convert_int8,
    fold_batchnorm,
    load_quantized,
    prepare_qat,
    quantize,
)

from ._data import write_tone_dataset
from ._tiny import TINY_FRONTEND

TINY_CP_MOBILE = {"base_channels": 8, "channels_multiplier": 2.0, "expansion_rate": 2.0, "n_blocks": (2, 1, 1)}
TINY = {"cp_mobile": TINY_CP_MOBILE, "cp_resnet": {"base_channels": 8, "cut_channels_s3": 0, "rho": 5}}


def _random_statistics(model: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Non-trivial BN statistics / GRN scalars and weights, so that folding and quantisation have something to get
    wrong (a fresh CP-ResNet outputs zeros)."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
        elif isinstance(module, torch.nn.Conv2d):
            module.weight.data.normal_(0, 0.3, generator=generator)
        elif isinstance(module, GlobalResponseNorm):
            module.gamma.data.fill_(0.5)
    return model.eval()


@pytest.fixture(scope="module")
def tiny() -> SimpleNamespace:
    """A tiny CP-Mobile (it has GRN, fused adds and ReLUs), its QAT graph after calibration and three Adam steps, and
    the int8 graph of that."""
    generator = torch.Generator().manual_seed(0)
    model = _random_statistics(create("cp_mobile", num_classes=5, **TINY_CP_MOBILE), generator)
    mel = torch.randn(6, 1, 64, 32, generator=generator)
    qat = prepare_qat(model, mel[:2])
    with torch.no_grad():
        for _ in range(4):
            qat(torch.randn(8, 1, 64, 32, generator=generator))
    optimizer = torch.optim.Adam(qat.parameters(), lr=1e-3)
    for _ in range(3):  # gradients flow through the fake quantisers into the folded weights
        loss = torch.nn.functional.cross_entropy(qat(mel), torch.arange(6) % 5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return SimpleNamespace(model=model, mel=mel, qat=qat, int8=convert_int8(qat))


@pytest.mark.parametrize("arch", sorted(TINY))
def test_fold_batchnorm_keeps_the_outputs(arch, generator):
    model = _random_statistics(create(arch, num_classes=5, **TINY[arch]), generator)
    mel = torch.randn(3, 1, 64, 32, generator=generator)
    folded = fold_batchnorm(model, mel)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())  # also CP-ResNet's bare bn1 / bn2
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the model itself is left alone
    with torch.no_grad():
        assert torch.allclose(folded(mel), model(mel), atol=1e-4)


def test_fold_batchnorm_refuses_a_conv_output_used_twice(generator):
    class Tapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    model = _random_statistics(Tapped(), generator)
    with pytest.raises(ConfigError, match="normalised and not"):
        fold_batchnorm(model, torch.randn(2, 1, 8, 8, generator=generator))


def test_int8_computes_what_qat_trained_and_stays_close(tiny):
    emulation = copy.deepcopy(tiny.qat).apply(disable_observer)  # a forward would move the moving-average ranges
    trained_float = copy.deepcopy(emulation).apply(disable_fake_quant)  # the fine-tuned weights, in float
    with torch.no_grad():
        got, emulated, expected = tiny.int8(tiny.mel), emulation(tiny.mel), trained_float(tiny.mel)
    weights = [t for t in tiny.int8.buffers() if t.dtype == torch.int8]
    assert weights and all(t.dim() == 4 for t in weights)  # every conv weight is stored in int8
    assert not any(p.dim() == 4 for p in tiny.int8.parameters())  # and no float copy is kept
    # measured 4.5 %: the fused fake quantiser scales weights by max / 127, the conversion by max / 127.5
    assert (got - emulated).abs().max() <= 0.1 * expected.abs().max()
    assert (got - expected).abs().max() <= 0.1 * expected.abs().max()  # measured 5.3 %


def test_grn_stays_float_and_the_rest_is_quantised(tiny):
    def from_grn(node: torch.fx.Node) -> bool:
        stack = node.meta.get("nn_module_stack", {}).values()
        return any(kind is GlobalResponseNorm or "GlobalResponseNorm" in str(kind) for _, kind in stack)

    observed = [node.args[0] for node in tiny.qat.graph.nodes if node.op == "call_module"]
    assert observed  # activations and weights have fake quantisers
    assert not any(from_grn(node) for node in observed)
    assert any(from_grn(node) for node in tiny.qat.graph.nodes)


def test_frozen_observers_keep_scales_and_zero_points(tiny):
    qat = copy.deepcopy(tiny.qat)
    before = {k: v.clone() for k, v in qat.state_dict().items() if k.endswith(("scale", "zero_point"))}
    QuantParamFreeze(1).on_train_epoch_start(SimpleNamespace(current_epoch=1), SimpleNamespace(model=qat))
    assert all(not m.observer_enabled for m in qat.modules() if isinstance(m, FakeQuantizeBase))
    with torch.no_grad():
        qat(10 * tiny.mel)
    after = {k: v for k, v in qat.state_dict().items() if k in before}
    assert before and all(torch.equal(before[k], after[k]) for k in before)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> SimpleNamespace:
    """``quantize`` (2 QAT epochs) of a tiny float CP-Mobile that learnt three tones."""
    tmp_path = tmp_path_factory.mktemp("quantize")
    csv = write_tone_dataset(tmp_path / "data", per_class=8, classes=3)
    torch.manual_seed(0)
    network = create("cp_mobile", num_classes=3, **TINY_CP_MOBILE)
    network.frontend_config = TINY_FRONTEND
    float_system = _train_float(network, csv, tmp_path)
    checkpoint = export_checkpoint(float_system, tmp_path / "float.ckpt")
    result = quantize(checkpoint, csv, epochs=2, output=tmp_path / "q", batch_size=8, progress=False, accelerator="cpu")
    return SimpleNamespace(result=result, labels=float_system.labels)


def test_quantize_end_to_end(quantized):
    result = quantized.result
    assert result.float["accuracy"] >= 0.8  # the float model learnt the tones
    assert result.int8["agreement"] >= 0.8
    assert result.int8["accuracy"] >= result.float["accuracy"] - 0.2
    assert result.int8["weight_bytes"] < 0.5 * result.float["weight_bytes"]
    assert result.int8["params"] < result.float["params"]  # BN folded away
    assert result.float["macs"] > 0 and result.int8["macs"] > 0
    assert (result.output_dir / "quantize.json").is_file()
    assert result.model_path.name == "model_int8.pt2"


def test_saved_program_reloads_with_its_description(quantized, tmp_path):
    path = shutil.copy(quantized.result.model_path, tmp_path / "model_int8.pt2")
    shutil.copy(quantized.result.model_path.with_suffix(".json"), tmp_path / "model_int8.json")
    reloaded = load_quantized(path)
    assert reloaded.labels == quantized.labels and reloaded.num_classes == 3
    assert reloaded.frontend_config == TINY_FRONTEND
    assert any(t.dtype == torch.int8 and t.dim() == 4 for t in reloaded.buffers())  # int8 conv weights
    with torch.no_grad():
        assert reloaded(torch.randn(3, 1, TINY_FRONTEND.n_mels, 50)).shape == (3, 3)  # batch and frames are dynamic
    source = bundle(path)  # the same model through a bundle, with its frontend
    assert source.labels == quantized.labels and source.get_frontend().config == TINY_FRONTEND
    assert source.checkpoint.provenance["quantized"]["epochs"] == 2
    with torch.no_grad():
        assert source.get_model().eval()(torch.randn(2, 1, TINY_FRONTEND.n_mels, 50)).shape == (2, 3)
    (tmp_path / "model_int8.json").unlink()
    with pytest.raises(CheckpointError, match="description"):
        load_quantized(path)


def _train_float(network, csv, tmp_path) -> SceneSystem:
    """A float model that separates the tones: 40 full-batch Adam steps on the mels (quicker than a Trainer)."""
    from tympan.data.datamodule import AudioDataModule

    module = AudioDataModule(
        str(csv),
        sample_rate=TINY_FRONTEND.sample_rate,
        clip_seconds=0.5,
        batch_size=64,
        cache_dir=str(tmp_path / "cache"),
    )
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    system = SceneSystem(network, labels=module.labels)
    with torch.no_grad():
        mel = system.frontend.eval()(batch["audio"]).unsqueeze(1)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    network.train()
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(network(mel), batch["target"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return system


def test_quantize_refuses_a_plain_state_dict(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(create("cp_mobile", **TINY_CP_MOBILE).state_dict(), path)
    assert main(["quantize", str(path), "--data", str(tmp_path), "--epochs", "1"]) == 1


def test_int8_dcase23_cp_mobile_keeps_the_golden_predictions():
    """The real DCASE23 checkpoint, calibrated on its 10 metro-station windows, converted to int8: every window
    stays ``metro_station`` (measured: max logit error 0.55 on a logit range of 6.5)."""
    golden = load_reference("dcase23", "cpmobile_c0a7nzin_metro_station.pt")
    model = create("cp_mobile", checkpoint=golden["state_dict"]).eval()
    with torch.no_grad():
        mel = MelFrontend.from_config(model.frontend_config).eval()(golden["waveform_windows"]).unsqueeze(1)
    qat = prepare_qat(model, mel[:2])
    with torch.no_grad():
        qat(mel)
        logits = convert_int8(qat)(mel)
    assert logits.argmax(1).tolist() == golden["predicted_class"].tolist()
    assert (logits - golden["logits"]).abs().max() < 0.25 * golden["logits"].abs().max()
