"""The contract of `tympan serve`: the command serves on 127.0.0.1:PORT; /tag answers labels best first; garbage
gets a 4xx JSON error and the server keeps serving."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ..serve._server import free_port

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")


def test_the_command_serves_tag_and_survives_garbage(checkpoint: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "tympan.cli", "serve", "--model", "mn04_as", "--checkpoint", str(checkpoint)]
    server = subprocess.Popen([*command, "--port", str(port)], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        wav = io.BytesIO()
        soundfile.write(wav, 0.1 * np.random.default_rng(0).standard_normal(16000), 16000, format="WAV")
        garbage = httpx.post(f"{url}/tag", files={"file": ("x.wav", b"RIFF not really a wave file")})
        assert 400 <= garbage.status_code < 500 and "error" in garbage.json()
        answer = httpx.post(f"{url}/tag", files={"file": ("a.wav", wav.getvalue())}, timeout=60)
        assert answer.status_code == 200
        labels = answer.json()["labels"]
        assert len(labels) == 5 and set(labels[0]) == {"label", "score"}
        assert [item["score"] for item in labels] == sorted((item["score"] for item in labels), reverse=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
