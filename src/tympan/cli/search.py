"""``tympan search``: rank the clips of an index (``tympan index``) for a text query.

Prints one line per hit: rank, cosine similarity and the file path (relative to the indexed folder), or JSON.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search", help="find clips of an index by a text description", description=__doc__.splitlines()[0]
    )
    parser.add_argument("index", metavar="INDEX", help="index folder written by `tympan index`")
    parser.add_argument("query", metavar="QUERY", help='what to look for, e.g. "a dog barks while cars pass"')
    parser.add_argument("--top-k", type=int, default=10, metavar="K", help="number of clips to list (default 10)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..retrieval import search

    hits = search(args.index, args.query, top_k=args.top_k)
    if args.format == "json":
        print(json.dumps([asdict(hit) for hit in hits], indent=1))
    else:
        for hit in hits:
            print(f"{hit.rank:>4}  {hit.score:+.4f}  {hit.file}")
    return 0
