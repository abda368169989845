"""Run a model on a target backend, and check that Lava reproduces the torch backend (issue 10).

:func:`simulate` runs an input set on ``torch`` or ``lava`` (float or Loihi fixed point).
:func:`lava_check` is the deploy-time reproduction check:

* **fixed point, bit-exact** when the torch fixed-point mode and the Lava backend both run
  :func:`plastix.backends.quantize.quantize_graph`'s output (CUBA LIF / LI populations, static
  projections, rules on Loihi's learning engine): identical outputs from torch and Lava ``fixed_pt``;
* **float** otherwise (plastic rules, gated units): torch float64 vs Lava ``floating_pt``; spiking
  outputs must be identical and continuous outputs (LI ``v``, gated cell outputs) within
  :data:`FLOAT_TOL`. Rules Lava would put approximately on the learning engine are checked with
  ``learning_engine="exact"`` (the IR's own math), and synaptic-Q rules with ``epsilon = 0``
  (exploration draws come from different generators on the two backends); both are recorded in
  the result's ``notes``.
"""
from __future__ import annotations


import numpy as np

import plastix.backends as backends
from plastix.ir import Graph

from .report import _fixed_form, check_inputs, run_torch

FLOAT_TOL = 1e-6
"""Max abs difference allowed between torch float64 and Lava float continuous outputs."""
BACKENDS, PRECISIONS = backends.BACKENDS, backends.PRECISIONS


def simulate(graph: Graph, inputs: dict[str, np.ndarray], *, backend: str = "torch", precision: str = "float",
             timeout: float = 300.0, learning_engine: str = "auto") -> dict[str, np.ndarray]:
    """Outputs name -> ``(T, size[, channels])`` of one run of ``inputs`` (name -> ``(T, size[, ch])``).
    ``precision="fixed"`` runs :func:`~plastix.backends.quantize.quantize_graph`'s output (spikes
    are scale-invariant; LI readouts come out in the quantised units)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    check_inputs(graph, inputs)
    g = graph
    if precision == "fixed":
        g, why_not = _fixed_form(graph)
        if why_not:
            raise ValueError(f"fixed precision: {why_not}")
    net = backends.compile(g, backend, precision, timeout=timeout, learning_engine=learning_engine)
    try:
        ep = net.episode(inputs)
    finally:
        net.close()
    return ep.outputs


def _for_check(graph: Graph, support: dict) -> tuple[Graph, str, list[str]]:
    notes = []
    engine = "auto"
    approx = [n for n, r in support["rules"].items() if r["how"] == "learning engine" and "approximate" in r["why"]]
    if approx:
        engine = "exact"
        notes.append(f"rules {approx} checked host-emulated (learning_engine='exact'): on the learning engine "
                     "their trace timing is approximate by design")
    projs = []
    for pr in graph.projections:
        if pr.rule is not None and pr.rule.kind == "synaptic_q" and float(pr.rule.epsilon) > 0:
            notes.append(f"{pr.name}: synaptic_q checked with epsilon = 0 (exploration draws differ between backends)")
            pr = pr.replace(rule=pr.rule.replace(epsilon=0.0))
        projs.append(pr)
    return graph.replace(projections=tuple(projs)), engine, notes


def lava_check(graph: Graph, inputs: dict[str, np.ndarray], *, timeout: float = 300.0) -> dict:
    """Run ``inputs`` on Lava and on the torch backend and compare the outputs of every non-input
    population, not only the graph's declared outputs (module doc).
    Returns ``{"passed", "precision", "criterion", "max_abs_error", "spikes_identical",
    "per_output", "notes", "steps"}``."""
    import plastix.backends.lava as lava

    T = check_inputs(graph, inputs)
    graph = graph.replace(outputs=tuple(p.name for p in graph.populations if p.kind != "input"))
    q, why_not = _fixed_form(graph)
    notes: list[str] = []
    if not why_not:
        precision, criterion = "fixed", "bit-exact (Loihi fixed point, quantize_graph output)"
        ref = simulate(graph, inputs, precision="fixed")
        got = simulate(graph, inputs, backend="lava", precision="fixed", timeout=timeout)
        tol = 0.0
    else:
        precision, tol = "float", FLOAT_TOL
        criterion = f"float64: identical spikes, continuous outputs within {FLOAT_TOL:g} ({why_not})"
        g, engine, notes = _for_check(graph, lava.support(graph, "float"))
        ref = run_torch(g, inputs)[0]
        got = simulate(g, inputs, backend="lava", timeout=timeout, learning_engine=engine)
    per, spikes_same = {}, True
    for n in graph.outputs:
        a = np.asarray(ref[n], dtype=np.float64).reshape(T, -1)
        b = np.asarray(got[n], dtype=np.float64).reshape(T, -1)
        err = float(np.abs(a - b).max()) if a.size else 0.0
        spiking = graph.population(n).kind in ("cuba_lif", "input")
        if spiking:
            spikes_same &= bool(np.array_equal(a, b))
        per[n] = {"max_abs_error": err, "spiking": spiking, "activity": float(np.abs(a).sum())}
    max_err = max((v["max_abs_error"] for v in per.values()), default=0.0)
    return {"passed": bool(spikes_same and max_err <= tol), "precision": precision, "criterion": criterion,
            "max_abs_error": max_err, "spikes_identical": spikes_same, "per_output": per, "notes": notes,
            "steps": T}


def outputs_summary(outs: dict[str, np.ndarray]) -> str:
    """One line per output: shape and total (spike count for spiking outputs)."""
    return "\n".join(f"{n}: shape {tuple(np.shape(v))}, sum {float(np.sum(v)):.6g}" for n, v in outs.items())
