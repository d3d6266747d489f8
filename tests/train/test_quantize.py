"""QAT and int8 export on a tiny CP-Mobile / CP-ResNet and generated tone data."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import load_reference
from tympan.audio.frontend import MelFrontend
from tympan.cli import main
from tympan.models import create
from tympan.train import SceneSystem, export_checkpoint
from tympan.train.quantize import convert_int8, load_quantized, make_quantisable, prepare_qat, quantize

from ._data import write_tone_dataset
from ._tiny import TINY_FRONTEND

TINY_CP_MOBILE = {"base_channels": 8, "channels_multiplier": 2.0, "expansion_rate": 2.0, "n_blocks": (2, 1, 1)}


def _random_statistics(model: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Non-trivial BN statistics / GRN scalars and weights, so that fusion and quantisation have something to get
    wrong (a fresh CP-ResNet outputs zeros)."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
        elif isinstance(module, torch.nn.Conv2d):
            module.weight.data.normal_(0, 0.3, generator=generator)
        elif hasattr(module, "gamma"):
            module.gamma.data.fill_(0.5)
    return model.eval()


@pytest.mark.parametrize(
    "arch, kwargs",
    [("cp_mobile", TINY_CP_MOBILE), ("cp_resnet", {"base_channels": 8, "cut_channels_s3": 0, "rho": 5})],
)
def test_fused_twin_matches_and_int8_stays_close(arch, kwargs, generator):
    model = _random_statistics(create(arch, num_classes=5, **kwargs), generator)
    mel = torch.randn(6, 1, 64, 32, generator=generator)
    expected = model(mel)
    fused = make_quantisable(model)
    assert torch.allclose(fused(mel), expected, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())

    qat = prepare_qat(model).eval()  # eval: BN statistics stay; the observers still calibrate
    with torch.no_grad():
        for _ in range(4):
            qat(torch.randn(8, 1, 64, 32, generator=generator))
    int8 = convert_int8(qat)
    assert any(p.dtype == torch.qint8 for p in _quantised_weights(int8))
    got = int8(mel)
    with torch.no_grad():
        emulated = qat(mel)  # the fake-quantised model QAT trains is what the int8 kernels compute
    step = int8.net.feed_forward[0].scale  # the pooled logits keep the classifier's output scale
    assert (got - emulated).abs().max() <= 2.5 * step
    assert (got - expected).abs().max() <= 0.25 * expected.abs().max()


def _quantised_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.weight() for m in model.modules() if callable(getattr(m, "weight", None))]


def test_quantize_end_to_end(tmp_path):
    csv = write_tone_dataset(tmp_path / "data", per_class=12, classes=3)
    torch.manual_seed(0)
    network = create("cp_mobile", num_classes=3, **TINY_CP_MOBILE)
    network.frontend_config = TINY_FRONTEND
    network.tympan_arch, network.tympan_model_kwargs = "cp_mobile", {**TINY_CP_MOBILE, "num_classes": 3}
    float_system = _train_float(network, csv, tmp_path)
    checkpoint = export_checkpoint(float_system, tmp_path / "float.ckpt")

    result = quantize(checkpoint, csv, epochs=2, output=tmp_path / "q", batch_size=8, progress=False, accelerator="cpu")
    assert result.float["accuracy"] >= 0.8  # the float model learnt the tones
    assert result.int8["agreement"] >= 0.8  # measured 1.0 on these clips
    assert result.int8["accuracy"] >= result.float["accuracy"] - 0.2
    assert result.int8["weight_bytes"] < 0.4 * result.float["weight_bytes"]
    assert result.int8["state_bytes"] < result.float["state_bytes"]
    assert result.int8["params"] < result.float["params"]  # BN folded away
    assert result.float["macs"] > 0 and result.int8["macs"] > 0
    assert (tmp_path / "q" / "quantize.json").is_file()

    reloaded = load_quantized(result.model_path)
    assert reloaded.frontend_config == TINY_FRONTEND
    assert reloaded.labels == float_system.labels
    mel = torch.randn(2, 1, TINY_FRONTEND.n_mels, 50)
    assert reloaded(mel).shape == (2, 3)


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
    stays ``metro_station`` (measured: max logit error 0.85 on a logit range of 6.5; also when calibrated on
    synthetic scenes instead)."""
    golden = load_reference("dcase23", "cpmobile_c0a7nzin_metro_station.pt")
    model = create("cp_mobile", checkpoint=golden["state_dict"]).eval()
    with torch.no_grad():
        mel = MelFrontend.from_config(model.frontend_config).eval()(golden["waveform_windows"]).unsqueeze(1)
        qat = prepare_qat(model).eval()
        qat(mel)
        int8 = convert_int8(qat)
        logits = int8(mel)
    assert logits.argmax(1).tolist() == golden["predicted_class"].tolist()
    assert (logits - golden["logits"]).abs().max() < 0.25 * golden["logits"].abs().max()
