"""HEAR 2021 API: parity with hear21passt (golden data) and what the HEAR validator checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import load_reference
from tympan import hear
from tympan.audio.frontend import MelFrontend, MelFrontendConfig
from tympan.errors import AudioLoadError, ConfigError
from tympan.models import AudioModel, create

TOL = {"atol": 5e-4, "rtol": 0}
SR = 32000


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_reference("passt", "passt_hear_api.pt")


@pytest.fixture(scope="module")
def small_passt() -> AudioModel:
    reference = load_reference("passt", "passt_small_s10.pt")
    return create("passt", checkpoint=reference["state_dict"], **reference["config"])


@pytest.fixture(scope="module")
def frontend() -> MelFrontend:
    mel_config = load_reference("passt", "passt_frontend.pt")["mel_config"]
    return MelFrontend.from_config(MelFrontendConfig.from_reference(**mel_config))


def wrapper_config(golden: dict, **changes) -> dict:
    config = {k: v for k, v in golden["wrapper_config"].items() if k != "timestamp_embedding_size"}
    return {**config, **changes}


def test_forward_matches_reference(golden: dict, small_passt: AudioModel, frontend: MelFrontend) -> None:
    model = hear.wrap(small_passt, frontend, **golden["wrapper_config"])  # the stored sizes are checked too
    waveform = load_reference("passt", "passt_frontend.pt")["waveform"]
    with torch.no_grad():
        torch.testing.assert_close(model(waveform), golden["forward_all_10s"], **TOL)
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (SR, 719, 719)


@pytest.mark.parametrize(
    ("variant", "key"),
    [
        ("base", "timestamp_embeddings"),
        ("2level", "timestamp_embeddings_2level"),
        ("2levelmel", "timestamp_embeddings_2levelmel"),
    ],
)
def test_timestamp_embeddings_match_reference(
    golden: dict, small_passt: AudioModel, frontend: MelFrontend, variant: str, key: str
) -> None:
    model = hear.wrap(small_passt, frontend, variant=variant, **wrapper_config(golden))
    embeddings, timestamps = hear.get_timestamp_embeddings(golden["waveform_ts"], model)
    assert embeddings.shape == golden[key].shape and embeddings.shape[-1] == model.timestamp_embedding_size
    torch.testing.assert_close(embeddings, golden[key], **TOL)
    assert torch.equal(timestamps, golden["timestamps"])


@pytest.mark.parametrize("length", ["short", "long"])
def test_scene_embeddings_match_reference(
    golden: dict, small_passt: AudioModel, frontend: MelFrontend, length: str
) -> None:
    model = hear.wrap(small_passt, frontend, **golden["wrapper_config"])
    audio = golden["waveform_ts" if length == "short" else "waveform_long"]
    torch.testing.assert_close(hear.get_scene_embeddings(audio, model), golden[f"scene_embeddings_{length}"], **TOL)


def test_batched_windows_give_the_numbers_of_one_window_per_call(
    golden: dict, small_passt: AudioModel, frontend: MelFrontend
) -> None:
    audio = golden["waveform_ts"][:, :8000]
    batched = hear.wrap(small_passt, frontend, variant="2level", **wrapper_config(golden))
    single = hear.wrap(small_passt, frontend, variant="2level", max_batch_samples=1, **wrapper_config(golden))
    torch.testing.assert_close(
        hear.get_timestamp_embeddings(audio, batched)[0], hear.get_timestamp_embeddings(audio, single)[0]
    )


class TinyCNN(AudioModel):
    """A stand-in CNN: any AudioModel can be wrapped."""

    def __init__(self) -> None:
        super().__init__()
        self.num_features, self.num_classes = 8, 3
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)
        self.frontend_config = MelFrontendConfig(n_mels=32, win_length=400, hop_length=160, n_fft=512,
                                                 sample_rate=16000, fmax_aug_range=1000)

    def forward_features(self, mel: torch.Tensor) -> torch.Tensor:
        return self.conv(mel).mean(dim=(2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


@pytest.fixture(scope="module")
def cnn() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.mark.parametrize(("mode", "size"), [("all", 11), ("embed_only", 8), ("logits", 3)])
def test_any_audio_model_and_modes(cnn: TinyCNN, mode: str, size: int) -> None:
    model = hear.wrap(cnn, MelFrontend.from_config(cnn.frontend_config), mode=mode, variant="2levelmel")
    assert model.sample_rate == 16000 and model.scene_embedding_size == size
    assert model.timestamp_embedding_size == 2 * size + 32 * 6
    audio = torch.rand(2, 16000, generator=torch.Generator().manual_seed(1)) - 0.5
    scene = hear.get_scene_embeddings(audio, model)
    with torch.no_grad():
        features = cnn.forward_features(MelFrontend.from_config(cnn.frontend_config).eval()(audio).unsqueeze(1))
        expected = {"all": torch.cat((cnn.forward_head(features), features), 1), "embed_only": features,
                    "logits": cnn.forward_head(features)}[mode]
    torch.testing.assert_close(scene, expected)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 16000 // 800 + 1, model.timestamp_embedding_size)
    assert timestamps.shape == embeddings.shape[:2]


@pytest.mark.parametrize(
    ("seconds", "n_sounds", "network"),
    [(s, n, "cnn") for s in (1.07, 1.98, 4.0) for n in (1, 3)] + [(1.07, 3, "passt")],
)
def test_what_the_hear_validator_checks(
    cnn: TinyCNN, small_passt: AudioModel, seconds: float, n_sounds: int, network: str
) -> None:
    net = cnn if network == "cnn" else small_passt
    model = hear.wrap(net, MelFrontend.from_config(net.frontend_config))
    assert all(isinstance(getattr(model, a), int) for a in ("sample_rate", "scene_embedding_size",
                                                            "timestamp_embedding_size"))
    n_samples = int(seconds * model.sample_rate)
    audio = torch.rand(n_sounds, n_samples, generator=torch.Generator().manual_seed(n_samples)) * 2 - 1
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    scene = hear.get_scene_embeddings(audio, model)
    assert embeddings.dtype == timestamps.dtype == scene.dtype == torch.float32
    assert embeddings.shape == (n_sounds, n_samples * 20 // model.sample_rate + 1, model.timestamp_embedding_size)
    assert timestamps.shape == embeddings.shape[:2] and scene.shape == (n_sounds, model.scene_embedding_size)
    hops = timestamps.diff(dim=1)
    assert torch.allclose(hops, torch.full_like(hops, 50.0)) and timestamps[0, 0] == 0
    assert float(timestamps[0, -1]) <= seconds * 1000  # centred: the last window is centred inside the audio
    assert torch.equal(timestamps[0], timestamps[-1])
    # each sound's embedding does not depend on the others in the batch
    first, _ = hear.get_timestamp_embeddings(audio[:1], model)
    torch.testing.assert_close(first, embeddings[:1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hear.get_scene_embeddings(audio[:1], model), scene[:1], atol=1e-5, rtol=1e-5)


def test_audio_shorter_than_half_a_window_and_bad_input(cnn: TinyCNN) -> None:
    model = hear.wrap(cnn, MelFrontend.from_config(cnn.frontend_config), variant="2level")
    embeddings, timestamps = hear.get_timestamp_embeddings(torch.zeros(1, 3000), model)  # < 400 ms of padding
    assert embeddings.shape == (1, 4, 22) and torch.isfinite(embeddings).all()
    assert timestamps.tolist() == [[0.0, 50.0, 100.0, 150.0]]
    with pytest.raises(AudioLoadError, match="n_sounds, n_samples"):
        hear.get_scene_embeddings(torch.zeros(3000), model)
    with pytest.raises(ConfigError, match="variant"):
        hear.wrap(cnn, MelFrontend.from_config(cnn.frontend_config), variant="3level")
    with pytest.raises(ConfigError, match="resample"):
        hear.wrap(cnn, MelFrontend.from_config(cnn.frontend_config), sample_rate=32000)
    with pytest.raises(ConfigError, match="scene_embedding_size"):
        hear.wrap(cnn, MelFrontend.from_config(cnn.frontend_config), scene_embedding_size=5)


def test_load_model_from_a_checkpoint_file(tmp_path, golden: dict) -> None:
    reference = load_reference("passt", "passt_small_s10.pt")
    path = tmp_path / "passt.pt"
    torch.save(reference["state_dict"], path)
    model = hear.load_model(str(path), model="passt", model_kwargs=reference["config"], variant="2level")
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (SR, 719, 1438)
    torch.testing.assert_close(hear.get_scene_embeddings(golden["waveform_ts"], model),
                               golden["scene_embeddings_short"], **TOL)
    with pytest.raises(ConfigError, match="mode"):
        hear.load_model(str(path), model="passt", model_kwargs=reference["config"], mode="features")


@pytest.mark.parametrize(
    ("name", "window_s", "hop_s"),
    [("passt_s_f128_20sec_p16_s10_ap474", 20, 5), ("passt_s_f128_30sec_p16_s10_ap473", 30, 10),
     ("passt_s_swa_p16_128_ap476", 10, 2.5)],
)
def test_long_passt_presets_embed_scenes_in_one_pass_up_to_their_length(name: str, window_s: float, hop_s: float):
    """hear21passt base20sec / base30sec: max_model_window 20000 / 30000 ms, scene_hop 5000 / 10000 ms."""
    with torch.device("meta"):
        model = create(name)
    hear_model = hear.wrap(model, torch.nn.Identity(), sample_rate=32000)
    assert hear_model.max_model_window == window_s * 32000 and hear_model.scene_hop == hop_s * 32000
    assert hear.wrap(model, torch.nn.Identity(), sample_rate=32000, max_model_window_ms=8000).max_model_window == 256000
