"""Tiny generated datasets for the training tests: two or three classes of tones that a tiny CNN separates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

RATE = 8000
TONES = {"low": 300.0, "mid": 1200.0, "high": 2800.0}


def write_tone_dataset(root: Path, per_class: int = 6, classes: int = 2, seconds: float = 0.5, seed: int = 0,
                       devices: tuple[str, ...] = ("a", "b"), split: bool = True) -> Path:
    """WAV files of noisy tones and ``meta.csv`` (file, label, device[, split]); returns the CSV path."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    lines = ["file,label,device" + (",split" if split else "")]
    for label, frequency in list(TONES.items())[:classes]:
        for i in range(per_class):
            audio = 0.3 * np.sin(2 * np.pi * frequency * (1 + 0.05 * rng.normal()) * t) + 0.05 * rng.normal(size=len(t))
            name = f"{label}_{i}.wav"
            soundfile.write(root / name, audio.astype(np.float32), RATE)
            role = "test" if i >= per_class - 2 else "train"
            lines.append(f"{name},{label},{devices[i % len(devices)]}" + (f",{role}" if split else ""))
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    return root / "meta.csv"
