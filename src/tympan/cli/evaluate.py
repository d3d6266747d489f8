"""``tympan evaluate MODEL --data DATA``: metrics table on stdout, ``metrics.json`` and PNG plots on disk."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model on labelled data (mAP / d-prime, or accuracy per device and confusion matrix)",
        description="Evaluate a zoo model or a self-describing checkpoint on labelled clips; prints a table and "
        "writes metrics.json and PNG plots to --output.",
    )
    parser.add_argument("model", help="zoo preset or a tympan .ckpt (e.g. finetuned/model.ckpt)")
    parser.add_argument("--data", required=True, help="CSV, label folders, TAU22, ESC-50 folder or HDF5 file")
    parser.add_argument("--checkpoint", help="weights for a preset (default: the official ones)")
    parser.add_argument("--split", default="auto", help="split to evaluate: auto (test if present), train, val, all")
    parser.add_argument("--clip-seconds", type=float, help="clip length (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=32, help="clips per forward pass")
    parser.add_argument("--device", help="torch device (default: cuda where present)")
    parser.add_argument("--output", default="evaluation", help="folder for metrics.json and plots")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="stdout format")
    parser.add_argument("--task", choices=("classify", "sed"), default="classify",
                        help="sed: --data is an event table; PSDS1/PSDS2, event and segment F1 (sed_scores_eval)")
    parser.add_argument("--threshold", type=float, default=0.5, help="decision threshold of the SED F1 scores")
    parser.set_defaults(handler=run)


def _table(result: dict[str, Any]) -> str:
    rows = [("clips", str(result["clips"]))]
    for key in ("mAP", "roc_auc", "d_prime", "accuracy", "macro_accuracy"):
        if key in result:
            rows.append((key, f"{result[key]:.4f}"))
    for name, value in result.get("accuracy_per_device_group", {}).items():
        rows.append((f"accuracy {name} devices", f"{value:.4f}"))
    for name, value in result.get("accuracy_per_device", {}).items():
        rows.append((f"accuracy device {name}", f"{value:.4f}"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run(args: argparse.Namespace) -> int:
    if args.task == "sed":
        return _run_sed(args)
    from ..eval.evaluate import evaluate

    result = evaluate(
        args.model,
        args.data,
        checkpoint=args.checkpoint,
        split=None if args.split == "all" else args.split,
        clip_seconds=args.clip_seconds,
        batch_size=args.batch_size,
        device=args.device,
        output_dir=args.output,
    )
    print(json.dumps(result, indent=1) if args.format == "json" else _table(result), file=sys.stdout)
    return 0


def _run_sed(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import load
    from ..files import write_atomically
    from ..sed.metrics import evaluate_detection

    is_file = args.model.endswith((".ckpt", ".pt", ".pth"))
    pipeline = load(None if is_file else args.model, args.model if is_file else args.checkpoint, device=args.device)
    result = evaluate_detection(pipeline, args.data, threshold=args.threshold)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    write_atomically(Path(args.output) / "metrics.json", json.dumps(result, indent=1))
    flat = {k: v for k, v in result.items() if not isinstance(v, dict)}
    table = "\n".join(f"{key:<20}  {value}" for key, value in flat.items())
    print(json.dumps(result, indent=1) if args.format == "json" else table, file=sys.stdout)
    return 0
