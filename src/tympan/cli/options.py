"""Arguments and checks that several commands share, defined once."""

from __future__ import annotations

import argparse

from ..errors import ConfigError

__all__ = ["add_threads_argument", "require_model", "set_threads"]


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
