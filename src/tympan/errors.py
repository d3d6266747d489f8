"""Exceptions of tympan.

Each error also inherits the matching builtin, so that plain ``except ValueError`` / ``except OSError``
clauses keep working. Messages say what to do next.
"""

from __future__ import annotations

__all__ = [
    "AudioDeviceError",
    "AudioLoadError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ServiceBusyError",
    "TympanError",
    "UnknownModelError",
]


class TympanError(Exception):
    """Base class of every error raised by tympan."""


class ConfigError(TympanError, ValueError):
    """A configuration value is invalid or contradicts another one."""


class UnknownModelError(TympanError, LookupError):
    """A model or architecture name is not registered."""


class CheckpointError(TympanError, RuntimeError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into."""


class AudioLoadError(TympanError, OSError):
    """An audio file or array cannot be decoded or is unusable (empty, non-finite, ...)."""


class DataError(TympanError, ValueError):
    """A dataset, its metadata or a stored teacher-logit file is inconsistent."""


class AudioDeviceError(TympanError, OSError):
    """No usable audio input: PortAudio or sounddevice is missing, or the device does not exist or fails."""


class ServiceBusyError(TympanError, RuntimeError):
    """The tagging service's queue is full: try again shortly (HTTP 503 with ``Retry-After``)."""
