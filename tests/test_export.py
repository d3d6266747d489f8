"""ONNX export: parity with PyTorch within 1e-4 (dynamic batch and length) and the onnx pipeline backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

import tympan
from tympan.export import OnnxNetwork, example_mel, export_onnx, max_difference
from tympan.models import create

from ._models import small_mn_state, stress_


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    model = create("mn04_as")
    model.load_state_dict(small_mn_state())
    return model


def test_onnx_matches_pytorch_for_any_batch_and_length(model: torch.nn.Module) -> None:
    network = OnnxNetwork.from_model(model, model.frontend_config, seconds=2.0)
    for seconds, batch in ((2.0, 1), (1.3, 3), (4.0, 2)):
        mel = example_mel(model.frontend_config, seconds, batch)
        assert max_difference(network, mel) < 1e-4
    logits, embedding = network(example_mel(model.frontend_config, 1.0, 2))
    assert logits.shape == (2, 527) and embedding.shape == (2, model.num_features)
    assert logits.abs().max() > 0.05  # stress weights: a real comparison, not of ~1e-10 noise


@pytest.mark.parametrize("name", ["cp_mobile_dcase23"])
def test_other_families_export(name: str) -> None:
    model = stress_(create(name), torch.Generator().manual_seed(0))
    network = OnnxNetwork.from_model(model, model.frontend_config, seconds=1.0)
    assert max_difference(network, example_mel(model.frontend_config, 1.0, 2)) < 1e-4


def test_export_file_runs_in_onnxruntime(model: torch.nn.Module, tmp_path: Path) -> None:
    difference = export_onnx(model, tmp_path / "mn04.onnx", seconds=1.0)
    assert difference < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "mn04.onnx"), providers=["CPUExecutionProvider"])
    mel = example_mel(model.frontend_config, 1.0, 1)
    (logits, _) = session.run(None, {"mel": mel.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(mel).numpy(), atol=1e-4)
    assert [p.name for p in tmp_path.iterdir()] == ["mn04.onnx"]


def test_pipeline_onnx_backend_equals_torch() -> None:
    state = small_mn_state()
    waveform = 0.1 * torch.randn(2, 32000, generator=torch.Generator().manual_seed(2))
    scores = {
        backend: tympan.load("mn04_as", state, device="cpu", backend=backend).scores(waveform)
        for backend in ("torch", "onnx")
    }
    np.testing.assert_allclose(scores["onnx"], scores["torch"], atol=1e-5)


def test_dymn_falls_back_to_fixed_shapes_and_leaves_stdout_clean(capfd: pytest.CaptureFixture[str]) -> None:
    """The failed dynamic attempt made torch print the whole graph on stdout, where `tympan tag` writes its JSON."""
    model = stress_(create("dymn04_as"), torch.Generator().manual_seed(0))
    network = OnnxNetwork.from_model(model, model.frontend_config, seconds=1.0)
    assert max_difference(network, example_mel(model.frontend_config, 1.0)) < 1e-4
    assert not network.dynamic and capfd.readouterr().out == ""
