"""The training systems: task + KD losses as the references define them, augmentation hooks, complexity limits."""

from __future__ import annotations

import functools

import lightning as L
import numpy as np
import pytest
import torch

from tests.train._data import write_tone_dataset
from tympan.audio.augmentation import Augmentation, DeviceImpulseResponse, FreqMixStyle, Gain, TimeRoll
from tympan.data import AudioDataModule, BalancedSampler
from tympan.distill import TeacherLogitStore, write_store
from tympan.errors import ConfigError, DataError
from tympan.models import read_checkpoint
from tympan.train import SceneSystem, TaggingSystem, losses
from tympan.train.complexity import ComplexityLimits

from ._tiny import tiny_model

STILL = {"fmin_aug_range": 1, "fmax_aug_range": 1}  # a frontend without random draws


def _batch(generator, size=4, classes=3, multilabel=False):
    multi_hot = (torch.rand(size, classes, generator=generator) < 0.5).float()
    target = multi_hot if multilabel else torch.arange(size) % classes
    return {
        "audio": 0.1 * torch.randn(size, 4000, generator=generator),
        "target": target,
        "id": [f"c{i}" for i in range(size)],
        "index": torch.arange(size),
        "device_index": torch.tensor([0, 1, 0, 1][:size]),
    }


def test_scene_kd_loss_is_the_dcase23_loss(tmp_path, generator):
    teacher = torch.randn(4, 3, generator=generator)
    store = write_store(tmp_path / "t.npy", ["c3", "c2", "c1", "c0"], teacher.flip(0).numpy(), {"teachers": ["x"]})
    system = SceneSystem(tiny_model(3), num_classes=3, frontend=STILL, teacher_logits=str(store), kd_lambda=0.02,
                         temperature=2.0)  # fmt: skip
    system.setup("fit")
    batch = _batch(generator)
    loss = system.training_step(batch, 0)
    logits = system.model(system.frontend(batch["audio"]).unsqueeze(1))
    expected = losses.dcase23_kd_loss(logits, batch["target"], teacher, temperature=2.0, kd_lambda=0.02)
    torch.testing.assert_close(loss, expected)


def test_tagging_kd_with_mixup_is_the_efficientat_loss(tmp_path, generator):
    teacher = torch.randn(4, 3, generator=generator)
    store = write_store(tmp_path / "t.npy", [f"c{i}" for i in range(4)], teacher.numpy(), {})
    system = TaggingSystem(tiny_model(3), num_classes=3, frontend=STILL, teacher_logits=str(store), kd_lambda=0.1,
                           mixup_alpha=0.3)  # fmt: skip
    system.setup("fit")
    batch = _batch(generator, multilabel=True)
    loss = system.training_step(batch, 0)
    mel, lam, perm = losses_mixup_draws(system, batch)
    logits = system.model(mel)
    expected = losses.efficientat_kd_loss(logits, batch["target"], teacher, 1.0, 0.1, lam, perm)
    torch.testing.assert_close(loss, expected)


def losses_mixup_draws(system, batch):
    """Replays the step's draws: the system's per-step generator makes them reproducible."""
    from tympan.audio.augment import mixup

    generator = system._step_generator()
    mel = system.frontend(batch["audio"], generator=generator).unsqueeze(1)
    return mixup(mel, 0.3, generator=generator)


def test_waveform_and_spectrogram_augmentations_run_in_the_step(tmp_path, generator):
    from tests.conftest import SHARED

    dirs = SHARED / "data" / "dirs"
    waveform = [DeviceImpulseResponse(str(dirs), 1.0)] * dirs.is_dir() + [TimeRoll(400), Gain(6)]
    augmentation = Augmentation(waveform, [FreqMixStyle(1.0)])
    system = SceneSystem(tiny_model(3), num_classes=3, mixup_alpha=0.3, augmentation=augmentation)
    system.device_names = ["a", "b"]
    batch = _batch(generator)
    loss = system.training_step(batch, 0)
    assert torch.isfinite(loss) and loss.requires_grad
    with pytest.warns(DeprecationWarning, match="augmentation="):  # the flat arguments build the same steps
        old = SceneSystem(tiny_model(3), num_classes=3, roll_samples=400, gain_db=6, mixstyle_p=1.0, mixup_alpha=0.3,
                          dir_folder=str(dirs) if dirs.is_dir() else None, dir_prob=1.0)  # fmt: skip
    assert old.augmentation == augmentation and "augmentation" not in old.hparams
    old.device_names = ["a", "b"]
    torch.testing.assert_close(old.training_step(batch, 0), loss)  # the same draws in the same order
    with pytest.raises(ConfigError, match="mixup"):
        SceneSystem(tiny_model(3), num_classes=3, mixup_alpha=0.3).kd_loss(
            torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2), torch.arange(2)
        )


def test_wavmix_mixes_waveforms_and_targets_of_tagging(generator):
    from tympan.audio.augment import mix_targets, wavmix

    system = TaggingSystem(tiny_model(3), num_classes=3, frontend=STILL, wavmix_p=1.0)
    batch = _batch(generator, multilabel=True)
    loss = system.training_step(batch, 0)
    draws = system._step_generator()
    audio, lam, perm = wavmix(batch["audio"], 2.0, 1.0, draws)
    logits = system.model(system.frontend(audio, generator=draws).unsqueeze(1))
    torch.testing.assert_close(loss, losses.mixup_bce(logits, mix_targets(batch["target"], lam, perm)))
    assert torch.all(lam < 1)
    with pytest.raises(ConfigError, match="wavmix"):
        TaggingSystem(tiny_model(3), num_classes=3, wavmix_p=0.5, teacher_logits="t.npy")


def test_wavmix_of_single_label_clips_mixes_one_hot_targets(generator):
    """EfficientAT ex_esc50.py: MixupDataset (rate 0.5, Beta(2, 2)) mixes the one-hot labels with the waveforms."""
    from tympan.audio.augment import mix_targets, wavmix

    system = SceneSystem(tiny_model(3), num_classes=3, frontend=STILL, wavmix_p=1.0)
    batch = _batch(generator)
    loss = system.training_step(batch, 0)
    draws = system._step_generator()
    audio, lam, perm = wavmix(batch["audio"], 2.0, 1.0, draws)
    logits = system.model(system.frontend(audio, generator=draws).unsqueeze(1))
    one_hot = torch.nn.functional.one_hot(batch["target"], 3).float()
    torch.testing.assert_close(loss, losses.mixup_cross_entropy(logits, mix_targets(one_hot, lam, perm)))
    assert SceneSystem(tiny_model(3), num_classes=3).hparams.mixstyle_alpha == 0.4


def test_training_refuses_a_model_over_the_complexity_limits(tmp_path):
    csv = write_tone_dataset(tmp_path / "data", per_class=4)
    module = AudioDataModule(str(csv), sample_rate=8000, clip_seconds=0.5, batch_size=2)
    system = SceneSystem("tiny_test", num_classes=2, limits=ComplexityLimits(max_params=50, max_macs=30e6))
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(ConfigError, match=r"parameters > 50"):
        trainer.fit(system, datamodule=module)
    with pytest.warns(DeprecationWarning, match="limits=ComplexityLimits"):  # the old arguments still work
        old = SceneSystem("tiny_test", num_classes=2, max_params=50, max_macs=30e6)
    assert old.limits == ComplexityLimits(50, 30e6, 1.0)


def test_the_optimiser_is_injected_and_the_old_switch_still_works():
    system = SceneSystem("tiny_test", num_classes=2, backbone_lr_factor=0.1,
                         optimizer=functools.partial(torch.optim.SGD, lr=0.5, momentum=0.9))  # fmt: skip
    optimizer = system.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    assert sorted({group["lr"] for group in optimizer.param_groups}) == pytest.approx([0.05, 0.5])  # backbone, head
    assert "optimizer" not in system.hparams  # a callable would make the checkpoint unreadable with weights_only
    with pytest.warns(DeprecationWarning, match="torch.optim.AdamW"):
        old = SceneSystem("tiny_test", num_classes=2, lr=0.01, weight_decay=0.1, adamw=True)
    optimizer = old.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["weight_decay"] == 0.1
    with pytest.raises(ConfigError, match="inside `optimizer`"):
        SceneSystem("tiny_test", num_classes=2, lr=0.01, optimizer=torch.optim.SGD)


def test_store_for_other_clips_is_refused_before_training(tmp_path):
    csv = write_tone_dataset(tmp_path / "data", per_class=4)
    store = write_store(tmp_path / "t.npy", ["other.wav"], np.zeros((1, 2)), {})
    module = AudioDataModule(str(csv), sample_rate=8000, clip_seconds=0.5, batch_size=2)
    system = SceneSystem("tiny_test", num_classes=2, teacher_logits=str(store))
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(DataError, match="no teacher logits"):
        trainer.fit(system, datamodule=module)


def test_balanced_sampler_is_seeded_per_epoch_and_follows_the_weights():
    weights = np.array([1.0, 1.0, 8.0, 0.0, 2.0])
    sampler = BalancedSampler(weights, epoch_length=2, seed=1)
    first = list(sampler)
    assert list(sampler) == first and 3 not in first
    counts = np.zeros(5)
    for epoch in range(300):
        sampler.set_epoch(epoch)
        counts[list(sampler)] += 1
    assert counts[3] == 0 and counts[2] > counts[4] > counts[0]


def test_checkpoint_description_keeps_the_frontend_trained_with():
    """A frontend jitter range moves the eval fmax (DCASE23 PaSST teacher: 1000 Hz -> 15500 Hz at 32 kHz)."""
    system = SceneSystem(tiny_model(3), num_classes=3, frontend={"fmax_aug_range": 200})
    described = read_checkpoint({"tympan": system.describe(), "state_dict": {"model.w": torch.zeros(1)}}).spec.frontend
    assert described.fmax_aug_range == 200 and described.effective_fmax == 3900


def test_an_opened_teacher_store_is_taken_as_it_is(tmp_path, generator):
    logits = torch.randn(1, 3, generator=generator).numpy()
    store = TeacherLogitStore(write_store(tmp_path / "t.npy", ["c0"], logits, {}))
    system = TaggingSystem(tiny_model(3), num_classes=3, teacher_logits=store, kd_lambda=0.5)
    system.setup("fit")
    assert system.teacher_store is store and "teacher_logits" not in system.hparams


def test_clips_without_teacher_logits_get_a_zero_kd_term_and_stay_in_the_mean(tmp_path, generator):
    """EfficientAT ex_audioset.py: index -1 for unknown clips, their KD loss zeroed, the mean over the whole batch."""
    teacher = torch.randn(4, 3, generator=generator)
    store = write_store(tmp_path / "t.npy", ["c0", "c2", "c3"], teacher[[0, 2, 3]].numpy(), {})
    system = TaggingSystem(tiny_model(3), num_classes=3, frontend=STILL, teacher_logits=str(store), kd_lambda=0.1)
    system.setup("fit")
    batch = _batch(generator, multilabel=True)
    loss = system.training_step(batch, 0)
    logits = system.model(system.frontend(batch["audio"]).unsqueeze(1))
    kd = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.sigmoid(teacher), reduction="none")
    kd = kd.mean(dim=1) * torch.tensor([1.0, 0.0, 1.0, 1.0])
    expected = 0.1 * losses.mixup_bce(logits, batch["target"]) + 0.9 * kd.sum() / 4
    torch.testing.assert_close(loss, expected)
    scene = SceneSystem(tiny_model(3), num_classes=3, frontend=STILL, teacher_logits=str(store), kd_lambda=0.02)
    scene.setup("fit")
    scene_loss = scene.training_step(_batch(generator), 0)
    assert torch.isfinite(scene_loss)


def test_a_store_missing_some_clips_trains_and_says_how_many(tmp_path, caplog):
    csv = write_tone_dataset(tmp_path / "data", per_class=4)
    module = AudioDataModule(str(csv), sample_rate=8000, clip_seconds=0.5, batch_size=2)
    module.setup("fit")
    ids = list(module.datasets["train"].table.ids)
    store = write_store(tmp_path / "t.npy", ids[1:], np.zeros((len(ids) - 1, 2)), {})
    system = SceneSystem("tiny_test", num_classes=2, teacher_logits=str(store), kd_lambda=0.5)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    with caplog.at_level("WARNING", logger="tympan.train.systems"):
        trainer.fit(system, datamodule=module)
    assert f"1 of {len(ids)} training clips" in caplog.text
    assert trainer.callback_metrics["train/clips_without_teacher"] == 1


def test_pretrained_starts_a_preset_from_its_official_weights(tmp_path, monkeypatch):
    """The AudioSet recipes start from mn10_im / dymn10_im / DeiT as the references do (here: a cached file)."""
    from tests._models import small_mn_state

    monkeypatch.setenv("TYMPAN_CACHE", str(tmp_path))
    monkeypatch.setenv("TYMPAN_OFFLINE", "1")
    state = small_mn_state(3)
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "mn04_im.pt")
    system = TaggingSystem("mn04_im", pretrained=True)
    torch.testing.assert_close(system.model.state_dict()["classifier.5.weight"], state["classifier.5.weight"])
    assert (tmp_path / "checkpoints" / "mn04_im.pt.sha256.json").is_file()  # recorded at its first strict load
    fresh = TaggingSystem("mn04_im")
    assert not torch.equal(fresh.model.state_dict()["classifier.5.weight"], state["classifier.5.weight"])


def test_training_refuses_data_at_another_rate_than_the_model(tmp_path):
    csv = write_tone_dataset(tmp_path / "data", per_class=4)
    module = AudioDataModule(str(csv), sample_rate=16000, clip_seconds=0.5, batch_size=2)  # tiny_test runs at 8 kHz
    system = SceneSystem("tiny_test", num_classes=2)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(ConfigError, match=r"16000 Hz but the model's frontend expects 8000 Hz"):
        trainer.fit(system, datamodule=module)
