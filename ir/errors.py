"""Exceptions raised by the IR. Every validation problem is an :class:`IRValidationError` that
names the node (or file / path inside a file) and the field at fault."""
from __future__ import annotations


class IRValidationError(ValueError):
    """A graph, node, rule or file is invalid.

    ``node`` names the offending node (a population/projection/modulator name, a rule path such as
    ``"in_hid.rule.base"``, or ``"<file>"``); ``field`` names the field; ``msg`` says what is wrong.
    """

    def __init__(self, node: str, field: str, msg: str) -> None:
        self.node = node
        self.field = field
        self.msg = msg
        super().__init__(f"{node}.{field}: {msg}" if field else f"{node}: {msg}")

    def within(self, prefix: str) -> "IRValidationError":
        """The same error with ``prefix`` prepended to the node path (used by the loader)."""
        node = f"{prefix}.{self.node}" if self.node and not self.node.startswith("<") else prefix
        err = type(self).__new__(type(self))
        IRValidationError.__init__(err, node, self.field, self.msg)
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
