"""Training cost of PaSST with and without structured patchout (paper §2.2: ~2.5x fewer tokens).

One model, one input, the same process: forward + backward of a batch with structured patchout
(``s_patchout_t=40, s_patchout_f=4`` on the 12x99 grid of 10 s at stride 10: 2 + 8·59 = 474 tokens) against the
same model with patchout off (1190 tokens). Runs alternate between the two settings; the medians of the process
CPU time (one intra-op thread by default) are printed with their ratio.

    .venv/bin/python -m benchmarks.bench_passt_patchout            # PaSST-S shape, batch 2, 10 s
    .venv/bin/python -m benchmarks.bench_passt_patchout --quick    # a tiny model, seconds
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tympan.models import create

FULL = {"embed_dim": 768, "depth": 12, "num_heads": 12}
TINY = {"embed_dim": 64, "depth": 2, "num_heads": 2}


def _step_cpu_seconds(model: torch.nn.Module, mel: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    start = time.process_time()
    model(mel).sum().backward()
    return time.process_time() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model (2 blocks, width 64)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per setting (after one warm-up)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=1000, help="mel frames (1000 = 10 s at hop 320)")
    parser.add_argument("--patchout", type=int, nargs=2, default=(40, 4), metavar=("T", "F"))
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads (default 1: CPU time then counts work, not idle threads spinning)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = create(
        "passt", img_size=(128, 998), stride=(10, 10), distilled=True, **(TINY if args.quick else FULL)
    ).train()
    mel = torch.randn(args.batch, 1, 128, args.frames, generator=torch.Generator().manual_seed(0))
    settings = {"patchout": tuple(args.patchout), "none": (0, 0)}
    times: dict[str, list[float]] = {name: [] for name in settings}
    tokens = {}
    for run in range(args.runs + 1):
        for name, (drop_t, drop_f) in settings.items():
            model.s_patchout_t, model.s_patchout_f = drop_t, drop_f
            seconds = _step_cpu_seconds(model, mel)
            if run:  # the first round warms up allocators and kernels
                times[name].append(seconds)
            else:
                with torch.no_grad():
                    tokens[name] = model.forward_tokens(mel).shape[1]
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"PaSST {'tiny' if args.quick else 'S'} forward+backward, batch {args.batch}, {args.frames} frames, "
          f"{torch.get_num_threads()} threads, median of {args.runs} runs (process CPU time)")
    for name in settings:
        print(f"  {name:>8}: {tokens[name]:5d} tokens  {median[name]:8.3f} s")
    print(f"  speed-up of patchout t{args.patchout[0]} f{args.patchout[1]}: "
          f"{median['none'] / median['patchout']:.2f}x less CPU time")


if __name__ == "__main__":
    main()
