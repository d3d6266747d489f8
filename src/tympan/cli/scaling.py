"""``tympan scaling``: width / depth / rho sweep of CP-ResNet or CP-Mobile at a fixed parameter budget."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scaling",
        help="train a width x depth x rho family and compare accuracy on seen and unseen devices",
        description="Over-parameterisation study (arXiv 2107.08933): train each member with one recipe, optionally "
        "pruned or decomposed to a fixed parameter budget, and write DIR/scaling.json, .csv and .png.",
    )
    parser.add_argument("--data", required=True, help="scene clips with device and split columns (e.g. the corpus)")
    parser.add_argument("--widths", type=int, nargs="+", required=True, help="base channel counts")
    parser.add_argument("--depths", type=int, nargs="+", default=[0], help="extra 1x1 blocks (default 0)")
    parser.add_argument("--rho", type=int, nargs="+", default=[4], help="CP-ResNet rho values (default 4)")
    parser.add_argument("--arch", choices=("cp_resnet", "cp_mobile"), default="cp_resnet", help="family")
    parser.add_argument("--fixed-params", type=int, help="parameter budget for every member")
    parser.add_argument("--method", choices=("prune", "decompose"), default="prune", help="how to meet the budget")
    parser.add_argument("--freq-damping", action="store_true", help="damp k x k kernels along frequency")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per model (default 10)")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per batch (default 32)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, ... (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--output", default="scaling", help="output folder (default ./scaling)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.scaling import scaling_sweep

    result = scaling_sweep(
        args.data,
        args.widths,
        args.depths,
        args.rho,
        args.fixed_params,
        arch=args.arch,
        method=args.method,
        freq_damping=args.freq_damping,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        output=args.output,
        accelerator=args.accelerator,
        seed=args.seed,
    )
    names = ("width", "depth", "rho", "method", "params", "nonzero", "acc", "seen", "unseen")
    header = " ".join(f"{name:>{size}}" for name, size in zip(names, (5, 5, 4, 9, 8, 8, 6, 6, 6), strict=True))
    lines = [header] + [
        f"{r['width']:>5} {r['depth']:>5} {r['rho']!s:>4} {r['method']:>9} {r['params']:>8} {r['nonzero_params']:>8} "
        f"{r['accuracy']:>6.3f} {r['seen']:>6.3f} {r['unseen']:>6.3f}"
        for r in result.rows
    ]
    print("\n".join([*lines, *(f"{kind}: {path}" for kind, path in result.files.items())]), file=sys.stdout)
    return 0
