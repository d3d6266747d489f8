"""Every registered preset builds, has the published parameter count and honours the model contract."""

from __future__ import annotations

import pytest
import torch

from tests.models._efficientat import one_thread
from tympan.models import create, get_preset, list_models

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

FORWARD_MAX_PARAMS = 2_000_000  # larger presets are only counted (built without memory on the meta device)
FRAMES = 64


@pytest.mark.parametrize("name", list_models())
def test_preset_builds_with_its_published_parameter_count(name: str) -> None:
    entry = get_preset(name)
    with torch.device("meta"):
        model = create(name)
    assert model.preset is entry and model.frontend_config == entry.frontend
    assert sum(p.numel() for p in model.parameters()) == entry.num_params
    assert entry.description


@pytest.mark.parametrize(
    "name", [n for n in list_models() if (get_preset(n).num_params or 0) <= FORWARD_MAX_PARAMS]
)
def test_small_preset_forward_contract(name: str, generator: torch.Generator) -> None:
    model = create(name)
    mel = torch.randn(2, 1, model.frontend_config.n_mels, FRAMES, generator=generator)
    with torch.inference_mode():
        features = model.forward_features(mel)
        logits = model(mel)
    assert features.shape == (2, model.num_features)
    assert logits.shape == (2, model.num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", list_models("*mn*"))
def test_efficientat_presets_point_at_the_official_release(name: str) -> None:
    entry = get_preset(name)
    assert entry.labels == "audioset" and entry.arch in ("mn", "dymn")
    assert entry.checkpoint_url.startswith("https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/")
    assert entry.checkpoint_filename.endswith(".pt") and " " not in entry.checkpoint_filename
    if name.startswith("mn") and entry.score:
        assert entry.checkpoint_filename.endswith(f"_mAP_{round(entry.score['mAP'] * 1000)}.pt")


@pytest.mark.parametrize(
    ("name", "hop_length", "n_mels"),
    [("mn10_as", 320, 128), ("mn10_as_hop_5", 160, 128), ("mn10_as_hop_25", 800, 128), ("mn10_as_mels_256", 320, 256)],
)
def test_variant_frontends_travel_with_the_preset(name: str, hop_length: int, n_mels: int) -> None:
    frontend = get_preset(name).frontend
    assert (frontend.hop_length, frontend.n_mels, frontend.sample_rate) == (hop_length, n_mels, 32000)
