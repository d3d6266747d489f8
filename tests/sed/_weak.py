"""A strong generated set split into a strong table and a DESED-style weak table (the tags of some of its files)."""

from __future__ import annotations

from pathlib import Path

from tympan.sed import read_events


def split_weak_table(table_path: Path, weak_files: int) -> tuple[Path, Path]:
    """Write ``strong.tsv`` (the files after the first ``weak_files``) and ``weak.tsv`` (the first ``weak_files``
    with their classes only, DESED's ``filename, event_labels``) beside ``table_path``; returns both paths."""
    table = read_events(table_path)
    strong, weak = table_path.with_name("strong.tsv"), table_path.with_name("weak.tsv")
    rows = ["filename\tonset\toffset\tevent_label"]
    for file in table.files[weak_files:]:
        events = table.events[file] or [None]
        rows += [f"{file}\t{e[0]}\t{e[1]}\t{e[2]}" if e else f"{file}\t\t\t" for e in events]
    strong.write_text("\n".join(rows) + "\n")
    tags = [f"{f}\t{','.join(sorted({label for *_, label in table.events[f]}))}" for f in table.files[:weak_files]]
    weak.write_text("\n".join(["filename\tevent_labels", *tags]) + "\n")
    return strong, weak
