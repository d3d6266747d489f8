"""Frame-level models: shapes, the 40-ms output grid, and a strict load of the PretrainedSED key layout.

``data/pretrained_sed_frame_mn_keys.json`` lists the keys and shapes of the public ``frame_mn06_strong_1.pt`` /
``frame_mn10_strong_1.pt`` layouts: made by building the reference model (``fschmid56/PretrainedSED@1aa47e4``,
``FrameMNWrapper`` inside ``PredictionsWrapper`` with 447 classes) and listing its state dict, with its parameter
count and the sequence shape of a 10-s input. No checkpoint is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tympan.errors import CheckpointError, ConfigError
from tympan.models import create, get_preset
from tympan.models.frame import FrameModel, resample_sequence

MANIFEST = json.loads((Path(__file__).parent / "data" / "pretrained_sed_frame_mn_keys.json").read_text())


def _reference_state(name: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
    state = {}
    for key, shape in MANIFEST[name]["keys"].items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.1
    return state


@pytest.mark.parametrize("name", ["frame_mn06", "frame_mn10"])
def test_reference_layout_loads_strictly(name: str) -> None:
    state = _reference_state(name, torch.Generator().manual_seed(0))
    model = create(name, checkpoint=state)
    assert sum(p.numel() for p in model.parameters()) == MANIFEST[name]["num_params"] == get_preset(name).num_params
    loaded = model.state_dict()
    assert torch.equal(loaded["features.4.block.2.conc_se_layers.0.fc1.weight"],
                       state["model.frame_mn.features.4.block.2.conc_se_layers.0.fc1.weight"])  # fmt: skip
    assert torch.equal(loaded["strong_head.weight"], state["strong_head.weight"])


def test_a_layout_with_a_missing_key_is_refused() -> None:
    state = _reference_state("frame_mn06", torch.Generator().manual_seed(1))
    del state["weak_head.bias"]
    with pytest.raises(CheckpointError, match="missing"):
        create("frame_mn06", checkpoint=state)


def test_ten_seconds_give_250_frames_of_the_reference_width() -> None:
    model = create("frame_mn06")
    mel = torch.randn(2, 1, 128, 1000)
    with torch.inference_mode():
        sequence = model.forward_sequence(mel)
        frames, clip = model.forward_detection(mel)
    assert [1, *sequence.shape[1:]] == MANIFEST["frame_mn06"]["sequence_shape_10s"] == [1, 250, 576]
    assert frames.shape == (2, 447, 250) and clip.shape == (2, 447)
    assert torch.allclose(model(mel), clip, atol=1e-5)
    assert torch.allclose(model.forward_frames(mel), frames, atol=1e-5)


def test_reset_classifier_replaces_both_heads() -> None:
    model = create("frame_mn", width_mult=0.4)
    assert isinstance(model, FrameModel)
    model.reset_classifier(3)
    with torch.inference_mode():
        frames = model.forward_frames(torch.randn(1, 1, 128, 500))
    assert frames.shape == (1, 3, 125) and model.weak_head.out_features == 3


def test_sequences_are_resampled_to_the_output_rate() -> None:
    sequence = torch.arange(8.0).view(1, 8, 1)
    assert torch.equal(resample_sequence(sequence, 4).flatten(), torch.tensor([0.5, 2.5, 4.5, 6.5]))
    assert resample_sequence(sequence, 16).shape == (1, 16, 1)


def test_bad_strides_are_refused() -> None:
    with pytest.raises(ConfigError, match="15"):
        create("frame_mn", strides=[(2, 2)] * 4)
