"""``tympan tag``: what is in these files, and when: one record per file, bad files reported, never fatal."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import AudioLoadError, ConfigError
from ..files import write_atomically

logger = logging.getLogger(__name__)

LONG_JOB_FILES = 20
SAVE_EVERY_SECONDS = 30.0
# Architectures that onnxruntime runs faster than PyTorch eager on CPU (benchmarks/bench_inference.py: mn 2.7x,
# dymn 1.5x, cp_mobile 2.9x; PaSST 0.9x). DyMN exports with fixed shapes only (a graph per input length), so it
# gets onnxruntime for windowed jobs, whose windows share one length, and not for folders of files.
ONNX_FASTER = ("mn", "cp_mobile")
ONNX_FASTER_WINDOWED = ("mn", "dymn", "cp_mobile")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64", ".rf64")


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
        choices=("windows", "pooled"),
        default="windows",
        help="with --window: run every window (exact) or, for MN/DyMN, pool feature maps computed once per chunk "
        "(several times faster at overlapping windows; scores differ slightly)",
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
        help="inference backend; auto: onnxruntime for long jobs (windows, or over 20 files) with the CNNs on CPU "
        "(up to 3x faster than PyTorch, after an export of a few seconds), else PyTorch",
    )
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


def find_audio_files(paths: list[str]) -> list[Path]:
    """The files named, and the audio files under the folders named (recursive, sorted)."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS))
        else:
            files.append(path)
    return files


def run(args: argparse.Namespace) -> int:
    if args.model is None and args.checkpoint is None:
        raise ConfigError("pass --model NAME (or --checkpoint FILE of a tympan fine-tuned model)")
    if args.resume and not args.output:
        raise ConfigError("--resume needs --output: the file whose records are kept")
    if args.hop is not None and args.window is None:
        raise ConfigError("--hop needs --window")
    files = find_audio_files(args.paths)
    if not files:
        raise ConfigError(
            f"no audio files found in {', '.join(args.paths)} (extensions: {', '.join(AUDIO_EXTENSIONS)})"
        )
    previous = read_records(Path(args.output), args.format) if args.resume and Path(args.output).exists() else []
    done = {record["file"] for record in previous if "error" not in record}
    todo = [f for f in files if str(f) not in done]
    redone = {str(f) for f in todo}
    records = [record for record in previous if record["file"] not in redone]
    pipeline = _load_pipeline(args, many_files=len(todo) > LONG_JOB_FILES)
    from tqdm import tqdm

    last_saved = time.monotonic()
    try:
        for path in tqdm(todo, desc="tagging", unit="file", disable=None if len(todo) > 1 else True, file=sys.stderr):
            records.append(_tag_file(pipeline, path, args, single=len(todo) == 1, plots=len(files) > 1))
            if args.output and time.monotonic() - last_saved > SAVE_EVERY_SECONDS:
                write_atomically(args.output, format_records(records, args.format))  # what --resume starts from
                last_saved = time.monotonic()
    finally:  # also on Ctrl-C: the finished records are kept
        text = format_records(records, args.format)
        if args.output:
            write_atomically(args.output, text)
        else:
            sys.stdout.write(text)
    failed = [r for r in records if "error" in r]
    for record in failed:
        logger.warning("%s: %s", record["file"], record["error"])
    return 1 if failed else 0


def _tag_file(pipeline: Any, path: Path, args: argparse.Namespace, *, single: bool, plots: bool) -> dict[str, Any]:
    """The record of one file: its predictions (per window with events, with --window), or its error."""
    from ..tagging import clip_scores, detect_events, plot_timeline, predictions, timeline, timeline_record

    record: dict[str, Any] = {"file": str(path)}
    try:
        if args.window is None:
            scores, notes = clip_scores(pipeline, path)
            record["predictions"] = predictions(pipeline, scores, args.top_k)
        else:
            line = timeline(
                pipeline, path, window=args.window, hop=args.hop, method=args.method, tail=args.tail, progress=single
            )
            events = detect_events(line, threshold=args.threshold, median_windows=args.median)
            record.update(timeline_record(pipeline, line, events, args.top_k))
            notes = line.notes
            if args.plot:
                plot_timeline(line, _plot_path(args.plot, path, plots), events=events)
        if notes:
            record["note"] = "; ".join(notes)
    except Exception as error:  # one bad file must not stop the others; the record says what went wrong
        logger.debug("tagging %s failed", path, exc_info=True)
        return {"file": str(path), "error": _message(error)}
    return record


def _load_pipeline(args: argparse.Namespace, *, many_files: bool) -> Any:
    """The pipeline on the backend asked for; ``auto`` picks onnxruntime on CPU for long jobs, if the model exports."""
    from .. import load

    pipeline = load(args.model, args.checkpoint, device=args.device, backend="torch", precision=args.precision)
    backend = args.backend
    if backend == "auto":
        arch = pipeline.model.preset.arch if pipeline.model.preset is not None else None
        faster = ONNX_FASTER_WINDOWED if args.window is not None else ONNX_FASTER if many_files else ()
        backend = "onnx" if pipeline.device.type == "cpu" and arch in faster else "torch"
    if backend == "torch":
        return pipeline
    try:
        return pipeline.with_backend("onnx")
    except (RuntimeError, ValueError) as error:
        if args.backend == "onnx":
            raise
        logger.info("ONNX export failed (%s); tagging with PyTorch", error)
        return pipeline


def _message(error: Exception) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, AudioLoadError):
        return text
    return f"cannot tag this file ({type(error).__name__}): {text}"


def _plot_path(plot: str, audio: Path, several: bool) -> Path:
    path = Path(plot)
    return path.with_name(f"{path.stem}_{audio.stem}{path.suffix or '.png'}") if several else path


_CSV_FIELDS = ("file", "start", "end", "rank", "label", "score", "error", "note")


def format_records(records: list[dict[str, Any]], fmt: str) -> str:
    """The records as JSON (a list), CSV (one row per file, window and label) or a readable table."""
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    rows = []
    for record in records:
        base = {"file": record["file"], "note": record.get("note", "")}
        if "error" in record:
            rows.append({**base, "error": record["error"]})
        for rank, p in enumerate(record.get("predictions", []), 1):
            rows.append({**base, "rank": rank, **p})
        for window in record.get("windows", []):
            for rank, p in enumerate(window["predictions"], 1):
                rows.append({**base, "start": window["start"], "end": window["end"], "rank": rank, **p})
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, _CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    lines = []
    for record in records:
        lines.append(record["file"] + (f"  ({record['note']})" if "note" in record else ""))
        if "error" in record:
            lines.append(f"  error: {record['error']}")
        for p in record.get("predictions", []):
            lines.append(f"  {p['score']:.3f}  {p['label']}")
        for window in record.get("windows", []):
            best = ", ".join(f"{p['label']} {p['score']:.2f}" for p in window["predictions"][:3])
            lines.append(f"  {window['start']:9.2f}-{window['end']:9.2f} s  {best}")
        for event in record.get("events", []):
            lines.append(
                f"  event {event['onset']:9.2f}-{event['offset']:9.2f} s  {event['label']} ({event['score']:.2f})"
            )
    return "\n".join(lines) + "\n"


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
