"""ModelSpec, tympan's checkpoint format and bundles: one description per model, read and written in one place."""

from __future__ import annotations

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
