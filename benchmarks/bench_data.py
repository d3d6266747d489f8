"""P4: data pipeline throughput (decode + resample + mel) of tympan against a plain librosa-style loader.

Both read the same WAV files (44.1 kHz, as TAU22 / ESC-50 ship) and produce the 32 kHz log-mel of the
EfficientAT / PaSST frontend, in the same process, alternating:

* **baseline** (what a typical training script does per clip): soundfile decode, ``scipy.signal.resample_poly``
  to 32 kHz, a numpy STFT (framing + ``np.fft.rfft``), a Kaldi mel filterbank rebuilt in numpy at every call, log;
* **tympan cold**: :class:`tympan.data.ClipLoader` (soundfile + soxr, writing the decode cache) and a batched
  :class:`tympan.audio.MelFrontend`;
* **tympan cached**: the same with the decoded clips memory-mapped from the cache (every epoch after the first).

Prints clips/s (wall) and process CPU time per clip, medians over runs, and the ratios to the baseline.

Then whether loading starves training: training steps of the DCASE23 student (CP-Mobile, 1-s clips, 1 torch
thread) fed by a ``DataLoader`` over :class:`tympan.data.ClipDataset` (one worker decoding and resampling every
clip from the 44.1-kHz WAVs, no cache: the worst case) against the same steps on batches preloaded in memory:
median wall time per step and the time the step waited for its batch.

    .venv/bin/python -m benchmarks.bench_data            # 32 clips of 10 s, 5 runs
    .venv/bin/python -m benchmarks.bench_data --quick    # 8 clips, 2 runs, a few steps
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
from scipy.signal import resample_poly

from tympan.audio.frontend import MelFrontend, MelFrontendConfig
from tympan.data import ClipDataset, ClipLoader, ClipRecord, read_data
from tympan.models import create, frontend_of

SOURCE_RATE = 44100


def _kaldi_mel_numpy(config: MelFrontendConfig) -> np.ndarray:
    """Triangular Kaldi-scale filterbank ``[n_mels, n_fft // 2 + 1]`` built from scratch (as the baseline does)."""
    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    bins = config.n_fft // 2
    fft_mel = mel(np.arange(bins) * config.sample_rate / config.n_fft)
    low, high = mel(config.fmin), mel(config.effective_fmax)
    delta = (high - low) / (config.n_mels + 1)
    left = low + np.arange(config.n_mels)[:, None] * delta
    centre, right = left + delta, left + 2 * delta
    up = (fft_mel - left) / (centre - left)
    down = (right - fft_mel) / (right - centre)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1))).astype(np.float32)


def baseline_clip(path: Path, config: MelFrontendConfig, num_samples: int) -> np.ndarray:
    """One clip the plain way: decode, scipy resampling, numpy STFT, filterbank rebuilt, log-mel."""
    audio, rate = soundfile.read(path, dtype="float32")
    gcd = math.gcd(rate, config.sample_rate)
    audio = resample_poly(audio, config.sample_rate // gcd, rate // gcd).astype(np.float32)
    audio = np.pad(audio, (0, max(0, num_samples - len(audio))))[:num_samples]
    x = audio[1:] - 0.97 * audio[:-1]
    pad = config.n_fft // 2
    x = np.pad(x, pad, mode="reflect")
    frames = 1 + (len(x) - config.n_fft) // config.hop_length
    window = np.zeros(config.n_fft, dtype=np.float32)
    offset = (config.n_fft - config.win_length) // 2
    window[offset : offset + config.win_length] = np.hanning(config.win_length)
    index = np.arange(config.n_fft)[None, :] + config.hop_length * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(x[index] * window, axis=1)) ** 2
    mel = _kaldi_mel_numpy(config) @ power.T
    return (np.log(mel + 1e-5) + 4.5) / 5.0


def tympan_clips(records, loader: ClipLoader, frontend: MelFrontend, batch: int) -> torch.Tensor:
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(records), batch):
            audio = torch.from_numpy(np.stack([loader(r) for r in records[start : start + batch]]))
            outputs.append(frontend(audio))
    return torch.cat(outputs)


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _student_steps(folder: Path, steps: int, batch: int, preloaded: bool) -> tuple[float, float]:
    """Median wall time per training step and median wait for the batch, with real loading or preloaded batches."""
    rng = np.random.default_rng(1)
    lines = ["file,label"]
    for i in range(steps * batch):
        if not (folder / f"s{i}.wav").exists():
            audio = 0.1 * rng.standard_normal(SOURCE_RATE).astype(np.float32)
            soundfile.write(folder / f"s{i}.wav", audio, SOURCE_RATE, subtype="PCM_24")
        lines.append(f"s{i}.wav,{'abcdefghij'[i % 10]}")
    (folder / "steps.csv").write_text("\n".join(lines) + "\n")
    torch.manual_seed(0)
    student = create("cp_mobile_dcase23").train()
    frontend = frontend_of(student).train()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
    dataset = ClipDataset(read_data(folder / "steps.csv"), ClipLoader(32000, 32000))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, num_workers=1, prefetch_factor=4)
    batches = list(loader) if preloaded else loader
    step_times, waits = [], []
    iterator = iter(batches)
    for _ in range(steps):
        start = time.perf_counter()
        data = next(iterator)
        loaded = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(student(frontend(data["audio"]).unsqueeze(1)), data["target"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step_times.append(time.perf_counter() - start)
        waits.append(loaded - start)
    skip = 2  # the first steps start the worker and warm up the kernels
    return statistics.median(step_times[skip:]), statistics.median(waits[skip:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 clips, 2 runs")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the baseline's numpy is unchanged)")
    parser.add_argument("--steps", type=int, default=20, help="training steps of the starvation check")
    args = parser.parse_args(argv)
    clips, runs = (8, 2) if args.quick else (args.clips, args.runs)
    torch.set_num_threads(args.threads)

    config = MelFrontendConfig()
    num_samples = round(args.seconds * config.sample_rate)
    frontend = MelFrontend(config).eval()
    folder = Path(tempfile.mkdtemp(prefix="tympan_bench_data_"))
    try:
        rng = np.random.default_rng(0)
        records = []
        for i in range(clips):
            path = folder / f"clip{i}.wav"
            audio = 0.1 * rng.standard_normal(int(args.seconds * SOURCE_RATE))
            soundfile.write(path, audio.astype(np.float32), SOURCE_RATE, subtype="PCM_24")
            records.append(ClipRecord(str(i), str(path), (0,)))
        expected = baseline_clip(Path(records[0].source), config, num_samples)
        check = tympan_clips(records[:1], ClipLoader(config.sample_rate, num_samples), frontend, 1)[0].numpy()
        difference = float(np.abs(check - expected).mean())  # resamplers differ (soxr vs polyphase): mean only

        results: dict[str, list[tuple[float, float]]] = {"baseline": [], "tympan cold": [], "tympan cached": []}
        for run in range(runs):
            cache = folder / f"cache{run}"
            loader = ClipLoader(config.sample_rate, num_samples, cache)
            ours = lambda loader=loader: tympan_clips(records, loader, frontend, args.batch)  # noqa: E731
            results["baseline"].append(
                _timed(lambda: [baseline_clip(Path(r.source), config, num_samples) for r in records])
            )
            results["tympan cold"].append(_timed(ours))  # decodes, resamples and fills the cache
            results["tympan cached"].append(_timed(ours))
            shutil.rmtree(cache)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"P4 data pipeline: {clips} clips of {args.seconds:g} s at {SOURCE_RATE} Hz -> 32 kHz log-mel "
          f"{tuple(check.shape)}, {runs} runs, torch threads {args.threads}; "
          f"mean |tympan - baseline| = {difference:.4f}")
    base_wall = statistics.median(w for w, _ in results["baseline"])
    base_cpu = statistics.median(c for _, c in results["baseline"])
    for name, values in results.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(f"  {name:14s} {clips / wall:8.1f} clips/s   {1000 * cpu / clips:7.1f} ms CPU/clip   "
              f"x{base_wall / wall:5.2f} wall  x{base_cpu / cpu:5.2f} CPU vs baseline")

    torch.set_num_threads(1)  # the DataLoader worker has the other core
    steps, batch = (6, 16) if args.quick else (args.steps, 64)
    folder = Path(tempfile.mkdtemp(prefix="tympan_bench_steps_"))
    try:
        real = _student_steps(folder, steps, batch, preloaded=False)
        memory = _student_steps(folder, steps, batch, preloaded=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"  training steps, CP-Mobile student, batch {batch} x 1 s, {steps} steps, 1 torch thread + 1 loader worker"
          f" (wall, medians): real loading {1000 * real[0]:.1f} ms/step (waited {1000 * real[1]:.1f} ms for data),"
          f" preloaded {1000 * memory[0]:.1f} ms/step; x{real[0] / memory[0]:.2f}")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (ru_maxrss, main process)")


if __name__ == "__main__":
    main()
