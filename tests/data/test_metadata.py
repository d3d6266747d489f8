"""Readers of every dataset layout, on tiny generated files."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile

from tympan.data import metadata
from tympan.errors import DataError


def _wav(path: Path, seconds: float = 0.1, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros(int(seconds * rate), dtype=np.float32), rate)
    return path


def test_generic_csv_single_and_multi_label(tmp_path):
    _wav(tmp_path / "audio" / "a.wav")
    _wav(tmp_path / "audio" / "b.wav")
    (tmp_path / "single.csv").write_text(
        "file,label,device,split,fold\naudio/a.wav,dog,a,train,1\naudio/b.wav,cat,s4,test,2\n"
    )
    table = metadata.read_csv(tmp_path / "single.csv")
    assert table.labels == ("cat", "dog") and not table.multi_label
    first = table.records[0]
    assert first.source == str(tmp_path / "audio" / "a.wav") and first.id == "audio/a.wav"
    assert (first.targets, first.device, first.split, first.fold) == ((1,), "a", "train", 1)
    assert len(table.where(split="test")) == 1 and table.device_names == ["a", "s4"]

    (tmp_path / "multi.csv").write_text("file\tlabels\tid\naudio/a.wav\tdog;bark\tx1\naudio/b.wav\tcat\tx2\n")
    multi = metadata.read_csv(tmp_path / "multi.csv")
    assert multi.multi_label and multi.labels == ("bark", "cat", "dog")
    np.testing.assert_array_equal(multi.target_matrix(), [[1, 0, 1], [0, 1, 0]])
    assert multi.ids == ["x1", "x2"]


def test_csv_errors_name_the_problem(tmp_path):
    (tmp_path / "bad.csv").write_text("path,label\nx.wav,dog\n")
    with pytest.raises(DataError, match="`file` column"):
        metadata.read_csv(tmp_path / "bad.csv")
    (tmp_path / "split.csv").write_text("file,label,split\nx.wav,dog,training\n")
    with pytest.raises(DataError, match="line 2"):
        metadata.read_csv(tmp_path / "split.csv")
    (tmp_path / "dup.csv").write_text("file,label\nx.wav,dog\nx.wav,cat\n")
    with pytest.raises(DataError, match="unique"):
        metadata.read_csv(tmp_path / "dup.csv")
    (tmp_path / "unknown.csv").write_text("file,label\nx.wav,dog\n")
    with pytest.raises(DataError, match="unknown label"):
        metadata.read_csv(tmp_path / "unknown.csv", labels=["cat"])


def test_folder_per_label(tmp_path):
    _wav(tmp_path / "rain" / "1.wav")
    _wav(tmp_path / "birds" / "sub" / "2.flac")
    (tmp_path / "birds" / "notes.txt").write_text("ignored")
    table = metadata.read_data(tmp_path)
    assert table.labels == ("birds", "rain")
    assert [(r.id, r.targets) for r in table.records] == [("birds/sub/2.flac", (0,)), ("rain/1.wav", (1,))]


def test_tau22_layout(tmp_path):
    (tmp_path / "audio").mkdir()
    rows = [
        ("audio/airport-lisbon-1000-40000-a.wav", "airport", "lisbon-1000"),
        ("audio/bus-paris-7-1-s4.wav", "bus", "paris-7"),
        ("audio/bus-lyon-3-2-b.wav", "bus", "lyon-3"),
    ]
    (tmp_path / "meta.csv").write_text(
        "filename\tscene_label\tidentifier\tsource_label\n" + "".join(f"{f}\t{s}\t{i}\ta\n" for f, s, i in rows)
    )
    (tmp_path / "evaluation_setup").mkdir()
    (tmp_path / "evaluation_setup" / "fold1_train.csv").write_text(f"filename\tscene_label\n{rows[0][0]}\tairport\n")
    (tmp_path / "evaluation_setup" / "fold1_evaluate.csv").write_text(f"filename\tscene_label\n{rows[1][0]}\tbus\n")
    table = metadata.read_data(tmp_path)
    assert table.name == "tau22" and table.labels == ("airport", "bus")
    assert [(r.device, r.city, r.split) for r in table.records] == [
        ("a", "lisbon", "train"), ("s4", "paris", "test"), ("b", "lyon", "")
    ]  # fmt: skip


def test_esc50_layout(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "audio").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n1-1-A-1.wav,1,1,rooster,False,1,A\n2-1-A-0.wav,2,0,dog,True,1,A\n"
    )
    table = metadata.read_data(tmp_path)
    assert table.labels == ("dog", "rooster")
    assert [(r.fold, r.targets) for r in table.where(folds=[2]).records] == [(2, (0,))]
    assert table.records[0].source == str(tmp_path / "audio" / "1-1-A-1.wav")


def test_audioset_hdf5_layout(tmp_path):
    mp3 = io.BytesIO()
    soundfile.write(mp3, np.zeros(3200, dtype=np.float32), 32000, format="MP3")
    targets = np.zeros((2, 527), dtype=bool)
    targets[0, [0, 526]] = True
    targets[1, 3] = True
    path = tmp_path / "balanced.hdf"
    with h5py.File(path, "w") as file:
        file["audio_name"] = np.array([b"Y--4gqARaEJE.mp3", b"Yabc.mp3"])
        audio = file.create_dataset("mp3", shape=(2,), dtype=h5py.vlen_dtype(np.uint8))
        for row in range(2):
            audio[row] = np.frombuffer(mp3.getvalue(), np.uint8)
        file["target"] = np.packbits(targets, axis=1)
    table = metadata.read_data(path)
    assert table.multi_label and table.num_classes == 527
    assert table.ids == ["--4gqARaEJE", "abc"]
    assert [r.targets for r in table.records] == [(0, 526), (3,)] and table.records[1].row == 1
