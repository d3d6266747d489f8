"""The batch engine end to end: ``tympan tag`` on a folder and on an hour of audio, against a naive loop, in one run.

Every figure is a fresh process measured from outside (wall clock incl. start-up; CPU time and peak RSS of the whole
process tree, workers included), with ``mn10_as`` at random (stressed) weights from a checkpoint file:

* F: a folder of 10-s 44.1-kHz stereo WAVs. Baseline: the loop a user writes from the reference ``inference.py``
  (soundfile read → mono mean → soxr to 32 kHz → the reference mel → the eager model, one clip at a time);
  against ``tympan tag DIR``. Also peak RSS of the engine for N and 10·N files (N·10 are hard links of the N: same
  decoding work, no disk).
* H: one 44.1-kHz stereo file, ``tympan tag FILE --window 10 --hop 1`` (default method: pooled), on all cores and
  pinned to one (``taskset -c 0``): × real time; peak RSS for the short and the long file.
* S: start-up with a cached graph: ``tympan tag`` of one 1-s clip, process start to its first model call (and to
  exit).
* P: pooled against exact windows, max |score difference| over a 2-minute file (mn10_as and dymn10_as).

    .venv/bin/python -m benchmarks.bench_engine            # 120 and 400 files (RSS: 1200), 10 / 60 min
    .venv/bin/python -m benchmarks.bench_engine --quick    # 40 files (RSS: 400), 2 / 10 min
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

SOURCE_RATE = 44100
REPEATS = 3  # alternating rounds of each folder and long-file configuration (the median is reported)


def _load_stressed(name: str) -> Any:
    from benchmarks.bench_inference import _load

    return _load(name)


def _write_clips(folder: Path, count: int, distinct: int = 20) -> None:
    """``count`` 10-s stereo WAVs: ``distinct`` generated ones, the rest hard links of them."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(0)
    for i in range(count):
        path = folder / f"clip{i:05d}.wav"
        if i < distinct:
            soundfile.write(path, 0.1 * generator.standard_normal((10 * SOURCE_RATE, 2)), SOURCE_RATE, "PCM_16")
        else:
            os.link(folder / f"clip{i % distinct:05d}.wav", path)


def _write_long(path: Path, minutes: int) -> None:
    """Stereo noise bursts, written a minute at a time (flat memory)."""
    generator = np.random.default_rng(1)
    with soundfile.SoundFile(path, "w", SOURCE_RATE, 2, subtype="PCM_16") as out:
        for _ in range(minutes):
            block = generator.standard_normal((60 * SOURCE_RATE, 2)).astype(np.float32)
            envelope = np.repeat(generator.uniform(0.01, 0.3, 61), SOURCE_RATE)[: len(block), None]
            out.write(block * envelope)


def _measure(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``command`` in a fresh child; its wall time and the CPU time and peak RSS of its process tree."""
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "wall = time.perf_counter() - start\n"
        "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'wall': wall, 'cpu': usage.ru_utime + usage.ru_stime,"
        " 'rss_mb': usage.ru_maxrss / 1024, 'code': code}))\n"
    )
    result = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def naive_loop(folder: str, checkpoint: str, threads: str) -> None:
    """Run in a child: the reference-style loop over the folder, one clip at a time (``threads``: torch's intra-op
    threads; "default" leaves torch's choice, what a user's loop gets)."""
    import soxr

    if threads != "default":
        torch.set_num_threads(int(threads))
    from benchmarks.bench_frontend import naive_frontend
    from tympan.models import create

    model = create("mn10_as")
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model.eval()
    config = model.frontend_config
    with torch.inference_mode():
        for path in sorted(Path(folder).glob("*.wav")):
            audio, rate = soundfile.read(path, dtype="float32")
            mono = np.mean(audio.T, axis=0)
            waveform = torch.from_numpy(soxr.resample(mono, rate, config.sample_rate, quality="HQ"))
            model(naive_frontend(waveform[None], config).unsqueeze(1))


def _start_to_first_call(command: list[str], env: dict[str, str]) -> float:
    """Seconds from starting ``tympan tag`` (the arguments of :func:`_tag`) to its first model call."""
    child = [sys.executable, "-m", "benchmarks.first_call", *command[4:]]
    start = time.monotonic()
    result = subprocess.run(child, capture_output=True, text=True, env=env, check=True)
    stamps = [json.loads(line)["first_call"] for line in result.stderr.splitlines() if '"first_call"' in line]
    return stamps[0] - start


def pooled_difference(name: str, path: str) -> None:
    """Run in a child: max |pooled − exact windows| of the 1-s timeline of ``path``."""
    from tympan.tagging import timeline

    pipeline = _load_stressed(name).with_backend("onnx")
    windows = timeline(pipeline, path, window=10.0, hop=1.0, method="windows")
    pooled = timeline(pipeline, path, window=10.0, hop=1.0, method="pooled")
    difference = np.abs(windows.scores - pooled.scores)
    agree = float(np.mean(windows.scores.argmax(1) == pooled.scores.argmax(1)))
    print(json.dumps({"max": float(difference.max()), "mean": float(difference.mean()), "top1": agree}))


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.median([run[key] for run in runs])) for key in runs[0]}


def _rates(run: dict[str, float], files: int) -> str:
    return (
        f"{files / run['wall']:6.1f} files/s, {files / run['cpu']:6.1f} files per CPU-second,"
        f" peak RSS {run['rss_mb']:5.0f} MB"
    )


def _tag(paths: list[str], checkpoint: str, *extra: str) -> list[str]:
    """``tympan tag`` writing JSON to stdout (which :func:`_measure` discards)."""
    command = [sys.executable, "-m", "tympan.cli", "tag", *paths, "--model", "mn10_as", "--checkpoint", checkpoint]
    return [*command, "--format", "json", *extra]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer files, shorter recordings")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        {"naive": naive_loop, "pooled": pooled_difference}[args.child[0]](*args.child[1:])
        return
    folders, minutes = ((40,), (2, 10)) if args.quick else ((120, 400), (10, 60))
    cores = len(os.sched_getaffinity(0))
    print(
        f"bench_engine: mn10_as (random stressed weights), {cores} cores, load average {os.getloadavg()[0]:.1f}"
        " at start (a shared machine: CPU seconds are the steadier figure)"
    )
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        env = {**os.environ, "TYMPAN_CACHE": str(root / "cache"), "PYTHONPATH": os.pathsep.join(sys.path)}
        checkpoint = str(root / "mn10.pt")
        torch.save(_load_stressed("mn10_as").model.state_dict(), checkpoint)
        _write_clips(root / "many", 10 * folders[0])
        soundfile.write(root / "one.wav", 0.1 * np.random.default_rng(2).standard_normal(SOURCE_RATE), SOURCE_RATE)

        # S first: the first run exports and caches the graph, the second finds it.
        export = _measure(_tag([str(root / "one.wav")], checkpoint), env)
        start = _measure(_tag([str(root / "one.wav")], checkpoint), env)
        first = np.median([_start_to_first_call(_tag([str(root / "one.wav")], checkpoint), env) for _ in range(3)])
        print(
            f"S  start-up with the cached graph, one 1-s clip: process start to first model call {first:.2f} s"
            f" (median of 3); to exit {start['wall']:.2f} s wall, {start['cpu']:.2f} CPU-s ({export['wall']:.2f} s,"
            f" {export['cpu']:.2f} CPU-s for the first run, which exports the graph)"
        )

        print(f"F  folders of 10-s 44.1-kHz stereo WAVs, wall incl. start-up, medians of {REPEATS} alternating rounds:")
        rss = {}
        for count in folders:
            folder = root / f"clips{count}"
            _write_clips(folder, count)
            naive_command = [sys.executable, "-m", "benchmarks.bench_engine", "--child", "naive", str(folder)]
            commands = {
                "naive loop": [*naive_command, checkpoint, "default"],
                "naive, 1 thread": [*naive_command, checkpoint, "1"],
                "tympan tag": _tag([str(folder)], checkpoint),
            }
            rounds = [{label: _measure(command, env) for label, command in commands.items()} for _ in range(REPEATS)]
            medians = {label: _median_run([run[label] for run in rounds]) for label in commands}
            rss[count] = medians["tympan tag"]["rss_mb"]
            for label, run in medians.items():
                print(f"     {label:15s} {count:5d} files: {_rates(run, count)}")
            for baseline in ("naive loop", "naive, 1 thread"):
                wall, cpu = (
                    [run[baseline][key] / run["tympan tag"][key] for run in rounds] for key in ("wall", "cpu")
                )
                print(
                    f"   {count} files, tympan tag / {baseline}: {np.median(wall):.2f}x wall"
                    f" ({min(wall):.2f}-{max(wall):.2f} over the rounds), {np.median(cpu):.2f}x CPU time"
                    f" ({min(cpu):.2f}-{max(cpu):.2f})"
                )
        many = _measure(_tag([str(root / "many")], checkpoint), env)
        print(f"     {'tympan tag':15s} {10 * folders[0]:5d} files: {_rates(many, 10 * folders[0])}")
        print(f"   peak RSS {10 * folders[0]} vs {folders[0]} files: {many['rss_mb']:.0f} vs {rss[folders[0]]:.0f} MB")
        shutil.rmtree(root / "many")

        print(
            "H  one 44.1-kHz stereo file, --window 10 --hop 1 (default method), wall incl. start-up, medians of"
            f" {REPEATS} runs alternating all cores and one (after one run that exports the feature-map graph):"
        )
        walls = {}
        for length in minutes:
            path = root / f"long{length}.wav"
            _write_long(path, length)
            command = _tag([str(path)], checkpoint, "--window", "10", "--hop", "1")
            if length == minutes[0]:
                _measure(command, env)
            runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
            for _ in range(REPEATS):
                for pinned in (False, True):
                    runs[pinned].append(_measure(["taskset", "-c", "0", *command] if pinned else command, env))
            for pinned in (False, True):
                wall, cpu, rss = (_median_run(runs[pinned])[key] for key in ("wall", "cpu", "rss_mb"))
                walls[length, pinned] = wall
                where = "1 core (taskset -c 0)" if pinned else f"{cores} cores"
                print(
                    f"     {length:3d} min, {where:22s}: {60 * length / wall:6.0f}x real time,"
                    f" {60 * length / cpu:6.0f}x per CPU-second, peak RSS {rss:5.0f} MB"
                )
            path.unlink()
        longest = max(minutes)
        print(f"   {cores} cores / 1 core ({longest} min): {walls[longest, True] / walls[longest, False]:.2f}x")

        path = root / "two_minutes.wav"
        _write_long(path, 2)
        for name in ("mn10_as", "dymn10_as"):
            result = subprocess.run([sys.executable, "-m", "benchmarks.bench_engine", "--child", "pooled", name,
                                     str(path)], capture_output=True, text=True, env=env, check=True)  # fmt: skip
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"P  pooled vs exact windows, {name}, 2 min at a 1-s hop: max |score difference|"
                f" {figures['max']:.1e}, mean {figures['mean']:.1e}, top-1 agrees in {figures['top1']:.1%}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"(this driver's own peak RSS: {peak:.0f} MB; load average at the end {os.getloadavg()[0]:.1f};"
        f" finished {time.strftime('%H:%M:%S')})"
    )


if __name__ == "__main__":
    main()
