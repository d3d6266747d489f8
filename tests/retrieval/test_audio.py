"""The segment-mean audio encoder: segment counts, padding segments left out, cropping."""

from __future__ import annotations

import torch

from tympan.retrieval import AudioEncoder

from .conftest import TINY_FRONTEND, TINY_PASST


def _encoder() -> AudioEncoder:
    torch.manual_seed(0)
    return AudioEncoder.from_name("passt", **TINY_PASST, frontend_changes=TINY_FRONTEND, segment_seconds=1.0,
                                  max_seconds=3.0).eval()  # fmt: skip


def test_segment_counts_follow_the_reference():
    encoder = _encoder()
    rate = encoder.sample_rate
    lengths = torch.tensor([rate // 2, rate, rate + 1, int(2.2 * rate), 10 * rate])
    assert encoder.num_segments(lengths).tolist() == [1, 1, 2, 3, 3]


def test_clip_embedding_is_the_mean_over_segments_with_audio(generator):
    encoder = _encoder()
    rate = encoder.sample_rate
    audio = torch.randn(1, int(1.5 * rate), generator=generator) * 0.1
    with torch.no_grad():
        first = encoder.model.forward_features(encoder.frontend(audio[:, :rate]).unsqueeze(1))
        padded = torch.nn.functional.pad(audio[:, rate:], (0, rate // 2))
        second = encoder.model.forward_features(encoder.frontend(padded).unsqueeze(1))
        batch = torch.cat([audio, torch.zeros(1, audio.shape[1])])
        # The second clip is 0.5 s long: only its first segment counts, and it does not change the first clip.
        embedding = encoder(torch.cat([batch, torch.zeros(1, 4 * rate)[:, : batch.shape[1]]])[:2],
                            torch.tensor([audio.shape[1], rate // 2]))  # fmt: skip
        alone = encoder(audio)
    torch.testing.assert_close(embedding[0], ((first + second) / 2)[0])
    torch.testing.assert_close(alone[0], embedding[0])
    long = torch.cat([audio, torch.randn(1, 5 * rate, generator=generator)], dim=1)
    with torch.no_grad():
        cropped = encoder(long)
        assert cropped.shape == (1, encoder.num_features)
        torch.testing.assert_close(cropped, encoder(long[:, : 3 * rate]))
