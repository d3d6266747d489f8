"""``tympan congater run``: train ConGater gates on a dataset and sweep ω (task accuracy vs fresh probes)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..files import write_atomically

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "congater",
        help="ConGater: inference-time control of device / city information",
        description="Train a gated model on the train split (task and gate steps interleaved, gradient-reversal "
        "adversaries), then for every omega measure task accuracy per device and the accuracy of fresh attacker "
        "probes on the test split. Writes congater.json, congater.csv and one trade-off plot per attribute.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    study = actions.add_parser("run", help="train the gates and sweep omega")
    study.add_argument("--data", required=True, help="dataset with device (and/or city) and train/test splits")
    study.add_argument("--model", default="passt", help="architecture or zoo name (default: a small PaSST)")
    study.add_argument("--placement", choices=("last", "all"), default="last")
    study.add_argument("--omega", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    study.add_argument("--epochs", type=int, default=5)
    study.add_argument("--adversary-scale", type=float, default=1.0, help="gradient-reversal lambda")
    study.add_argument("--max-clips", type=int, default=None)
    study.add_argument("--seed", type=int, default=0)
    study.add_argument("--output", default="congater", help="output folder")
    study.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the study code pulls in Lightning, which `tympan --help` should not wait for.
    from ..analysis.studies import congater_study, plot_congater_tradeoff
    from ..data import read_data

    rows = congater_study(
        read_data(args.data), model=args.model, placement=args.placement, omegas=args.omega, epochs=args.epochs,
        adversary_scale=args.adversary_scale, max_clips=args.max_clips, seed=args.seed,
    )
    output = Path(args.output)
    write_atomically(output / "congater.json", json.dumps(rows, indent=2))
    attributes = list(rows[0]["omega"])
    columns = [f"omega_{a}" for a in attributes] + ["task_accuracy"] + [
        f"{a}_probe_{kind}" for a in attributes for kind in ("accuracy", "balanced_accuracy")
    ]
    lines = [",".join(columns)]
    for row in rows:
        values = [row["omega"][a] for a in attributes] + [row["task_accuracy"]] + [
            row[f"{a}_probe_{kind}"] for a in attributes for kind in ("accuracy", "balanced_accuracy")
        ]
        lines.append(",".join(f"{v:.4f}" for v in values))
    write_atomically(output / "congater.csv", "\n".join(lines) + "\n")
    for attribute in attributes:
        plot_congater_tradeoff(rows, attribute, output / f"congater_{attribute}.png")
    print("\n".join(lines))
    print(f"wrote {output}/congater.json, congater.csv and the trade-off plots")
    return 0
