"""Training cost of PaSST with and without structured patchout (paper §2.2: ~2.5x fewer tokens).

One model, one input, the same process: forward + backward of a batch with structured patchout
(``s_patchout_t=40, s_patchout_f=4`` on the 12x99 grid of 10 s at stride 10: 2 + 8·59 = 474 tokens) against the
same model with patchout off (1190 tokens), and against the patchout step with the attention written out as
``softmax(q·kᵀ/√d)·v`` instead of the fused kernel. Runs alternate between the settings; the medians of the
process CPU time (2 intra-op threads by default, as the issue's reference figures) are printed with their ratios
and next to the reference figures (PaSST reference code, 2-core Zen 3, same shapes): 44.9 s without patchout,
12.5 s with it. The fused and the explicit attention are checked to give the same logits and gradients.

    .venv/bin/python -m benchmarks.bench_passt_patchout            # PaSST-S shape, batch 2, 10 s, 2 threads
    .venv/bin/python -m benchmarks.bench_passt_patchout --quick    # a tiny model, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import math
import resource
import statistics
import time
from collections.abc import Iterator

import torch

from tympan.models import create
from tympan.models.passt import Attention

FULL = {"embed_dim": 768, "depth": 12, "num_heads": 12}
TINY = {"embed_dim": 64, "depth": 2, "num_heads": 2}
REFERENCE_SECONDS = {"none": 44.9, "patchout": 12.5}  # the figures: reference code, process CPU time


def _explicit_forward(self: Attention, x: torch.Tensor) -> torch.Tensor:
    """``Attention.forward`` with ``softmax(q·kᵀ/√d)·v`` written out (the reference's way), for comparison."""
    batch, tokens, dim = x.shape
    qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    weights = torch.nn.functional.dropout(weights, self.attn_drop, self.training)
    return self.proj_drop(self.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, dim)))


@contextlib.contextmanager
def explicit_attention() -> Iterator[None]:
    fused = Attention.forward
    Attention.forward = _explicit_forward
    try:
        yield
    finally:
        Attention.forward = fused


def _step(model: torch.nn.Module, mel: torch.Tensor) -> tuple[float, float]:
    """Process CPU time and wall time of one forward + backward."""
    model.zero_grad(set_to_none=True)
    cpu, wall = time.process_time(), time.perf_counter()
    model(mel).sum().backward()
    return time.process_time() - cpu, time.perf_counter() - wall


def _parity(model: torch.nn.Module, mel: torch.Tensor) -> tuple[float, float]:
    """Max |fused - explicit| of the logits, and of every weight's gradient relative to its largest entry (eval mode:
    no random draws)."""
    model.eval()
    outputs = []
    for context in (contextlib.nullcontext(), explicit_attention()):
        model.zero_grad(set_to_none=True)
        with context:
            logits = model(mel)
            logits.sum().backward()
        outputs.append((logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    model.train()
    (fused, fused_grads), (explicit, explicit_grads) = outputs
    logit_difference = (fused - explicit).abs().max().item()
    grad_difference = max(
        ((a - b).abs().max() / a.abs().max()).item() for a, b in zip(fused_grads, explicit_grads, strict=True)
    )
    return logit_difference, grad_difference



def _step_macs(dims: dict[str, int], tokens: int) -> float:
    """Multiply-accumulates of the transformer blocks on one example of ``tokens`` tokens (forward)."""
    width = dims["embed_dim"]
    linear = 12 * width * width * tokens  # qkv (3), projection (1), MLP (4 + 4) per token
    attention = 2 * tokens * tokens * width  # q·kᵀ and weights·v
    return dims["depth"] * (linear + attention)


def _attention_share(dims: dict[str, int], tokens: int) -> float:
    return 2 * tokens * tokens * dims["embed_dim"] * dims["depth"] / _step_macs(dims, tokens)

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model (2 blocks, width 64)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per setting (after one warm-up)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=1000, help="mel frames (1000 = 10 s at hop 320)")
    parser.add_argument("--patchout", type=int, nargs=2, default=(40, 4), metavar=("T", "F"))
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2, as the reference)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = create(
        "passt", img_size=(128, 998), stride=(10, 10), distilled=True, **(TINY if args.quick else FULL)
    ).train()
    mel = torch.randn(args.batch, 1, 128, args.frames, generator=torch.Generator().manual_seed(0))
    logit_difference, grad_difference = _parity(model, mel)
    settings = {
        "patchout": (tuple(args.patchout), contextlib.nullcontext),
        "none": ((0, 0), contextlib.nullcontext),
        "patchout, explicit attention": (tuple(args.patchout), explicit_attention),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in settings}
    tokens = {}
    for run in range(args.runs + 1):
        for name, ((drop_t, drop_f), context) in settings.items():
            model.s_patchout_t, model.s_patchout_f = drop_t, drop_f
            with context():
                seconds = _step(model, mel)
            if run:  # the first round warms up allocators and kernels
                times[name].append(seconds)
            else:
                with torch.no_grad():
                    tokens[name] = model.forward_tokens(mel).shape[1]
    dims = TINY if args.quick else FULL
    macs = {name: _step_macs(dims, count) for name, count in tokens.items()}
    cpu = {name: statistics.median(c for c, _ in values) for name, values in times.items()}
    wall = {name: statistics.median(w for _, w in values) for name, values in times.items()}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"PaSST {'tiny' if args.quick else 'S'} forward+backward, batch {args.batch}, {args.frames} frames, "
          f"{torch.get_num_threads()} threads, median of {args.runs} runs (process CPU time; wall in brackets)")
    for name in settings:
        reference = REFERENCE_SECONDS.get(name)
        against = "" if args.quick or reference is None else (
            f"   reference figure {reference:5.1f} s -> x{reference / cpu[name]:.2f} faster"
        )
        print(f"  {name:>28}: {tokens[name]:5d} tokens  {cpu[name]:8.3f} s CPU ({wall[name]:7.3f} s){against}")
    print(f"  patchout t{args.patchout[0]} f{args.patchout[1]}: x{cpu['none'] / cpu['patchout']:.2f} less CPU time "
          f"(reference figures: x{REFERENCE_SECONDS['none'] / REFERENCE_SECONDS['patchout']:.2f}); "
          f"fused attention x{cpu['patchout, explicit attention'] / cpu['patchout']:.2f} less than explicit")
    print(f"  MACs of the blocks per example: {macs['none'] / 1e9:.1f} G without patchout,"
          f" {macs['patchout'] / 1e9:.1f} G with it: x{macs['none'] / macs['patchout']:.2f} (the ratio of a step at"
          f" equal efficiency; the"
          f" attention matrices are {_attention_share(dims, tokens['none']):.0%} / "
          f"{_attention_share(dims, tokens['patchout']):.0%} of them)")
    print(f"  fused vs explicit attention: max |logits difference| {logit_difference:.1e}, "
          f"max |gradient difference| / max |gradient| {grad_difference:.1e}; peak RSS {peak:.0f} MB (ru_maxrss)")


if __name__ == "__main__":
    main()
