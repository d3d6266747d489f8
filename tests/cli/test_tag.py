"""`tympan tag`: folders of good and bad files, formats, atomic output, resume, the DCASE23 checkpoint."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tympan.cli import main

from ..conftest import shared_path

RATE = 32000


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    generator = np.random.default_rng(0)
    (root / "sub").mkdir()
    soundfile.write(root / "good.wav", 0.1 * generator.standard_normal(RATE).astype(np.float32), RATE)
    soundfile.write(root / "sub" / "stereo_44k.flac", 0.1 * generator.standard_normal((44100, 3)), 44100)
    soundfile.write(root / "one_sample.wav", np.array([0.2], np.float32), 8000)
    soundfile.write(root / "nan.wav", np.array([0.1, np.nan, 0.2] * 100, np.float32), RATE, subtype="FLOAT")
    (root / "empty.wav").write_bytes(b"")
    (root / "garbage.mp3").write_bytes(bytes(generator.integers(0, 256, 3000, dtype=np.uint8)))
    (root / "notes.txt").write_text("not audio, not picked from a folder")
    return root


def _tag(*args: str) -> int:
    return main(["tag", *args])


def test_folder_with_bad_files_gives_one_record_each(
    folder: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    status = _tag(
        str(folder),
        "--model",
        "mn04_as",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "json",
        "--output",
        str(out),
        "--top-k",
        "3",
    )
    assert status == 1
    records = {Path(r["file"]).name: r for r in json.loads(out.read_text())}
    assert set(records) == {"good.wav", "stereo_44k.flac", "one_sample.wav", "nan.wav", "empty.wav", "garbage.mp3"}
    for name in ("good.wav", "stereo_44k.flac", "one_sample.wav"):
        assert len(records[name]["predictions"]) == 3 and "error" not in records[name]
    assert "zero-padded" in records["one_sample.wav"]["note"]
    for name in ("nan.wav", "empty.wav", "garbage.mp3"):
        assert records[name]["error"] and "predictions" not in records[name]
    assert "non-finite" in records["nan.wav"]["error"] or "NaN" in records["nan.wav"]["error"]
    assert "Traceback" not in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left

    # --resume keeps the finished records and retries only the failed files.
    good = records["good.wav"]
    status = _tag(
        str(folder / "good.wav"),
        str(folder / "nan.wav"),
        "--model",
        "mn04_as",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "json",
        "--output",
        str(out),
        "--resume",
    )
    again = {Path(r["file"]).name: r for r in json.loads(out.read_text())}
    assert status == 1 and again["good.wav"] == good and set(again) == set(records)


def test_windowed_csv_and_plot(folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    audio = tmp_path / "long.wav"
    soundfile.write(audio, 0.1 * np.random.default_rng(1).standard_normal(3 * RATE).astype(np.float32), RATE)
    status = _tag(
        str(audio),
        "--model",
        "mn04_as",
        "--checkpoint",
        str(checkpoint),
        "--window",
        "1",
        "--hop",
        "0.5",
        "--format",
        "json",
        "--output",
        str(tmp_path / "t.json"),
        "--plot",
        str(tmp_path / "t.png"),
        "--threshold",
        "0.0",
    )
    assert status == 0
    (record,) = json.loads((tmp_path / "t.json").read_text())
    assert [w["start"] for w in record["windows"]] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert record["events"] and {"onset", "offset", "label", "score"} <= set(record["events"][0])
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        _tag(
            str(audio),
            "--model",
            "mn04_as",
            "--checkpoint",
            str(checkpoint),
            "--format",
            "csv",
            "--output",
            str(tmp_path / "t.csv"),
        )
        == 0
    )
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "file,start,end,rank,label,score,error,note" and len(lines) == 6


def test_the_default_table_lists_files_scores_and_windows(
    folder: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ("--model", "mn04_as", "--checkpoint", str(checkpoint))
    assert _tag(str(folder / "good.wav"), str(folder / "empty.wav"), *model, "--top-k", "2") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("good.wav") and len(lines) == 5
    assert all(line.startswith("  0.") for line in lines[1:3])  # "  score  label", best first
    assert lines[3].endswith("empty.wav") and lines[4].startswith("  error: ")
    audio = tmp_path / "long.wav"
    soundfile.write(audio, 0.1 * np.random.default_rng(1).standard_normal(3 * RATE).astype(np.float32), RATE)
    assert _tag(str(audio), *model, "--window", "1", "--hop", "1") == 0
    lines = capsys.readouterr().out.splitlines()
    windows = [line.split(" s ")[0].split() for line in lines[1:] if not line.lstrip().startswith("event")]
    assert windows == [["0.00-", "1.00"], ["1.00-", "2.00"], ["2.00-", "3.00"]]  # "  start-end s  best labels"


def test_usage_errors_are_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _tag(str(tmp_path), "--model", "mn") == 1
    assert "no audio files" in capsys.readouterr().err
    assert _tag(str(tmp_path)) == 1
    assert "--model" in capsys.readouterr().err


def test_a_command_leaves_the_garbage_collector_running(tmp_path: Path) -> None:
    assert gc.isenabled()
    assert _tag(str(tmp_path), "--model", "mn") == 1  # the CLI pauses it to import torch, then resumes it
    assert gc.isenabled()


def test_dcase23_checkpoint_tags_metro_station(capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = shared_path("reference", "dcase23", "cpmobile_c0a7nzin_metro_station.pt")
    audio = shared_path("data", "metro_station-paris.wav")
    assert _tag("--model", "cp_mobile_dcase23", "--checkpoint", str(checkpoint), str(audio), "--format", "json") == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["predictions"][0]["label"] == "metro_station"


def test_interrupted_job_keeps_finished_records_and_resumes(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tympan.engine.jobs import TagJob

    for name in ("a", "b", "c"):
        soundfile.write(tmp_path / f"{name}.wav", np.full(RATE // 2, 0.1, np.float32), RATE)
    real = TagJob.finish
    calls = []

    def interrupted_on_second_file(job: TagJob, *args: object) -> object:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second file is being finished
        return real(job, *args)

    monkeypatch.setattr(TagJob, "finish", interrupted_on_second_file)
    out = tmp_path / "out.json"
    args = [*(str(tmp_path / f"{n}.wav") for n in "abc"), "--model", "mn04_as", "--checkpoint", str(checkpoint)]
    assert _tag(*args, "--format", "json", "--output", str(out)) == 130
    assert [Path(r["file"]).name for r in json.loads(out.read_text())] == ["a.wav"]
    monkeypatch.setattr(TagJob, "finish", real)
    assert _tag(*args, "--format", "json", "--output", str(out), "--resume") == 0
    assert [Path(r["file"]).name for r in json.loads(out.read_text())] == ["a.wav", "b.wav", "c.wav"]


def test_tail_option_picks_the_last_window_rule(checkpoint: Path, tmp_path: Path) -> None:
    audio = tmp_path / "odd.wav"
    soundfile.write(audio, 0.1 * np.random.default_rng(2).standard_normal(int(2.3 * RATE)).astype(np.float32), RATE)
    starts = {}
    for tail in ("end", "pad"):
        out = tmp_path / f"{tail}.json"
        args = [str(audio), "--model", "mn04_as", "--checkpoint", str(checkpoint), "--window", "1", "--hop", "0.5"]
        assert _tag(*args, "--tail", tail, "--format", "json", "--output", str(out)) == 0
        (record,) = json.loads(out.read_text())
        starts[tail] = [w["start"] for w in record["windows"]]
    assert starts == {"end": [0.0, 0.5, 1.0, 1.3], "pad": [0.0, 0.5, 1.0, 1.5]}


def test_fp16_on_cpu_is_a_clear_error(folder: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(folder / "good.wav"), "--model", "mn04_as", "--checkpoint", str(checkpoint), "--device", "cpu"]
    assert _tag(*args, "--precision", "16-mixed") != 0
    assert "CUDA device" in capsys.readouterr().err


def test_json_puts_each_window_on_a_line_of_its_own(
    folder: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ("--model", "mn04_as", "--checkpoint", str(checkpoint), "--format", "json")
    assert _tag(str(folder / "good.wav"), str(folder / "empty.wav"), *model, "--window", "0.5", "--hop", "0.25") == 1
    text = capsys.readouterr().out
    good, empty = json.loads(text)
    assert [w["start"] for w in good["windows"]] == [0.0, 0.25, 0.5] and "error" in empty
    window_lines = [line for line in text.splitlines() if line.lstrip().startswith('{"start"')]
    assert [json.loads(line.rstrip(","))["start"] for line in window_lines] == [0.0, 0.25, 0.5]


def test_the_console_command_ends_with_its_output_whole_and_its_status(
    folder: Path, checkpoint: Path, tmp_path: Path
) -> None:
    """``python -m tympan.cli`` (as the console script) ends the process without the interpreter's teardown: stdout,
    the --output file and exit handlers' work (a temporary directory removed) must all be there first."""
    left_behind = tmp_path / "left"
    script = (
        "import atexit, shutil, sys; from tympan.cli import console_main;"
        f" atexit.register(shutil.rmtree, {str(left_behind)!r});"
        " sys.argv[1:] = sys.argv[2:]; console_main()"
    )
    left_behind.mkdir()
    model = ["--model", "mn04_as", "--checkpoint", str(checkpoint), "--format", "json"]
    paths = [str(folder / "good.wav"), str(folder / "empty.wav")]
    run = subprocess.run([sys.executable, "-c", script, "-", "tag", *paths, *model], capture_output=True, text=True)
    assert run.returncode == 1 and not left_behind.exists()
    assert [Path(r["file"]).name for r in json.loads(run.stdout)] == ["good.wav", "empty.wav"]
    out = tmp_path / "out.json"
    run = subprocess.run([sys.executable, "-m", "tympan.cli", "tag", paths[0], *model, "--output", str(out)])
    assert run.returncode == 0 and json.loads(out.read_text())[0]["predictions"]
