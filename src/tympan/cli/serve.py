"""``tympan serve``: the tagging service (``/tag``, the ``/stream`` WebSocket, a page at ``/``) on one model."""

from __future__ import annotations

import argparse
import sys

from ..errors import ConfigError
from .options import add_threads_argument, require_model, set_threads


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP: POST /tag, the /stream WebSocket, and a page with a live microphone view",
        description="Serve one model: POST /tag (multipart field 'file'), the /stream WebSocket for live PCM, and a "
        "page at / that records from the browser's microphone. Concurrent requests share forward passes; a full "
        "queue answers 503 with Retry-After.",
    )
    parser.add_argument("--model", help="zoo name; optional with a tympan checkpoint")
    parser.add_argument("--checkpoint", help="weights file (default: the official checkpoint from the cache)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="largest /tag upload (default 50 MB)")
    parser.add_argument("--max-queue", type=int, default=64, help="jobs waiting before 503 (default 64)")
    parser.add_argument("--max-batch", type=int, default=16, help="most clips per forward pass (default 16)")
    parser.add_argument("--top-k", type=int, default=5, help="labels per answer (default 5; ?top_k= per request)")
    parser.add_argument("--window", type=float, help="stream window in seconds (default: the model's clip)")
    parser.add_argument("--hop", type=float, default=0.5, help="stream hop in seconds (default 0.5)")
    parser.add_argument("--device", help="torch device, e.g. cuda (default: cuda where present)")
    add_threads_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    require_model(args)
    try:
        import uvicorn

        from ..serve import create_app
    except ImportError as error:
        raise ConfigError(f"tympan serve needs the serve extra ({error}): pip install 'tympan[serve]'") from error
    from .. import load

    set_threads(args)

    pipeline = load(args.model, args.checkpoint, device=args.device)
    app = create_app(
        pipeline,
        max_upload_mb=args.max_upload_mb,
        max_pending=args.max_queue,
        max_batch=args.max_batch,
        top_k=args.top_k,
        window=args.window,
        hop=args.hop,
    )
    print(f"tympan serve: {pipeline.name} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
