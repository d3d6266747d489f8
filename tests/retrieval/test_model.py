"""The dual encoder: shared normalised space, similarity orientation, checkpoint round trip, bad files."""

from __future__ import annotations

import pytest
import torch

from tympan.errors import CheckpointError, ConfigError
from tympan.retrieval import (
    DualEncoder,
    DualEncoderConfig,
    build_dual_encoder,
    fuse_similarities,
    load_dual_encoder,
    save_dual_encoder,
)


@pytest.fixture(scope="module")
def model():
    from .conftest import TINY_FRONTEND, TINY_PASST

    torch.manual_seed(0)
    config = DualEncoderConfig(audio_model="passt", audio_model_kwargs=TINY_PASST, audio_frontend=TINY_FRONTEND,
                               freeze_text=True, shared_dim=48, segment_seconds=1.0, max_seconds=3.0)  # fmt: skip
    return build_dual_encoder(config).eval()


def test_embeddings_are_unit_norm_in_the_shared_space(model, generator):
    assert isinstance(model, DualEncoder) and model.tau.item() == pytest.approx(0.01)
    with torch.no_grad():
        audio = model.embed_audio(torch.randn(3, 16000, generator=generator) * 0.1, torch.tensor([16000, 8000, 100]))
        text = model.embed_text(["a dog barks", "rain falls", "a car passes", "birds sing"])
    assert audio.shape == (3, 48) and text.shape == (4, 48)
    torch.testing.assert_close(audio.norm(dim=1), torch.ones(3))
    assert model.similarity(text, audio).shape == (4, 3)  # rows are the caption queries


def test_checkpoint_round_trip_rebuilds_the_same_model(model, tmp_path, generator):
    path = save_dual_encoder(model, tmp_path / "retrieval.pt")
    loaded = load_dual_encoder(path)
    assert loaded.config == model.config and torch.equal(loaded.tau, model.tau)
    audio = torch.randn(2, 20000, generator=generator) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed_audio(audio), model.embed_audio(audio))
        torch.testing.assert_close(loaded.embed_text(["wind howls"]), model.embed_text(["wind howls"]))


def test_foreign_and_missing_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_dual_encoder(tmp_path / "missing.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a retrieval checkpoint"):
        load_dual_encoder(tmp_path / "other.pt")


def test_fuse_similarities_is_a_weighted_mean():
    first, second = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    torch.testing.assert_close(fuse_similarities([first, second]), torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(fuse_similarities([first, second], [3, 1]), torch.tensor([[0.75, 0.25]]))
    with pytest.raises(ConfigError, match="same"):
        fuse_similarities([first, torch.zeros(2, 2)])

