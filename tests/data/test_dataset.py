"""Decoding with cache, unreadable files, balanced sampling and the DataModule's splits."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile
import soxr
import torch

from tympan.data import AudioDataModule, ClipDataset, ClipLoader, ClipRecord, class_balanced_weights, read_data
from tympan.data.dataset import collate_skipping
from tympan.errors import AudioLoadError, DataError


def _write_csv(root: Path, count: int = 8, bad: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    lines = ["file,label,device,split"]
    for i in range(count):
        name = f"clip{i}.wav"
        if i == bad:
            (root / name).write_bytes(b"not audio")
        else:
            soundfile.write(root / name, rng.normal(size=4410).astype(np.float32) * 0.1, 44100)
        lines.append(f"{name},{'ab'[i % 2]},{'a' if i < 4 else 'b'},{'train' if i < 6 else 'test'}")
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    return root / "meta.csv"


def test_loader_resamples_pads_and_caches(tmp_path):
    csv = _write_csv(tmp_path, count=1)
    record = read_data(csv).records[0]
    loader = ClipLoader(32000, num_samples=4000, cache_dir=tmp_path / "cache")
    first = loader(record)
    expected = soxr.resample(soundfile.read(record.source, dtype="float32")[0], 44100, 32000, quality="HQ")
    np.testing.assert_array_equal(first[:3200], expected)
    assert first.shape == (4000,) and not first[3200:].any()
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    np.testing.assert_array_equal(loader(record), first)  # served from the cache


def test_loader_decodes_hdf5_rows(tmp_path):
    mp3 = io.BytesIO()
    soundfile.write(mp3, np.full(3200, 0.25, dtype=np.float32), 32000, format="MP3")
    path = tmp_path / "x.hdf"
    with h5py.File(path, "w") as file:
        audio = file.create_dataset("mp3", shape=(1,), dtype=h5py.vlen_dtype(np.uint8))
        audio[0] = np.frombuffer(mp3.getvalue(), np.uint8)
    waveform = ClipLoader(32000, 3200)(ClipRecord("x", str(path), (0,), row=0))
    assert waveform.shape == (3200,) and abs(np.median(waveform) - 0.25) < 0.05


def test_unreadable_file_is_named_or_skipped(tmp_path):
    csv = _write_csv(tmp_path, count=4, bad=2)
    table = read_data(csv)
    strict = ClipDataset(table, ClipLoader(32000, 3200))
    with pytest.raises(AudioLoadError, match=r"clip2\.wav"):
        strict[2]
    lenient = ClipDataset(table, ClipLoader(32000, 3200), on_error="skip")
    batch = collate_skipping([lenient[i] for i in range(4)])
    assert batch["index"].tolist() == [0, 1, 3] and batch["audio"].shape == (3, 3200)

    module = AudioDataModule(str(csv), clip_seconds=0.1)
    with pytest.raises(DataError, match=r"clip2\.wav"):
        module.prepare_data()
    module = AudioDataModule(str(csv), clip_seconds=0.1, on_error="skip")
    module.prepare_data()
    module.setup("fit")
    assert "clip2.wav" not in module.datasets["train"].table.ids


def test_balanced_weights_match_the_efficientat_formula():
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
    weights = class_balanced_weights(targets)
    class_weight = 1000 / (targets.sum(axis=0) + 100)  # counts 2, 1, 1
    expected = [class_weight[0], class_weight[0] + class_weight[1], class_weight[2], 0]
    np.testing.assert_allclose(weights, expected)


def test_datamodule_splits_batches_and_devices(tmp_path):
    csv = _write_csv(tmp_path)
    module = AudioDataModule(str(csv), sample_rate=16000, clip_seconds=0.05, batch_size=4)
    module.prepare_data()
    module.setup("fit")
    assert (len(module.datasets["train"]), len(module.datasets["val"])) == (6, 2)  # val = test split (TAU22 rule)
    batch = next(iter(module.train_dataloader()))
    assert batch["audio"].shape == (4, 800) and batch["target"].dtype == torch.long
    assert module.device_names == ["a", "b"] and set(batch["device_index"].tolist()) <= {0, 1}

    folds = tmp_path / "folds.csv"
    folds.write_text("file,label,fold\n" + "".join(f"clip{i}.wav,{'ab'[i % 2]},{i % 4 + 1}\n" for i in range(8)))
    module = AudioDataModule(str(folds), clip_seconds=0.05, val_folds=[1], test_folds=[2])
    module.setup("fit")
    assert {k: len(v) for k, v in module.datasets.items()} == {"train": 4, "val": 2, "test": 2}

    plain = tmp_path / "plain.csv"
    plain.write_text("file,label\n" + "".join(f"clip{i}.wav,{'ab'[i % 2]}\n" for i in range(8)))
    module = AudioDataModule(str(plain), clip_seconds=0.05, val_fraction=0.25, seed=3)
    module.setup("fit")
    assert (len(module.datasets["train"]), len(module.datasets["val"])) == (6, 2)


def test_datamodule_trains_on_a_dcase24_split_and_keeps_chosen_devices(tmp_path):
    csv = _write_csv(tmp_path)  # clips 0-5 train (devices a a a a b b), 6-7 test (b b)
    (tmp_path / "split_setup").mkdir()
    (tmp_path / "split_setup" / "split25.csv").write_text("filename\tscene_label\nclip0.wav\ta\nclip5.wav\tb\n")
    module = AudioDataModule(str(csv), sample_rate=16000, clip_seconds=0.05, train_split=25)
    module.setup("fit")
    assert [r.id for r in module.datasets["train"].table.records] == ["clip0.wav", "clip5.wav"]
    assert len(module.datasets["val"]) == 2  # validation and test are not subsampled
    (tmp_path / "mine.csv").write_text("file\nclip1.wav\n")  # a split file of one's own, relative to the data
    module = AudioDataModule(str(csv), clip_seconds=0.05, train_split="mine.csv")
    module.setup("fit")
    assert len(module.datasets["train"]) == 1
    module = AudioDataModule(str(csv), clip_seconds=0.05, devices=["b"])
    module.setup("fit")
    assert {name: [r.device for r in d.table.records] for name, d in module.datasets.items()} == {
        "train": ["b", "b"], "val": ["b", "b"], "test": ["b", "b"]}  # fmt: skip
    with pytest.raises(DataError, match="5, 10, 25, 50, 100"):
        AudioDataModule(str(csv), clip_seconds=0.05, train_split=30).setup("fit")
    with pytest.raises(DataError, match="releases/tag/files"):
        AudioDataModule(str(csv), clip_seconds=0.05, train_split=50).setup("fit")
