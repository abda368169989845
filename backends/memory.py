"""The memory a run needs, estimated from the graph before anything is allocated, and the limit it
must fit in (``docs/deploy.md``, "Limits").

Every backend calls :func:`check` before allocating a run's state (torch ``TorchNetwork.run`` /
``init_state``, ``FixedNetwork.run``, the Lava backend's ``LavaNetwork.run``), and the CLI calls it
before generating an input set. A run whose estimate exceeds the limit is refused with a
:class:`MemoryLimitError` that names the estimate, its largest parts and the way to allow it.

The limit is ``memory_limit=`` where an API takes it, else the environment variable
``PLASTIX_MAX_MEMORY`` (``"16G"``, ``"512M"``, a number of bytes, or ``"none"``; the CLI's
``--max-memory`` sets it), else half the machine's physical memory (:data:`DEFAULT_LIMIT` where
that is unknown).
Estimates count what grows with the model and the run (state, per-synapse rule state, delay lines,
recorded outputs and inputs, autograd's saved tensors, step temporaries), not the interpreter; they
aim to be within a small factor of the real peak, erring high.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from plastix.ir.errors import MemoryLimitError

__all__ = ["MemoryLimitError", "Estimate", "DEFAULT_LIMIT", "ENV", "parse_size", "format_size", "limit",
           "torch_run", "lava_run", "check"]

ENV = "PLASTIX_MAX_MEMORY"
DEFAULT_LIMIT = 4 << 30
"""Ceiling of one run (bytes) where the machine's memory is unknown; else half of it."""
LAVA_PROCESS_BYTES = 12 << 20
"""Proportional resident memory of one Lava OS process beyond its variables (measured 6-9 MiB)."""
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}




def parse_size(text: str | int) -> int | None:
    """``"16G"`` / ``"512MiB"`` / ``"1.5g"`` / ``"1000000"`` -> bytes; ``"none"`` -> None (no limit)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError(f"memory size must be > 0, got {text}")
        return text
    s = str(text).strip().lower()
    if s in ("none", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", s)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"not a memory size: {text!r} (use e.g. 512M, 16G, a number of bytes, or none)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def format_size(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


def _physical() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def limit(memory_limit: int | str | None = None) -> int | None:
    """The limit in bytes (None: unlimited): ``memory_limit``, else ``$PLASTIX_MAX_MEMORY``, else the default."""
    if memory_limit is not None:
        return parse_size(memory_limit)
    env = os.environ.get(ENV)
    if env:
        return parse_size(env)
    phys = _physical()
    return phys // 2 if phys else DEFAULT_LIMIT


@dataclass
class Estimate:
    """Bytes a run needs, by part."""

    what: str
    parts: dict[str, int] = field(default_factory=dict)

    def add(self, part: str, nbytes: float) -> None:
        self.parts[part] = self.parts.get(part, 0) + int(nbytes)

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self, top: int = 3) -> str:
        big = sorted(self.parts.items(), key=lambda kv: -kv[1])[:top]
        return ", ".join(f"{k} {format_size(v)}" for k, v in big if v)


def check(est: Estimate, memory_limit: int | str | None = None) -> None:
    """Raise :class:`MemoryLimitError` if ``est`` exceeds the limit."""
    cap = limit(memory_limit)
    if cap is not None and est.total > cap:
        raise MemoryLimitError(
            f"{est.what} would need about {format_size(est.total)} ({est.describe()}), more than the limit of "
            f"{format_size(cap)}; use fewer steps or a smaller batch, or allow it with --max-memory SIZE "
            f"(memory_limit=, or ${ENV})")


# ---------------------------------------------------------------------------------------------
# what a graph holds, in values per individual and batch element


def _pop_values(p: Any) -> int:
    """State of one population per (individual, batch): output, pending input, neuron state."""
    out, inp = p.size * p.out_channels, p.size * p.in_channels
    if p.kind == "input":
        return out
    if p.kind == "cuba_lif":
        return out + inp + 3 * p.size
    if p.kind == "li":
        return out + inp + 2 * p.size
    return out + inp + p.size * _cell_values(p.cell)


def _cell_values(cell: Any) -> int:
    """State plus step temporaries (gate pre-activations) of one gated unit."""
    width = getattr(cell, "memory", None) or cell.hidden
    gates = {"enu_cell": 4, "gru_cell": 3, "lstm_cell": 4}.get(cell.kind, 4)
    state = {"lstm_cell": 2 * width}.get(cell.kind, width) + cell.out_channels
    return state + gates * width + cell.in_channels


def _rule_values(rule: Any, n_post: int, n_pre: int, itemsize: int) -> tuple[float, float]:
    """(state, step temporaries) of one plastic projection per (individual, batch)."""
    syn = n_post * n_pre
    kind = rule.kind
    if kind == "gated_synapse":
        return syn * _cell_values(rule.cell), syn * rule.cell.in_channels
    if kind == "synaptic_q":  # weights + four per-synapse int64 histories + the table
        return syn * (1 + 4 * 8 / itemsize) + 243, 4 * syn
    if kind == "three_factor":
        elig = 2 * syn if rule.base.kind == "eligibility" else 0
        return syn + elig + n_pre + 4 * n_post, 6 * syn
    if kind == "loihi":
        return 3 * syn + 3 * n_pre + 4 * n_post, 6 * syn
    if kind in ("hebbian_decay", "oja", "bcm"):
        return syn + 3 * n_pre + n_post, 4 * syn
    return syn + n_pre + 4 * n_post, 4 * syn  # pair / triplet STDP


def _param_bytes(graph: Any, itemsize: int) -> int:
    """Every array of the graph as the backend's parameters and buffers (masks, signs)."""
    import dataclasses

    from plastix.ir.spec import spec_of

    total = 0

    def walk(node: Any) -> None:
        nonlocal total
        for f in dataclasses.fields(node):
            v = getattr(node, f.name)
            if v is None:
                continue
            role = spec_of(f).role
            if role == "array":
                total += int(getattr(v, "size", 1)) * itemsize
            elif role == "node":
                walk(v)

    for node in (*graph.populations, *graph.projections, *graph.modulators):
        walk(node)
    return 3 * total  # the IR's arrays, the backend's copies, effective (masked, signed) weights


def torch_run(graph: Any, steps: int, *, P: int = 1, B: int = 1, itemsize: int = 4, grad: bool = False,
              inputs_given: bool = True, what: str | None = None) -> Estimate:
    """Estimate of one torch-backend run of ``steps`` steps for ``P`` individuals x ``B`` batch.

    ``grad``: autograd keeps every step's state and temporaries for the backward pass;
    ``inputs_given=False`` also counts the input set (as the CLI generates one)."""
    pops = {p.name: p for p in graph.populations}
    per = P * B * itemsize
    est = Estimate(what or f"a torch run of {steps} steps (P={P}, B={B})")
    state = sum(_pop_values(p) for p in graph.populations)
    temps = 0.0
    for pr in graph.projections:
        pre = pops[pr.pre]
        state += pr.delay * pre.size * pre.out_channels
        if pr.rule is not None:
            s, t = _rule_values(pr.rule, pr.n_post, pr.n_pre, itemsize)
            state += s
            temps += t
    state += sum(m.channels * m.size for m in graph.modulators)
    est.add("network state", 2 * state * per)  # the state of step t and of t + 1
    est.add("step temporaries", temps * per)
    est.add("parameters", _param_bytes(graph, itemsize))
    outs = sum(pops[n].size * pops[n].out_channels for n in graph.outputs)
    est.add("recorded outputs", 2 * steps * outs * per)  # per-step tensors, then stacked
    ins = sum(pops[n].size * pops[n].out_channels for n in graph.inputs)
    est.add("inputs", steps * ins * (P * B * 8 if not inputs_given else per))
    if grad:
        est.add("autograd (saved per step)", 2 * steps * (state + temps) * per)
    return est


def lava_run(graph: Any, steps: int, *, what: str | None = None) -> Estimate:
    """Estimate of one Lava-backend run (float64 Vars, each held by the plan, the Process and its
    model; one OS process per Lava Process; sources and sinks of ``steps`` columns)."""
    pops = {p.name: p for p in graph.populations}
    est = Estimate(what or f"a Lava run of {steps} steps")
    per_syn = 0.0
    for pr in graph.projections:
        s, _ = _rule_values(pr.rule, pr.n_post, pr.n_pre, 8) if pr.rule is not None else (pr.n_post * pr.n_pre, 0)
        per_syn += s + pr.n_post * pr.n_pre + pr.delay * pops[pr.pre].size * pops[pr.pre].out_channels
    state = sum(_pop_values(p) for p in graph.populations) + sum(m.channels * m.size for m in graph.modulators)
    est.add("Lava variables", 3 * 8 * (per_syn + state))
    est.add("parameters", _param_bytes(graph, 8))
    io_values = sum(p.size * p.out_channels for p in graph.populations)  # sources + every monitored output
    est.add("input and output buffers", 3 * 8 * steps * io_values)
    n_proc = 2 * len(graph.populations) + len(graph.projections) + len(graph.modulators) + 2
    est.add("Lava processes", n_proc * LAVA_PROCESS_BYTES)
    return est
