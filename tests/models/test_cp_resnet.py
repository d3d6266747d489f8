"""CP-ResNet: parity with the reference (eval and train mode), rho -> kernels -> receptive field, init, configs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tests.conftest import load_reference
from tympan.errors import ConfigError
from tympan.models import create, get_preset
from tympan.models.cp_resnet import BasicBlock, CPResNet, CPResNetConfig

TOL = 2e-4


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_reference("dcase23", "cpresnet128k_seed0.pt")


@pytest.fixture(scope="module")
def teacher(golden: dict) -> CPResNet:
    return create("cp_resnet", checkpoint=golden["state_dict"], **golden["config"])


def test_matches_reference_in_eval_and_train_mode(golden: dict, teacher: CPResNet) -> None:
    with torch.no_grad():
        assert (teacher(golden["mel_input"]) - golden["logits"]).abs().max() < TOL
        training = copy.deepcopy(teacher).train()
        assert (training(golden["mel_input"]) - golden["logits_train_mode"]).abs().max() < TOL


def test_structure_matches_the_reference_build(golden: dict, teacher: CPResNet) -> None:
    internal = golden["model_config_internal"]
    assert list(teacher.config.widths) == internal["width_per_block"] == [32, 64, 92]
    for stage in ("stage1", "stage2", "stage3"):
        ours = dict(getattr(teacher, stage).named_children())
        assert list(ours) == [child["name"] for child in internal[stage]]
        for child in internal[stage]:
            module = ours[child["name"]]
            if isinstance(module, nn.MaxPool2d):
                assert list(module.kernel_size) == child["kernel"] and list(module.stride) == child["stride"]
            else:
                assert list(module.conv1.kernel_size) == child["k1"] and list(module.conv2.kernel_size) == child["k2"]
                assert module.conv1.groups == child["groups"]
                assert hasattr(module.shortcut, "conv") == child["shortcut_conv"]
    assert sum(p.numel() for p in teacher.parameters()) == get_preset("cpr_128k_dirfms_1").num_params == 127_684
    assert teacher.frontend_config.hop_length == 750 and teacher.frontend_config.num_frames(32000) == 43


def _receptive_field(model: CPResNet) -> tuple[int, int]:
    """Along the main path (shortcuts excluded): r += (k - 1) * jump; jump *= stride, per axis."""
    field, jump = [1, 1], [1, 1]
    for name, module in model.named_modules():
        if "shortcut" in name or "feed_forward" in name or not isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            continue
        kernel = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
        stride = module.stride if isinstance(module.stride, tuple) else (module.stride,) * 2
        for axis in range(2):
            field[axis] += (kernel[axis] - 1) * jump[axis]
            jump[axis] *= stride[axis]
    return field[0], field[1]


@pytest.mark.parametrize(
    ("rho", "expected"),
    [(0, (27, 15)), (2, (43, 23)), (3, (59, 31)), (4, (91, 39)), (6, (123, 47)), (8, (155, 55)), (9, (187, 63))],
)
def test_rho_sets_the_receptive_field(rho: int, expected: tuple[int, int]) -> None:
    assert _receptive_field(CPResNet(CPResNetConfig(rho=rho))) == expected


def test_fixup_init_is_per_model_and_gives_zero_logits(golden: dict, generator: torch.Generator) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        first, second = CPResNet(), CPResNet()
    reference = golden["reference_init_state_dict"]
    for model in (first, second):  # the reference's global block counter would change the second model's init
        state = model.state_dict()
        for key in ("stage1.block1.conv1.weight", "stage2.block1.conv1.weight", "stage3.block1.shortcut.conv.weight"):
            assert state[key].std().item() == pytest.approx(reference[key].std().item(), rel=0.1), key
        assert not state["stage1.block2.conv2.weight"].any() and not state["feed_forward.0.weight"].any()
        assert not model(torch.randn(2, 1, 256, 43, generator=generator)).any()


def test_contract_and_classifier_reset(teacher: CPResNet, generator: torch.Generator) -> None:
    mel = torch.randn(2, 1, 256, 43, generator=generator)
    with torch.no_grad():
        features = teacher.forward_features(mel)
        torch.testing.assert_close(teacher.forward_head(features), teacher(mel), atol=1e-4, rtol=1e-5)
    assert features.shape == (2, teacher.num_features) == (2, 92)
    model = copy.deepcopy(teacher)
    model.reset_classifier(3)
    assert model(mel).shape == (2, 3) and model.num_classes == 3


def test_reference_keyword_names() -> None:
    config = CPResNetConfig.from_reference(
        s2_group=1, maxpool_pos_stage1=[1], maxpool_kernel=(2, 2), maxpool_stride=2, n_blocks=[1, 1, 0]
    )
    assert config.groups == (1, 1, 1) and config.pool_positions == ((1,), (), ())
    assert config.widths == (32, 64, 64)  # stage 3 without blocks keeps stage 2's width
    model = CPResNet(config, num_classes=5)
    assert isinstance(model.stage1.block1, BasicBlock) and len(model.stage3) == 0
    assert model(torch.zeros(1, 1, 64, 20)).shape == (1, 5)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_blocks": (0, 1, 1)}, {"s2_group": 3}, {"cut_channels_s3": 128}, {"base_channels": 0}, {"depth": 3}],
)
def test_invalid_configs_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        create("cp_resnet", **kwargs)
