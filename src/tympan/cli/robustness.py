"""``tympan robustness``: adversarial risk and prediction-change stress of checkpoints on the same clips."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..files import write_atomically

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "robustness",
        help="compare checkpoints (e.g. trained with different augmentations) under PGD attacks and stress",
        description="Attack each checkpoint's log-mel input with PGD on the chosen split and measure the share of "
        "random eps-sphere perturbations that flip its predictions; write robustness.json and robustness.png.",
    )
    parser.add_argument("checkpoints", nargs="+", help="self-describing checkpoints (tympan finetune / train)")
    parser.add_argument("--data", required=True, help="dataset (CSV, folder, TAU22, ...)")
    parser.add_argument("--split", default="test", help="split to attack (default: test)")
    parser.add_argument("--norm", choices=("linf", "l2"), default="linf")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.0, 0.01, 0.05, 0.1], help="attack radii")
    parser.add_argument("--steps", type=int, default=20, help="PGD iterations (the paper: 200)")
    parser.add_argument("--stress-eps", type=float, nargs="+", default=[0.1, 0.5, 1.0])
    parser.add_argument("--stress-directions", type=int, default=100, help="random directions per clip")
    parser.add_argument("--max-clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=None, help="clip length (default: the model's)")
    parser.add_argument("--output", default="robustness", help="output folder")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the study code pulls in Lightning, which `tympan --help` should not wait for.
    from ..analysis.studies import plot_risk_curves, robustness_study
    from ..data import read_data

    rows = robustness_study(
        args.checkpoints,
        read_data(args.data),
        split=args.split,
        eps_grid=args.eps,
        norm=args.norm,
        steps=args.steps,
        stress_eps=args.stress_eps,
        stress_directions=args.stress_directions,
        max_clips=args.max_clips,
        seconds=args.seconds,
        progress=True,
    )
    output = Path(args.output)
    write_atomically(output / "robustness.json", json.dumps(rows, indent=2))
    plot_risk_curves(rows, output / "robustness.png")
    for row in rows:
        risks = ", ".join(f"eps {p['eps']:g}: {p['accuracy']:.3f}" for p in row["risk"])
        stress = ", ".join(f"eps {p['eps']:g}: {p['mean']:.3f}" for p in row["stress"])
        print(
            f"{row['checkpoint']} ({row['clips']} clips)\n  accuracy under PGD-{row['norm']}: {risks}\n"
            f"  prediction-change stress: {stress}"
        )
    print(f"wrote {output / 'robustness.json'} and {output / 'robustness.png'}")
    return 0
