"""Eval-mode speed of MelFrontend against a naive re-implementation of the reference ``AugmentMelSTFT``.

The baseline does what the reference forward does at every call: rebuild the Kaldi filterbank (same float32
construction), pre-emphasis as a ``conv1d``, power via the real view of the complex STFT (``(x**2).sum(-1)``),
then matmul, log and normalisation. Both run on the same waveforms in the same process, alternating; the medians of
wall time and process CPU time per call are printed with their ratio, and the outputs are checked to agree.

    .venv/bin/python -m benchmarks.bench_frontend                # one 10 s clip at 32 kHz, 1 thread
    .venv/bin/python -m benchmarks.bench_frontend --batch 32     # a training-size batch
    .venv/bin/python -m benchmarks.bench_frontend --quick        # a few runs, seconds
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from tympan.audio.frontend import MelFrontend, MelFrontendConfig, kaldi_mel_banks


def naive_frontend(waveform: torch.Tensor, config: MelFrontendConfig) -> torch.Tensor:
    """The reference's eval forward, step by step (filterbank rebuilt per call)."""
    kernel = torch.tensor([[[-0.97, 1.0]]])
    x = F.conv1d(waveform.unsqueeze(1), kernel).squeeze(1)
    window = torch.hann_window(config.win_length, periodic=False)
    spectrum = torch.stft(x, config.n_fft, hop_length=config.hop_length, win_length=config.win_length,
                          window=window, center=True, normalized=False, return_complex=True)
    power = torch.view_as_real(spectrum).pow(2).sum(-1)
    basis = kaldi_mel_banks(config.n_mels, config.n_fft, config.sample_rate, config.fmin, config.effective_fmax)
    mel = torch.matmul(basis, power)
    return (torch.log(mel + 1e-5) + 4.5) / 5.0


def _time(fn, waveform: torch.Tensor) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(waveform)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 runs instead of --runs")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per implementation (after warm-up)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = 5 if args.quick else args.runs

    frontend = MelFrontend().eval()
    config = frontend.config
    samples = int(args.seconds * config.sample_rate)
    waveform = 0.1 * torch.randn(args.batch, samples, generator=torch.Generator().manual_seed(0))
    baseline = lambda x: naive_frontend(x, config)  # noqa: E731
    with torch.inference_mode():
        difference = (frontend(waveform) - baseline(waveform)).abs().max().item()
        timings: dict[str, list[tuple[float, float]]] = {"tympan": [], "naive": []}
        for _ in range(3):
            frontend(waveform), baseline(waveform)
        for _ in range(runs):
            timings["tympan"].append(_time(frontend, waveform))
            timings["naive"].append(_time(baseline, waveform))

    print(f"batch {args.batch} x {args.seconds:g} s at {config.sample_rate} Hz, {args.threads} thread(s), "
          f"{runs} runs; max |tympan - naive| = {difference:.2e}")
    medians = {name: [statistics.median(t[i] for t in values) * 1e3 for i in (0, 1)]
               for name, values in timings.items()}
    for name, (wall, cpu) in medians.items():
        print(f"{name:>7}: median wall {wall:8.3f} ms   median CPU {cpu:8.3f} ms")
    print(f"  ratio naive / tympan: wall {medians['naive'][0] / medians['tympan'][0]:.2f}x, "
          f"CPU {medians['naive'][1] / medians['tympan'][1]:.2f}x; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (ru_maxrss)")


if __name__ == "__main__":
    main()
