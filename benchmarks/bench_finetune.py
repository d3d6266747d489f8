"""Fine-tuning on a few clips per class with the defaults of ``tympan finetune``: held-out accuracy and CPU seconds.

Five generated classes that any ear tells apart (pure tones, white noise, click trains, chirps, amplitude-modulated
noise), each clip drawn with its own frequency, level, rate and a faint noise floor, 1 s at 32 kHz. For k = 4, 8 and
16 clips per class, :func:`tympan.train.finetune` runs on a label-folder tree of k clips per class with every
default (its own stratified validation split included) and the written ``model.ckpt`` then classifies 20 fresh
clips per class that no run saw. Two starting points of the DCASE23 CP-Mobile:

* **pretrained**: the real DCASE23 checkpoint in ``../shared/reference/dcase23`` (skipped, saying so, when absent);
* **random init**: the same network from random weights (``pretrained=False``).

CPU seconds are the process time of the ``finetune`` call (all threads; data decoding, Lightning set-up, training,
validation and export), wall seconds beside them. Torch runs on one intra-op thread by default (``--threads``): a
batch of 16 one-second clips through a 40K-parameter CNN gains nothing from a second thread but its spin-waits,
which on a shared machine double the CPU seconds. Goal: >= 95 % held-out accuracy at k = 16 in under 60 CPU-s.

    .venv/bin/python -m benchmarks.bench_finetune            # both arms, k = 4, 8, 16
    .venv/bin/python -m benchmarks.bench_finetune --quick    # pretrained (else random) arm, k = 4, 20 steps
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
import torch

import tympan
from tympan.train import finetune

RATE = 32000
CHECKPOINT = (Path(__file__).parents[1] / "../shared/reference/dcase23/cpmobile_c0a7nzin_metro_station.pt").resolve()
MODEL = "cp_mobile_dcase23"
HELD_OUT_PER_CLASS = 20


def _tone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * np.exp(rng.uniform(np.log(300), np.log(3000))) * t + rng.uniform(0, 2 * np.pi))


def _noise(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    return rng.standard_normal(len(t)) / 3


def _clicks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    x = np.zeros(len(t))
    period = int(RATE / rng.uniform(5, 20))
    x[rng.integers(period) :: period] = 1.0
    return x


def _chirp(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    start, stop = rng.uniform(200, 1000), rng.uniform(3000, 8000)
    return np.sin(2 * np.pi * (start * t + (stop - start) * t**2 / (2 * t[-1])))


def _am_noise(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 8) * t + rng.uniform(0, 2 * np.pi)))
    return envelope * rng.standard_normal(len(t)) / 3


CLASSES: dict[str, Callable[[np.random.Generator, np.ndarray], np.ndarray]] = {
    "tone": _tone,
    "white_noise": _noise,
    "click_train": _clicks,
    "chirp": _chirp,
    "am_noise": _am_noise,
}


def clip(label: str, rng: np.random.Generator, seconds: float = 1.0) -> np.ndarray:
    """One clip of class ``label``: its sound at a random level over a faint noise floor."""
    t = np.arange(int(seconds * RATE)) / RATE
    sound = CLASSES[label](rng, t) * 10 ** rng.uniform(-1.2, -0.4)
    return (sound + 1e-3 * rng.standard_normal(len(t))).astype(np.float32)


def write_folder(root: Path, per_class: int, seed: int) -> Path:
    """A label-folder tree with ``per_class`` clips of every class."""
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            soundfile.write(root / label / f"{i}.wav", clip(label, rng), RATE)
    return root


def held_out(seed: int = 12345) -> tuple[torch.Tensor, np.ndarray]:
    """Waveforms ``[clips, samples]`` and label names of the clips no run trains or validates on."""
    rng = np.random.default_rng(seed)
    labels = [label for label in CLASSES for _ in range(HELD_OUT_PER_CLASS)]
    return torch.from_numpy(np.stack([clip(label, rng) for label in labels])), np.array(labels)


def accuracy(checkpoint: Path, waveforms: torch.Tensor, labels: np.ndarray) -> float:
    pipeline = tympan.load(checkpoint=checkpoint, device="cpu")
    logits = torch.cat([pipeline.forward_waveforms(batch)[0] for batch in waveforms.split(25)])
    return float((np.array(pipeline.labels)[logits.argmax(1).numpy()] == labels).mean())


def run_arm(pretrained: bool, per_class: int, work: Path, test: tuple[torch.Tensor, np.ndarray], **options) -> dict:
    data = write_folder(work / f"data_{per_class}", per_class, seed=per_class)
    output = work / f"{'pretrained' if pretrained else 'random'}_{per_class}"
    wall, cpu = time.perf_counter(), time.process_time()
    result = finetune(
        data, MODEL, checkpoint=CHECKPOINT if pretrained else None, pretrained=pretrained, output=output,
        progress=False, accelerator="cpu", **options,
    )  # fmt: skip
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"accuracy": accuracy(result.checkpoint, *test), "cpu_s": cpu, "wall_s": wall,
            "val_accuracy": result.metrics.get("val/accuracy", float("nan"))}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one arm, k = 4, 20 steps")
    parser.add_argument("--k", default="4,8,16", help="clips per class, comma-separated")
    parser.add_argument("--arms", default="pretrained,random", help="pretrained and/or random")
    parser.add_argument("--steps", type=int, help="run length in steps instead of the default")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    arms = args.arms.split(",")
    if "pretrained" in arms and not CHECKPOINT.is_file():
        print(f"pretrained arm skipped: the DCASE23 checkpoint {CHECKPOINT} is absent (../shared is not mounted)")
        arms.remove("pretrained")
    ks = [int(k) for k in args.k.split(",")]
    options = {"steps": args.steps} if args.steps else {}
    if args.quick:
        arms, ks, options = arms[:1], [4], {"steps": 20}
    test = held_out()
    print(f"torch threads {torch.get_num_threads()}; held-out: {len(test[1])} clips ({HELD_OUT_PER_CLASS} per class)")
    print(f"{'start':<11} {'k':>3} {'held-out acc':>12} {'val acc':>8} {'CPU s':>7} {'wall s':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for arm in arms:
            for k in ks:
                row = run_arm(arm == "pretrained", k, Path(folder), test, **options)
                print(f"{arm:<11} {k:>3} {row['accuracy']:>12.3f} {row['val_accuracy']:>8.3f} "
                      f"{row['cpu_s']:>7.1f} {row['wall_s']:>7.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
