"""``tympan embed``: embeddings of audio files with any model family, through the HEAR API (:mod:`tympan.hear`).

The ``.npz`` holds ``files`` (the inputs that worked, in order) and either ``embeddings`` ``[files, D]`` (scene
embeddings) or, with ``--timestamps``, ``embeddings`` ``[rows, D]``, ``timestamps`` (ms) and ``file_index`` (row →
entry of ``files``); ``failed_files`` and ``errors`` list the inputs that could not be read.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys

import numpy as np

from ..errors import AudioLoadError, ConfigError
from ..files import write_atomically
from .tag import find_audio_files

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="write embeddings of audio files to an .npz (HEAR scene or timestamp embeddings)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    parser.add_argument("--model", help="zoo name (optional with a tympan checkpoint)")
    parser.add_argument("--checkpoint", help="weights file (default: the official checkpoint from the cache)")
    parser.add_argument("--timestamps", action="store_true", help="timestamp embeddings instead of one per file")
    parser.add_argument("--variant", default="base", help="HEAR variant: base, 2level, 2levelmel (default base)")
    parser.add_argument("--output", required=True, help="the .npz file to write (atomically)")
    parser.add_argument("--device", help="torch device (default: cuda where present)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .. import load
    from ..hear import wrap

    if args.model is None and args.checkpoint is None:
        raise ConfigError("pass --model NAME (or --checkpoint FILE of a tympan fine-tuned model)")
    files = find_audio_files(args.paths)
    if not files:
        raise ConfigError(f"no audio files found in {', '.join(args.paths)}")
    pipeline = load(args.model, args.checkpoint, device=args.device)
    hear_model = wrap(pipeline.model, pipeline.frontend, variant=args.variant, mode="embed_only").to(pipeline.device)
    done, rows, timestamps, index, failed, errors = [], [], [], [], [], []
    for path in tqdm(files, desc="embedding", unit="file", disable=None if len(files) > 1 else True, file=sys.stderr):
        try:
            waveform = pipeline.clips(path)[0].waveform[None].to(pipeline.device)
            with torch.inference_mode():
                if args.timestamps:
                    embedding, times = hear_model.timestamp_embeddings(waveform)
                    rows.append(embedding[0].cpu().numpy())
                    timestamps.append(times[0].cpu().numpy())
                    index.append(np.full(len(times[0]), len(done), dtype=np.int64))
                else:
                    rows.append(hear_model.scene_embeddings(waveform).cpu().numpy())
        except (AudioLoadError, OSError, ValueError, RuntimeError) as error:
            failed.append(str(path))
            errors.append(str(error))
            logger.warning("%s: %s", path, error)
            continue
        done.append(str(path))
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
