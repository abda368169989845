"""plastix's exceptions, in one place (no backend needs importing to catch them).

Bad input (exit code 2 in the CLI): :class:`IRValidationError` (names the node, or path inside a
file, and the field at fault, and the file when it came from one) with :class:`IRVersionError` and
:class:`UnknownKindError`; :class:`UnsupportedKindError` (a backend has no lowering for a kind);
:class:`MemoryLimitError` (a run would exceed its memory limit); :class:`BundleError` (a deploy
bundle is broken). A failed run (exit code 1):
:class:`BackendError` and its subclasses, e.g. ``plastix.backends.lava.runner.LavaRunError``."""
from __future__ import annotations


class IRValidationError(ValueError):
    """A graph, node, rule or file is invalid.

    ``node`` names the offending node (a population/projection/modulator name, a rule path such as
    ``"in_hid.rule.base"``, or ``""`` for the file as a whole); ``field`` names the field (or the
    archive member); ``msg`` says what is wrong; ``file`` is the file it was read from, if any.
    ``str(err)`` reads ``"model.plx: in_hid.rule.base.gamma: shape (3,) does not match ..."``.
    """

    def __init__(self, node: str, field: str, msg: str, *, file: str | None = None) -> None:
        self.node = node
        self.field = field
        self.msg = msg
        self.file = file
        where = ".".join(p for p in (node, field) if p)
        text = f"{where}: {msg}" if where else msg
        super().__init__(f"{file}: {text}" if file else text)

    def in_file(self, file: str) -> "IRValidationError":
        """The same error (same type), naming the file it was found in."""
        return _rebuild(type(self), self.node, self.field, self.msg, file)

    def at(self, node: str) -> "IRValidationError":
        """The same error (same type), naming another node (e.g. a rule's path in its file)."""
        return _rebuild(type(self), node, self.field, self.msg, self.file)

    def __reduce__(self):  # keyword-only ``file``: the default exception pickling cannot rebuild it
        return (_rebuild, (type(self), self.node, self.field, self.msg, self.file))


def _rebuild(cls: type, node: str, field: str, msg: str, file: str | None) -> IRValidationError:
    err = cls.__new__(cls)
    IRValidationError.__init__(err, node, field, msg, file=file)
    return err


class IRVersionError(IRValidationError):
    """The file was written by a newer (or unknown) version of the IR schema."""


class UnknownKindError(IRValidationError):
    """A ``kind`` string that no registered IR dataclass carries."""


class UnsupportedKindError(NotImplementedError):
    """A backend has no lowering for an IR kind."""

    def __init__(self, kind: str, backend: str, supported: tuple[str, ...] = (), *, reason: str = "") -> None:
        self.kind = kind
        self.backend = backend
        self.reason = reason
        why = f": {reason}" if reason else ""
        hint = f"; supported: {', '.join(sorted(supported))}" if supported else ""
        super().__init__(f"kind {kind!r} is not supported by the {backend} backend{why}{hint}")


class MemoryLimitError(ValueError):
    """A run would need more memory than it is allowed; nothing was allocated."""


class BundleError(ValueError):
    """A deploy bundle folder is missing, incomplete, corrupted or of another format."""


class BackendError(RuntimeError):
    """A backend could not run a model (its simulator failed, timed out or is not installed)."""


class BackendRunError(BackendError):
    """A backend's run failed while running (e.g. a Lava process died)."""


class BackendTimeoutError(BackendRunError, TimeoutError):
    """A backend's run did not finish within its timeout."""


class BackendUnavailableError(BackendError, ImportError):
    """A backend cannot be imported the way plastix needs it."""
