from __future__ import annotations

from tympan import errors


def test_errors_inherit_the_matching_builtins():
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.UnknownModelError, LookupError)
    assert issubclass(errors.AudioLoadError, OSError)
    assert not issubclass(errors.UnknownModelError, KeyError)  # KeyError quotes its message
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.TympanError)
