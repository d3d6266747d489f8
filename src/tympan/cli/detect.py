"""``tympan detect``: sound events with onsets and offsets, from a frame-level model."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import write_atomically


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="sound event detection: events with onset and offset per file (frame-level models)",
        description="Detect sound events at 40-ms resolution with a frame-level model (frame_mn06, frame_mn10, "
        "fpasst, or a checkpoint of `tympan finetune --task sed`): one record per file with its events.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    parser.add_argument("--model", help="frame-level zoo preset; optional with a tympan checkpoint")
    parser.add_argument("--checkpoint", help="weights, e.g. DIR/model.ckpt of `tympan finetune --task sed`")
    parser.add_argument("--threshold", type=float, default=0.5, help="event threshold on frame scores (default 0.5)")
    parser.add_argument(
        "--low-threshold",
        type=float,
        help="hysteresis: an event lasts while its score stays above this (default: --threshold)",
    )
    parser.add_argument(
        "--median", type=float, default=0.2, help="median filter window in seconds (default 0.2; 0 disables)"
    )
    parser.add_argument("--merge-gap", type=float, default=0.0, help="merge events of a class this close (s)")
    parser.add_argument("--min-duration", type=float, default=0.0, help="drop shorter events (s)")
    parser.add_argument("--format", choices=("json", "csv"), default="json", help="output format (default json)")
    parser.add_argument("--output", help="write to this file (atomically) instead of stdout")
    parser.add_argument("--plot", help="folder for one PNG per file: frame scores with the detected events")
    parser.add_argument("--device", help="torch device, e.g. cuda (default: cuda where present)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import load
    from ..audio.io import find_audio_files
    from ..sed.detect import detect
    from ..sed.postprocess import PostProcessing

    if args.model is None and args.checkpoint is None:
        raise ConfigError("pass --model NAME (a frame-level preset) or --checkpoint FILE")
    files = find_audio_files(args.paths)
    if not files:
        raise ConfigError(f"no audio files found in {', '.join(args.paths)}")
    config = PostProcessing(args.threshold, args.low_threshold, args.median, args.merge_gap, args.min_duration)
    pipeline = load(args.model, args.checkpoint, device=args.device)
    records = []
    for record in detect(pipeline, files, config, keep_scores=bool(args.plot)):
        scores = record.pop("frame_scores", None)
        if scores is not None:
            record["plot"] = str(_plot(scores, record, Path(args.plot)))
        records.append(record)
    text = _format(records, args.format)
    if args.output:
        write_atomically(args.output, text)
    else:
        sys.stdout.write(text)
    return 1 if any("error" in record for record in records) else 0


def _plot(scores: Any, record: dict[str, Any], folder: Path) -> Path:
    from ..sed.postprocess import Event
    from ..tagging import plot_timeline

    folder.mkdir(parents=True, exist_ok=True)
    events = [Event(e["onset"], e["offset"], e["label"], e["score"]) for e in record["events"]]
    return plot_timeline(scores.as_timeline(), folder / f"{Path(record['file']).stem}.png", events=events)


def _format(records: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(records, indent=1) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("file", "onset", "offset", "label", "score"))
    for record in records:
        for event in record.get("events", []):
            writer.writerow((record["file"], event["onset"], event["offset"], event["label"], event["score"]))
    return out.getvalue()
