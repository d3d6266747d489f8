"""The contract: `tympan finetune --task sed` on a generated set, then `tympan detect --format json`.

Three clearly different event kinds in 5-s files, frame_mn06 from scratch (10 epochs: the 80-step minimum of
`--task sed`); onsets within 0.2 s. Minutes on 2 cores, so marked slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tympan.cli import main
from tympan.sed import read_events
from tympan.sed.corpus import generate_event_set
from tympan.sed.metrics import onset_errors


@pytest.mark.slow
def test_finetune_then_detect_places_onsets_within_200_ms(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table_path = generate_event_set(tmp_path / "data", files=32, seconds=5.0, max_events=2, seed=3)
    args = ["finetune", "--task", "sed", "--data", str(table_path), "--model", "frame_mn06", "--no-pretrained",
            "--epochs", "10", "--output", str(tmp_path / "run"), "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert (tmp_path / "run" / "model.ckpt").is_file()
    capsys.readouterr()
    table = read_events(table_path)
    files = [str(table.path(f)) for f in table.files[:8]]
    assert main(["detect", *files, "--checkpoint", str(tmp_path / "run" / "model.ckpt"), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in records] == files
    assert all({"label", "onset", "offset", "score"} <= set(e) for r in records for e in r["events"])
    detected = {Path(r["file"]).name: [(e["onset"], e["offset"], e["label"]) for e in r["events"]] for r in records}
    truth = {Path(f).name: table.events[Path(f).name] for f in files}
    errors = onset_errors(detected, truth)
    assert np.mean(errors <= 0.2) >= 0.8
