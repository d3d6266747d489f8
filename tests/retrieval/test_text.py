"""The text encoder: caption pre-processing, the bundled MiniLM offline, pooling, truncation, caching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tympan.errors import ConfigError
from tympan.retrieval import TextEncoder, normalize_caption
from tympan.retrieval.text import resolve_text_model


def test_normalize_caption_lowercases_and_strips_ascii_punctuation():
    assert normalize_caption("A Dog barks, loudly! (twice)") == "a dog barks loudly twice"


def test_paraphrases_are_closer_than_unrelated_captions(minilm):
    features = F.normalize(minilm(["A dog is barking loudly in the distance.", "A dog barks repeatedly far away.",
                                   "Heavy rain falls on a tin roof."]), dim=1)  # fmt: skip
    assert minilm.num_features == 384 and features.shape == (3, 384)
    assert features[0] @ features[1] > 0.6 > 0.2 > features[0] @ features[2]


def test_mean_pooling_and_truncation_to_max_tokens(minilm):
    # 32 tokens = [CLS] + 30 words + [SEP]: a longer caption gives exactly the features of its first 30 words.
    long, cut = " ".join(["rain"] * 100), " ".join(["rain"] * 30)
    assert torch.equal(minilm([long]), minilm([cut]))
    tokens = minilm.tokenizer(["rain falls"], return_tensors="pt")
    with torch.no_grad():
        hidden = minilm.transformer(**tokens)[0]
    torch.testing.assert_close(minilm(["Rain falls."]), hidden.mean(dim=1))


def test_frozen_encoder_caches_and_has_no_gradients(minilm):
    minilm.train()
    assert not minilm.transformer.training
    assert not any(p.requires_grad for p in minilm.parameters())
    first = minilm(["a bird sings", "a bird sings!"])  # the same caption once normalised
    assert torch.equal(first[0], first[1]) and "a bird sings" in minilm._cache


def test_bad_settings_and_missing_models_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="pooling"):
        TextEncoder(pooling="max")
    with pytest.raises(ConfigError, match="local folder"):
        TextEncoder(str(tmp_path))
    assert resolve_text_model("some/hub-name") == "some/hub-name"
    assert resolve_text_model(str(tmp_path)) == str(tmp_path)
