"""A tiny labelled scene dataset on disk (tones per class, gain and colouring per device) for the analysis CLIs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

CLASSES = ("hum", "whistle", "chirp")
DEVICES = ("a", "b", "c")


def write_scenes(root: Path, per_cell: int = 3, sample_rate: int = 32000) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(sample_rate) / sample_rate
    lines = ["file,label,device,city,split"]
    for split in ("train", "test"):
        for c, label in enumerate(CLASSES):
            for d, device in enumerate(DEVICES):
                for i in range(per_cell):
                    tone = np.sin(2 * np.pi * (400 * 3**c) * t + rng.uniform(0, 6))
                    audio = 0.3 * tone + 0.05 * rng.standard_normal(sample_rate)
                    audio = np.convolve(audio, np.ones(1 + 4 * d) / (1 + 4 * d), mode="same") * (0.5 + 0.4 * d)
                    name = f"{split}_{label}_{device}_{i}.wav"
                    sf.write(root / name, audio.astype(np.float32), sample_rate)
                    lines.append(f"{name},{label},{device},city{i % 2},{split}")
    (root / "meta.csv").write_text("\n".join(lines) + "\n")
    return root / "meta.csv"
