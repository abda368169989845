"""The ``Backend`` protocol trainers and deploy code program against (house rule 1).

A backend turns an IR :class:`~plastix.ir.Graph` into a runnable network. The torch backend
(:func:`plastix.backends.torch.compile`) satisfies it; the Lava backend runs graphs through its own
runner. State is explicit and passed, never kept in the network.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Protocol, TypeVar, runtime_checkable

from plastix.ir.errors import UnsupportedKindError
from plastix.ir.registry import kinds

T = TypeVar("T")

#: IR categories whose kinds every backend lowers (or refuses, saying why) one by one
LOWERED_CATEGORIES = ("population", "cell", "rule")


@runtime_checkable
class Network(Protocol):
    """A compiled graph: ``init_state`` / ``step`` / ``run`` over tensors with leading ``(P, B)``
    dims, and ``to_graph`` to write trained values back into the IR."""

    inputs: tuple
    outputs: tuple

    def init_state(self, P: Optional[int] = None, B: int = 1, **kwargs: Any) -> Any: ...

    def step(self, inputs: Mapping[str, Any], state: Any, **kwargs: Any) -> tuple[dict, Any]: ...

    def run(self, inputs: Mapping[str, Any], state: Any = None, **kwargs: Any) -> tuple[dict, Any]: ...

    def to_graph(self) -> Any: ...


@runtime_checkable
class Backend(Protocol):
    """``compile(graph, **options) -> Network``."""

    def compile(self, graph: Any, **options: Any) -> Network: ...


def lookup_lowering(table: Mapping[type, T], node: Any, backend: str, refused: Mapping[type, str] = {}) -> T:
    """The entry of ``table`` for ``node``'s IR class (kind dispatch keyed by the registry's classes).
    :class:`~plastix.ir.UnsupportedKindError` with the reason when the backend ``refused`` the kind,
    else listing the kinds it lowers."""
    entry = table.get(type(node))
    if entry is not None:
        return entry
    why = refused.get(type(node))
    kind = getattr(node, "kind", type(node).__name__)
    if why is not None:
        raise UnsupportedKindError(f"{kind} ({why})", backend)
    raise UnsupportedKindError(kind, backend, tuple(sorted(c.kind for c in table)))


def missing_lowerings(lowered: Iterable[type], refused: Mapping[type, str]) -> list[str]:
    """Registered kinds of :data:`LOWERED_CATEGORIES` that a backend neither lowers nor refuses with a
    reason: adding a kind to the IR without a lowering (or a refusal) in every backend fails a test."""
    have = set(lowered) | {c for c, why in refused.items() if why}
    return sorted(k for cat in LOWERED_CATEGORIES for k, c in kinds(cat).items() if c not in have)
