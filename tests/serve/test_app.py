"""The service over HTTP and WebSocket: good files, garbage, oversized bodies, a full queue, concurrent clients."""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile

import tympan
from tympan.live import StreamingTagger
from tympan.pipeline import AudioPipeline
from tympan.tagging import detect_events, timeline, timeline_record

from .._models import small_mn_state
from ._server import running

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from tympan.serve import create_app  # noqa: E402

RATE = 32000


@pytest.fixture(scope="module")
def pipeline() -> AudioPipeline:
    return tympan.load("mn", small_mn_state(), width_mult=0.4, device="cpu")


@pytest.fixture(scope="module")
def server(pipeline: AudioPipeline) -> Iterator[tuple[str, object]]:
    app = create_app(pipeline, max_upload_mb=2.0, max_pending=32, top_k=5, window=1.0)
    with running(app) as url:
        yield url, app.state.service


def _wav(seconds: float, seed: int, rate: int = RATE) -> bytes:
    out = io.BytesIO()
    samples = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))
    soundfile.write(out, samples.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def _post(url: str, data: bytes, name: str = "a.wav", **params: object) -> httpx.Response:
    return httpx.post(f"{url}/tag", files={"file": (name, data, "audio/wav")}, params=params, timeout=60)


def _expected(pipeline: AudioPipeline, data: bytes, top_k: int = 5) -> list[tuple[str, float]]:
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    return pipeline.tag(samples, rate, top_k=top_k)


def _labels(answer: dict) -> list[tuple[str, float]]:
    return [(item["label"], item["score"]) for item in answer["labels"]]


def _assert_same(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [label for label, _ in got] == [label for label, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)


def test_health_models_and_page(server: tuple[str, object]) -> None:
    url, _ = server
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    models = httpx.get(f"{url}/models").json()
    assert models["served"]["sample_rate"] == RATE and "mn10_as" in models["zoo"]
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert httpx.get(f"{url}/static/capture-worklet.js").status_code == 200


def test_a_good_file_gets_its_labels_best_first(server: tuple[str, object], pipeline: AudioPipeline) -> None:
    url, _ = server
    data = _wav(1.5, seed=0, rate=44100)
    answer = _post(url, data, name="dog.wav", top_k=3)
    assert answer.status_code == 200
    body = answer.json()
    assert body["file"] == "dog.wav" and body["duration"] == 1.5
    _assert_same(_labels(body), _expected(pipeline, data, top_k=3))
    scores = [item["score"] for item in body["labels"]]
    assert scores == sorted(scores, reverse=True)


def test_window_and_hop_give_the_timeline_and_events(server: tuple[str, object], pipeline: AudioPipeline) -> None:
    url, _ = server
    data = _wav(2.2, seed=1)
    body = _post(url, data, window=1.0, hop=0.5).json()
    samples, _ = soundfile.read(io.BytesIO(data), dtype="float32")
    line = timeline(pipeline, samples, window=1.0, hop=0.5)
    expected = timeline_record(line, detect_events(line), 5)
    assert [w["start"] for w in body["windows"]] == [w["start"] for w in expected["windows"]]
    assert [e["label"] for e in body["events"]] == [e["label"] for e in expected["events"]]
    assert _post(url, data, hop=0.5).status_code == 422
    assert _post(url, data, window="x").status_code == 422


def test_what_is_not_audio_gets_a_json_4xx_and_the_server_goes_on(server: tuple[str, object]) -> None:
    url, _ = server
    garbage = bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8))
    for response, status in [
        (_post(url, garbage, name="x.mp3"), 415),
        (_post(url, b"", name="empty.wav"), 415),
        (httpx.post(f"{url}/tag", content=b"hello", headers={"content-type": "text/plain"}), 415),
        (httpx.post(f"{url}/tag", files={"other": ("a.wav", _wav(0.5, 2))}), 422),
        (httpx.post(f"{url}/tag", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"}), 422),
    ]:
        assert response.status_code == status, response.text
        assert "error" in response.json() and "Traceback" not in response.text
    assert "x.mp3 is not audio" in _post(url, garbage, name="x.mp3").json()["error"]
    assert _post(url, _wav(0.5, 3)).status_code == 200


def test_oversized_uploads_get_413_declared_or_streamed(server: tuple[str, object]) -> None:
    url, _ = server
    big = _wav(40.0, seed=4)  # 2.56 MB against the 2 MB limit
    assert _post(url, big).status_code == 413

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
        boundary = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        yield boundary
        for offset in range(0, len(big), 65536):
            yield big[offset : offset + 65536]
        yield b"\r\n--b--\r\n"

    response = httpx.post(f"{url}/tag", content=chunked(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_uploads_leave_no_temporary_file_behind(
    server: tuple[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above 1 MB Starlette spools an upload to an unlinked temporary file: it is closed after every answer."""
    url, _ = server
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the server's temporary files go here
    big = _wav(20.0, seed=5)  # 1.28 MB: on disk while it is read
    assert _post(url, big).status_code == 200
    assert _post(url, big + big).status_code == 413
    assert _post(url, big[:44] + bytes(1_200_000), name="zeros.wav").status_code == 200
    assert _post(url, bytes(1_200_000), name="zeros.bin").status_code == 415
    assert list(tmp_path.iterdir()) == []
    assert [link for link in _open_files() if link.startswith(str(tmp_path))] == []


def _open_files() -> list[str]:
    fds = Path("/proc/self/fd")
    if not fds.exists():
        pytest.skip("needs /proc to list open files")
    links = []
    for fd in fds.iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:
            continue
    return links


def test_concurrent_clients_get_their_own_answers_in_shared_batches(
    server: tuple[str, object], pipeline: AudioPipeline
) -> None:
    """12 uploads of two lengths wait behind a busy worker: two forward passes answer all, each its own."""
    url, service = server
    files = [_wav(1.0 if i % 2 else 0.75, seed=10 + i) for i in range(12)]
    before = httpx.get(f"{url}/health").json()
    release = threading.Event()
    busy = service.jobs.call(release.wait)  # type: ignore[attr-defined]
    with ThreadPoolExecutor(12) as clients:
        answers = [clients.submit(_post, url, files[i], f"{i}.wav") for i in range(12)]
        while service.jobs.pending < 13:  # type: ignore[attr-defined]
            time.sleep(0.01)
        release.set()
        busy.result(timeout=10)
        answers = [answer.result() for answer in answers]
    for i, answer in enumerate(answers):
        assert answer.status_code == 200 and answer.json()["file"] == f"{i}.wav"
        _assert_same(_labels(answer.json()), _expected(pipeline, files[i]))
    after = httpx.get(f"{url}/health").json()
    assert after["clips_scored"] - before["clips_scored"] == 12
    assert after["forward_passes"] - before["forward_passes"] == 2  # one batch per length


def test_a_full_queue_answers_503_with_retry_after(pipeline: AudioPipeline) -> None:
    app = create_app(pipeline, max_pending=1)
    with running(app) as url:
        release = threading.Event()
        blocker = app.state.service.jobs.call(release.wait)  # the worker is busy, the queue full
        response = _post(url, _wav(0.5, 6))
        release.set()
        blocker.result(timeout=10)
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "busy" in response.json()["error"]
        assert _post(url, _wav(0.5, 6)).status_code == 200


def test_an_internal_failure_is_a_json_500_without_traceback(
    pipeline: AudioPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(pipeline)
    with running(app) as url:

        def broken(waveforms: object) -> None:
            raise RuntimeError("out of memory at /secret/path")

        monkeypatch.setattr(pipeline, "forward_waveforms", broken)
        response = _post(url, _wav(0.5, 7))
        monkeypatch.undo()
        assert response.status_code == 500
        assert response.json() == {"error": "internal error (RuntimeError); the server's log has the details"}
        assert _post(url, _wav(0.5, 7)).status_code == 200


def test_the_stream_sends_the_streaming_taggers_updates(server: tuple[str, object], pipeline: AudioPipeline) -> None:
    from websockets.sync.client import connect

    url, _ = server
    pcm = (8000 * np.random.default_rng(8).standard_normal(int(2.0 * 44100))).astype(np.int16)
    ws_url = url.replace("http", "ws") + "/stream?sample_rate=44100&format=int16&hop=0.5&top_k=3"
    updates = []
    with connect(ws_url) as socket:
        assert json.loads(socket.recv())["type"] == "ready"
        for offset in range(0, len(pcm), 2205):
            socket.send(pcm[offset : offset + 2205].tobytes())
        socket.send("end")
        while (message := json.loads(socket.recv()))["type"] != "end":
            updates.append(message)
    local = StreamingTagger(pipeline, sample_rate=44100, window=1.0, hop=0.5)
    expected = {(u.start, u.end): u for u in local.feed(pcm) + local.finish()[0]}
    # Messages that arrive while a window is scored are fed together and only their newest window is scored.
    assert updates and (updates[-1]["start"], updates[-1]["end"]) == max(expected)
    for got in updates:
        _assert_same(_labels(got), pipeline.top(expected[got["start"], got["end"]].scores, 3))
    assert message["latency"]["windows"] == len(updates)


def test_the_stream_refuses_bad_settings_and_frames(server: tuple[str, object]) -> None:
    from websockets.sync.client import connect

    url, _ = server
    base = url.replace("http", "ws") + "/stream"
    with connect(f"{base}?format=float32") as socket:
        assert "sample_rate" in json.loads(socket.recv())["error"]
    with connect(f"{base}?sample_rate=16000&format=mp3") as socket:
        assert "format" in json.loads(socket.recv())["error"]
    with connect(f"{base}?sample_rate=16000&channels=2") as socket:
        assert json.loads(socket.recv())["type"] == "ready"
        socket.send(b"\x00" * 12)  # 1.5 stereo float32 frames
        assert "whole" in json.loads(socket.recv())["error"]
    assert httpx.get(f"{url}/health").status_code == 200
