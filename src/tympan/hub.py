"""Official checkpoints: where they live, a local cache, and verified downloads.

The URLs and SHA-256 hashes are data of the zoo entries (:class:`~tympan.models.registry.ModelEntry`); this module
only fetches. A download goes to a temporary file in the cache folder, is hashed while it streams, and is moved into
place with one atomic ``os.replace`` only when the hash matches, so the cache never holds a partial or corrupt file.
Offline (or with ``TYMPAN_OFFLINE=1``), a missing file raises an error that names the exact path to put it at.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from .errors import CheckpointError
from .files import atomic_path

__all__ = ["cache_dir", "cached_path", "download", "resolve_checkpoint"]

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
            if sha256 is not None and digest.hexdigest() != sha256.lower():
                raise CheckpointError(
                    f"the file downloaded from {url} has SHA-256 {digest.hexdigest()}, expected {sha256}; it was "
                    "refused (a corrupt transfer or a changed release). Retry, or download it by hand and pass "
                    "--checkpoint FILE."
                )
    except (urllib.error.URLError, OSError) as error:
        raise CheckpointError(f"cannot download {url}: {error}") from error
    logger.info("downloaded %s to %s", url, destination)
    return destination


def resolve_checkpoint(name: str, url: str | None, sha256: str | None = None, *, offline: bool | None = None) -> Path:
    """The local file of the official checkpoint of preset ``name``: from the cache, else downloaded.

    Args:
        name: the preset name (for messages).
        url: the public release URL; its last part is the file name in the cache.
        sha256: the published hash, checked on download where known.
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
    try:
        return download(url, path, sha256=sha256)
    except CheckpointError as error:
        raise CheckpointError(f"{error}. To work offline, {where}") from error
