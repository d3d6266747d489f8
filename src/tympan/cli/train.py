"""``tympan train --config FILE [overrides]``: run a YAML recipe (LightningCLI; every field can be overridden)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train from a YAML recipe (a file or a bundled recipe's name); override any field: --trainer.max_epochs 5",
        description="Train from a YAML recipe. All further arguments go to LightningCLI: --config FILE, "
        "--model.init_args.optimizer.init_args.lr 1e-4, --data.batch_size 64, --trainer.devices 2, "
        "--ckpt_path last.ckpt, "
        "--print_config. `tympan train -- --help` lists every field.",
        add_help=False,
    )
    parser.set_defaults(handler=run, forward_unknown=True)


def run(args: argparse.Namespace) -> int:
    from ..train.recipes import train_from_config

    metrics = train_from_config([a for a in args.forwarded if a != "--"] or ["--help"])
    print(json.dumps(metrics, indent=1), file=sys.stdout)
    return 0
