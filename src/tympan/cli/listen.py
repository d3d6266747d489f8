"""``tympan listen``: live tagging from a microphone (or a file at real-time pace) with a view in the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from typing import Any, TextIO

from ..errors import ConfigError
from .options import add_threads_argument, require_model, set_threads

VIEW_REFRESH_PER_SECOND = 8


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "listen",
        help="tag a microphone live (rolling top labels, level, events; --output for a JSONL event log)",
        description="Tag live audio: from an input device through PortAudio, or --input FILE (with --realtime at "
        "the pace it would sound). Every hop the last window is scored; events are reported once when they begin "
        "and once when they end. Ctrl-C ends cleanly, the events still on closed in the log.",
    )
    parser.add_argument("--model", help="zoo name; optional with a tympan checkpoint")
    parser.add_argument("--checkpoint", help="weights file (default: the official checkpoint from the cache)")
    parser.add_argument("--device", help="input device: index or part of its name (default: the system's)")
    parser.add_argument("--sample-rate", type=int, help="recording rate in Hz (default: the device's)")
    parser.add_argument("--input", help="an audio file to play into the live path instead of a microphone")
    parser.add_argument("--realtime", action="store_true", help="with --input: play at real-time pace")
    parser.add_argument("--window", type=float, help="window in seconds (default: the model's training clip)")
    parser.add_argument("--hop", type=float, default=0.5, help="seconds between scores (default 0.5)")
    parser.add_argument("--top-k", type=int, default=5, help="labels shown (default 5)")
    parser.add_argument("--threshold", type=float, default=0.5, help="score at which an event begins (default 0.5)")
    parser.add_argument("--off-threshold", type=float, help="score below which it ends (default 0.8 x threshold)")
    parser.add_argument("--output", help="append events to this JSONL file (one record per begin and end)")
    add_threads_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    require_model(args)
    if args.realtime and not args.input:
        raise ConfigError("--realtime plays a file: pass --input FILE")
    from .. import load

    set_threads(args)
    from ..live import FileSource, Microphone, StreamingTagger

    source = (
        FileSource(args.input, realtime=args.realtime)
        if args.input
        else Microphone(args.device, sample_rate=args.sample_rate)
    )
    pipeline = load(args.model, args.checkpoint)
    tagger = StreamingTagger(
        pipeline,
        sample_rate=source.sample_rate,
        channels=source.channels,
        window=args.window,
        hop=args.hop,
        threshold=args.threshold,
        off_threshold=args.off_threshold,
        keep_up=True,
    )
    with ExitStack() as stack:
        log = stack.enter_context(open(args.output, "a", encoding="utf-8")) if args.output else None
        view = stack.enter_context(_View(pipeline, args.top_k))

        def report(update: Any) -> None:
            _log(log, update.began, "on")
            _log(log, update.ended, "off")
            view.show(update, tagger)

        try:
            for piece, arrival in source:
                for update in tagger.feed(piece, arrival=arrival):
                    report(update)
            updates, ended = tagger.finish()
            for update in updates:
                report(update)
        except KeyboardInterrupt:  # the end of a microphone session: close what is still sounding
            ended = tagger.events.close()
        _log(log, ended, "off")
        view.events([], ended)
    summary = tagger.latency.summary()
    print(
        f"{tagger.seconds:.1f} s tagged; latency p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms "
        f"(arrival of a window's newest sample to its scores, {summary['windows']} windows"
        + (f"; {tagger.skipped} skipped to keep up)" if tagger.skipped else ")"),
        file=sys.stderr,
    )
    return 0


def _log(log: TextIO | None, events: list[Any], state: str) -> None:
    from ..live import event_record

    if log is None:
        return
    for event in events:
        log.write(json.dumps(event_record(event, state)) + "\n")
    log.flush()  # a log that is read while it grows, and that Ctrl-C must not truncate


class _View:
    """A live table (rich) on a terminal; elsewhere one line per event begun or ended."""

    def __init__(self, pipeline: Any, top_k: int) -> None:
        self.pipeline, self.top_k = pipeline, top_k
        self.live: Any = None
        self.recent: list[str] = []
        if sys.stdout.isatty():
            try:
                from rich.console import Console
                from rich.live import Live
            except ImportError:  # without the live extra's rich: the plain lines
                return
            self.live = Live(console=Console(), refresh_per_second=VIEW_REFRESH_PER_SECOND)

    def __enter__(self) -> _View:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def show(self, update: Any, tagger: Any) -> None:
        self.events(update.began, update.ended)
        if self.live is not None:
            self.live.update(self._table(update, tagger))

    def events(self, began: list[Any], ended: list[Any]) -> None:
        lines = [f"{e.onset:8.2f} s  on   {e.label} ({e.score:.2f})" for e in began]
        lines += [f"{e.onset:8.2f} s  off  {e.label} ({e.score:.2f}, until {e.offset:.2f} s)" for e in ended]
        if self.live is None:
            for line in lines:
                print(line, flush=True)
        self.recent = (self.recent + lines)[-6:]

    def _table(self, update: Any, tagger: Any) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{self.pipeline.name} · {update.end:.1f} s")
        table.add_column("label")
        table.add_column("score", justify="right")
        table.add_column("", width=30)
        for label, score in self.pipeline.top(update.scores, self.top_k):
            table.add_row(label, f"{score:.3f}", ProgressBar(total=1.0, completed=score, width=30))
        latency = tagger.latency.summary()
        status = Text(
            f"level {update.level_db:6.1f} dBFS   latency {1000 * update.latency:.0f} ms "
            f"(p50 {latency['p50_ms']:.0f}, p95 {latency['p95_ms']:.0f})"
        )
        return Group(table, status, Text("\n".join(self.recent) or "no events yet", style="dim"))
