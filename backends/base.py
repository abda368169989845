"""The ``Backend`` protocol trainers and deploy code program against (house rule 1).

A backend turns an IR :class:`~plastix.ir.Graph` into a runnable network. The torch backend
(:func:`plastix.backends.torch.compile`) satisfies it; the Lava backend runs graphs through its own
runner. State is explicit and passed, never kept in the network.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, runtime_checkable


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
