"""Weak (clip-level) labels beside strong ones: the weak table reader, mixed batches, and the masked loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.sed._weak import split_weak_table
from tympan import load
from tympan.cli import main
from tympan.distill import TeacherLogitStore
from tympan.errors import ConfigError, DataError
from tympan.sed.corpus import generate_event_set
from tympan.sed.data import EventDataModule, MixedBatchSampler
from tympan.sed.events import read_weak_labels
from tympan.sed.metrics import evaluate_detection
from tympan.sed.teacher import compute_frame_teacher_logits
from tympan.train import finetune
from tympan.train.sed import SedSystem

LABELS = ["babble", "hum", "rain"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    table = generate_event_set(tmp_path_factory.mktemp("data"), files=12, seconds=2.0, max_events=1, seed=5)
    return split_weak_table(table, weak_files=4)


def test_desed_weak_tsv_and_labels_csv(tmp_path: Path) -> None:
    desed = tmp_path / "weak.tsv"
    desed.write_text("filename\tevent_labels\nY1.wav\tSpeech,Dog\nY2.wav\t\nY3.wav\tCat\n")
    table = read_weak_labels(desed)
    assert table.files == ["Y1.wav", "Y2.wav", "Y3.wav"] and table.labels == ["Cat", "Dog", "Speech"]
    assert table.tags == {"Y1.wav": ["Dog", "Speech"], "Y2.wav": [], "Y3.wav": ["Cat"]}
    assert table.path("Y1.wav") == tmp_path / "Y1.wav"
    generic = tmp_path / "weak.csv"
    generic.write_text('file,labels\na.wav,"dog; cat"\n')
    table = read_weak_labels(generic, labels=["cat", "dog", "owl"], root=tmp_path / "audio")
    assert table.tags == {"a.wav": ["cat", "dog"]} and table.labels == ["cat", "dog", "owl"]
    assert table.path("a.wav") == tmp_path / "audio" / "a.wav"


@pytest.mark.parametrize(
    ("text", "message"),
    [("file,label\na.wav,dog\n", "layouts"),
     ("filename\tevent_labels\na.wav\tDog\n\tCat\n", "line 3: no file name"),
     ("filename\tevent_labels\na.wav\tDog\na.wav\tCat\n", "line 3: 'a.wav' is listed twice"),
     ("file,labels\na.wav,dog\nb.wav,dog,cat\n", "line 3: more fields"),
     ("file,labels\na.wav,bat\n", r"does not know: \['bat'\]")],
)  # fmt: skip
def test_bad_weak_rows_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "weak.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as error:
        read_weak_labels(path, labels=["Cat", "Dog", "dog"])
    assert str(path) in str(error.value)
    with pytest.raises(DataError, match="does not exist"):
        read_weak_labels(tmp_path / "missing.tsv")


def _module(tables: tuple[Path, Path], **kwargs) -> EventDataModule:
    module = EventDataModule(tables[0], tables[1], val_fraction=0.0, batch_size=4, **kwargs)
    module.set_frame_grid(50, 0.04)
    module.setup("fit")
    return module


def test_batches_hold_fixed_shares_of_strong_and_weak_only_items(tables: tuple[Path, Path]) -> None:
    module = _module(tables, weak_fraction=0.5)
    weak = read_weak_labels(tables[1], LABELS)
    batches = list(module.train_dataloader())
    assert len(batches) == 2  # the 4 weak files run out after 2 batches of 2
    for batch in batches:
        assert batch["has_strong"].tolist() == [True, True, False, False]
        assert not batch["target"][2:].any()  # weak-only items: no frame targets
        expected = [[float(label in weak.tags[file]) for label in LABELS] for file in batch["id"][2:]]
        assert batch["weak_target"][2:].tolist() == expected
        assert torch.equal(batch["weak_target"][:2], batch["target"][:2].amax(dim=-1))
    assert module.split_tables()["train"][-4:] == weak.files


def test_without_a_share_one_epoch_covers_both_tables_once(tables: tuple[Path, Path]) -> None:
    module = _module(tables)
    ids, strong = [], []
    for batch in module.train_dataloader():
        ids += batch["id"]
        strong += batch["has_strong"].tolist()
    weak_files = set(read_weak_labels(tables[1]).files)
    assert len(ids) == 12 and sorted(ids) == sorted(module.datasets["train"].ids)
    assert [file not in weak_files for file in ids] == strong


def test_a_file_in_both_tables_and_a_share_without_weak_data_are_refused(tmp_path: Path, tables) -> None:
    both = tmp_path / "weak.tsv"
    both.write_text(f"filename\tevent_labels\n{Path(tables[0]).read_text().splitlines()[1].split()[0]}\thum\n")
    with pytest.raises(DataError, match="in both the strong and the weak table"):
        EventDataModule(tables[0], both, audio_dir=tables[0].parent, weak_audio_dir=tables[0].parent)
    with pytest.raises(ConfigError, match="weak_fraction needs weak_data"):
        EventDataModule(tables[0], weak_fraction=0.5)


def _batch(frames: int, weak_only_targets: torch.Tensor) -> dict:
    generator = torch.Generator().manual_seed(0)
    target = (torch.rand(4, 3, frames, generator=generator) > 0.7).float()
    target[2:] = weak_only_targets
    return {
        "audio": torch.randn(4, 16000, generator=generator) * 0.1,
        "target": target,
        "weak_target": torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]),
        "has_strong": torch.tensor([True, True, False, False]),
        "id": ["a", "b", "c", "d"],
    }


@pytest.mark.parametrize("mixup_alpha", [0.0, 0.3])
def test_frame_targets_of_weak_only_items_change_nothing(mixup_alpha: float) -> None:
    torch.manual_seed(0)
    system = SedSystem("frame_mn", num_classes=3, labels=LABELS, model_kwargs={"width_mult": 0.1},
                       mixup_alpha=mixup_alpha)  # fmt: skip
    frames = system.output_frames(16000)

    def loss_and_gradients(weak_only_targets: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        system.zero_grad()
        torch.manual_seed(1)
        loss = system.training_step(_batch(frames, weak_only_targets), 0)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in system.model.parameters() if p.grad is not None]

    zeros, gradients = loss_and_gradients(torch.zeros(2, 3, frames))
    ones, other_gradients = loss_and_gradients(torch.ones(2, 3, frames))
    assert torch.equal(zeros, ones)
    assert all(torch.equal(a, b) for a, b in zip(gradients, other_gradients, strict=True))
    batch = _batch(frames, torch.zeros(2, 3, frames))
    batch["has_strong"][:] = True  # the same dummy targets, now read as strong labels, do count
    torch.manual_seed(1)
    assert not torch.equal(system.training_step(batch, 0).detach(), zeros)


def test_teacher_store_covers_the_weak_only_files(tmp_path: Path, tables: tuple[Path, Path]) -> None:
    torch.manual_seed(0)
    teacher = load("frame_mn", num_classes=3, width_mult=0.1, device="cpu", pretrained=False)
    teacher.labels = LABELS
    path = compute_frame_teacher_logits([teacher], tables[0], tmp_path / "teacher", clip_seconds=2.0,
                                        weak_table=tables[1])  # fmt: skip
    weak_files = read_weak_labels(tables[1]).files
    logits, available = TeacherLogitStore(path).lookup(weak_files)
    assert bool(available.all()) and logits.shape == (4, 3, 50) and np.isfinite(logits.numpy()).all()


@pytest.mark.slow
def test_training_on_strong_and_weak_files_still_places_onsets(tmp_path: Path) -> None:
    full = generate_event_set(tmp_path / "train", files=24, seconds=3.0, max_events=1, seed=0)
    strong, weak = split_weak_table(full, weak_files=12)
    test = generate_event_set(tmp_path / "test", files=8, seconds=3.0, max_events=1, seed=7)
    result = finetune(strong, "frame_mn", task="sed", weak_data=weak, weak_fraction=0.5, steps=80, batch_size=8,
                      output=tmp_path / "run", val_fraction=0.0, progress=False,
                      system_kwargs={"model_kwargs": {"width_mult": 0.2}})  # fmt: skip
    metrics = evaluate_detection(load(checkpoint=result.checkpoint, device="cpu"), test)
    # measured: 86 % of the onsets within 0.2 s, PSDS2 1.0 (PSDS1 0.20: 80 steps of 4 strong clips are few)
    assert metrics["onsets_within_0.2s"] >= 0.75 and metrics["psds2"] >= 0.8, metrics


def test_weak_data_needs_the_sed_task(tables: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    args = ["finetune", "--data", str(tables[0]), "--weak-data", str(tables[1]), "--weak-fraction", "0.5"]
    assert main(args) != 0
    assert "need task='sed'" in capsys.readouterr().err


def test_ranks_draw_disjoint_batches_of_one_order() -> None:
    def batches(rank: int) -> list[list[int]]:
        return list(MixedBatchSampler(8, 6, 2, 1, torch.Generator().manual_seed(3), rank=rank, world_size=2))

    first, second = batches(0), batches(1)
    assert len(first) == len(second) == 2  # 4 batches of 2 strong + 1 weak before the strong items run out
    items = [i for batch in first + second for i in batch]
    assert len(set(items)) == 12 and all(batch[2] >= 8 for batch in first + second)
    with pytest.raises(ConfigError, match="cannot draw"):
        MixedBatchSampler(8, 0, 2, 1, torch.Generator())
