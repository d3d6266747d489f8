"""int8 (torchao PT2E, X86 inductor recipe) against float32 inference of the DCASE23 CP-Mobile on CPU.

The submission-size CP-Mobile (random weights, BatchNorm statistics as initialised; speed does not depend on them) on
1-s mels at 32 kHz, batch ``--batch``: float32 eager, float32 under ``torch.compile`` (inductor) and the int8 graph
of :func:`tympan.train.quantize.convert_int8` (calibrated on random mels, no fine-tuning) eager and under
``torch.compile`` (inductor freezing on, as the x86 int8 lowering needs); median wall time per batch and each one's
ratio to float32 eager and to float32 inductor. The int8 kernels (oneDNN) use VNNI / AMX where the CPU has them, so
the benchmark says which of those ``/proc/cpuinfo`` lists.

    .venv/bin/python -m benchmarks.bench_quantize              # batch 32, 20 runs
    .venv/bin/python -m benchmarks.bench_quantize --batch 1    # one clip at a time
    .venv/bin/python -m benchmarks.bench_quantize --quick      # batch 8, 3 runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch._inductor.config

from tympan.models import create
from tympan.train.quantize import convert_int8, prepare_qat


def cpu_flags() -> dict[str, bool]:
    """Whether the CPU lists the int8 dot-product (VNNI) and matrix (AMX) instructions."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return {name: name in flags for name in ("avx512_vnni", "avx_vnni", "amx_int8")}


def _median_ms(fn: Callable[[], Any], runs: int) -> float:
    with torch.no_grad():
        for _ in range(2):  # warm-up (the compiled arms compile here)
            fn()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 8, 3 runs")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    batch, runs = (8, 3) if args.quick else (args.batch, args.runs)
    torch.manual_seed(0)

    model = create("cp_mobile_dcase23").eval()
    config = model.frontend_config
    mel = torch.randn(batch, 1, config.n_mels, config.num_frames(config.sample_rate))
    start = time.perf_counter()
    qat = prepare_qat(model, mel[:2])
    with torch.no_grad():
        qat.eval()(mel)  # calibration: the observers see one batch
    int8 = convert_int8(qat)
    convert_s = time.perf_counter() - start

    torch._inductor.config.freezing = True  # constant weights: what lets inductor fuse int8 convs (both arms alike)
    arms = {
        "float32 eager": model,
        "float32 inductor": torch.compile(model),
        "int8 eager": int8,
        "int8 inductor": torch.compile(int8),
    }
    medians = {name: _median_ms(lambda m=module: m(mel), runs) for name, module in arms.items()}
    report = {
        "batch": batch,
        "runs": runs,
        "threads": torch.get_num_threads(),
        "cpu": cpu_flags(),
        "prepare_and_convert_s": round(convert_s, 1),
        "median_ms": {name: round(ms, 1) for name, ms in medians.items()},
        "speedup_vs_float32_eager": {n: round(medians["float32 eager"] / ms, 2) for n, ms in medians.items()},
        "speedup_vs_float32_inductor": {n: round(medians["float32 inductor"] / ms, 2) for n, ms in medians.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
