"""Caption data readers on tiny files in the exact public schemas, and the training / evaluation items."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from tympan.errors import ConfigError, DataError
from tympan.retrieval import (
    CaptionDataset,
    collate_captions,
    read_audiocaps,
    read_caption_csv,
    read_captions,
    read_clotho,
    read_wavcaps,
)


def _wav(path, seconds: float = 0.5, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.full(int(seconds * rate), 0.1, np.float32), rate)


def test_clotho_captions_and_iso_8859_1_metadata(tmp_path):
    (tmp_path / "clotho_captions_evaluation.csv").write_text(
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        'a.wav,A dog barks.,"A dog, barking",c3,c4,c5\n'
        "b.wav,Rain falls.,r2,r3,r4,r5\n",
        encoding="utf-8",
    )
    (tmp_path / "clotho_metadata_evaluation.csv").write_bytes(
        "file_name,keywords,sound_id\na.wav,dog;bark;caf\xe9,1\nb.wav,rain,2\n".encode("iso-8859-1")
    )
    clips = read_clotho(tmp_path, "test")
    assert [c.id for c in clips] == ["a.wav", "b.wav"]
    assert clips[0].captions == ("A dog barks.", "A dog, barking", "c3", "c4", "c5")
    assert clips[0].keywords == ("dog", "bark", "café")
    assert clips[0].source == str(tmp_path / "evaluation" / "a.wav")
    with pytest.raises(DataError, match="not found"):
        read_clotho(tmp_path, "development")


def test_audiocaps_groups_captions_per_video_and_skips_missing_audio(tmp_path):
    (tmp_path / "dataset").mkdir()
    for split, lines in (("train", ["1,vid1,30,a man speaks", "2,vid2,0,no audio for this one"]),
                         ("val", ["3,vid1,30,someone talks"]), ("test", ["4,vid3,10,a bell rings"])):  # fmt: skip
        (tmp_path / "dataset" / f"{split}.csv").write_text("audiocap_id,youtube_id,start_time,caption\n" +
                                                           "\n".join(lines) + "\n")  # fmt: skip
    _wav(tmp_path / "audioset" / "Yvid1.wav")
    _wav(tmp_path / "audioset" / "sub" / "vid3.flac")
    clips = read_audiocaps(tmp_path, tmp_path / "audioset")
    assert [(c.id, c.captions) for c in clips] == [("Yvid1", ("a man speaks", "someone talks")),
                                                   ("Yvid3", ("a bell rings",))]  # fmt: skip


def test_wavcaps_json_subsets(tmp_path):
    folder = tmp_path / "json_files" / "FreeSound"
    folder.mkdir(parents=True)
    data = {"data": [{"id": "123", "caption": "a door creaks"}, {"id": "999", "caption": "missing audio"}]}
    (folder / "fsd_final.json").write_text(json.dumps(data))
    _wav(tmp_path / "mp3" / "FreeSound" / "123.wav")
    clips = read_wavcaps(tmp_path, subsets=["FreeSound"])
    assert [(c.id, c.captions) for c in clips] == [("FreeSound/123", ("a door creaks",))]


def test_generic_csv_groups_rows_and_filters_the_split(tmp_path):
    (tmp_path / "meta.csv").write_text("file,caption,split\nx.wav,one,train\nx.wav,two,train\ny.wav,three,test\n")
    clips = read_captions({"format": "csv", "path": str(tmp_path / "meta.csv"), "split": "train"})
    assert [(c.id, c.captions, c.source) for c in clips] == [("x.wav", ("one", "two"), str(tmp_path / "x.wav"))]
    (tmp_path / "wide.csv").write_text("file,caption_2,caption_1\nz.wav,second,first\n")
    assert read_caption_csv(tmp_path / "wide.csv")[0].captions == ("first", "second")
    with pytest.raises(ConfigError, match="unknown caption data format"):
        read_captions({"format": "tsv"})
    with pytest.raises(DataError, match="`file` column"):
        (tmp_path / "bad.csv").write_text("name,caption\nx.wav,one\n")
        read_caption_csv(tmp_path / "bad.csv")


def test_training_pairs_crop_and_evaluation_clips_keep_all_captions(tmp_path):
    _wav(tmp_path / "long.wav", seconds=2.0)
    _wav(tmp_path / "short.wav", seconds=0.25)
    (tmp_path / "meta.csv").write_text("file,caption\nlong.wav,one\nlong.wav,two\nshort.wav,three\n")
    clips = read_caption_csv(tmp_path / "meta.csv")
    train = CaptionDataset(clips, sample_rate=8000, max_seconds=1.0, train=True)
    assert len(train) == 3 and [item["captions"] for item in train] == [("one",), ("two",), ("three",)]
    torch.manual_seed(0)
    batch = collate_captions([train[0], train[2]])
    assert batch["audio"].shape == (2, 8000) and batch["lengths"].tolist() == [8000, 2000]
    assert batch["clip"].tolist() == [0, 1] and batch["captions"] == ["one", "three"]
    evaluation = CaptionDataset(clips, sample_rate=8000, max_seconds=1.0)
    batch = collate_captions([evaluation[0], evaluation[1]])
    assert len(evaluation) == 2 and batch["captions"] == ["one", "two", "three"]
    assert batch["caption_clip"].tolist() == [0, 0, 1]
