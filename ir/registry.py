"""The one registry of IR kinds. ``@register_kind("name", category)`` drives serialization,
``__all__``-style listings, backend lowering coverage and the contract tests."""
from __future__ import annotations

from typing import Callable, TypeVar

from .errors import UnknownKindError

T = TypeVar("T", bound=type)

_KINDS: dict[str, type] = {}
CATEGORIES = ("graph", "population", "cell", "projection", "modulator", "rule")


def register_kind(kind: str, category: str) -> Callable[[T], T]:
    """Class decorator: give a frozen IR dataclass its on-disk ``kind`` and ``category``."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")

    def deco(cls: T) -> T:
        if kind in _KINDS and _KINDS[kind] is not cls:
            raise ValueError(f"IR kind {kind!r} registered twice ({_KINDS[kind].__name__}, {cls.__name__})")
        cls.kind = kind  # type: ignore[attr-defined]
        cls.category = category  # type: ignore[attr-defined]
        _KINDS[kind] = cls
        return cls

    return deco


def lookup(kind: object, *, node: str = "<file>", field: str = "kind", category: str | None = None) -> type:
    """The class registered for ``kind``; :class:`UnknownKindError` listing the known kinds otherwise."""
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None or (category is not None and cls.category != category):  # type: ignore[attr-defined]
        known = sorted(k for k, c in _KINDS.items() if category is None or c.category == category)  # type: ignore[attr-defined]
        raise UnknownKindError(node, field, f"unknown kind {kind!r}; known: {', '.join(known)}")
    return cls


def kinds(category: str | None = None) -> dict[str, type]:
    """Registered kinds (optionally of one category), name -> class."""
    return {k: c for k, c in _KINDS.items() if category is None or c.category == category}  # type: ignore[attr-defined]
