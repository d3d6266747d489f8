"""``tympan distill``: run a teacher (or an ensemble) once over a dataset and store its logits by clip id."""

from __future__ import annotations

import argparse
import json
import sys

from .options import add_trainer_arguments, trainer_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "distill",
        help="compute teacher(-ensemble) logits once for knowledge distillation",
        description="Run one teacher or an ensemble (logits averaged) over every clip of DATA and save the logits "
        "memory-mapped (FILE.npy) with provenance and clip ids (FILE.json). Training reads them with "
        "--model.init_args.teacher_logits FILE.npy.",
    )
    parser.add_argument("--teacher", required=True, help="preset(s) or .ckpt file(s), comma-separated")
    parser.add_argument("--data", required=True, help="CSV, label folders, TAU22, ESC-50 folder or HDF5 file")
    parser.add_argument("--out", required=True, help="output file (.npy; the .json is written beside it)")
    parser.add_argument("--clip-seconds", type=float, default=10.0, help="pad / cut clips to this length (10)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass (16)")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per core; 0: none)")
    parser.add_argument("--device", help="torch device (default: cuda where present)")
    add_trainer_arguments(parser)
    parser.add_argument("--cache-dir", help="decoded-clip cache folder (shared with training)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..distill import compute_teacher_logits

    store = compute_teacher_logits(
        [name.strip() for name in args.teacher.split(",") if name.strip()],
        args.data,
        args.out,
        clip_seconds=args.clip_seconds,
        batch_size=args.batch_size,
        num_workers=args.workers,
        device=args.device,
        cache_dir=args.cache_dir,
        trainer=trainer_options(args, args.out),
    )
    if store is None:  # a rank other than 0 of a Trainer.predict job: rank 0 writes
        return 0
    summary = {"out": str(store.path), "clips": len(store), "classes": store.num_classes, "teachers": store.teachers}
    print(json.dumps(summary, indent=1), file=sys.stdout)
    return 0
