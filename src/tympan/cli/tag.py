"""``tympan tag``: what is in these files, and when: one record per file, bad files reported, never fatal."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError
from ..files import atomic_path
from .options import add_trainer_arguments, require_model, trainer_options

logger = logging.getLogger(__name__)

SAVE_EVERY_SECONDS = 30.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tag",
        help="tag audio files (labels and scores; a timeline and events with --window)",
        description="Tag audio files and folders (recursive). One record per file; a file that cannot be read "
        "gets an 'error' record and the others go on; the exit status is 1 if any file failed.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    parser.add_argument("--model", help="zoo name (see `tympan.list_models()`); optional with a tympan checkpoint")
    parser.add_argument("--checkpoint", help="weights file (default: the official checkpoint from the cache)")
    parser.add_argument("--top-k", type=int, default=5, help="labels per record (default 5)")
    parser.add_argument("--window", type=float, help="tag windows of this many seconds (a timeline)")
    parser.add_argument("--hop", type=float, help="step between windows in seconds (default: --window)")
    parser.add_argument("--threshold", type=float, default=0.5, help="event threshold on scores (default 0.5)")
    parser.add_argument("--median", type=int, default=3, help="median filter length in windows (default 3)")
    parser.add_argument("--format", choices=("json", "csv", "table"), default="table", help="output format")
    parser.add_argument("--output", help="write to this file (atomically) instead of stdout")
    parser.add_argument("--plot", help="timeline PNG (one file; with several inputs, FILE_<name>.png each)")
    parser.add_argument(
        "--method",
        choices=("auto", "windows", "pooled"),
        default="auto",
        help="with --window: run every window (exact) or, for MN/DyMN, pool feature maps computed once per piece "
        "(several times faster at overlapping windows; scores within 1e-3); auto (default): pooled where it applies",
    )
    parser.add_argument(
        "--tail",
        choices=("end", "pad"),
        default="end",
        help="with --window: the last window ends at the end of the audio (default: real audio only), or 'pad': "
        "windows at i*hop only, the last one zero-padded (EfficientAT windowed_inference.py)",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="inference backend; auto: onnxruntime for the CNNs on CPU (up to 3x faster than PyTorch; the graph is "
        "exported once and cached), else PyTorch",
    )
    parser.add_argument("--workers", type=int, help="worker processes (default: one per core; 0: none)")
    add_trainer_arguments(parser)
    parser.add_argument("--device", help="torch device, e.g. cuda (default: cuda where present)")
    parser.add_argument(
        "--precision",
        choices=("32", "16-mixed"),
        default="32",
        help="32: float32 (default); 16-mixed: float16 autocast on CUDA, as the references' GPU inference "
        "(faster; scores differ in about the third decimal)",
    )
    parser.add_argument("--resume", action="store_true", help="skip files already in --output, keep their records")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import engine

    require_model(args)
    if args.resume and not args.output:
        raise ConfigError("--resume needs --output: the file whose records are kept")
    if args.hop is not None and args.window is None:
        raise ConfigError("--hop needs --window")
    files = engine.find_audio_files(args.paths)
    if not files:
        raise ConfigError(
            f"no audio files found in {', '.join(args.paths)} (extensions: {', '.join(engine.AUDIO_EXTENSIONS)})"
        )
    previous = read_records(Path(args.output), args.format) if args.resume and Path(args.output).exists() else []
    kept, todo = engine.resume(previous, files)
    network = engine.load_network(
        args.model,
        args.checkpoint,
        device=args.device,
        backend=args.backend,
        precision=args.precision,
        windowed=args.window is not None,
    )
    trainer = trainer_options(args, args.output)
    if args.window is None:
        records = engine.tag_files(network, todo, workers=args.workers, trainer=trainer)
    else:
        records = engine.timeline(
            network,
            todo,
            window=args.window,
            hop=args.hop,
            method=args.method,
            tail=args.tail,
            threshold=args.threshold,
            median_windows=args.median,
            workers=args.workers,
            trainer=trainer,
        )
    if records is None:  # a rank other than 0 of a Trainer.predict job: rank 0 writes
        return 0
    from tqdm import tqdm

    progress = tqdm(records, total=len(todo), desc="tagging", unit="file", disable=None if len(todo) > 1 else True)
    outputs = (_output(record, args, several=len(files) > 1) for record in progress)
    engine.save_periodically(
        outputs,
        kept,
        lambda records: _write(records, args),
        every_seconds=SAVE_EVERY_SECONDS if args.output else float("inf"),
    )
    failed = [r for r in kept if "error" in r]
    for record in failed:
        logger.warning("%s: %s", record["file"], record["error"])
    return 1 if failed else 0


def _output(record: Any, args: argparse.Namespace, *, several: bool) -> dict[str, Any]:
    """The record as written, and its timeline plot with --plot."""
    if args.plot and record.timeline is not None:
        from ..tagging import plot_timeline

        plot_timeline(record.timeline, _plot_path(args.plot, Path(record.file), several), events=record.events)
    return record.to_dict(args.top_k)


def _write(records: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """All records so far, to --output (atomically: what --resume starts from) or to stdout at the end."""
    if not args.output:
        write_records(records, args.format, sys.stdout)
        return
    with atomic_path(args.output) as temporary, temporary.open("w", encoding="utf-8") as out:
        write_records(records, args.format, out)


def _plot_path(plot: str, audio: Path, several: bool) -> Path:
    path = Path(plot)
    return path.with_name(f"{path.stem}_{audio.stem}{path.suffix or '.png'}") if several else path


_CSV_FIELDS = ("file", "start", "end", "rank", "label", "score", "error", "note")


def write_records(records: list[dict[str, Any]], fmt: str, out: TextIO) -> None:
    """The records as JSON (a list), CSV (one row per file, window and label) or a readable table, streamed to
    ``out``: an hour's timeline is 12 MB of JSON, and the whole text at once took 100 MB more memory."""
    if fmt == "json":
        out.writelines(_json_lines(records))
    elif fmt == "csv":
        writer = csv.DictWriter(out, _CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(row for record in records for row in _csv_rows(record))
    else:
        out.writelines(line + "\n" for record in records for line in _table_lines(record))


def _json_lines(records: list[dict[str, Any]]) -> Iterator[str]:
    """A JSON list of the records, indented, with each item of a record's lists (predictions, windows, events) on a
    line of its own: as readable, and the items go through json's C encoder (with an ``indent``, ``json.dump`` runs
    the pure-Python one: an hour's timeline took 0.22 s to write, 0.03 s this way)."""
    if not records:
        yield "[]\n"
        return
    for position, record in enumerate(records):
        yield ",\n  {" if position else "[\n  {"
        for number, (key, value) in enumerate(record.items()):
            yield f"{',' if number else ''}\n    {json.dumps(key)}: "
            if isinstance(value, list) and value:
                yield "["
                yield from (f"{',' if i else ''}\n      {json.dumps(item)}" for i, item in enumerate(value))
                yield "\n    ]"
            else:
                yield json.dumps(value)
        yield "\n  }"
    yield "\n]\n"


def _csv_rows(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    base = {"file": record["file"], "note": record.get("note", "")}
    if "error" in record:
        yield {**base, "error": record["error"]}
    for rank, p in enumerate(record.get("predictions", []), 1):
        yield {**base, "rank": rank, **p}
    for window in record.get("windows", []):
        for rank, p in enumerate(window["predictions"], 1):
            yield {**base, "start": window["start"], "end": window["end"], "rank": rank, **p}


def _table_lines(record: dict[str, Any]) -> Iterator[str]:
    yield record["file"] + (f"  ({record['note']})" if "note" in record else "")
    if "error" in record:
        yield f"  error: {record['error']}"
    for p in record.get("predictions", []):
        yield f"  {p['score']:.3f}  {p['label']}"
    for window in record.get("windows", []):
        best = ", ".join(f"{p['label']} {p['score']:.2f}" for p in window["predictions"][:3])
        yield f"  {window['start']:9.2f}-{window['end']:9.2f} s  {best}"
    for event in record.get("events", []):
        yield f"  event {event['onset']:9.2f}-{event['offset']:9.2f} s  {event['label']} ({event['score']:.2f})"


def read_records(path: Path, fmt: str) -> list[dict[str, Any]]:
    """Records of an earlier run's output (JSON or CSV) for ``--resume``."""
    text = path.read_text(encoding="utf-8")
    if fmt == "json":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"--resume: {path} is not a tympan JSON output ({error})") from None
        return records
    if fmt == "csv":
        return _records_from_rows(list(csv.DictReader(io.StringIO(text))))
    raise ConfigError("--resume works with --format json or csv")


def _records_from_rows(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for row in rows:
        record = records.setdefault(row["file"], {"file": row["file"]})
        if row.get("note"):
            record["note"] = row["note"]
        if row.get("error"):
            record["error"] = row["error"]
            continue
        prediction = {"label": row["label"], "score": float(row["score"])}
        if row.get("start"):
            windows = record.setdefault("windows", [])
            if not windows or windows[-1]["start"] != float(row["start"]):
                windows.append({"start": float(row["start"]), "end": float(row["end"]), "predictions": []})
            windows[-1]["predictions"].append(prediction)
        else:
            record.setdefault("predictions", []).append(prediction)
    return list(records.values())
