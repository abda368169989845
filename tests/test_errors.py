"""One error hierarchy (plastix.ir.errors): backends raise its subclasses, the CLI classifies by type."""
from __future__ import annotations

import pytest

from plastix.ir import errors


def test_backend_errors_are_the_shared_classes():
    from plastix.backends.lava.compat import LavaImportError
    from plastix.backends.lava.runner import LavaRunError, LavaTimeoutError
    from plastix.backends.memory import MemoryLimitError
    from plastix.deploy.bundle import BundleError

    assert issubclass(LavaRunError, errors.BackendRunError)
    assert issubclass(LavaTimeoutError, errors.BackendTimeoutError) and issubclass(LavaTimeoutError, TimeoutError)
    assert issubclass(LavaImportError, errors.BackendUnavailableError) and issubclass(LavaImportError, ImportError)
    assert MemoryLimitError is errors.MemoryLimitError and BundleError is errors.BundleError


@pytest.mark.parametrize("exc,code", [
    (errors.IRValidationError("h", "du", "out of range"), 2),
    (errors.UnsupportedKindError("quantum", "lava"), 2),
    (errors.MemoryLimitError("too big"), 2),
    (errors.BundleError("no manifest"), 2),
    (errors.BackendTimeoutError("did not finish within 1 s"), 1),
    (errors.BackendUnavailableError("lava missing"), 1),
    (KeyError("x"), 1),
])
def test_cli_classifies_errors_by_type(exc, code):
    from plastix.cli import _classify

    msg, got = _classify(exc)
    assert got == code and msg
    if code == 1 and isinstance(exc, errors.BackendError):
        assert "backend run failed" in msg
    if isinstance(exc, KeyError):
        assert msg.startswith("internal error")
