"""``tympan export``: a model as an ONNX graph (log-mel in, logits and embedding out), checked against PyTorch."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX (checked against PyTorch within 1e-4)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("model", nargs="?", help="zoo name (optional with a tympan checkpoint)")
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    parser.add_argument("--checkpoint", help="weights file (default: the official checkpoint from the cache)")
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import load
    from ..export import export_onnx

    if args.model is None and args.checkpoint is None:
        raise ConfigError("name a model (or pass --checkpoint FILE of a tympan fine-tuned model)")
    pipeline = load(args.model, args.checkpoint, device="cpu")
    difference = export_onnx(pipeline.model, args.output)
    print(f"wrote {args.output} (max difference to PyTorch {difference:.1e})", file=sys.stderr)
    return 0
