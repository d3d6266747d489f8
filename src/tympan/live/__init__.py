"""Live tagging: a streaming tagger with bounded latency, and the sources that feed it (microphone, file).

See :class:`StreamingTagger`; ``tympan listen`` runs it in a terminal, ``tympan serve`` over a WebSocket.
"""

from __future__ import annotations

from .sources import FileSource, Microphone
from .tagger import LatencyStats, LiveUpdate, StreamingTagger, event_record

__all__ = ["FileSource", "LatencyStats", "LiveUpdate", "Microphone", "StreamingTagger", "event_record"]
