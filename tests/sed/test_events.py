"""Event tables in their three layouts, and frame targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tympan.errors import DataError
from tympan.sed import frame_targets, read_events


def test_desed_table_with_a_file_without_events(tmp_path: Path) -> None:
    table = tmp_path / "events.tsv"
    table.write_text("filename\tonset\toffset\tevent_label\na.wav\t1.5\t2.0\tDog\na.wav\t0.2\t0.9\tCat\nb.wav\t\t\t\n")
    events = read_events(table)
    assert events.files == ["a.wav", "b.wav"] and events.labels == ["Cat", "Dog"]
    assert events.events == {"a.wav": [(0.2, 0.9, "Cat"), (1.5, 2.0, "Dog")], "b.wav": []}
    assert events.path("a.wav") == tmp_path / "a.wav"


def test_audioset_strong_and_csv_layouts(tmp_path: Path) -> None:
    strong = tmp_path / "strong.tsv"
    strong.write_text("segment_id\tstart_time_seconds\tend_time_seconds\tlabel\nYx_30000\t0.0\t1.0\t/m/09x0r\n")
    assert read_events(strong).events == {"Yx_30000": [(0.0, 1.0, "/m/09x0r")]}
    generic = tmp_path / "events.csv"
    generic.write_text("file,onset,offset,label\nc.wav,0.5,0.75,bird\n")
    assert read_events(generic, labels=["bird", "car"]).labels == ["bird", "car"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("file,start,label\n", "layouts"), ("file,onset,offset,label\nc.wav,2,1,x\n", "onset < offset"),
     ("file,onset,offset,label\nc.wav,a,1,x\n", "numbers")],
)  # fmt: skip
def test_malformed_tables_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        read_events(tmp_path / "t.csv")


def test_frame_targets_cover_every_frame_an_event_overlaps() -> None:
    target = frame_targets([(0.05, 0.12, "b"), (0.3, 0.31, "a"), (0.2, 9.0, "zzz")], ["a", "b"], 10, 0.04)
    assert target.shape == (2, 10) and target.dtype == np.float32
    assert np.flatnonzero(target[1]).tolist() == [1, 2]  # [0.04, 0.12): frames 1 and 2
    assert np.flatnonzero(target[0]).tolist() == [7]  # a 10-ms event still marks its frame
