"""Frame-level models: shapes, the 40-ms output grid, and a strict load of the PretrainedSED key layouts.

``data/pretrained_sed_frame_mn_keys.json`` lists the keys and shapes of the public ``frame_mn06_strong_1.pt`` /
``frame_mn10_strong_1.pt`` layouts: made by building the reference model (``fschmid56/PretrainedSED@1aa47e4``,
``FrameMNWrapper`` inside ``PredictionsWrapper`` with 447 classes) and listing its state dict, with its parameter
count and the sequence shape of a 10-s input. ``data/pretrained_sed_fpasst_keys.json`` is made the same way from
``FPaSSTWrapper`` (built without its ImageNet download): the keys as ``fpasst_strong_1.pt`` stores them (the
network under ``model.``, which the reference's ``load_checkpoint`` renames to ``model.fpasst.``), the parameter
count and the sequence shapes of 10-s and 5-s inputs. No checkpoint is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tympan.errors import CheckpointError, ConfigError
from tympan.models import create, get_preset
from tympan.models.checkpoint import load_checkpoint
from tympan.models.frame import FrameModel, resample_sequence
from tympan.models.registry import get_architecture

DATA = Path(__file__).parent / "data"
MANIFEST = {
    **json.loads((DATA / "pretrained_sed_frame_mn_keys.json").read_text()),
    **json.loads((DATA / "pretrained_sed_fpasst_keys.json").read_text()),
}
# Small members of each frame-level architecture, for the tests of mechanics.
TINY = {
    "frame_mn": {"width_mult": 0.1},
    "frame_dymn": {"width_mult": 0.1},
    "frame_passt": {"embed_dim": 32, "depth": 1, "num_heads": 2},
}


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


@pytest.fixture(scope="module")
def fpasst() -> FrameModel:
    return create("fpasst")


def test_fpasst_has_the_published_parameter_count(fpasst: FrameModel) -> None:
    params = sum(p.numel() for p in fpasst.parameters())
    assert params == MANIFEST["fpasst"]["num_params"] == get_preset("fpasst").num_params == 89_109_118


@pytest.mark.parametrize("wrapper", ["model.", "model.fpasst."])
def test_the_published_fpasst_layout_loads_strictly(fpasst: FrameModel, wrapper: str) -> None:
    """The file's layout (``model.*``) and the reference wrapper's (``model.fpasst.*``) both load, with no key left."""
    keys = MANIFEST["fpasst"]["keys"]
    state = {wrapper + key.removeprefix("model.") if key.startswith("model.") else key: torch.zeros(shape)
             for key, shape in keys.items()}  # fmt: skip
    marked = torch.randn(keys["model.patch_embed.proj.weight"], generator=torch.Generator().manual_seed(0))
    state[wrapper + "patch_embed.proj.weight"] = marked
    load_checkpoint(fpasst, state, filter_fn=get_architecture("frame_passt").checkpoint_filter)
    assert len(fpasst.state_dict()) == len(keys)
    assert torch.equal(fpasst.patch_embed.proj.weight, marked)


def test_the_frame_passt_sequence_has_the_reference_shapes() -> None:
    model = create("frame_passt", depth=1)  # the token grid and width do not depend on the depth
    with torch.inference_mode():
        for seconds in (10, 5):
            sequence = model.forward_sequence(torch.zeros(1, 1, 128, 100 * seconds))
            assert list(sequence.shape) == MANIFEST["fpasst"][f"sequence_shape_{seconds}s"]


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


@pytest.mark.parametrize("arch", sorted(TINY))
@pytest.mark.parametrize(("mel_frames", "frames"), [(1000, 250), (250, 62), (101, 25)])
def test_every_frame_architecture_gives_one_frame_per_40_ms(arch: str, mel_frames: int, frames: int) -> None:
    model = create(arch, num_classes=5, **TINY[arch])
    mel = torch.randn(2, 1, 128, mel_frames, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        strong, weak = model.forward_detection(mel)
        assert strong.shape == (2, 5, frames) and weak.shape == (2, 5)
        torch.testing.assert_close(model.forward_frames(mel), strong)
        torch.testing.assert_close(model(mel), weak)
        torch.testing.assert_close(model.forward_head(model.forward_features(mel)), weak)


@pytest.mark.parametrize("arch", sorted(TINY))
def test_training_steps_lower_the_frame_loss(arch: str) -> None:
    torch.manual_seed(0)
    model = create(arch, num_classes=3, **TINY[arch]).train()
    generator = torch.Generator().manual_seed(1)
    mel = torch.randn(4, 1, 128, 200, generator=generator)
    targets = (torch.rand(4, 3, 50, generator=generator) > 0.5).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model.forward_frames(mel), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_the_frame_dymn_keeps_its_time_resolution_in_every_dynamic_part() -> None:
    model = create("frame_dymn", width_mult=0.1)
    block = model.layers[1]  # stride 2 along frequency and time
    assert block.depth_conv.stride == (2, 2) and block.context_gen.pool_t.stride == (1, 2)
    later = model.layers[2]  # stride 2 along frequency only
    assert later.depth_conv.stride == (2, 1) and isinstance(later.context_gen.pool_t, torch.nn.Identity)
    assert model.update_temperature(0) == 30.0 and model.layers[5].depth_conv.temperature == 30.0


def test_the_frame_dymn_presets_have_no_weights_to_download() -> None:
    for name in ("frame_dymn04", "frame_dymn10"):
        entry = get_preset(name)
        assert entry.checkpoint_url is None and "No public weights" in entry.description
        assert entry.arch == "frame_dymn" and entry.model_kwargs["num_classes"] == 447


def test_the_frame_passt_refuses_what_its_encodings_cannot_place() -> None:
    model = create("frame_passt", **TINY["frame_passt"])
    with pytest.raises(ConfigError, match="at most that length"):
        model.forward_sequence(torch.zeros(1, 1, 128, 1012))
    with pytest.raises(ConfigError, match="128 mel bands"):
        model.forward_sequence(torch.zeros(1, 1, 64, 100))
    with pytest.raises(ConfigError, match="multiple of 4"):
        create("frame_passt", n_mels=126)
