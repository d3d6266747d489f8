"""`tympan listen --input FILE --realtime`: the live path end to end, its JSONL log, and a missing microphone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

import tympan
from tympan.cli import main
from tympan.tagging import detect_events, timeline

RATE = 32000


def test_a_file_played_in_real_time_logs_the_offline_events(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = tmp_path / "scene.wav"
    soundfile.write(audio, (0.1 * np.random.default_rng(0).standard_normal(2 * RATE)).astype(np.float32), RATE)
    log = tmp_path / "events.jsonl"
    start = time.perf_counter()
    status = main(
        ["listen", "--model", "mn04_as", "--checkpoint", str(checkpoint), "--input", str(audio), "--realtime",
         "--window", "0.5", "--hop", "0.5", "--threshold", "0.59", "--off-threshold", "0.58", "--output", str(log)]
    )  # fmt: skip
    assert status == 0 and time.perf_counter() - start >= 2.0  # real-time pace
    records = [json.loads(line) for line in log.read_text().splitlines()]
    pipeline = tympan.load("mn04_as", checkpoint, device="cpu")
    line = timeline(pipeline, audio, window=0.5, hop=0.5)
    expected = detect_events(line, threshold=0.59, off_threshold=0.58, median_windows=1)
    ended = sorted((r["onset"], r["label"], r["offset"]) for r in records if r["state"] == "off")
    assert ended == sorted((e.onset, e.label, e.offset) for e in expected) and ended
    assert sorted(r["label"] for r in records if r["state"] == "on") == sorted(e.label for e in expected)
    captured = capsys.readouterr()
    assert "latency p50" in captured.err and " on " in captured.out  # plain lines when stdout is not a terminal


def test_without_a_microphone_the_message_says_what_to_do(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tympan.live import sources

    class NoDevices:
        class PortAudioError(Exception):
            pass

        def query_devices(self, device: object = None, kind: object = None) -> object:
            if kind is None:
                return []
            raise ValueError("No input device matching 'usb'")

    monkeypatch.setattr(sources, "_sounddevice", NoDevices)
    assert main(["listen", "--model", "mn04_as", "--checkpoint", str(checkpoint), "--device", "usb"]) == 1
    error = capsys.readouterr().err
    assert "no audio input device" in error and "--input FILE --realtime" in error
    assert main(["listen", "--model", "mn04_as", "--realtime"]) == 1
    assert "--input" in capsys.readouterr().err
