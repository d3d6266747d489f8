"""A tiny registered architecture for the training tests: fast on CPU, rebuildable by name from a checkpoint."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tympan.audio.frontend import MelFrontendConfig
from tympan.models.base import AudioModel
from tympan.models.registry import get_architecture, list_architectures, register_architecture

TINY_FRONTEND = MelFrontendConfig(
    sample_rate=8000, n_mels=16, win_length=200, hop_length=80, n_fft=256, freqm=0, timem=0, fmax_aug_range=400
)


class TinyNet(AudioModel):
    """conv -> BN (optional: SyncBatchNorm needs CUDA, so the CPU DDP test goes without) -> ReLU -> time mean -> linear.

    Pooling over time only keeps the frequency axis, so tones of different pitch are told apart at once.
    """

    def __init__(self, num_classes: int = 4, channels: int = 4, batchnorm: bool = True, n_mels: int = 16):
        super().__init__()
        norm = nn.BatchNorm2d(channels) if batchnorm else nn.Identity()
        self.conv = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), norm, nn.ReLU())
        self.num_features, self.num_classes = channels * n_mels, num_classes
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, mel: Tensor) -> Tensor:
        return self.conv(mel).mean(dim=3).flatten(1)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes


if "tiny_test" not in list_architectures():
    register_architecture("tiny_test", TinyNet, default_frontend=TINY_FRONTEND)
get_architecture("tiny_test")


def tiny_model(num_classes: int = 4, seed: int = 0, **kwargs) -> TinyNet:
    from tympan.models import create

    torch.manual_seed(seed)
    return create("tiny_test", num_classes=num_classes, **kwargs).train()
