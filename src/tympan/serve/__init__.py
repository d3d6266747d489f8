"""The tagging service behind ``tympan serve``: an HTTP/WebSocket app over one model and its batch queue.

Needs the ``serve`` extra (``pip install 'tympan[serve]'``: Starlette, uvicorn, python-multipart, websockets).
"""

from __future__ import annotations

from .app import TaggingService, create_app
from .batching import BatchQueue

__all__ = ["BatchQueue", "TaggingService", "create_app"]
