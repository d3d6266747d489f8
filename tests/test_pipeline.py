"""tympan.load and AudioPipeline: any rate, any shape, short clips, checkpoints of every layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
import torch

import tympan
from tympan.errors import AudioLoadError, CheckpointError, ConfigError, UnknownModelError
from tympan.pipeline import AudioPipeline

from ._models import small_mn_state

RATE = 32000


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return small_mn_state()


@pytest.fixture(scope="module")
def pipeline(state: dict[str, torch.Tensor]) -> AudioPipeline:
    return tympan.load("mn", state, width_mult=0.4, device="cpu")


@pytest.fixture(scope="module")
def waveforms() -> torch.Tensor:
    return 0.1 * torch.randn(2, 2 * RATE, generator=torch.Generator().manual_seed(1))


def test_pipeline_carries_labels_rate_and_activation(pipeline: AudioPipeline) -> None:
    assert pipeline.sample_rate == RATE
    assert len(pipeline.labels) == 527 and pipeline.labels[0] == "Speech"
    assert pipeline.multilabel
    assert "527 classes" in repr(pipeline)


def test_batch_equals_single_clips(pipeline: AudioPipeline, waveforms: torch.Tensor) -> None:
    batch = pipeline.scores(waveforms)
    assert batch.shape == (2, 527)
    assert np.all((batch >= 0) & (batch <= 1))
    np.testing.assert_allclose(pipeline.scores(waveforms[1]), batch[1], atol=1e-5)
    # Lists of clips of different lengths run too, in input order.
    mixed = pipeline.scores([waveforms[0], waveforms[1, : RATE + 123].numpy()])
    np.testing.assert_allclose(mixed[0], batch[0], atol=1e-5)
    assert mixed.shape == (2, 527)


def test_any_rate_and_channels_from_file(pipeline: AudioPipeline, waveforms: torch.Tensor, tmp_path: Path) -> None:
    at_44k = soxr.resample(waveforms[0].numpy(), RATE, 44100).astype(np.float32)
    stereo = np.stack([at_44k, at_44k], axis=1)
    soundfile.write(tmp_path / "stereo.wav", stereo, 44100, subtype="FLOAT")
    from_file = pipeline.scores(tmp_path / "stereo.wav")
    from_array = pipeline.scores(at_44k, sample_rate=44100)
    np.testing.assert_allclose(from_file, from_array, atol=1e-5)
    # Resampling back and forth changes the samples only slightly: scores stay close to the original's.
    np.testing.assert_allclose(from_array, pipeline.scores(waveforms[0]), atol=2e-3)


def test_tag_and_embed(pipeline: AudioPipeline, waveforms: torch.Tensor) -> None:
    top = pipeline.tag(waveforms[0], top_k=3)
    scores = pipeline.scores(waveforms[0])
    assert [label for label, _ in top] == [pipeline.labels[i] for i in np.argsort(-scores)[:3]]
    assert top[0][1] >= top[1][1] >= top[2][1]
    assert len(pipeline.tag(waveforms, top_k=2)) == 2
    embedding = pipeline.embed(waveforms)
    assert embedding.shape == (2, pipeline.model.num_features)


def test_short_audio_is_padded_with_a_note(pipeline: AudioPipeline) -> None:
    clips = pipeline.clips(np.array([0.5], dtype=np.float32))
    assert clips[0].waveform.numel() == pipeline.min_samples
    assert "zero-padded" in clips[0].notes[0]
    assert pipeline.scores(np.array([0.5], dtype=np.float32)).shape == (527,)


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan, 0.1]), np.array([np.inf] * 100), np.zeros(0)])
def test_unusable_audio_is_an_audio_load_error(pipeline: AudioPipeline, bad: np.ndarray) -> None:
    with pytest.raises(AudioLoadError):
        pipeline.scores(bad.astype(np.float32))


def test_self_describing_checkpoint_rebuilds_everything(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    frontend = tympan.load("mn", state, width_mult=0.4, device="cpu").frontend_config.replace(n_mels=128)
    from tympan.models import create

    model = create("mn", width_mult=0.4, num_classes=3)
    checkpoint = {
        "tympan": {
            "arch": "mn",
            "model_kwargs": {"width_mult": 0.4, "num_classes": 3},
            "frontend": frontend.to_dict(),
            "labels": ["bark", "meow", "tweet"],
            "multilabel": False,
        },
        "state_dict": {**{f"model.{k}": v for k, v in model.state_dict().items()}, "teacher.w": torch.zeros(2)},
        "epoch": 3,
    }
    torch.save(checkpoint, tmp_path / "finetuned.ckpt")
    pipeline = tympan.load(checkpoint=tmp_path / "finetuned.ckpt", device="cpu")
    assert pipeline.labels == ["bark", "meow", "tweet"]
    assert pipeline.frontend_config == frontend
    assert not pipeline.multilabel
    scores = pipeline.scores(np.zeros(RATE, dtype=np.float32))
    assert scores.shape == (3,) and abs(scores.sum() - 1) < 1e-5


def test_lightning_and_container_layouts_load(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    reference = tympan.load("mn", state, width_mult=0.4, device="cpu").scores(np.ones(RATE, np.float32) * 0.1)
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}}, tmp_path / "lightning.ckpt")
    torch.save({"model": state}, tmp_path / "container.pt")
    for name in ("lightning.ckpt", "container.pt"):
        scores = tympan.load("mn", tmp_path / name, width_mult=0.4, device="cpu").scores(
            np.ones(RATE, np.float32) * 0.1
        )
        np.testing.assert_allclose(scores, reference, atol=1e-6)


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="list_models"):
        tympan.load("mn10_asx")
    with pytest.raises(ConfigError, match="name a model"):
        tympan.load()
    with pytest.raises(CheckpointError, match="does not exist"):
        tympan.load("mn", tmp_path / "absent.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        tympan.load("mn", tmp_path / "garbage.pt")


def test_public_api_is_small_and_lazy() -> None:
    assert set(tympan.__all__) == {"__version__", "embed", "list_models", "load", "tag"}
    import subprocess
    import sys

    code = "import sys, tympan; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_presets_bring_their_clip_length_and_activation() -> None:
    scenes = tympan.load("cp_mobile_dcase23", pretrained=False, device="cpu")
    assert (scenes.clip_seconds, scenes.multilabel) == (1.0, False)
    # ESC-50 PaSST was trained on 5 s clips; FSD50K and OpenMIC are multi-label like AudioSet (sigmoid scores).
    from tympan.models import resolve_spec

    assert resolve_spec("esc50_passt_s_n_f128_p16_s10_fold1_acc967").clip_seconds == 5.0
    assert resolve_spec("cp_mobile").clip_seconds == 1.0 and resolve_spec("mn").clip_seconds == 10.0
# Written out independently of tympan.labels: which reference trains each label set with BCE (sigmoid scores).
MULTILABEL_BY_SET = {
    "audioset": True, "audioset_strong": True, "fsd50k": True, "openmic": True, "esc50": False, "tau22": False,
}  # fmt: skip


class _StubNetwork(torch.nn.Module):
    """A stand-in for a preset's network: a mean-pooled mel through one linear layer (no 86 M PaSST to build)."""

    def __init__(self, num_classes: int, frontend_config) -> None:
        super().__init__()
        self.num_classes, self.num_features, self.frontend_config = num_classes, 1, frontend_config
        self.head = torch.nn.Linear(1, num_classes)

    def forward_features(self, mel: torch.Tensor) -> torch.Tensor:
        return mel.mean(dim=(1, 2, 3))[:, None]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


@pytest.mark.parametrize("name", tympan.list_models())
def test_every_preset_scores_as_its_label_set_is_trained(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tympan.labels import get_labels
    from tympan.models import get_preset

    entry = get_preset(name)
    assert entry.multilabel is MULTILABEL_BY_SET[entry.labels]
    stub = _StubNetwork(len(get_labels(entry.labels)), entry.frontend)
    monkeypatch.setattr("tympan.models.bundles.ModelBundle.get_model", lambda self: stub)
    if entry.initial_weights:  # an ImageNet start: refused, with what to do instead
        with pytest.raises(ConfigError, match="initial weights for training"):
            tympan.load(name, pretrained=False, device="cpu")
        return
    pipeline = tympan.load(name, pretrained=False, device="cpu")
    assert pipeline.multilabel is MULTILABEL_BY_SET[entry.labels]
    scores = pipeline.scores(0.1 * torch.randn(entry.frontend.sample_rate, generator=torch.Generator().manual_seed(0)))
    assert (abs(scores.sum() - 1.0) < 1e-5) is not pipeline.multilabel


def test_fp16_inference_is_refused_off_cuda_with_a_clear_error(state: dict[str, torch.Tensor]) -> None:
    with pytest.raises(ConfigError, match="CUDA device"):
        tympan.load("mn", state, width_mult=0.4, device="cpu", precision="16-mixed")
    with pytest.raises(ConfigError, match="precision must be one of"):
        tympan.load("mn", state, width_mult=0.4, device="cpu", precision="16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 autocast inference needs a CUDA device")
def test_fp16_autocast_scores_are_close_to_fp32(state: dict[str, torch.Tensor], waveforms: torch.Tensor) -> None:
    fp32 = tympan.load("mn", state, width_mult=0.4, device="cuda")
    fp16 = tympan.load("mn", state, width_mult=0.4, device="cuda", precision="16-mixed")
    scores16 = fp16.scores(waveforms)
    assert scores16.dtype == np.float32
    np.testing.assert_allclose(scores16, fp32.scores(waveforms), atol=5e-3)
