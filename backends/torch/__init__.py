"""plastix.backends.torch — the PyTorch simulator: ``compile(graph) -> nn.Module``.

>>> from plastix.ir.examples import cue_association_net
>>> net = compile(cue_association_net())
>>> sorted(net.outputs)
['action']
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from ...ir import Graph
from .fixed import FixedNetwork as FixedNetwork
from .network import LOWERING as LOWERING
from .network import POPULATIONS as POPULATIONS
from .network import Schedule as Schedule
from .network import parse_schedule as parse_schedule
from .network import NetState as NetState
from .network import TorchNetwork as TorchNetwork
from .network import export_graph as export_graph
from .surrogate import SURROGATES as SURROGATES


def compile(graph: Graph, *, device: Any = None, dtype: torch.dtype = torch.float32, precision: str = "float",
            surrogate: str = "fast_sigmoid", population: Optional[int] = None, jit: bool = False,
            jit_chunk: int = 8, memory_limit: Any = None, schedule: "Schedule | str" = "step") -> "TorchNetwork | FixedNetwork":
    """Lower ``graph`` to a PyTorch module.

    ``precision="float"`` gives a differentiable :class:`TorchNetwork` (surrogate gradient
    ``surrogate`` = ``"fast_sigmoid"`` or ``"exponential"``); ``precision="fixed"`` a
    :class:`FixedNetwork` reproducing Lava's ``fixed_pt`` integers bit-exactly (the graph must be
    representable; see :func:`plastix.backends.quantize.quantize_graph`). ``population`` is the
    default number of individuals P of :meth:`TorchNetwork.init_state`.

    ``jit=True`` (float only) makes :meth:`TorchNetwork.run` call ``torch.compile`` once on a pure
    function of ``jit_chunk`` unrolled steps (``dynamic=False``, ``fullgraph=True``) and loop over
    chunks; the same math as eager (docs/semantics.md), compile time paid on the first call per grad
    mode and input shape. Graphs with step-index- or RNG-dependent rules (synaptic Q, Loihi, interval > 1) and any
    compiler failure fall back to eager with a ``RuntimeWarning``.

    ``schedule="layerwise"`` (float only) runs feed-forward graphs one population at a time over the
    whole window, in chunks between the rules' interval updates (:mod:`plastix.backends.torch.layerwise`;
    the same results, each per-sample plastic weight read once per chunk); a graph it cannot run
    (recurrent, per-step rules) raises :class:`~plastix.backends.torch.layerwise.LayerwiseError`.
    ``run(..., schedule=...)`` overrides the choice per run. With ``jit`` it compiles its layer chunks
    (at any rule interval; one variant per layer, chunk length and rule phases).

    Before allocating, ``init_state`` and ``run`` estimate the memory the run needs and raise
    :class:`plastix.backends.memory.MemoryLimitError` above ``memory_limit`` (bytes or ``"16G"``;
    default ``$PLASTIX_MAX_MEMORY`` or :data:`plastix.backends.memory.DEFAULT_LIMIT`).
    """
    if precision == "fixed":
        if jit:
            raise ValueError("compile: jit=True is for precision='float' (the fixed-point network is not compiled)")
        if parse_schedule(schedule) is not Schedule.STEP:
            raise ValueError("compile: schedule='layerwise' is for precision='float'")
        return FixedNetwork(graph, device=device, dtype=dtype, population=population, memory_limit=memory_limit)
    return TorchNetwork(graph, device=device, dtype=dtype, precision=precision, surrogate=surrogate,
                        population=population, jit=jit, jit_chunk=jit_chunk, memory_limit=memory_limit,
                        schedule=schedule)
