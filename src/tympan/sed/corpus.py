"""A generated strong-labelled set: events of the demo corpus's sound sources placed at known samples.

Each file is a quiet noise floor with up to ``max_events`` events; an event is one source of
:data:`tympan.data.synthetic.SOURCES` rendered for its duration, with 5-ms fades, so its onset and offset are
known to the sample. Events do not overlap in time; some files hold none (as DESED's). The table is written in
the DESED layout (``filename, onset, offset, event_label``, tab-separated).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from ..data.synthetic import render_source
from ..errors import ConfigError
from ..files import atomic_path

__all__ = ["DEFAULT_SOURCES", "generate_event_set"]

# Continuous sources of clearly different spectra: broadband hiss, harmonic hum, formant voices.
DEFAULT_SOURCES: tuple[str, ...] = ("rain", "hum", "babble")
_FADE_SECONDS = 0.005


def generate_event_set(
    root: str | Path,
    *,
    files: int = 36,
    seconds: float = 5.0,
    sources: Sequence[str] = DEFAULT_SOURCES,
    max_events: int = 3,
    event_seconds: tuple[float, float] = (0.5, 1.4),
    empty_fraction: float = 0.1,
    sample_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """Write ``files`` WAV files and ``events.tsv`` under ``root``; returns the table's path.

    Raises:
        ConfigError: events cannot fit in the file length.
    """
    if max_events * event_seconds[1] > seconds or files <= 0:
        raise ConfigError(f"{max_events} events of up to {event_seconds[1]} s do not fit in {seconds}-s files")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = round(seconds * sample_rate)
    fade = round(_FADE_SECONDS * sample_rate)
    rows: list[tuple[str, str, str, str]] = []
    for index in range(files):
        name = f"clip_{index:04d}.wav"
        audio = (rng.standard_normal(samples) * 10 ** (-50 / 20)).astype(np.float32)
        count = 0 if rng.uniform() < empty_fraction else int(rng.integers(1, max_events + 1))
        slot = samples // max(count, 1)
        for event in range(count):
            length = round(rng.uniform(*event_seconds) * sample_rate)
            start = event * slot + int(rng.integers(0, max(slot - length, 1)))
            source = str(rng.choice(sources))
            sound = render_source(source, rng, 1, length, sample_rate)[0]
            envelope = np.ones(length, np.float32)
            envelope[:fade], envelope[-fade:] = np.linspace(0, 1, fade), np.linspace(1, 0, fade)
            audio[start : start + length] += sound * envelope * 10 ** (rng.uniform(-22, -12) / 20)
            rows.append((name, f"{start / sample_rate:.6f}", f"{(start + length) / sample_rate:.6f}", source))
        if count == 0:
            rows.append((name, "", "", ""))
        with atomic_path(root / name) as temporary:
            soundfile.write(temporary, np.clip(audio, -1, 1), sample_rate, subtype="PCM_16", format="WAV")
    table = root / "events.tsv"
    with atomic_path(table) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(("filename", "onset", "offset", "event_label"))
        writer.writerows(rows)
    return table
