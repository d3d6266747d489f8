"""Every registered preset builds, has the published parameter count and honours the model contract."""

from __future__ import annotations

import pytest
import torch

from tests.models._efficientat import one_thread
from tympan.errors import ConfigError
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


@pytest.mark.parametrize("name", list_models("*mn*", exclude="frame_*"))
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


def test_reference_names_resolve_to_the_presets() -> None:
    from tympan.models.registry import list_aliases, register_alias

    aliases = list_aliases()
    assert aliases["passt-s-f128-20sec-p16-s10-ap474-swa"] == "passt_s_f128_20sec_p16_s10_ap474"
    assert aliases["passt_s_f128_30sec_p16_s10_ap473_swa"] == "passt_s_f128_30sec_p16_s10_ap473"
    assert get_preset("passt_20sec") is get_preset("passt_s_f128_20sec_p16_s10_ap474")
    assert not set(aliases) & set(list_models())  # each checkpoint is listed once
    with torch.device("meta"):
        assert create("fsd50k-n").preset is get_preset("fsd50k_passt_s_n_f128_p16_s16_ap642")
    with pytest.raises(ConfigError, match="twice"):
        register_alias("passt_20sec", "mn10_as")


def test_release_tags_of_the_long_passt_checkpoints() -> None:
    """kkoutini/PaSST and hear21passt publish them under v0.0.5; cpjku_dcase23's copy says v0.0.3-audioset."""
    for seconds, score in ((20, 474), (30, 473)):
        entry = get_preset(f"passt_s_f128_{seconds}sec_p16_s10_ap{score}")
        file = f"passt-s-f128-{seconds}sec-p16-s10-ap.{score}-swa.pt"
        assert entry.checkpoint_url == f"https://github.com/kkoutini/PaSST/releases/download/v0.0.5/{file}"
        assert entry.checkpoint_mirrors == (f"https://github.com/kkoutini/PaSST/releases/download/v0.0.3-audioset/{file}",)


@pytest.mark.parametrize(
    ("name", "url_tail", "labels", "initial"),
    [
        ("mn10_im", "EfficientAT/releases/download/v0.0.1/mn10_im.pt", "audioset", True),
        ("mn10_im_pytorch", "EfficientAT/releases/download/v0.0.1/mn10_im_pytorch.pt", "audioset", True),
        ("dymn20_im", "EfficientAT/releases/download/v0.0.1/dymn20_im.pt", "audioset", True),
        ("passt_deit_bd_p16_384", "deit/deit_base_distilled_patch16_384-d0272ac0.pth", "audioset", True),
        ("passt_dirfms_2", "cpjku_dcase23/releases/download/ensemble_logits/passt_dirfms_2.pt", "tau22", False),
        ("passt_fms_3", "cpjku_dcase23/releases/download/ensemble_logits/passt_fms_3.pt", "tau22", False),
        ("openmic2008_passt_u_f128_p16_s10_ap85_swa",
         "PaSST/releases/download/v0.0.4-openmic/openmic2008.passt-u-f128-p16-s10-ap.85-swa.pt", "openmic", False),
    ],
)
def test_training_starts_teachers_and_swa_presets(name: str, url_tail: str, labels: str, initial: bool) -> None:
    entry = get_preset(name)
    assert entry.checkpoint_url.endswith(url_tail) and entry.labels == labels and entry.initial_weights is initial


def test_dcase23_passt_teachers_carry_their_training_frontend() -> None:
    """run_teacher_validation.py: fmin_aug_range 1, fmax_aug_range 1000 -> eval mels up to 15500 Hz."""
    entry = get_preset("passt_dirfms_1")
    assert entry.frontend.effective_fmax == 15500 and entry.model_kwargs["num_classes"] == 10
    assert get_preset("dymn10_im").model_kwargs["pretrain_final_temp"] == 30.0
