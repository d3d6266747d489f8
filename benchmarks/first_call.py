"""Run by ``bench_engine`` (S): ``tympan tag ARGV`` in this process, printing the monotonic clock (shared by all
processes) when the network is first called, in the worker that calls it.

A module of its own so that nothing is imported before the CLI starts, as in a real ``tympan tag`` (bench_engine
imports torch at the top, which would move torch's import out of the figure and change how it is imported).

    python -m benchmarks.first_call FILE --model mn10_as --checkpoint CKPT --format json
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import tympan.cli.tag as tag_command
from tympan.cli import main as cli


def _reporting_run(args: Any) -> int:
    from tympan.engine.network import Network  # torch is imported by now: the CLI's start did it

    real = Network.forward

    def reporting(network: Network, waveforms: Any) -> Any:
        print(json.dumps({"first_call": time.monotonic()}), file=sys.stderr, flush=True)
        Network.forward = real
        return real(network, waveforms)

    Network.forward = reporting
    return _real_run(args)


_real_run = tag_command.run
tag_command.run = _reporting_run  # before the CLI builds its parser, which takes the handler from the module

if __name__ == "__main__":
    sys.exit(cli(["tag", *sys.argv[1:]]))
