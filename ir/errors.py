"""Exceptions raised by the IR. Every validation problem is an :class:`IRValidationError` that
names the node (or path inside a file) and the field at fault, and the file when it came from one."""
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

    def __init__(self, kind: str, backend: str, supported: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.backend = backend
        hint = f"; supported: {', '.join(sorted(supported))}" if supported else ""
        super().__init__(f"kind {kind!r} is not supported by the {backend} backend{hint}")
