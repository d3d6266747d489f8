"""Live tagging: latency of the streaming path and of ``/stream``, and ``/tag`` throughput with batching.

L1, latency at hop 0.5 s (windows of each model's training clip: 10 s for mn10_as, 1 s for cp_mobile_dcase23;
random weights, redrawn to O(1) activations): 44.1-kHz stereo noise is played at real-time pace in 50-ms blocks

* into :class:`tympan.live.StreamingTagger` directly (the path of ``tympan listen``), and
* over the ``/stream`` WebSocket of a ``tympan serve`` subprocess as float32 PCM (the page's path): the server's
  latency, and the client's (from sending the block that completes a window to receiving its update).

Latency runs from the arrival of a window's newest sample to its scores, p50 / p95; the other samples of a window
waited up to one hop more. The CPU time per window is given beside it. The model runs on one intra-op thread
(``THREADS``), in the benchmark process and in the servers alike.

T0, the model call alone: 16 clips one at a time against one batch of 16 (10-s and 1-s clips): what batching can
gain before HTTP and decoding are counted.

T1, ``/tag`` throughput: 48 uploads of 10-s 32-kHz WAVs to a ``tympan serve --model mn10_as`` subprocess, from 1
client (one request at a time: the baseline), 4 and 16 concurrent clients; requests/s and the mean batch size the
server reports. The 16-client run is repeated with ``--max-batch 1`` (concurrency without batching), so the
batching gain is separated from the overlap of decoding and HTTP with the model.

    .venv/bin/python -m benchmarks.bench_live            # 30 s of audio per latency run, 48 requests per row
    .venv/bin/python -m benchmarks.bench_live --quick    # 12 s, 16 requests
    .venv/bin/python -m benchmarks.bench_live --only t1 --threads 2
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

MODELS = ("mn10_as", "cp_mobile_dcase23")
HOP = 0.5
BLOCK_SECONDS = 0.05
# Default intra-op threads of the model, here and in the servers: on the shared 2-core machine two threads spin
# against the other jobs (mn10_as: 1.0 CPU-s per 10-s clip with 2 threads, 0.1 with 1).
THREADS = 1


def _pipeline(name: str) -> Any:
    import tympan
    from tests._models import stress_

    pipeline = tympan.load(name, pretrained=False, device="cpu")
    stress_(pipeline.model, torch.Generator().manual_seed(0))
    return pipeline


def _blocks(seconds: float, rate: int = 44100) -> list[np.ndarray]:
    audio = (0.1 * np.random.default_rng(0).standard_normal((round(seconds * rate), 2))).astype(np.float32)
    size = round(BLOCK_SECONDS * rate)
    return [audio[offset : offset + size] for offset in range(0, len(audio), size)]


def _paced(blocks: list[np.ndarray], rate: int = 44100) -> Any:
    """The blocks no faster than they would be recorded, each with the time it was recorded (its arrival): a
    consumer that falls behind real time sees its backlog in the latency."""
    start, played = time.perf_counter(), 0
    for block in blocks:
        played += len(block)
        recorded = start + played / rate
        time.sleep(max(recorded - time.perf_counter(), 0.0))
        yield block, recorded


def _ms(values: list[float], q: float) -> float:
    return 1000 * float(np.percentile(values, q))


def latency_direct(name: str, seconds: float) -> dict[str, float]:
    from tympan.live import StreamingTagger

    pipeline = _pipeline(name)
    tagger = StreamingTagger(pipeline, sample_rate=44100, channels=2, hop=HOP)
    tagger.feed(np.zeros((44100, 2), np.float32))  # warm-up, then a fresh tagger
    tagger = StreamingTagger(pipeline, sample_rate=44100, channels=2, hop=HOP)
    cpu = []
    for block, arrival in _paced(_blocks(seconds)):
        before = time.process_time()
        if tagger.feed(block, arrival=arrival):
            cpu.append(time.process_time() - before)
    values = tagger.latency.values
    full = values[round(tagger.window / HOP) :]  # windows of the full length, after the growing ones
    return {
        "p50_ms": _ms(full, 50),
        "p95_ms": _ms(full, 95),
        "cpu_ms": 1000 * statistics.median(cpu),
        "window_s": tagger.window,
    }


class Server:
    """A ``tympan serve`` subprocess on a free port, until ``close``."""

    def __init__(self, name: str, checkpoint: Path, *extra: str) -> None:
        import httpx

        from tests.serve._server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "tympan.cli", "serve", "--model", name, "--checkpoint", str(checkpoint)]
        threads = ("--threads", str(torch.get_num_threads()))
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), *threads, *extra], stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def health(self) -> dict[str, Any]:
        import httpx

        return httpx.get(f"{self.url}/health").json()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _checkpoint(name: str, folder: Path) -> Path:
    path = folder / f"{name}.pt"
    torch.save(_pipeline(name).model.state_dict(), path)
    return path


def latency_stream(name: str, seconds: float, folder: Path) -> dict[str, float]:
    from websockets.sync.client import connect

    server = Server(name, _checkpoint(name, folder), "--hop", str(HOP))
    try:
        url = f"ws://127.0.0.1:{server.port}/stream?sample_rate=44100&channels=2&format=float32"
        with connect(url) as socket:
            ready = json.loads(socket.recv())
            sent: dict[float, float] = {}  # stream time at the end of a block -> when it was sent
            received: list[tuple[dict[str, Any], float]] = []

            def receive() -> None:
                while (message := json.loads(socket.recv()))["type"] != "end":
                    received.append((message, time.perf_counter()))

            reader = threading.Thread(target=receive)
            reader.start()
            total = 0
            for block, _ in _paced(_blocks(seconds)):
                socket.send(block.tobytes())
                total += len(block)
                sent[round(total / 44100, 3)] = time.perf_counter()
            socket.send("end")
            reader.join()
    finally:
        server.close()
    updates = [(m, at) for m, at in received if m["end"] - m["start"] >= ready["window"] - 1e-6]
    client = [at - _sent_at(sent, m["end"]) for m, at in updates]
    return {
        "server_p50_ms": statistics.median(m["latency_ms"] for m, _ in updates),
        "server_p95_ms": float(np.percentile([m["latency_ms"] for m, _ in updates], 95)),
        "client_p50_ms": _ms(client, 50),
        "client_p95_ms": _ms(client, 95),
    }


def _sent_at(sent: dict[float, float], end: float) -> float:
    """When the block holding stream time ``end`` (at the model's rate, so a few samples off) was sent."""
    times = sorted(sent)
    return sent[min(t for t in times if t >= end - 1e-3)] if times[-1] >= end - 1e-3 else sent[times[-1]]


def throughput(checkpoint: Path, requests: int, clients: int, *extra: str) -> dict[str, float]:
    import httpx

    wavs = []
    for seed in range(8):
        out = io.BytesIO()
        noise = 0.1 * np.random.default_rng(seed).standard_normal(10 * 32000)
        soundfile.write(out, noise.astype(np.float32), 32000, format="WAV", subtype="PCM_16")
        wavs.append(out.getvalue())
    server = Server("mn10_as", checkpoint, *extra)
    try:
        with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=clients)) as http:

            def post(index: int) -> None:
                answer = http.post(f"{server.url}/tag", files={"file": (f"{index}.wav", wavs[index % len(wavs)])})
                answer.raise_for_status()

            for index in range(2):  # warm-up
                post(index)
            before = server.health()
            start = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(post, range(requests)))
            elapsed = time.perf_counter() - start
            after = server.health()
    finally:
        server.close()
    passes = after["forward_passes"] - before["forward_passes"]
    return {"rps": requests / elapsed, "batch": (after["clips_scored"] - before["clips_scored"]) / max(passes, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 s of audio per latency run, 16 requests per row")
    parser.add_argument("--only", choices=("l1", "t1"), help="run one part")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"intra-op threads (default {THREADS})")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seconds, requests = (12.0, 16) if args.quick else (30.0, 48)
    with tempfile.TemporaryDirectory() as folder:
        if args.only != "t1":
            latencies(seconds, Path(folder))
        if args.only != "l1":
            model_batching(runs=2 if args.quick else 5)
            throughputs(requests, Path(folder))
    return 0


def latencies(seconds: float, folder: Path) -> None:
    print(f"L1: latency at hop {HOP} s, {seconds:g} s of 44.1-kHz stereo at real-time pace in 50-ms blocks")
    for name in MODELS:
        direct = latency_direct(name, seconds)
        stream = latency_stream(name, seconds, folder)
        print(
            f"  {name:18s} window {direct['window_s']:g} s | StreamingTagger p50 {direct['p50_ms']:.1f} ms, "
            f"p95 {direct['p95_ms']:.1f} ms (CPU {direct['cpu_ms']:.1f} ms/window) | /stream server "
            f"p50 {stream['server_p50_ms']:.1f}, p95 {stream['server_p95_ms']:.1f} ms; client p50 "
            f"{stream['client_p50_ms']:.1f}, p95 {stream['client_p95_ms']:.1f} ms",
            flush=True,
        )


def model_batching(runs: int) -> None:
    """The model call alone: 16 clips one at a time against one batch of 16 (process CPU time, best of ``runs``)."""
    print("T0: the forward pass of 16 clips, one at a time vs one batch (CPU time)")
    for name, seconds in (("mn10_as", 10.0), ("mn10_as", 1.0), ("cp_mobile_dcase23", 1.0)):
        pipeline = _pipeline(name)
        clips = 0.1 * torch.randn(16, round(seconds * pipeline.sample_rate), generator=torch.Generator().manual_seed(0))
        pipeline.forward_waveforms(clips[:2])  # warm-up

        def best(work: Any) -> float:
            times = []
            for _ in range(runs):
                before = time.process_time()
                work()
                times.append(time.process_time() - before)
            return min(times)

        alone = best(lambda: [pipeline.forward_waveforms(clips[i : i + 1]) for i in range(16)])  # noqa: B023
        batched = best(lambda: pipeline.forward_waveforms(clips))  # noqa: B023
        print(
            f"  {name:18s} {seconds:4g}-s clips: {1000 * alone:.0f} ms one at a time, {1000 * batched:.0f} ms batched "
            f"({alone / batched:.2f}x)",
            flush=True,
        )


def throughputs(requests: int, folder: Path) -> None:
    print(f"T1: /tag throughput, mn10_as, {requests} uploads of 10-s WAVs, {torch.get_num_threads()} thread(s)")
    checkpoint = _checkpoint("mn10_as", folder)
    baseline = throughput(checkpoint, requests, 1)
    print(f"  1 client (one at a time): {baseline['rps']:.2f} req/s, batch {baseline['batch']:.1f}", flush=True)
    for clients in (4, 16):
        row = throughput(checkpoint, requests, clients)
        print(
            f"  {clients:2d} clients: {row['rps']:.2f} req/s ({row['rps'] / baseline['rps']:.2f}x), mean batch "
            f"{row['batch']:.1f}",
            flush=True,
        )
    unbatched = throughput(checkpoint, requests, 16, "--max-batch", "1")
    print(f"  16 clients, --max-batch 1: {unbatched['rps']:.2f} req/s ({unbatched['rps'] / baseline['rps']:.2f}x)")


if __name__ == "__main__":
    sys.exit(main())
