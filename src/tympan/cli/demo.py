"""``tympan demo``: the DCASE23 low-complexity story end to end on generated data, offline, on a CPU."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train teachers and distilled CP-Mobile students on generated scenes and write a report",
        description="Generate (or reuse) a synthetic acoustic-scene corpus, train a teacher ensemble, distil it "
        "into CP-Mobile students (no KD, KD, KD + DIR + Freq-MixStyle), evaluate per device, quantise, export to "
        "ONNX, tag a long recording, and write report.md, metrics.json and figures.",
    )
    parser.add_argument("--quick", action="store_true", help="a small run (about a minute) instead of the full one")
    parser.add_argument("--output", type=Path, default=Path("demo_output"), help="report folder (default: %(default)s)")
    parser.add_argument(
        "--dirs",
        type=Path,
        default=None,
        help="folder of device impulse responses (WAV) for DIR; default: a generated set",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache folder of the generated corpora and the pre-trained PaSST (default: $TYMPAN_CACHE/data)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus and the models (default: 0)")
    parser.add_argument("--sed", action="store_true",
                        help="the sound-event-detection section instead: frame students with / without KD against "
                        "the clip-window timeline (PSDS1, onset error)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="run this many seeds (--seed, --seed + 1, ...) and report mean ± standard error across them",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="training runs side by side in this many processes, one thread each (default: one per core, at most "
        "3; 1 trains one run after the other in this process)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.sed:
        return _run_sed(args)
    from ..demo import DemoConfig, run_demo
    from ..demo.report import COMPARISONS

    logging.getLogger("tympan.demo").setLevel(logging.INFO)  # stage-by-stage progress even without -v
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # not one "GPU available" line per model
    config = DemoConfig(
        output=args.output,
        quick=args.quick,
        dirs=args.dirs,
        cache_dir=args.cache,
        seed=args.seed,
        seeds=args.seeds,
        workers=args.workers,
    )
    result = run_demo(config)
    findings = result.metrics["findings"]
    print(f"demo finished in {result.metrics['run']['seconds']:.0f} s")
    for name in result.metrics["students"]:
        model = result.metrics["models"][name]
        print(
            f"  {name:26s} test {100 * model['accuracy']:5.1f} %  seen {100 * model['accuracy_seen']:5.1f} %  "
            f"unseen {100 * model['accuracy_unseen']:5.1f} %"
        )
    print(
        f"  KD vs no KD: {findings['kd_vs_no_kd']['verdict']}; DIR + Freq-MixStyle on unseen devices: "
        f"{findings['device_augmentation_unseen']['verdict']}"
    )
    across = result.metrics["across_seeds"]
    if across["seeds"] > 1:
        for name, title in COMPARISONS.items():
            entry = across["comparisons"][name]
            print(
                f"  {title}: {100 * entry['mean']:+.1f} ± {100 * entry['standard_error']:.1f} points over "
                f"{across['seeds']} seeds ({entry['verdict']})"
            )
    print(f"report:  {result.report}")
    print(f"metrics: {result.metrics_file}")
    print(f"figures: {', '.join(str(p) for p in result.figures)}")
    return 0


def _run_sed(args: argparse.Namespace) -> int:
    from ..demo.sed import SedDemoConfig, run_sed_demo

    logging.getLogger("tympan.demo").setLevel(logging.INFO)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    metrics = run_sed_demo(SedDemoConfig(output=args.output / "sed", quick=args.quick, seed=args.seed))
    print(f"SED demo finished in {metrics['seconds']:.0f} s")
    for name, model in metrics["models"].items():
        error = model["onset_error_median_s"]
        print(f"  {name:30s} PSDS1 {model['psds1']:.3f}  PSDS2 {model['psds2']:.3f}  event F1 {model['event_f1']:.3f}  "
              f"onset error {'-' if error is None else f'{error:.3f} s'}")
    print(f"metrics: {args.output / 'sed' / 'sed_metrics.json'}")
    return 0
