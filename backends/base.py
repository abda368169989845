"""What every backend offers (house rule 1); the one door to them is :func:`plastix.backends.compile`.

A backend turns an IR :class:`~plastix.ir.Graph` into a runnable network. ``plastix.backends.compile`` opens
either backend in either precision; every network it returns runs one episode of numpy inputs with
:meth:`EpisodeNetwork.episode` and reports its outputs and final plastic weights (:class:`Episode`):
deploy, reports and backend comparisons use that, never a backend's internals. The torch networks
also offer the batched, differentiable ``init_state`` / ``step`` / ``run`` / ``pure_step`` API
(:class:`Network`), with state passed explicitly, never kept in the network. Kind dispatch in both
backends goes through :func:`lookup_lowering`, keyed by the registry's IR classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Protocol, TypeVar, runtime_checkable

import numpy as np

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


@dataclass(frozen=True)
class Episode:
    """One run of a network: ``outputs`` name -> ``(T, size[, channels])``; ``weights`` the final weights
    ``(n_post, n_pre)`` of every projection whose rule changes them (IR units before mask and sign in
    float; the learning engine's integer weights in fixed point): ``W``, or the weight in effect
    ``W + alpha E`` for the SpikePropamine rules, whose ``W`` never changes."""

    outputs: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]


@runtime_checkable
class EpisodeNetwork(Protocol):
    """What :func:`plastix.backends.compile` returns, on every backend and precision."""

    def episode(self, inputs: Mapping[str, np.ndarray]) -> Episode: ...

    def close(self) -> None: ...


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
        raise UnsupportedKindError(kind, backend, reason=why)
    raise UnsupportedKindError(kind, backend, tuple(sorted(c.kind for c in table)))


def missing_lowerings(lowered: Iterable[type], refused: Mapping[type, str]) -> list[str]:
    """Registered kinds of :data:`LOWERED_CATEGORIES` that a backend neither lowers nor refuses with a
    reason: adding a kind to the IR without a lowering (or a refusal) in every backend fails a test."""
    have = set(lowered) | {c for c, why in refused.items() if why}
    return sorted(k for cat in LOWERED_CATEGORIES for k, c in kinds(cat).items() if c not in have)
