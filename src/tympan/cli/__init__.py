"""The ``tympan`` command: thin argument parsing around the public Python functions.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``, which adds
its parser and sets ``handler(args) -> int`` (the exit status). A subcommand that hands its arguments on to another
parser (``train`` to LightningCLI) sets ``forward_unknown=True`` and finds them in ``args.forwarded``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..allocator import keep_freed_memory
from ..errors import TympanError

__all__ = ["console_main", "main"]

# Subcommand modules, in the order `tympan --help` lists them.
COMMANDS: tuple[str, ...] = (
    "tag",
    "detect",
    "listen",
    "serve",
    "embed",
    "export",
    "train",
    "finetune",
    "distill",
    "evaluate",
    "complexity",
    "receptive_field",
    "robustness",
    "congater",
    "quantize",
    "index",
    "search",
    "scaling",
    "demo",
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or of ``only`` that one (``tympan tag ...`` imports nothing of the others)."""
    parser = argparse.ArgumentParser(
        prog="tympan",
        description="Efficient audio understanding: tagging, scene classification, embeddings and retrieval.",
    )
    parser.add_argument("--version", action="version", version=f"tympan {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


class _NoAdvertising(logging.Filter):
    """Drops Lightning's "💡 Tip" lines: they advertise other products and say nothing about the user's run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡")


def _configure_logging(verbose: bool) -> None:
    """Every Lightning line printed once: Lightning's ``lightning`` logger has a handler of its own (added on import)
    that prints them, so they must not reach the root handler too, nor handlers of its subpackages."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("lightning").propagate = False
    for name in ("lightning.pytorch", "lightning.fabric"):
        subpackage = logging.getLogger(name)
        subpackage.handlers.clear()
        subpackage.propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_NoAdvertising())
    if not verbose:  # deprecation notes between the libraries, not about the user's run (-v shows them)
        logging.getLogger("torch").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(lightning|torch|copyreg)(\.|$)")
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*")


def _import_torch() -> None:
    """Import torch (every command runs it) with the garbage collector paused, then freeze what exists by then.

    torch's import creates about a million objects, and each collection while they arrive re-scans all those made
    before; frozen, they are never scanned again. Measured (medians of 8): the imports of ``tympan tag`` 1.36 ->
    1.09 s, and loading its model after them 0.27 -> 0.15 s.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        import torch  # noqa: F401
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def console_main() -> NoReturn:
    """The ``tympan`` console script and ``python -m tympan.cli``: :func:`main`, then an exit without the
    interpreter's teardown of every module and object (torch's million among them). Exit handlers still run (the
    workers' finalizers, temporary directories) and stdout / stderr are flushed first. Measured on ``tympan tag``:
    0.13-0.21 s from the command's end to the process's, 0.03-0.05 s this way."""
    status = main()
    atexit._run_exitfuncs()  # what the interpreter would run first on its way out
    with contextlib.suppress(BrokenPipeError):  # a reader that has gone (`| head`) wants nothing more
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``tympan`` command in this process (what :func:`console_main` runs); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((word for word in argv if not word.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "forward_unknown", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.forwarded = unknown
    _configure_logging(args.verbose)
    if args.command is None:
        parser.print_help()
        return 2
    keep_freed_memory()
    _import_torch()
    try:
        return args.handler(args)
    except TympanError as error:
        print(f"tympan {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        # Nothing needs collecting any more: the interpreter's last collection then skips every object there is,
        # torch's included (measured: 0.4 s of each command's exit).
        gc.freeze()
