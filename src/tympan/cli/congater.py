"""``tympan congater train|evaluate|run``: ConGater gates on a dataset, and the ω sweep (task accuracy vs probes)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..files import write_atomically

__all__ = ["register", "run"]

MODEL_FILE = "congater_model.pt"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "congater",
        help="ConGater: inference-time control of device / city information",
        description="Train a gated model on the train split (task and gate steps interleaved, gradient-reversal "
        "adversaries), then for every omega measure task accuracy per device, the gate values and the accuracy of "
        "fresh attacker probes on the test split. `evaluate` writes congater.json, congater.csv and one trade-off "
        "plot per attribute.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = actions.add_parser("train", help=f"train the gated model and save OUTPUT/{MODEL_FILE}")
    evaluate = actions.add_parser("evaluate", help="sweep omega with a saved gated model: table and plots")
    both = actions.add_parser("run", help="train, then evaluate")
    for action in (train, evaluate, both):
        action.add_argument("--data", required=True, help="dataset with device (and/or city) and train/test splits")
        action.add_argument("--max-clips", type=int, default=None, help="at most this many clips per split")
        action.add_argument("--seed", type=int, default=0)
        action.add_argument("--output", default="congater", help="output folder")
        action.set_defaults(handler=run)
    for action in (train, both):
        action.add_argument("--model", default="passt", help="architecture or zoo name (default: a small PaSST)")
        action.add_argument("--placement", choices=("last", "all"), default="last")
        action.add_argument("--epochs", type=int, default=5)
        action.add_argument("--adversary-scale", type=float, default=1.0, help="gradient-reversal lambda")
        action.add_argument("--gate-lr", type=float, default=1e-3, help="AdamW rate of the gate steps")
    for action in (evaluate, both):
        action.add_argument("--omega", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
        action.add_argument("--probe-epochs", type=int, default=60, help="training epochs of each fresh probe")
    evaluate.add_argument("--checkpoint", help=f"a saved gated model (default: OUTPUT/{MODEL_FILE})")


def run(args: argparse.Namespace) -> int:
    # Imported here: the study code pulls in Lightning, which `tympan --help` should not wait for.
    from ..analysis.studies import CongaterRun, evaluate_congater, train_congater
    from ..data import read_data

    table = read_data(args.data)
    output = Path(args.output)
    trained = None
    if args.action in ("train", "run"):
        trained = train_congater(
            table, model=args.model, placement=args.placement, epochs=args.epochs,
            adversary_scale=args.adversary_scale, gate_lr=args.gate_lr, max_clips=args.max_clips, seed=args.seed,
        )  # fmt: skip
        print(f"wrote {trained.save(output / MODEL_FILE)}")
    if args.action in ("evaluate", "run"):
        gated = trained or CongaterRun.load(getattr(args, "checkpoint", None) or output / MODEL_FILE)
        rows = evaluate_congater(
            gated,
            table,
            omegas=args.omega,
            max_clips=args.max_clips,
            probe_epochs=args.probe_epochs,
            seed=args.seed,
            progress=True,
        )
        _write_results(rows, output)
    return 0


def _write_results(rows: list[dict], output: Path) -> None:
    from ..analysis.studies import plot_congater_tradeoff

    write_atomically(output / "congater.json", json.dumps(rows, indent=2))
    attributes = list(rows[0]["omega"])
    columns = [f"omega_{a}" for a in attributes] + ["task_accuracy", "gate_mean", "gate_share_below_half"]
    columns += [f"{a}_probe_{kind}" for a in attributes for kind in ("accuracy", "balanced_accuracy")]
    lines = [",".join(columns)]
    for row in rows:
        values = [row["omega"][a] for a in attributes] + [row[c] for c in columns[len(attributes) :]]
        lines.append(",".join(f"{v:.4f}" for v in values))
    write_atomically(output / "congater.csv", "\n".join(lines) + "\n")
    for attribute in attributes:
        plot_congater_tradeoff(rows, attribute, output / f"congater_{attribute}.png")
    print("\n".join(lines))
    print(f"wrote {output}/congater.json, congater.csv and the trade-off plots")
