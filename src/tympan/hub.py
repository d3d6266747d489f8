"""Official checkpoints: where they live, a local cache, verified downloads, and recorded checksums.

The URLs and SHA-256 hashes are data of the zoo entries (:class:`~tympan.models.registry.ModelEntry`); this module
only fetches. A download goes to a temporary file in the cache folder, is hashed while it streams, and is moved into
place with one atomic ``os.replace`` only when the hash matches (a full SHA-256, or the prefix that torch hub file
names carry), so the cache never holds a partial or corrupt file. A release whose first URL fails is fetched from the
entry's mirrors. Offline (or with ``TYMPAN_OFFLINE=1``), a missing file raises an error that names the exact path to
put it at.

No reference repository publishes SHA-256 hashes, so the cache records its own (trust on first use): when a cached
file is first loaded strictly into its model, its hash goes into a sidecar ``<file>.sha256.json``; every later load
from the cache hashes the file again and refuses it, with :class:`~tympan.errors.CheckpointError`, when it changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CheckpointError
from .files import atomic_path, write_atomically

__all__ = [
    "cache_dir",
    "cached_path",
    "download",
    "file_sha256",
    "in_cache",
    "preset_checkpoint",
    "record_checksum",
    "resolve_checkpoint",
    "verify_checksum",
]

if TYPE_CHECKING:
    from .models.registry import ModelEntry

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The checkpoint cache: ``$TYMPAN_CACHE``, else ``~/.cache/tympan``."""
    return Path(os.environ.get("TYMPAN_CACHE") or Path.home() / ".cache" / "tympan")


def cached_path(filename: str) -> Path:
    """Where the cache keeps the file ``filename``."""
    return cache_dir() / "checkpoints" / filename


def download(url: str, destination: Path, *, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``destination`` atomically, refusing it when its SHA-256 differs from ``sha256``.

    Raises:
        CheckpointError: the download fails or the hash differs; nothing is left at ``destination``.
    """
    digest = hashlib.sha256()
    try:
        with atomic_path(destination) as temporary:
            with temporary.open("wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if sha256 is not None and not _matches(digest.hexdigest(), sha256):
                raise CheckpointError(
                    f"the file downloaded from {url} has SHA-256 {digest.hexdigest()}, expected {sha256}; it was "
                    "refused (a corrupt transfer or a changed release). Retry, or download it by hand and pass "
                    "--checkpoint FILE."
                )
    except (urllib.error.URLError, OSError) as error:
        raise CheckpointError(f"cannot download {url}: {error}") from error
    logger.info("downloaded %s to %s", url, destination)
    return destination


def _matches(digest: str, published: str) -> bool:
    """A full SHA-256, or a prefix of at least 8 hex digits (torch hub's ``name-<prefix>.pth``)."""
    published = published.lower()
    return digest == published if len(published) == 64 else len(published) >= 8 and digest.startswith(published)


def resolve_checkpoint(
    name: str,
    url: str | None,
    sha256: str | None = None,
    *,
    mirrors: tuple[str, ...] = (),
    offline: bool | None = None,
) -> Path:
    """The local file of the official checkpoint of preset ``name``: from the cache, else downloaded.

    Args:
        name: the preset name (for messages).
        url: the public release URL; its last part is the file name in the cache.
        sha256: the published hash (or prefix), checked on download where known.
        mirrors: other URLs of the same file, tried in order when ``url`` fails.
        offline: never touch the network; default: ``TYMPAN_OFFLINE`` is set to a non-empty value other than 0.

    Raises:
        CheckpointError: no URL is known, or the file is absent and cannot be fetched; the message says where
            to put it.
    """
    if url is None:
        raise CheckpointError(
            f"{name!r} has no published checkpoint; pass the weights with checkpoint=FILE (--checkpoint FILE)"
        )
    path = cached_path(url.rsplit("/", 1)[-1])
    if path.is_file():
        return path
    if offline is None:
        offline = os.environ.get("TYMPAN_OFFLINE", "") not in ("", "0")
    where = f"download {url} and put it at {path} (or set TYMPAN_CACHE), or pass --checkpoint FILE"
    if offline:
        raise CheckpointError(f"the checkpoint of {name!r} is not in the cache and tympan is offline: {where}")
    errors = []
    for source in (url, *mirrors):
        try:
            return download(source, path, sha256=sha256)
        except CheckpointError as error:
            errors.append(str(error))
    raise CheckpointError(f"{'; '.join(errors)}. To work offline, {where}")


def preset_checkpoint(entry: ModelEntry) -> Path:
    """The local file of a zoo entry's official checkpoint (:func:`resolve_checkpoint` with its URL, hash and mirrors).

    Raises:
        CheckpointError: as :func:`resolve_checkpoint`.
    """
    mirrors = entry.checkpoint_mirrors
    return resolve_checkpoint(entry.name, entry.checkpoint_url, entry.checkpoint_sha256, mirrors=mirrors)


def in_cache(path: str | Path) -> bool:
    """Whether ``path`` is a file of the checkpoint cache (whose hashes are recorded and checked)."""
    return Path(path).resolve().parent == (cache_dir() / "checkpoints").resolve()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def verify_checksum(path: str | Path) -> None:
    """Refuse a cached file whose SHA-256 differs from the one recorded when it was first loaded.

    A file without a record passes (it is recorded after its first strict load, :func:`record_checksum`).

    Raises:
        CheckpointError: the file changed since its hash was recorded.
    """
    path = Path(path)
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        return
    try:
        recorded = json.loads(sidecar.read_text())["sha256"]
    except (ValueError, KeyError) as error:
        raise CheckpointError(f"the checksum record {sidecar} is unreadable ({error}); delete it") from None
    actual = file_sha256(path)
    if actual != recorded:
        raise CheckpointError(
            f"the cached checkpoint {path} has changed since it was first loaded: SHA-256 {actual}, recorded "
            f"{recorded} in {sidecar}. It was refused. Delete both files to download it again, or pass your own "
            "file with checkpoint=FILE (--checkpoint FILE)."
        )


def record_checksum(path: str | Path) -> str:
    """Record the SHA-256 of a cached file beside it, unless already recorded; returns the recorded hash.

    Called after the first strict load of the file into its model, so that only a file that fitted is trusted.
    """
    path = Path(path)
    sidecar = _sidecar(path)
    if sidecar.is_file():
        return json.loads(sidecar.read_text())["sha256"]
    digest = file_sha256(path)
    record = {"file": path.name, "size": path.stat().st_size, "sha256": digest}
    write_atomically(sidecar, json.dumps(record, indent=1) + "\n")
    logger.info("recorded SHA-256 %s of %s", digest, path)
    return digest
