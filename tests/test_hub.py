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


def test_a_mirror_serves_when_the_first_url_fails(tmp_path: Path, cache: Path) -> None:
    source = tmp_path / "mirror" / "weights.pt"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    prefix = hashlib.sha256(PAYLOAD).hexdigest()[:8]  # torch hub file names carry such a prefix
    path = hub.resolve_checkpoint("m", (tmp_path / "gone" / "weights.pt").as_uri(), prefix, mirrors=(source.as_uri(),))
    assert path.read_bytes() == PAYLOAD
    other = source.with_name("other.pt")
    other.write_bytes(PAYLOAD)
    with pytest.raises(CheckpointError, match="SHA-256"):
        hub.resolve_checkpoint("n", other.as_uri(), prefix[:3])  # too short a prefix to trust


def _cached_mn04(cache: Path, seed: int = 0) -> Path:
    """The official file name of mn04_as, holding small stress weights, placed in the cache by hand."""
    import torch

    from tests._models import small_mn_state

    path = cache / "checkpoints" / "mn04_as_mAP_432.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(small_mn_state(seed), path)
    return path


def test_hash_is_recorded_at_the_first_strict_load_and_a_changed_file_refused(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import tympan

    monkeypatch.setenv("TYMPAN_OFFLINE", "1")
    path = _cached_mn04(cache)
    sidecar = path.with_name(path.name + ".sha256.json")
    tympan.load("mn04_as", device="cpu")
    assert json.loads(sidecar.read_text())["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    tympan.load("mn04_as", device="cpu")  # unchanged: accepted again
    _cached_mn04(cache, seed=1)  # same name, other weights (a changed release, or a corrupted disk)
    with pytest.raises(CheckpointError, match="has changed since it was first loaded"):
        tympan.load("mn04_as", device="cpu")
    from tympan.models import create

    with pytest.raises(CheckpointError, match="has changed"):
        create("mn04_as", pretrained=True)


def test_a_file_that_does_not_fit_is_not_recorded(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tympan.models import create

    monkeypatch.setenv("TYMPAN_OFFLINE", "1")
    path = _cached_mn04(cache)
    renamed = path.with_name("mn10_as_mAP_471.pt")  # mn04 weights under the mn10 name
    path.rename(renamed)
    with pytest.raises(CheckpointError, match="does not fit"):
        create("mn10_as", pretrained=True)
    assert not renamed.with_name(renamed.name + ".sha256.json").exists()
    with pytest.raises(Exception, match="architecture"):
        create("mn", pretrained=True)
