"""CP-Mobile: the real DCASE23 checkpoint (stored mel and end to end from the wav), structure, contract, configs."""

from __future__ import annotations

import copy

import pytest
import torch

from tests.conftest import load_reference, shared_path
from tympan.audio.frontend import MelFrontend
from tympan.audio.io import load_audio, prepare_waveform
from tympan.errors import ConfigError
from tympan.labels import get_labels
from tympan.models import create, get_preset
from tympan.models.cp_mobile import CPMobile, CPMobileConfig, GlobalResponseNorm

TOL = 2e-4  # float32 re-implementation vs the stored reference output (README of the golden data)


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_reference("dcase23", "cpmobile_c0a7nzin_metro_station.pt")


@pytest.fixture(scope="module")
def trained(golden: dict) -> CPMobile:
    return create("cp_mobile", checkpoint=golden["state_dict"], **golden["config"])


def test_real_checkpoint_from_stored_mel(golden: dict, trained: CPMobile) -> None:
    mel = golden["mel_expected"].unsqueeze(1)
    with torch.no_grad():
        logits = trained(mel)
        intermediates = trained.forward_intermediates(mel[:1])
    assert (logits - golden["logits"]).abs().max() < TOL
    assert logits.argmax(1).tolist() == golden["predicted_class"].tolist() == [3] * 10
    for name, expected in golden["intermediates_window0"].items():
        if name != "feed_forward.1":
            ours = intermediates[name.removeprefix("stages.")]
            assert (ours - expected).abs().max() < TOL, name
    with torch.no_grad():
        per_position = trained.feed_forward(trained.forward_map(mel[:1]))
    assert (per_position - golden["intermediates_window0"]["feed_forward.1"]).abs().max() < TOL


def test_real_checkpoint_end_to_end_from_wav(golden: dict) -> None:
    """waveform file -> tympan audio loading -> tympan mel frontend -> the preset: metro_station on every second."""
    model = create("cp_mobile_dcase23", checkpoint=golden["state_dict"])
    frontend = MelFrontend.from_config(model.frontend_config).eval()
    rate = 44100  # cut the 44.1 kHz file into 1 s pieces first, as TAU22 stores them, then resample each
    raw = load_audio(shared_path("data", "metro_station-paris.wav"), rate)
    windows = torch.stack(
        [torch.from_numpy(prepare_waveform(raw[i * rate : (i + 1) * rate], rate, 32000)) for i in range(10)]
    )
    assert windows.shape == (10, 32000)
    with torch.no_grad():
        logits = model(frontend(windows).unsqueeze(1))
    labels = get_labels(model.preset.labels)
    assert [labels[i] for i in logits.argmax(1)] == ["metro_station"] * 10
    assert (logits - golden["logits"]).abs().max() < TOL


def test_structure_of_the_submission() -> None:
    config = CPMobileConfig()
    assert config.stage_channels == (32, 32, 72, 168)
    model = create("cp_mobile_dcase23")
    assert sum(p.numel() for p in model.parameters()) == get_preset("cp_mobile_dcase23").num_params == 126_952
    shapes = {k: tuple(v.shape) for k, v in model.forward_intermediates(torch.zeros(1, 1, 256, 64)).items()}
    assert shapes == {"in_c": (1, 32, 64, 16), "s1": (1, 32, 32, 8), "s2": (1, 72, 16, 8), "s3": (1, 168, 16, 8)}
    block = model.stages.s1.b2
    assert isinstance(block.shortcut, torch.nn.AvgPool2d) and block.shortcut.count_include_pad
    assert model.stages.s2.b4.shortcut is None  # 32 -> 72: no residual, but GRN + ReLU all the same
    assert isinstance(model.stages.s2.b4.after_block_norm, GlobalResponseNorm)
    assert model.frontend_config.hop_length == 500 and model.frontend_config.num_frames(32000) == 64
    assert get_labels("tau22")[3] == "metro_station"


def test_dcase24_baseline_has_no_grn() -> None:
    model = create("cp_mobile_dcase24_baseline")
    assert model.config.stage_channels == (32, 32, 56, 104)
    assert sum(p.numel() for p in model.parameters()) == 61_148
    assert not any("after_block_norm" in key for key in model.state_dict())


def test_dcase24_baseline_end_to_end_from_44k1_waveforms() -> None:
    """The preset's own frontend (resampler included) and network give the reference's logits from 44.1 kHz audio;
    with the DCASE23 frontend it had before (Kaldi banks, pre-emphasis, 64 frames) the input was another one."""
    from tympan.eval.complexity import measure_model

    data = load_reference("dcase24", "baseline_cases.pt")
    model = create("cp_mobile_dcase24_baseline", checkpoint=data["state_dict"])
    assert model.frontend_config.sample_rate == 44100 and model.frontend_config.num_frames(44100) == 65
    frontend = MelFrontend.from_config(model.frontend_config).eval()
    with torch.no_grad():
        logits = model(frontend(data["waveform_44k"]).unsqueeze(1))
    assert (logits - data["logits"]).abs().max() < 1e-4
    dcase23 = MelFrontend.from_config(get_preset("cp_mobile_dcase23").frontend).eval()
    resampled = torch.stack([torch.from_numpy(prepare_waveform(w.numpy(), 44100, 32000)) for w in data["waveform_44k"]])
    assert dcase23(resampled).shape[-1] == 64  # the old input: one frame short, and other values
    complexity = measure_model("cp_mobile_dcase24_baseline")  # the published figures, on 65 frames
    assert complexity.complexity.input_shape == (1, 1, 256, 65)
    assert (complexity.complexity.params, complexity.complexity.macs) == (61_148, 29_419_156)


def test_model_contract_and_classifier_reset(golden: dict, trained: CPMobile, generator: torch.Generator) -> None:
    mel = torch.randn(3, 1, 256, 64, generator=generator)
    with torch.no_grad():
        features = trained.forward_features(mel)
        torch.testing.assert_close(trained.forward_head(features), trained(mel), atol=1e-5, rtol=1e-5)
    assert features.shape == (3, trained.num_features) == (3, 168)
    model = copy.deepcopy(trained)
    model.reset_classifier(4)
    assert model(mel).shape == (3, 4) and model.num_classes == 4
    with pytest.raises(ConfigError):
        model.reset_classifier(0)


def test_grn_is_scalar_and_identity_at_init(generator: torch.Generator) -> None:
    grn = GlobalResponseNorm()
    x = torch.randn(2, 5, 4, 3, generator=generator)
    torch.testing.assert_close(grn(x), x)
    with torch.no_grad():
        grn.gamma.fill_(2.0)
        grn.beta.fill_(0.5)
    norm = x.pow(2).sum((2, 3), keepdim=True).sqrt()
    expected = 2.0 * x * norm / (norm.mean(1, keepdim=True) + 1e-6) + 0.5 + x
    torch.testing.assert_close(grn(x), expected)
    assert grn.gamma.shape == grn.beta.shape == (1,)


def test_trains_with_batch_statistics(generator: torch.Generator) -> None:
    model = create("cp_mobile", base_channels=16, n_blocks=(1, 1), strides={"b2": (2, 1)}).train()
    mel = torch.randn(4, 1, 64, 20, generator=generator)
    loss = model(mel).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.stages.s1.b1.after_block_norm.gamma.grad.abs() > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strides": {"b9": (2, 2)}},
        {"n_blocks": ()},
        {"n_blocks": (3, 0)},
        {"base_channels": 0},
        {"expansion_rate": -1.0},
        {"strides": {"b2": (0, 1)}},
        {"width": 2},
    ],
)
def test_invalid_configs_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        create("cp_mobile", **kwargs)


def test_preset_refuses_contradicting_arguments() -> None:
    with pytest.raises(ConfigError, match="cp_mobile"):
        create("cp_mobile_dcase23", base_channels=24)
