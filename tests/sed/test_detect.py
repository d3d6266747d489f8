"""Frame scores over files of any length, `tympan detect` records, and the self-describing SED checkpoint."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tympan import load
from tympan.cli import main
from tympan.errors import ConfigError
from tympan.models import read_checkpoint
from tympan.models.frame import FrameDyMN
from tympan.sed import read_events
from tympan.sed.corpus import generate_event_set
from tympan.sed.detect import detect, frame_scores
from tympan.train.api import export_checkpoint
from tympan.train.sed import SedSystem, roll_frames

LABELS = ["babble", "hum", "rain"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    system = SedSystem("frame_mn", num_classes=3, labels=LABELS, model_kwargs={"width_mult": 0.1})
    return export_checkpoint(system, tmp_path_factory.mktemp("run") / "model.ckpt")


def test_the_checkpoint_describes_a_frame_level_detector(checkpoint: Path) -> None:
    provenance = read_checkpoint(checkpoint).provenance
    assert provenance["task"] == "sed" and provenance["frame_seconds"] == pytest.approx(0.04)
    pipeline = load(checkpoint=checkpoint, device="cpu")
    assert pipeline.labels == LABELS and pipeline.sample_rate == 16000


def test_long_audio_is_scored_window_by_window_on_one_40_ms_grid(checkpoint: Path) -> None:
    pipeline = load(checkpoint=checkpoint, device="cpu")
    waveform = np.random.default_rng(0).standard_normal(int(12.3 * 16000)).astype(np.float32) * 0.1
    scores = frame_scores(pipeline, waveform, window=10.0)
    assert scores.scores.shape == (308, 3) and scores.duration == pytest.approx(12.3)
    assert scores.ends[-1] == pytest.approx(12.3) and scores.starts[1] == pytest.approx(0.04)
    first = frame_scores(pipeline, waveform[: 10 * 16000], window=10.0)
    assert np.allclose(scores.scores[:250], first.scores, atol=1e-5)  # windows are independent
    with pytest.raises(ConfigError, match="whole number"):
        frame_scores(pipeline, waveform, window=1.01)


def test_clip_models_are_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="frame-level"):
        next(detect(load("mn", width_mult=0.1, device="cpu"), ["x.wav"]))


def test_detect_cli_prints_one_record_per_file(checkpoint: Path, tmp_path: Path, capsys) -> None:
    table = generate_event_set(tmp_path / "data", files=2, seconds=2.0, max_events=1, seed=2)
    files = sorted(str(p) for p in table.parent.glob("*.wav"))
    assert main(["detect", *files, "--checkpoint", str(checkpoint), "--threshold", "0.0", "--median", "0"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in records] == files
    assert all(set(e) == {"label", "onset", "offset", "score"} for r in records for e in r["events"])
    assert {e["label"] for e in records[0]["events"]} == set(LABELS)  # threshold 0: every class is active
    assert main(["detect", files[0], "--checkpoint", str(checkpoint), "--format", "csv", "--threshold", "0"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and set(rows[0]) == {"file", "onset", "offset", "label", "score"}


def test_roll_shifts_audio_and_targets_by_the_same_frames() -> None:
    audio = torch.arange(40.0).view(1, 40)
    targets = torch.zeros(1, 1, 10)
    targets[0, 0, 2] = 1
    rolled, shifted = roll_frames(audio, targets, 3, 4, torch.Generator().manual_seed(5))
    frames = int(shifted[0, 0].argmax()) - 2
    assert torch.equal(rolled[0], torch.roll(audio[0], frames * 4))


def test_detect_plots_frame_scores_with_the_events(checkpoint: Path, tmp_path: Path, capsys) -> None:
    table = generate_event_set(tmp_path / "data", files=1, seconds=2.0, max_events=1, seed=4)
    audio = next(table.parent.glob("*.wav"))
    assert main(["detect", str(audio), "--checkpoint", str(checkpoint), "--plot", str(tmp_path / "plots")]) == 0
    record = json.loads(capsys.readouterr().out)[0]
    assert Path(record["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_finetune_trains_a_frame_dymn_from_scratch_for_detect(tmp_path: Path, capsys) -> None:
    table = generate_event_set(tmp_path / "data", files=6, seconds=2.0, max_events=1, seed=5)
    run = tmp_path / "run"
    args = ["finetune", "--task", "sed", "--data", str(table), "--model", "frame_dymn04", "--no-pretrained",
            "--steps", "2", "--output", str(run), "--quiet"]  # fmt: skip
    assert main(args) == 0
    pipeline = load(checkpoint=run / "model.ckpt", device="cpu")
    assert isinstance(pipeline.model, FrameDyMN) and pipeline.labels == read_events(table).labels
    capsys.readouterr()
    files = sorted(str(p) for p in table.parent.glob("*.wav"))[:2]
    assert main(["detect", *files, "--checkpoint", str(run / "model.ckpt"), "--format", "json"]) == 0
    assert [r["file"] for r in json.loads(capsys.readouterr().out)] == files
