"""The tagging service: ``/tag`` for uploads, the ``/stream`` WebSocket for live PCM, and a page at ``/``.

Built on Starlette (the ASGI toolkit FastAPI is made of) and served by uvicorn: four routes and a WebSocket need no
more, and it keeps the dependencies to three small packages. All model work goes through one
:class:`~tympan.serve.batching.BatchQueue`, so concurrent uploads of equal length and the windows of concurrent
streams share forward passes. Every error a client can cause is a JSON ``{"error": ...}`` with a 4xx status; an
unexpected one is a JSON 500 with no traceback (that goes to the server's log).

=====================================  ============================================================================
``GET /health``                        ``{"status": "ok", "model", "sample_rate", "pending", "clips_scored",
                                       "forward_passes"}``
``GET /models``                        the model served and the zoo's names
``POST /tag``                          multipart field ``file`` → ``{"file", "labels": [{"label", "score"}], ...}``;
                                       ``?window=&hop=`` adds ``windows`` and ``events``; ``?top_k=``
``WS /stream?sample_rate=&format=``    binary PCM messages (``float32`` or ``int16``, interleaved ``channels``) in,
                                       one JSON update per hop out (see :meth:`LiveUpdate.record`)
=====================================  ============================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..audio.io import load_audio
from ..engine.jobs import LONG_FILE_SECONDS
from ..errors import AudioLoadError, ConfigError, ServiceBusyError, TympanError
from ..live.tagger import DEFAULT_HOP_SECONDS, StreamingTagger, event_record
from ..pipeline import AudioPipeline, Clip
from ..tagging import aggregate_timeline, detect_events, predictions, timeline, timeline_record
from .batching import BatchQueue

__all__ = ["TaggingService", "create_app"]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PCM_FORMATS = {"float32": np.dtype("<f4"), "int16": np.dtype("<i2")}
RETRY_AFTER_SECONDS = 1
DEFAULT_MAX_UPLOAD_MB = 50.0
MAX_STREAM_CHANNELS = 8


class UploadTooLarge(Exception):
    """The request body passed the upload limit while it was read."""


class ClientError(Exception):
    """A request the service refuses: an HTTP status and the message of its JSON body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers


class TaggingService:
    """The endpoints around one pipeline and its batch queue (:func:`create_app` mounts them).

    Args:
        pipeline: the model served.
        max_upload_mb: largest request body of ``/tag`` in megabytes (larger: 413).
        max_pending: jobs the batch queue holds before answering 503.
        max_batch: most clips per forward pass.
        top_k: labels per answer unless ``?top_k=`` says otherwise.
        window: the stream's default window in seconds (default: the model's training clip).
        hop: the stream's default hop in seconds.
    """

    def __init__(
        self,
        pipeline: AudioPipeline,
        *,
        max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
        max_pending: int = 64,
        max_batch: int = 16,
        top_k: int = 5,
        window: float | None = None,
        hop: float = DEFAULT_HOP_SECONDS,
    ) -> None:
        if max_upload_mb <= 0:
            raise ConfigError(f"max_upload_mb must be positive, got {max_upload_mb}")
        self.pipeline = pipeline
        self.jobs = BatchQueue(pipeline, max_batch=max_batch, max_pending=max_pending)
        self.max_upload_bytes = round(max_upload_mb * 1e6)
        self.top_k, self.window, self.hop = top_k, window, hop

    # ---- HTTP --------------------------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "model": self.pipeline.name,
                "sample_rate": self.pipeline.sample_rate,
                "pending": self.jobs.pending,
                "clips_scored": self.jobs.clips_scored,
                "forward_passes": self.jobs.forward_passes,
            }
        )

    async def models(self, request: Request) -> Response:
        from .. import list_models

        return JSONResponse(
            {
                "served": {
                    "name": self.pipeline.name,
                    "sample_rate": self.pipeline.sample_rate,
                    "classes": len(self.pipeline.labels),
                    "multilabel": self.pipeline.multilabel,
                    "clip_seconds": self.pipeline.clip_seconds,
                },
                "zoo": list_models(),
            }
        )

    async def tag(self, request: Request) -> Response:
        """Tag one uploaded file; with ``?window=`` also its timeline and events."""
        try:
            window = _number(request.query_params, "window", float)
            hop = _number(request.query_params, "hop", float)
            threshold = _number(request.query_params, "threshold", float, default=0.5)
            top_k = _number(request.query_params, "top_k", int, default=self.top_k)
            if hop is not None and window is None:
                raise ClientError(422, "hop needs window")
            async with self._upload(request) as upload:
                waveform = await run_in_threadpool(_decode, upload, self.pipeline.sample_rate)
                record: dict[str, Any] = {"file": upload.filename, "model": self.pipeline.name}
                record["duration"] = round(len(waveform) / self.pipeline.sample_rate, 3)
                record.update(await self._tag_waveform(waveform, window, hop, threshold, top_k))
            return JSONResponse(record)
        except ClientError as error:
            return _error(error.status, str(error), error.headers)
        except ServiceBusyError as error:
            return _error(503, str(error), {"Retry-After": str(RETRY_AFTER_SECONDS)})
        except AudioLoadError as error:
            return _error(415, str(error))
        except TympanError as error:  # ConfigError: a window or hop the timeline refuses
            return _error(422, str(error))

    @contextlib.asynccontextmanager
    async def _upload(self, request: Request) -> AsyncIterator[UploadFile]:
        """The uploaded ``file`` of a multipart body read within the size limit; its temporary file is removed."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ClientError(415, "send the audio as multipart/form-data with the field 'file'")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_upload_bytes:
            raise ClientError(413, self._too_large())
        parser = MultiPartParser(request.headers, self._limited(request.stream()), max_files=1, max_fields=16)
        try:
            form = await parser.parse()
        except UploadTooLarge:
            raise ClientError(413, self._too_large()) from None
        except MultiPartException as error:
            raise ClientError(422, f"a malformed multipart body: {error.message}") from None
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ClientError(422, "the multipart body has no file field 'file'")
            yield upload
        finally:
            await form.close()  # the spooled temporary file (unlinked from its creation) goes with it

    async def _limited(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            if received > self.max_upload_bytes:
                raise UploadTooLarge
            yield chunk

    def _too_large(self) -> str:
        return f"the upload is larger than the limit of {self.max_upload_bytes / 1e6:g} MB (--max-upload-mb)"

    async def _tag_waveform(
        self, waveform: np.ndarray, window: float | None, hop: float | None, threshold: float, top_k: int
    ) -> dict[str, Any]:
        pipeline = self.pipeline
        seconds = len(waveform) / pipeline.sample_rate
        record: dict[str, Any] = {}
        if window is not None:
            line = await _wait(self.jobs.call(lambda: timeline(pipeline, waveform, window=window, hop=hop)))
            events = detect_events(line, threshold=threshold)
            scores, notes = aggregate_timeline(pipeline, line)
            record.update(timeline_record(line, events, top_k))
        elif seconds > LONG_FILE_SECONDS:
            line = await _wait(self.jobs.call(lambda: timeline(pipeline, waveform)))
            scores, notes = aggregate_timeline(pipeline, line)
        else:
            (clip,) = pipeline.clips(waveform)
            scores, notes = await _wait(self.jobs.scores(clip.waveform)), clip.notes
        return {"labels": predictions(scores, pipeline.labels, top_k), **record, "notes": notes}

    # ---- WebSocket ---------------------------------------------------------------------------------------------

    async def stream(self, websocket: WebSocket) -> None:
        """Live tagging of PCM messages; one JSON update per hop, ``{"type": "end"}`` after a text ``end``."""
        await websocket.accept()
        try:
            pcm, channels, tagger, top_k = self._stream_settings(websocket)
        except (ClientError, TympanError) as error:
            await websocket.send_json({"type": "error", "error": str(error)})
            await websocket.close(code=1008)
            return
        await websocket.send_json(
            {
                "type": "ready",
                "model": self.pipeline.name,
                "window": tagger.window,
                "hop": tagger.hop,
                "sample_rate": self.pipeline.sample_rate,
            }
        )
        inbox: asyncio.Queue[tuple[dict[str, Any], float]] = asyncio.Queue()
        reader = asyncio.create_task(_receive_into(websocket, inbox))
        try:
            while True:
                messages = [await inbox.get()]
                while not inbox.empty():  # what arrived while the last window was scored
                    messages.append(inbox.get_nowait())
                pieces = []
                for message, arrival in messages:
                    if message.get("bytes") is not None:
                        pieces.append((_frames(message["bytes"], pcm, channels), arrival))
                        continue
                    await self._feed(websocket, tagger, pieces, top_k)
                    pieces = []
                    if message["type"] == "websocket.disconnect":
                        return
                    if _is_end(message.get("text")):
                        await self._finish(websocket, tagger, top_k)
                        return
                await self._feed(websocket, tagger, pieces, top_k)
        except WebSocketDisconnect:
            return
        except ServiceBusyError as error:
            await _close_with_error(websocket, str(error), code=1013)
        except (ClientError, TympanError) as error:  # frames that do not fit, non-finite samples, ...
            await _close_with_error(websocket, str(error), code=1003)
        finally:
            reader.cancel()

    async def _feed(
        self, websocket: WebSocket, tagger: StreamingTagger, pieces: list[tuple[np.ndarray, float]], top_k: int
    ) -> None:
        """Feed the pieces that arrived together as one: a backlog gives one window, the newest (``keep_up``)."""
        if not pieces:
            return
        piece = np.concatenate([frames for frames, _ in pieces])
        for update in await run_in_threadpool(tagger.feed, piece, arrival=pieces[-1][1]):
            await websocket.send_json({"type": "update", **update.record(self.pipeline, top_k)})

    async def _finish(self, websocket: WebSocket, tagger: StreamingTagger, top_k: int) -> None:
        updates, ended = await run_in_threadpool(tagger.finish)
        for update in updates:
            await websocket.send_json({"type": "update", **update.record(self.pipeline, top_k)})
        summary = {"type": "end", "ended": [event_record(e, "off") for e in ended], "latency": tagger.latency.summary()}
        await websocket.send_json(summary)
        await websocket.close()

    def _stream_settings(self, websocket: WebSocket) -> tuple[np.dtype, int, StreamingTagger, int]:
        query = websocket.query_params
        sample_rate = _number(query, "sample_rate", int)
        if sample_rate is None:
            raise ClientError(422, "declare the PCM's rate on connect: /stream?sample_rate=48000&format=float32")
        name = query.get("format", "float32")
        if name not in PCM_FORMATS:
            raise ClientError(422, f"format must be one of {', '.join(PCM_FORMATS)}, got {name!r}")
        channels = _number(query, "channels", int, default=1)
        if not 1 <= channels <= MAX_STREAM_CHANNELS:
            raise ClientError(422, f"channels must be 1 to {MAX_STREAM_CHANNELS}, got {channels}")
        tagger = StreamingTagger(
            self.pipeline,
            sample_rate=sample_rate,
            channels=channels,
            window=_number(query, "window", float, default=self.window),
            hop=_number(query, "hop", float, default=self.hop),
            threshold=_number(query, "threshold", float, default=0.5),
            score=self._queued_scores,
            keep_up=True,
        )
        return PCM_FORMATS[name], channels, tagger, _number(query, "top_k", int, default=self.top_k)

    def _queued_scores(self, clips: list[Clip]) -> np.ndarray:
        """The stream's windows through the batch queue (batched with other streams' and uploads')."""
        futures = [self.jobs.scores(clip.waveform) for clip in clips]
        return np.stack([future.result() for future in futures])


def create_app(pipeline: AudioPipeline, **settings: Any) -> Starlette:
    """The ASGI app serving ``pipeline`` (settings: see :class:`TaggingService`); the batch queue runs while the
    app does (its lifespan)."""
    service = TaggingService(pipeline, **settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.jobs.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.jobs.stop)

    routes = [
        Route("/", service.index),
        Route("/health", service.health),
        Route("/models", service.models),
        Route("/tag", service.tag, methods=["POST"]),
        WebSocketRoute("/stream", service.stream),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.service = service
    return app


def _decode(upload: UploadFile, sample_rate: int) -> np.ndarray:
    """The upload's samples at ``sample_rate``; an error names the upload, not its temporary file."""
    name = upload.filename or "the upload"
    try:
        return load_audio(upload.file, sample_rate)
    except AudioLoadError as error:
        logger.debug("cannot decode %r: %s", name, error)
        if str(error).startswith("cannot decode"):
            raise AudioLoadError(
                f"{name} is not audio that can be decoded; send WAV, FLAC, OGG/Vorbis, MP3 or another format "
                "libsndfile reads"
            ) from error
        raise AudioLoadError(str(error).replace(f"<{type(upload.file).__name__}>", name)) from error


def _number(query: Any, name: str, kind: Callable[[str], Any], default: Any = None) -> Any:
    """A finite number from the query string, or ``default`` when it is absent."""
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ClientError(422, f"{name} must be a {kind.__name__}, got {text!r}") from None
    if not math.isfinite(value):
        raise ClientError(422, f"{name} must be finite, got {text!r}")
    return value


async def _wait(future: Any) -> Any:
    return await asyncio.wrap_future(future)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _http_error(request: Request, error: HTTPException) -> Response:
    return _error(error.status_code, str(error.detail), dict(error.headers or {}))


async def _internal_error(request: Request, error: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return _error(500, f"internal error ({type(error).__name__}); the server's log has the details")


async def _close_with_error(websocket: WebSocket, message: str, *, code: int) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.send_json({"type": "error", "error": message})
        await websocket.close(code=code)


async def _receive_into(websocket: WebSocket, inbox: asyncio.Queue[tuple[dict[str, Any], float]]) -> None:
    """Every message of the client with its arrival time, while the tagger works on earlier ones."""
    while True:
        try:
            message = await websocket.receive()
        except (RuntimeError, WebSocketDisconnect):  # receiving after the close
            message = {"type": "websocket.disconnect"}
        await inbox.put((message, time.perf_counter()))
        if message["type"] == "websocket.disconnect":
            return


def _frames(data: bytes, pcm: np.dtype, channels: int) -> np.ndarray:
    """``[frames, channels]`` samples of a binary message."""
    if len(data) % (pcm.itemsize * channels):
        raise ClientError(422, f"a message of {len(data)} bytes is not whole {channels}-channel frames")
    return np.frombuffer(data, dtype=pcm).reshape(-1, channels)


def _is_end(text: str | None) -> bool:
    """A text message ``end`` or ``{"type": "end"}``: the client's stream is over."""
    if text is None:
        return False
    if text.strip() == "end":
        return True
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(message, dict) and message.get("type") == "end"
