"""``tympan index``: embed a folder of audio once with a retrieval model, for ``tympan search``.

Every audio file under FOLDER (recursively) goes through the audio side of the dual encoder; files that cannot be
decoded are reported and skipped. The index folder holds ``embeddings.npz`` and ``index.json``.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index", help="embed a folder of audio for text search", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folder", metavar="FOLDER", help="folder of audio files (searched recursively)")
    parser.add_argument("--model", required=True, metavar="CKPT", help="retrieval checkpoint (tympan train output)")
    parser.add_argument("--out", required=True, metavar="INDEX", help="index folder to write")
    parser.add_argument("--batch-size", type=int, default=8, help="clips embedded together (default 8)")
    parser.add_argument("--device", help="torch device (default: cuda where present)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..retrieval import build_index

    index = build_index(args.model, args.folder, batch_size=args.batch_size, device=args.device)
    path = index.save(args.out)
    for file, reason in index.failed.items():
        print(f"skipped {file}: {reason}", file=sys.stderr)
    print(f"indexed {len(index.files)} clips into {path} ({len(index.failed)} unreadable)")
    return 0 if index.files else 1
