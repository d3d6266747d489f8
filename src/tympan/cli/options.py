"""Arguments and checks that several commands share, defined once."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError

__all__ = ["add_threads_argument", "add_trainer_arguments", "require_model", "set_threads", "trainer_options"]


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads``: torch's intra-op threads, for the commands that run a model in this process."""
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads (default: torch's); 1 keeps latency low on a busy machine, where more threads "
        "spin against the other jobs",
    )


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (torch is imported only when it is given)."""
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)


def require_model(args: argparse.Namespace) -> None:
    """A model name or a self-describing checkpoint: without either there is nothing to run."""
    if args.model is None and args.checkpoint is None:
        raise ConfigError("pass --model NAME (or --checkpoint FILE of a tympan fine-tuned model)")


def add_trainer_arguments(parser: argparse.ArgumentParser) -> None:
    """``--accelerator`` and the rest: the engine's job under Lightning's ``Trainer.predict`` on many devices."""
    parser.add_argument("--accelerator", help="run under Lightning's Trainer.predict on this accelerator (gpu, cpu)")
    parser.add_argument("--devices", type=int, default=1, help="with --accelerator: devices per node (default 1)")
    parser.add_argument("--num-nodes", type=int, default=1, help="with --accelerator: nodes (default 1)")
    parser.add_argument("--strategy", default="auto", help="with --accelerator: Lightning strategy (auto: ddp for >1)")
    parser.add_argument("--shards", help="with --accelerator: folder of the rank shards, seen by every node "
                        "(default: OUTPUT.shards, or .tympan-shards)")  # fmt: skip


def trainer_options(args: argparse.Namespace, output: str | None) -> dict[str, Any] | None:
    """Options of ``Trainer.predict`` with --accelerator, else None (the engine's own worker processes); the shards
    go beside ``output`` by default."""
    if args.accelerator is None:
        return None
    several = args.devices * args.num_nodes > 1
    return {
        "accelerator": args.accelerator,
        "devices": args.devices,
        "num_nodes": args.num_nodes,
        "strategy": "ddp" if args.strategy == "auto" and several else args.strategy,
        "shards": args.shards or (f"{output}.shards" if output else ".tympan-shards"),
    }
