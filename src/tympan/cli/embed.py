"""``tympan embed``: embeddings of audio files with any model family, on the batch engine (:mod:`tympan.engine`).

A file's embedding is the one :func:`tympan.embed` gives: one forward pass of a file up to a minute, the mean of the
embeddings of its clip-length windows beyond. The ``.npz`` holds ``files`` (the inputs that worked, in order) and
either ``embeddings`` ``[files, D]`` or, with ``--timestamps`` (HEAR timestamp embeddings), ``embeddings``
``[rows, D]``, ``timestamps`` (ms) and ``file_index`` (row → entry of ``files``); ``failed_files`` and ``errors``
list the inputs that could not be read.
"""

from __future__ import annotations

import argparse
import io
import logging

import numpy as np

from ..errors import ConfigError
from ..files import write_atomically
from .options import require_model

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="write embeddings of audio files to an .npz (one per file, or HEAR timestamp embeddings)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    parser.add_argument("--model", help="zoo name (optional with a tympan checkpoint)")
    parser.add_argument("--checkpoint", help="weights file (default: the official checkpoint from the cache)")
    parser.add_argument("--timestamps", action="store_true", help="HEAR timestamp embeddings instead of one per file")
    parser.add_argument("--variant", default="base", help="HEAR variant: base, 2level, 2levelmel (default base)")
    parser.add_argument("--output", required=True, help="the .npz file to write (atomically)")
    parser.add_argument("--device", help="torch device (default: cuda where present)")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per core; 0: none)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .. import engine

    require_model(args)
    files = engine.find_audio_files(args.paths)
    if not files:
        raise ConfigError(f"no audio files found in {', '.join(args.paths)}")
    network = engine.load_network(args.model, args.checkpoint, device=args.device)
    records = engine.embed_files(
        network, files, timestamps=args.variant if args.timestamps else None, workers=args.workers
    )
    done, rows, timestamps, index, failed, errors = [], [], [], [], [], []
    for record in tqdm(
        records, total=len(files), desc="embedding", unit="file", disable=None if len(files) > 1 else True
    ):
        if record.error is not None:
            failed.append(record.file)
            errors.append(record.error)
            logger.warning("%s: %s", record.file, record.error)
            continue
        rows.append(np.atleast_2d(record.embedding))
        if args.timestamps:
            timestamps.append(record.timestamps)
            index.append(np.full(len(record.timestamps), len(done), dtype=np.int64))
        done.append(record.file)
    arrays = {
        "files": np.asarray(done, dtype=str),
        "embeddings": np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32),
        "failed_files": np.asarray(failed, dtype=str),
        "errors": np.asarray(errors, dtype=str),
    }
    if args.timestamps:
        arrays["timestamps"] = np.concatenate(timestamps) if timestamps else np.zeros(0, np.float32)
        arrays["file_index"] = np.concatenate(index) if index else np.zeros(0, np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomically(args.output, buffer.getvalue())
    return 1 if failed else 0
