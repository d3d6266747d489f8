"""``tympan receptive-field``: the receptive field of every layer of a CNN, and CP-ResNet's ρ table."""

from __future__ import annotations

import argparse
import json
import math

from ..analysis.receptive_field import LayerField, receptive_field, reference_max_rf
from ..models import create
from ..models.cp_resnet import DCASE20_KWARGS

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "receptive-field",
        help="receptive field per layer (mel bins x frames); CP-ResNet's rho table",
        description="Trace the receptive field through the model's forward pass on the mel of --seconds of audio. "
        "With --rho A B (CP-ResNet), list the final feature map's field for every rho from A to B instead, next to "
        "the papers' max-RF estimate (--rho-rule dcase20: the CP-ResNet of the receptive-field papers).",
    )
    parser.add_argument("model", help="zoo name or architecture (e.g. cp_resnet, mn10_as, cp_mobile_dcase23)")
    parser.add_argument("--seconds", type=float, default=1.0, help="audio length the model sees (default: 1)")
    parser.add_argument("--rho", type=int, nargs=2, metavar=("FIRST", "LAST"), help="sweep CP-ResNet's rho")
    parser.add_argument("--rho-rule", choices=("dcase23", "dcase20"), default="dcase23",
                        help="which CP-ResNet the rho sweep builds (default: the DCASE23 teacher)")  # fmt: skip
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=run)


def _size(value: float) -> str | float:
    return "global" if math.isinf(value) else int(value)


def _final_map(fields: list[LayerField]) -> LayerField:
    """The last layer whose field is still local: what the classifier's pooling sees."""
    local = [f for f in fields if not (f.freq.is_global and f.time.is_global)]
    return local[-1] if local else fields[-1]


def run(args: argparse.Namespace) -> int:
    if args.rho:
        rows = []
        for rho in range(args.rho[0], args.rho[1] + 1):
            model = create(args.model, rho=rho, **(DCASE20_KWARGS if args.rho_rule == "dcase20" else {}))
            final = _final_map(receptive_field(model, _input_shape(model, args.seconds)))
            rows.append({"rho": rho, "freq": _size(final.freq.size), "time": _size(final.time.size),
                         "papers_max_rf": reference_max_rf(model.config)})  # fmt: skip
        header = ("rho", "freq", "time", "papers_max_rf")
    else:
        model = create(args.model)
        fields = receptive_field(model, _input_shape(model, args.seconds))
        rows = [
            {
                "layer": f.name,
                "module": f.module,
                "freq": _size(f.freq.size),
                "time": _size(f.time.size),
                "freq_jump": f.freq.jump,
                "time_jump": f.time.jump,
            }
            for f in fields
        ]
        header = ("layer", "module", "freq", "time", "freq_jump", "time_jump")
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        widths = [max(len(str(h)), *(len(str(r[h])) for r in rows)) for h in header]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            print("  ".join(str(row[h]).ljust(w) for h, w in zip(header, widths, strict=True)))
    return 0


def _input_shape(model, seconds: float) -> tuple[int, int, int, int]:
    config = model.frontend_config
    channels = getattr(getattr(model, "config", None), "in_channels", 1)  # CP-ResNet of DCASE20: stereo
    return (1, channels, config.n_mels, config.num_frames(round(seconds * config.sample_rate)))
