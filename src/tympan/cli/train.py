"""``tympan train --config FILE [overrides]``: run a YAML recipe (LightningCLI; every field can be overridden)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train from a YAML recipe (configs/*.yaml); override any field, e.g. --trainer.max_epochs 5",
        description="Train from a YAML recipe. All further arguments go to LightningCLI: --config FILE, "
        "--model.init_args.lr 1e-4, --data.batch_size 64, --trainer.devices 2, --ckpt_path last.ckpt, "
        "--print_config. `tympan train -- --help` lists every field.",
        add_help=False,
    )
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, help="LightningCLI arguments")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..train.recipes import train_from_config

    forwarded = [a for a in args.cli_args if a != "--"] or ["--help"]
    metrics = train_from_config(forwarded)
    print(json.dumps(metrics, indent=1), file=sys.stdout)
    return 0
