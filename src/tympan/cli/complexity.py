"""``tympan complexity``: parameters, MACs and peak activation memory of a model, and the DCASE Task 1 verdict."""

from __future__ import annotations

import argparse
import json

from ..eval.complexity import RULES, ModelComplexity, measure_model

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "complexity",
        help="count parameters, MACs and peak activation memory; check the DCASE limits",
        description="Measure a zoo model (or an architecture) on the mel of SECONDS of audio from its own frontend, "
        "batch 1, and check the DCASE Task 1 limits (128,000 parameters at 8 bit, 30 M MACs per 1 s clip).",
    )
    parser.add_argument("model", help="zoo name (e.g. cp_mobile_dcase23, mn10_as) or architecture name")
    parser.add_argument(
        "--seconds", type=float, default=None, help="audio length (default: 1 for scene models, 10 otherwise)"
    )
    parser.add_argument(
        "--rule",
        choices=RULES,
        default=None,
        help="MAC counting: 'dcase' = torchinfo as the challenge counts, 'full' = every conv, matmul and attention "
        "product (default: dcase for scene models, full otherwise)",
    )
    parser.add_argument("--fused", action="store_true", help="fold BatchNorm into the preceding convs first")
    parser.add_argument(
        "--param-bits", type=int, default=8, help="bits per parameter for the DCASE memory limit (default: 8)"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    result = measure_model(
        args.model, seconds=args.seconds, rule=args.rule, fuse_batchnorm=args.fused, param_bits=args.param_bits
    )
    print(json.dumps(result.to_dict(), indent=2) if args.format == "json" else format_table(result))
    return 0


def format_table(result: ModelComplexity) -> str:
    """The measurement as aligned ``name  value`` lines."""
    complexity, dcase = result.complexity, result.dcase
    shape = " x ".join(str(s) for s in complexity.input_shape)
    peak = complexity.peak_activation_bytes
    rows = [
        ("model", result.model),
        ("input", f"{shape} (mel of {result.seconds:g} s)"),
        ("parameters", f"{complexity.params:,}"),
        (f"MACs ({complexity.rule} rule)", f"{complexity.macs:,} ({complexity.macs / 1e9:.3f} G)"),
        ("peak activation", f"{peak:,} B ({peak / 2**20:.2f} MiB)"),
        ("DCASE limits", dcase.summary()),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
