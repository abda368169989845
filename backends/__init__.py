"""plastix.backends — lowerings of the IR: torch (simulator) and lava (Loihi emulation).

:func:`compile` is the one door: it lives here, above both backends, because each backend imports
:mod:`plastix.backends.base` (the interface) and the door imports the backends."""
from __future__ import annotations

from typing import Any

from plastix.backends.base import EpisodeNetwork

BACKENDS = ("torch", "lava")
PRECISIONS = ("float", "fixed")


def compile(graph: Any, backend: str = "torch", precision: str = "float", *, timeout: float = 300.0,
            learning_engine: str = "auto", **options: Any) -> EpisodeNetwork:
    """``graph`` compiled on ``backend`` in ``precision`` (fixed: the graph must be Loihi-representable,
    e.g. :func:`plastix.backends.quantize.quantize_graph`'s output). ``timeout`` (seconds per run) and
    ``learning_engine`` ("auto" | "exact") apply to Lava; ``options`` go to the torch compiler (its
    ``dtype`` defaults to float64 here). The backend is imported only when asked for."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if backend == "lava":
        import plastix.backends.lava as lava

        return lava.compile(graph, precision, timeout=timeout, learning_engine=learning_engine)
    import torch

    import plastix.backends.torch as torch_backend

    return torch_backend.compile(graph, precision=precision, **{"dtype": torch.float64, **options})
