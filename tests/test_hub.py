"""Checkpoint cache and verified downloads, against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tympan import hub
from tympan.errors import CheckpointError

PAYLOAD = b"tympan checkpoint bytes" * 1000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "weights.pt").write_bytes(PAYLOAD)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TYMPAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TYMPAN_OFFLINE", raising=False)
    return tmp_path / "cache"


def test_download_verifies_and_caches(server: str, cache: Path) -> None:
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    path = hub.resolve_checkpoint("m", f"{server}/weights.pt", sha)
    assert path == cache / "checkpoints" / "weights.pt"
    assert path.read_bytes() == PAYLOAD
    # Second call: served from the cache, even offline.
    assert hub.resolve_checkpoint("m", f"{server}/weights.pt", sha, offline=True) == path


def test_wrong_checksum_is_refused_and_leaves_nothing(server: str, cache: Path) -> None:
    with pytest.raises(CheckpointError, match="SHA-256"):
        hub.resolve_checkpoint("m", f"{server}/weights.pt", "0" * 64)
    assert not any((cache / "checkpoints").iterdir())


def test_missing_file_on_server_is_a_clear_error(server: str, cache: Path) -> None:
    with pytest.raises(CheckpointError, match="put it at"):
        hub.resolve_checkpoint("m", f"{server}/absent.pt")
    assert not any((cache / "checkpoints").iterdir())


def test_offline_names_the_place_for_the_file(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TYMPAN_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=str(cache / "checkpoints" / "w.pt").replace("\\", "\\\\")):
        hub.resolve_checkpoint("m", "http://127.0.0.1:9/w.pt")


def test_no_url_asks_for_a_checkpoint(cache: Path) -> None:
    with pytest.raises(CheckpointError, match="--checkpoint"):
        hub.resolve_checkpoint("m", None)
