"""ModelSpec, tympan's checkpoint format and bundles: one description per model, read and written in one place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import tympan
from tympan.errors import CheckpointError, ConfigError, UnknownModelError
from tympan.models import (
    ModelSpec,
    TympanCheckpoint,
    build,
    bundle,
    create,
    frontend_of,
    read_checkpoint,
    resolve_spec,
    save_checkpoint,
)
from tympan.models.cp_resnet import DCASE20_KWARGS
from tympan.models.dymn import DynamicOptions
from tympan.models.mobilenet import SEConfig
from tympan.models.spec import spec_of
from tympan.models.tympan_checkpoint import FORMAT_VERSION, entry

TINY_CP_RESNET = {"rho": 2, "base_channels": 8, "cut_channels_s3": 0}


def test_create_sets_the_spec_once_and_old_names_are_views_of_it() -> None:
    model = create("cp_mobile_dcase23")
    spec = model.spec
    assert (spec.arch, spec.preset, spec.num_classes, spec.clip_seconds) == ("cp_mobile", "cp_mobile_dcase23", 10, 1.0)
    assert spec.labels[0] == "airport" and not spec.multilabel and spec.sample_rate == 32000
    assert not hasattr(spec.config, "num_classes")  # the class count is len(labels)
    assert model.frontend_config is spec.frontend and model.preset.name == "cp_mobile_dcase23"
    model.frontend_config = spec.frontend.replace(n_mels=128)  # the old setter replaces the spec's frontend
    assert model.spec.frontend.n_mels == 128 and model.spec.labels == spec.labels


def test_each_family_adapts_the_reference_argument_names() -> None:
    reference = create("cp_resnet", n_classes=3, **TINY_CP_RESNET)
    ours = create("cp_resnet", num_classes=3, **TINY_CP_RESNET)
    assert reference.spec == ours.spec and reference.num_classes == 3
    assert reference.spec.labels == ("class_0", "class_1", "class_2")  # tau22 has 10 scenes: not these labels
    assert build(reference.spec).state_dict().keys() == reference.state_dict().keys()
    assert resolve_spec("mn", width_mult=0.4).labels == tuple(tympan.labels.get_labels("audioset"))


# A preset of every family (non-default configs: strides, widths, SE, patchout, ...) and a tiny one where none is.
FAMILY_SPECS = {
    "mn": ("mn10_as_fc_s2211", {}),
    "dymn": ("dymn04_replace_se_as", {}),
    "passt": ("passt_s_swa_p16_128_ap476", {"s_patchout_t": 40, "s_patchout_f": 4}),
    "cp_mobile": ("cp_mobile_dcase24_baseline", {}),
    "cp_resnet": ("cp_resnet", {"rho": 5, **DCASE20_KWARGS}),
    "frame_mn": ("frame_mn06", {}),
    "frame_dymn": ("frame_dymn04", {}),
    "frame_passt": ("frame_passt", {"depth": 2, "time_encodings": 100}),
}


def test_every_registered_family_has_a_typed_config() -> None:
    assert set(FAMILY_SPECS) <= set(tympan.models.list_architectures())
    assert all(type(resolve_spec(arch).config).__name__.endswith("Config") for arch in FAMILY_SPECS)


@pytest.mark.parametrize("arch", sorted(FAMILY_SPECS))
def test_each_family_config_round_trips_through_plain_values_and_a_checkpoint(arch: str, tmp_path: Path) -> None:
    name, kwargs = FAMILY_SPECS[arch]
    spec = resolve_spec(name, **kwargs)
    config = spec.config
    assert spec.arch == arch and config != type(config)()  # a config other than the family's defaults
    plain = json.loads(json.dumps(config.to_dict()))  # plain values only
    assert type(config).from_dict(plain) == config
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    path = save_checkpoint(TympanCheckpoint(spec, {"w": torch.zeros(1)}), tmp_path / "m.ckpt")
    assert torch.load(path, weights_only=True)["tympan"]["spec"]["config"] == plain
    assert read_checkpoint(path).spec == spec


@pytest.mark.parametrize(
    ("arch", "reference", "ours"),
    [
        ("mn", {"input_dim_f": 64, "se_dims": "cf", "se_agg": "avg"},
         {"input_size": (64, 1000), "se": SEConfig((1, 2), "avg")}),
        ("mn", {"se_dims": "none"}, {"se": None}),
        ("dymn", {"use_dy_blocks": "replace_se", "no_ca": True, "dyconv_k": 2, "T_max": 1.0,
                  "pretrain_final_temp": 2.0},
         {"dynamic_blocks": "replace_se", "dynamic": DynamicOptions(num_kernels=2, coord_att=False),
          "temperature_schedule": {"t_max": 1.0}, "temperature": 2.0}),
        ("passt", {"img_size": (128, 200), "in_chans": 2, "s_patchout_t": 3, "stride": 10},
         {"input_size": [128, 200], "in_channels": 2, "patchout_time": 3, "stride": (10, 10)}),
        ("cp_mobile", {"n_classes": 10, "strides": None, "n_blocks": [2, 2]}, {"num_classes": 10, "n_blocks": (2, 2)}),
        ("cp_resnet", {"s2_group": 1, "maxpool_kernel": (2, 2), "maxpool_pos_stage1": [1, 2]},
         {"groups": (1, 1, 1), "pool_kernel": (2, 2), "pool_positions": ((1, 2), (), ())}),
        ("frame_mn", {"input_dim_t": 500}, {"input_size": (128, 500)}),
        ("frame_dymn", {"min_context_size": 16, "no_dyrelu": True}, {"dynamic": {"context_range": [16, 128],
                                                                                 "dynamic_relu": False}}),
        ("frame_passt", {"pos_embed_length": 100}, {"time_encodings": 100}),
    ],
)  # fmt: skip
def test_reference_and_tympan_names_give_the_same_typed_config(arch: str, reference: dict, ours: dict) -> None:
    spec = resolve_spec(arch, **reference)
    assert spec == resolve_spec(arch, **ours) and spec.config != resolve_spec(arch).config


def test_an_unknown_argument_names_the_family_and_its_fields() -> None:
    with pytest.raises(ConfigError, match=r"unknown MN argument\(s\) \['widht_mult'\].* width_mult, reduced_tail"):
        create("mn", widht_mult=0.4)
    with pytest.raises(ConfigError, match=r"unknown CPMobile argument.*base_channels"):
        resolve_spec("cp_mobile_dcase23", depth=3)
    with pytest.raises(ConfigError, match="the class count is not part of the config"):
        tympan.models.cp_mobile.CPMobileConfig.from_reference(n_classes=10)
    with pytest.raises(ConfigError, match="not both"):
        resolve_spec("mn", input_size=(64, 100), input_dim_f=64)


def test_a_preset_changes_only_in_its_training_settings() -> None:
    assert resolve_spec("dymn04_as", T_max=30.0).config.temperature_schedule.t_max == 30.0
    assert resolve_spec("fpasst", drop_path_rate=0.1).config.drop_path_rate == 0.1
    with pytest.raises(ConfigError, match=r"'se'.*architecture 'mn'"):
        resolve_spec("mn10_as", se_dims="cf")  # shapes the weights, though the preset does not name it
    with pytest.raises(ConfigError, match="reset_classifier"):
        resolve_spec("cp_mobile_dcase23", n_classes=3)


def test_spec_round_trips_through_plain_values() -> None:
    spec = resolve_spec("mn", width_mult=0.4, num_classes=2)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(CheckpointError, match="malformed model spec"):
        ModelSpec.from_dict({"arch": "mn"})


def test_a_network_without_spec_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"tympan\.models\.create"):
        spec_of(torch.nn.Linear(2, 2))


def _small(num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return create("cp_resnet", num_classes=num_classes, **TINY_CP_RESNET)


def test_a_checkpoint_round_trips_spec_weights_metrics_and_provenance(tmp_path: Path) -> None:
    model = _small()
    spec = model.spec.with_labels(["a", "b", "c"])
    path = save_checkpoint(TympanCheckpoint(spec, model.state_dict(), {"val/accuracy": 0.5}, {"seed": 1}),
                           tmp_path / "m.ckpt")  # fmt: skip
    stored = read_checkpoint(path)
    assert stored.spec == spec and stored.metrics == {"val/accuracy": 0.5}
    assert stored.provenance["seed"] == 1 and stored.provenance["tympan_version"] == tympan.__version__
    for key, value in model.state_dict().items():
        assert torch.equal(stored.state_dict[key], value), key
    raw = torch.load(path, weights_only=True)
    assert raw["tympan"]["format_version"] == FORMAT_VERSION and all(k.startswith("model.") for k in raw["state_dict"])


def test_version_1_and_lightning_files_still_read(tmp_path: Path) -> None:
    model = _small()
    legacy = {
        "tympan": {"arch": "cp_resnet", "model_kwargs": {**TINY_CP_RESNET, "n_classes": 3},
                   "frontend": model.spec.frontend.to_dict(), "labels": ["a", "b", "c"], "multilabel": False,
                   "complexity": {"params": 7}, "metrics": {"val/loss": 1.0}},
        "state_dict": {**{f"model.{k}": v for k, v in model.state_dict().items()}, "teacher.w": torch.zeros(1)},
        "epoch": 3,
    }  # fmt: skip
    stored = read_checkpoint(legacy)
    assert stored.spec == model.spec.with_labels(["a", "b", "c"])  # clip length: the architecture's default
    assert stored.provenance == {"complexity": {"params": 7}} and stored.metrics == {"val/loss": 1.0}
    assert stored.state_dict.keys() == model.state_dict().keys()  # the Lightning keys of other modules are left out


def test_version_2_files_with_the_builders_argument_names_still_read() -> None:
    spec = resolve_spec("mn", width_mult=0.4, input_dim_f=64, se_dims="cf", num_classes=2)
    version_2 = {**spec.to_dict(), "config": {"width_mult": 0.4, "input_dim_f": 64, "se_dims": "cf"}}
    stored = read_checkpoint({"tympan": {"format_version": 2, "spec": version_2, "metrics": {"val/loss": 1.0}},
                              "state_dict": {"model.w": torch.zeros(1)}})  # fmt: skip
    assert stored.spec == spec and stored.metrics == {"val/loss": 1.0}
    assert stored.spec.config.input_size == (64, 1000) and stored.spec.config.se == SEConfig((1, 2))


def test_foreign_newer_and_empty_files_are_refused(tmp_path: Path) -> None:
    model = _small()
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a tympan checkpoint"):
        read_checkpoint(tmp_path / "plain.pt")
    newer = {"tympan": {**entry(TympanCheckpoint(model.spec)), "format_version": FORMAT_VERSION + 1},
             "state_dict": {"model.w": torch.zeros(1)}}  # fmt: skip
    with pytest.raises(CheckpointError, match="upgrade tympan"):
        read_checkpoint(newer)
    with pytest.raises(CheckpointError, match=r"holds no 'model\.' weights"):
        read_checkpoint({"tympan": entry(TympanCheckpoint(model.spec)), "state_dict": {}})


def test_a_bundle_gives_model_frontend_and_labels_from_one_lookup(tmp_path: Path) -> None:
    named = bundle("cp_mobile_dcase23", pretrained=False)
    assert named.labels == list(named.spec.labels) and named.sample_rate == 32000 and named.clip_seconds == 1.0
    assert named.get_frontend().config == named.spec.frontend
    assert named.get_model().spec == named.spec and frontend_of(named.get_model()).config == named.spec.frontend
    model = _small()
    path = save_checkpoint(TympanCheckpoint(model.spec, model.state_dict()), tmp_path / "m.ckpt")
    for source in (bundle(path), bundle(str(path)), bundle("cp_resnet", checkpoint=path)):
        rebuilt = source.get_model()
        assert source.spec == model.spec and source.checkpoint is not None
        assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in model.state_dict().items())
    torch.save(model.state_dict(), tmp_path / "plain.pt")  # a reference-layout file for a named architecture
    plain = bundle("cp_resnet", checkpoint=tmp_path / "plain.pt", num_classes=3, **TINY_CP_RESNET)
    assert plain.checkpoint is None and plain.spec == model.spec
    assert all(torch.equal(plain.get_model().state_dict()[k], v) for k, v in model.state_dict().items())


def test_bundle_errors_say_what_to_do(tmp_path: Path) -> None:
    model = _small()
    path = save_checkpoint(TympanCheckpoint(model.spec, model.state_dict()), tmp_path / "m.ckpt")
    with pytest.raises(UnknownModelError, match="mn10_as"):
        bundle("mn10_ass")
    with pytest.raises(ConfigError, match="describes a 'cp_resnet' model"):
        bundle("mn", checkpoint=path)
    with pytest.raises(ConfigError, match="drop the model arguments"):
        bundle(path, width_mult=0.4)
    with pytest.raises(CheckpointError, match="does not exist"):
        bundle(tmp_path / "missing.ckpt")
