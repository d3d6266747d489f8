"""Frame-level inference speed: sound event detection of whole files, per model, against the clip-window timeline.

One thread, process CPU time (the machine is shared; CPU time is what the run costs), random weights: each model
scores ``--files`` generated 10-s WAV files (44.1 kHz, so decoding and resampling count) with
:func:`tympan.sed.detect.frame_scores` (40-ms frames); the baseline of the same run is ``mn10_as``'s clip-window
timeline at 1-s windows and a 0.5-s hop (:func:`tympan.tagging.timeline`), the resolution tympan had before frame
models. Reports files/s and × real time (audio seconds per CPU second), medians of ``--runs``.

    .venv/bin/python -m benchmarks.bench_sed            # 6 files, 3 runs
    .venv/bin/python -m benchmarks.bench_sed --quick    # 2 files, 1 run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

SECONDS = 10.0
RATE = 44100


def _files(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"clip_{index}.wav"
        soundfile.write(path, (rng.standard_normal(int(SECONDS * RATE)) * 0.05).astype(np.float32), RATE)
        paths.append(path)
    return paths


def _cpu_seconds(job, runs: int) -> float:
    job()  # warm-up (filterbanks, first-call allocations)
    times = []
    for _ in range(runs):
        start = time.process_time()
        job()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="frame_mn06,frame_mn10", help="frame-level presets")
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 files, 1 run")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.runs = 2, 1
    torch.set_num_threads(1)
    import tympan
    from tympan.sed.detect import frame_scores
    from tympan.tagging import timeline

    with tempfile.TemporaryDirectory() as folder:
        files = _files(Path(folder), args.files)
        audio_seconds = SECONDS * len(files)
        rows = []
        baseline = tympan.load("mn10_as", pretrained=False, device="cpu")
        base = _cpu_seconds(lambda: [timeline(baseline, f, window=1.0, hop=0.5) for f in files], args.runs)
        rows.append(("mn10_as clip-window timeline (1 s / 0.5 s)", base))
        for name in args.models.split(","):
            pipeline = tympan.load(name, pretrained=False, device="cpu")
            rows.append((f"{name} frames (40 ms)", _cpu_seconds(lambda p=pipeline: [frame_scores(p, f) for f in files],
                                                                args.runs)))  # fmt: skip
    print(f"{len(files)} files of {SECONDS:g} s, 1 thread, median process CPU time of {args.runs} run(s)")
    print(f"{'model':<46} {'files/s':>8} {'x real time':>12} {'vs baseline':>12}")
    for name, seconds in rows:
        print(f"{name:<46} {len(files) / seconds:>8.2f} {audio_seconds / seconds:>12.1f} {base / seconds:>11.2f}x")


if __name__ == "__main__":
    main()
