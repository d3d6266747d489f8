"""The symmetric multi-positive InfoNCE loss of the paper.

Reference: ``OptimusPrimus/dcase2023_task6b`` ``train.py`` (``training_step``). For a batch of ``B`` (audio,
caption) pairs, ``C = audio @ text.T / |tau|`` (``[B, B]``); every cell whose row and column come from the same
clip is a positive, so the captions of one clip never push each other away. The loss averages the
log-probabilities of all positive cells, once normalised over audios (columns) and once over captions (rows):
``-(mean log_softmax(C, 0)[P] + mean log_softmax(C, 1)[P]) / 2``. With unique clips it is the CLIP loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["contrastive_loss"]


def contrastive_loss(audio: Tensor, text: Tensor, tau: Tensor, clip_ids: Tensor) -> Tensor:
    """Symmetric InfoNCE with learned temperature and every same-clip pair as a positive.

    Args:
        audio: ``[batch, dim]`` audio embeddings (L2-normalised in the paper).
        text: ``[batch, dim]`` caption embeddings; row i is a caption of the clip of audio row i.
        tau: the temperature parameter; its absolute value is used, unclamped, as in the reference.
        clip_ids: ``[batch]`` integer id of the clip of each row.

    Returns:
        the scalar loss.
    """
    if audio.shape != text.shape or audio.ndim != 2 or clip_ids.shape != audio.shape[:1]:
        raise ConfigError(
            f"need audio and text [batch, dim] and clip_ids [batch]; got {tuple(audio.shape)}, {tuple(text.shape)} "
            f"and {tuple(clip_ids.shape)}"
        )
    logits = audio @ text.T / tau.abs()
    positives = clip_ids[:, None] == clip_ids[None, :]
    over_audio = torch.log_softmax(logits, dim=0)[positives].mean()
    over_text = torch.log_softmax(logits, dim=1)[positives].mean()
    return -0.5 * (over_audio + over_text)
