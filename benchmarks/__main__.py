"""Every benchmark in sequence, each in a fresh process (its own peak memory, its own thread settings).

    .venv/bin/python -m benchmarks            # full runs (about half an hour on 2 cores)
    .venv/bin/python -m benchmarks --quick    # seconds to minutes: every benchmark with its --quick flag
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

# (module, extra arguments of the full run): the settings the README table reports.
BENCHMARKS = (
    ("bench_frontend", ()),
    ("bench_inference", ("--models", "mn10_as,dymn10_as,cp_mobile_dcase23,passt_s_swa_p16_128_ap476")),
    ("bench_engine", ()),
    ("bench_data", ()),
    ("bench_kd", ()),
    ("bench_passt_patchout", ()),
    ("bench_quantize", ()),
    ("bench_finetune", ()),
    ("bench_sed", ()),
    ("bench_live", ()),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    args = parser.parse_args(argv)
    failed = []
    for module, extra in BENCHMARKS:
        command = [sys.executable, "-m", f"benchmarks.{module}", *extra, *(["--quick"] if args.quick else [])]
        print(f"\n=== {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        if subprocess.run(command).returncode:
            failed.append(module)
        print(f"=== {module}: {time.perf_counter() - start:.0f} s wall", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
