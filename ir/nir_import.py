r"""Import NIR graphs written by peer libraries (snnTorch, Norse, SpikingJelly, Lava-dl, Sinabs).

NIR is continuous-time; a plastix graph is discrete with one step of ``dt`` seconds. The node
mapping (forward Euler, current before voltage; ``docs/format.md`` has the table):

======================  ==========================================================================
NIR node                plastix
======================  ==========================================================================
Input / Output          ``Input`` population / declared output
CubaLIF, LIF, IF        ``CubaLIF`` (``du = dt/tau_syn``, 1 without a synaptic current;
                        ``dv = dt/tau_mem``, 0 for IF; ``bias = dv v_leak``; ``vth = v_threshold``)
CubaLI, LI, I           ``LIReadout`` (I: ``du = 1``, ``dv = 0``)
Threshold               ``CubaLIF`` with ``du = dv = 1`` (``v = input``, spike ``v > threshold``)
Linear, Affine, Scale   composed along each path between two neurons into one projection, the
                        post neuron's input gain ``g = dv R du w_in`` folded in
Delay                   the projection's ``delay`` (a whole number of steps, equal on the path)
Affine bias             a projection from an always-on *bias neuron* (below)
NIRGraph (nested)       flattened: ``sub.node`` becomes ``sub_node``; inner Input/Output vanish
======================  ==========================================================================

**Affine bias.** A constant current ``b`` into a neuron with a synaptic current is not a bias on
``v`` (it passes through the current's decay), so it is delivered exactly: by ``nir_bias``, a
CubaLIF of one neuron that fires every step (``du = dv = 1``, ``bias = 2 > vth = 1``, no inputs),
through a projection of weight ``g b``. Its delay is the post population's depth minus one (depth
= projections on the shortest path from an input), so that a layered net stays exactly the
peer's net shifted by one step per layer (``docs/semantics.md``: plastix projections take a step).

**dt.** ``--dt`` wins; else a ``dt`` / ``plastix.dt`` in the graph metadata; else snnTorch's
export convention ``r = tau_mem / dt`` (and ``w_in = tau_syn / dt``), when every neuron node
agrees on it; else an error that suggests a value.

**Reset.** NIR (and plastix, Loihi, Lava, Norse, snnTorch's ``import_from_nir``) resets ``v`` to
``v_reset`` in the step of the spike: :attr:`ResetMode.ZERO`. snnTorch's own neurons reset one
step later by default (``reset_delay=True``). With ``reset_mechanism="zero"``, ``Synaptic``,
``RSynaptic`` and ``RLeaky`` then zero ``v`` (input of that step included) in the step after the
spike, which is exactly a refractory period of one step, while ``Leaky`` zeroes the old ``v`` before
adding the new input, which is NIR's same-step reset: :attr:`ResetMode.SNNTORCH_ZERO` gives
refractory 1 to CubaLIF nodes and to LIF nodes on a cycle (what ``RLeaky`` writes) and keeps plain
LIF nodes. snnTorch's default ``"subtract"`` has no plastix form (:attr:`ResetMode.SUBTRACT` raises). NIR files do not record which convention the writer
simulated, so the caller says it.

Every failure is one :class:`NIRImportError` line: file, node, what is wrong, what to do.
``nir`` and ``h5py`` are imported lazily (``import plastix.ir`` stays numpy + networkx).
"""
from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IRValidationError
from .graph import Graph
from .neurons import CubaLIF, Input, LIReadout
from .synapses import Projection

#: NIR node types with no plastix form, and what the user can do instead.
UNSUPPORTED = {
    "Conv1d": "convolutions are not supported (plastix projections are dense)",
    "Conv2d": "convolutions are not supported (plastix projections are dense)",
    "Flatten": "Flatten is not supported (plastix populations are 1-D; export a net without it)",
    "SumPool2d": "pooling is not supported (plastix projections are dense)",
    "AvgPool2d": "pooling is not supported (plastix projections are dense)",
}
_LINEAR = ("Linear", "Affine", "Scale", "Delay")
_NEURON = ("CubaLIF", "LIF", "IF", "CubaLI", "LI", "I", "Threshold")
_SNNTORCH_HINT = ("snnTorch simulates reset_mechanism='subtract' by default (NIR resets to zero): spikes agree up "
                  "to each neuron's first spike unless the model was trained with reset_mechanism='zero' "
                  "(then import with --reset snntorch-zero)")
BIAS_NEURON = "nir_bias"


class ResetMode(str, enum.Enum):
    """How the writer of a NIR file reset its neurons (the file itself does not say)."""

    ZERO = "zero"  # v <- v_reset in the step of the spike (NIR, plastix, Loihi, Norse)
    SNNTORCH_ZERO = "snntorch-zero"  # snnTorch reset_mechanism="zero" (reset_delay=True): see module doc
    SUBTRACT = "subtract"  # snnTorch's default: no plastix form


class NIRImportError(IRValidationError):
    """One import failure: ``file: node 'x' (Type): what is wrong; what to do``."""

    def __init__(self, file: str, node: str, msg: str, hint: str = "") -> None:
        IRValidationError.__init__(self, node, "", msg)
        self.file = file
        self.hint = hint
        where = f"{file}: node {node!r}: " if node else f"{file}: "
        ValueError.__init__(self, where + msg + (f"; {hint}" if hint else ""))


@dataclass(frozen=True)
class NIRImport:
    """A converted graph and what the import decided on the way."""

    graph: Graph
    dt: float
    dt_source: str  # why this dt
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# reading


def read_nir_file(path: str | Path) -> Any:
    """``nir.read(path)``, with incomplete and unreadable files reported as one line."""
    import h5py
    import nir

    path = Path(path)
    if not path.is_file():
        raise NIRImportError(str(path), "", "no such file", "check the path")
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise NIRImportError(str(path), "", "file is incomplete: it has no graph ('node' group)",
                                     "the writer stopped part-way (e.g. a failed export); export the model again")
            _check_complete(f["node"], "", str(path))
    except NIRImportError:
        raise
    except Exception as exc:  # h5py raises OSError (and others) for non-HDF5 or damaged files
        raise NIRImportError(str(path), "", f"not a NIR (HDF5) file: {exc}", "pass a file written by nir.write") from None
    try:  # plastix checks shapes itself; NIR's type check rejects peers' batch dimensions (Norse: (1, n))
        return nir.read(str(path), type_check=False)
    except Exception as exc:
        raise NIRImportError(str(path), "", f"nir.read failed: {type(exc).__name__}: {exc}",
                             "check that the file was written by nir.write") from None


def _check_complete(group: Any, name: str, file: str) -> None:
    """Every node group must have its ``type`` (a partial write leaves groups without it)."""
    if "type" not in group:
        raise NIRImportError(file, name or "<graph>", "file is incomplete: the node has no 'type'",
                             "the writer stopped part-way (e.g. a failed export); export the model again")
    kind = group["type"][()]
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind == "NIRGraph":
        if "nodes" not in group or "edges" not in group:
            raise NIRImportError(file, name or "<graph>", "file is incomplete: a graph without nodes or edges",
                                 "the writer stopped part-way (e.g. a failed export); export the model again")
        for child in group["nodes"]:
            _check_complete(group["nodes"][child], f"{name}.{child}" if name else child, file)


# ---------------------------------------------------------------------------------------------
# flattening and names


def flatten(nir_graph: Any, file: str = "<nir>") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(nodes, edges) with nested NIRGraph nodes inlined as ``sub.node`` and every inner Input /
    Output node replaced by direct edges (it is an identity)."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    passthrough: set[str] = set()

    def visit(g: Any, prefix: str) -> tuple[list[str], list[str]]:
        ins, outs = [], []
        for name, n in g.nodes.items():
            full = f"{prefix}{name}"
            if isinstance(n, nir.NIRGraph):
                sub_in, sub_out = visit(n, f"{full}.")
                nodes[full] = ("subgraph", sub_in, sub_out)
            else:
                nodes[full] = n
                if prefix and isinstance(n, (nir.Input, nir.Output)):
                    passthrough.add(full)
            if isinstance(n, nir.Input):
                ins.append(full)
            elif isinstance(n, nir.Output):
                outs.append(full)
        for a, b in g.edges:
            edges.append((f"{prefix}{a}", f"{prefix}{b}"))
        return ins, outs

    visit(nir_graph, "")

    def endpoint(name: str, side: int) -> str:
        n = nodes.get(name)
        if isinstance(n, tuple):  # an edge to / from a whole subgraph: its single Input / Output
            ends = n[1] if side == 1 else n[2]
            if len(ends) != 1:
                raise NIRImportError(file, name, f"an edge names the subgraph but it has {len(ends)} "
                                     f"{'inputs' if side == 1 else 'outputs'}", "name the inner node in the edge")
            return ends[0]
        if n is None:
            raise NIRImportError(file, name, "an edge names a node that does not exist",
                                 f"nodes: {', '.join(sorted(k for k in nodes if not isinstance(nodes[k], tuple)))}")
        return name

    edges = [(endpoint(a, 0), endpoint(b, 1)) for a, b in edges]
    nodes = {k: v for k, v in nodes.items() if not isinstance(v, tuple)}
    for p in passthrough:  # connect predecessors of an inner Input/Output to its successors
        preds = [a for a, b in edges if b == p]
        succs = [b for a, b in edges if a == p]
        edges = [e for e in edges if p not in e] + [(a, b) for a in preds for b in succs]
        del nodes[p]
    return nodes, list(dict.fromkeys(edges))


def valid_names(names: list[str]) -> dict[str, str]:
    """Original NIR name -> a plastix name (letters, digits, '_', '-'; not starting with a digit;
    unique): ``"1.lif"`` -> ``"n1_lif"``."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        new = re.sub(r"[^A-Za-z0-9_-]", "_", name) or "node"
        if not new[0].isalpha() and new[0] != "_":
            new = f"n{new}"
        base, i = new, 1
        while new in used:
            i += 1
            new = f"{base}_{i}"
        used.add(new)
        out[name] = new
    return out


# ---------------------------------------------------------------------------------------------
# dt


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor left in a graph built in memory (Norse's to_nir)
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _arr(x: Any) -> np.ndarray:
    return np.atleast_1d(_np(x))


def _taus(n: Any) -> dict[str, np.ndarray]:
    kind = type(n).__name__
    if kind in ("CubaLIF", "CubaLI"):
        return {"tau_syn": _arr(n.tau_syn), "tau_mem": _arr(n.tau_mem)}
    if kind in ("LIF", "LI"):
        return {"tau": _arr(n.tau)}
    return {}


def _round_float32(x: float) -> float:
    """``x`` rounded to 6 significant digits when that moves it by less than float32 precision
    (files store float32: snnTorch's 1e-4 comes back as 1.0000003e-4)."""
    r = float(f"{x:.6g}")
    return r if abs(r - x) <= 4e-7 * abs(x) else x


def infer_dt(nodes: dict[str, Any], metadata: dict, names: dict[str, str]) -> tuple[float | None, str]:
    """(dt, why) from the graph metadata or snnTorch's ``r = tau_mem / dt`` convention; ``(None,
    suggestion)`` when the file does not determine it."""
    for key in ("dt", "plastix.dt"):
        if key in (metadata or {}):
            try:
                return float(metadata[key]), f"from the file's metadata {key!r}"
            except (TypeError, ValueError):
                pass
    cands, used = [], []
    for name, n in nodes.items():
        taus = _taus(n)
        if not taus:
            continue
        tau_mem = taus.get("tau_mem", taus.get("tau"))
        r = _arr(n.r)
        if np.all(r == 1.0):
            cands = []
            break
        cands.append(tau_mem / r)
        if "tau_syn" in taus:
            cands.append(taus["tau_syn"] / _arr(n.w_in))
        used.append(names.get(name, name))
    if cands:
        c = np.concatenate(cands)
        if np.all(np.isfinite(c)) and np.all(c > 0) and np.ptp(c) <= 1e-5 * np.max(c):
            dt = _round_float32(float(np.mean(c)))
            return dt, (f"inferred from r = tau_mem / dt (and w_in = tau_syn / dt) on {', '.join(used)}: "
                        "snnTorch's export convention")
    return None, _suggest_dt(nodes, names)


def _suggest_dt(nodes: dict[str, Any], names: dict[str, str]) -> str:
    shortest = min(((float(np.min(v)), names.get(k, k), f) for k, n in nodes.items() for f, v in _taus(n).items()
                    if v.size), default=None)
    if shortest is None:
        return "pass --dt (seconds per step; no node has a time constant to suggest one from)"
    tau, node, field = shortest
    tenth = f"{tau / 10:.2g}"
    rs = [_arr(n.r) for n in nodes.values() if _taus(n)]
    if rs and all(np.all(r == 1.0) for r in rs):  # Norse's to_nir writes r = 1
        return (f"pass --dt; the likely value is 1e-06 s if Norse 1.1's to_nir wrote the file with its default dt "
                f"1e-3 (it stores tau = dt / tau_inv, so the file's step is dt squared), else about a tenth of the "
                f"shortest time constant ({field} = {tau:g} s at {node!r}): {tenth} s")
    return (f"pass --dt; a likely value is {tenth} s, a tenth of the shortest time constant ({field} = {tau:g} s "
            f"at {node!r})")


# ---------------------------------------------------------------------------------------------
# conversion


def import_nir(nir_graph: Any, *, dt: float | None = None, reset: ResetMode | str = ResetMode.ZERO,
               file: str = "<nir>") -> NIRImport:
    """Convert a peer's NIR graph (no plastix extension) to a plastix graph; see the module doc."""
    import nir

    try:
        reset = ResetMode(reset)
    except ValueError:
        raise NIRImportError(file, "", f"unknown reset convention {reset!r}",
                             f"use one of {', '.join(m.value for m in ResetMode)}") from None
    if reset is ResetMode.SUBTRACT:
        raise NIRImportError(file, "", "a subtractive reset (snnTorch's default) has no exact plastix form: plastix "
                             "resets v to 0 as Loihi and Lava's LIF do", "import with --reset zero to accept the "
                             "documented difference, or train the peer model with reset_mechanism='zero' and "
                             "import with --reset snntorch-zero")
    nodes, edges = flatten(nir_graph, file)
    names = valid_names(list(nodes))
    for name, n in nodes.items():
        kind = type(n).__name__
        if kind in UNSUPPORTED:
            raise NIRImportError(file, name, f"({kind}) {UNSUPPORTED[kind]}", "plastix imports dense spiking nets: "
                                 "Input, Linear/Affine/Scale, Delay, CubaLIF/LIF/IF/LI/CubaLI/I/Threshold, Output")
        if kind not in _LINEAR + _NEURON + ("Input", "Output"):
            raise NIRImportError(file, name, f"node type {kind} is not supported", "see docs/format.md for the "
                                 "NIR nodes plastix imports")
    notes: list[str] = []
    if dt is None:
        dt, why = infer_dt(nodes, getattr(nir_graph, "metadata", None) or {}, names)
        if dt is None:
            raise NIRImportError(file, "", "NIR is continuous-time and this file does not determine the time step", why)
        if "snnTorch" in why:
            notes.append(_SNNTORCH_HINT)
    else:
        why = "given (--dt)"
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NIRImportError(file, "", f"dt must be a positive number of seconds, got {dt!r}", "pass e.g. --dt 1e-3")

    pops: dict[str, Any] = {}
    gains: dict[str, np.ndarray] = {}
    for name, n in nodes.items():
        new = names[name]
        if isinstance(n, nir.Input):
            shape = np.atleast_1d(_np(n.input_type["input"])).astype(int)
            if shape.size > 1 and shape[0] == 1:  # a peer's batch dimension (Norse writes (1, n))
                notes.append(f"input {new!r}: shape {tuple(shape)} read as {tuple(shape[1:])} (leading batch dimension)")
                shape = shape[1:]
            if shape.size > 2 or shape.size == 0:
                raise NIRImportError(file, name, f"(Input) shape {tuple(shape)} is not 1-D",
                                     "plastix inputs are vectors (or vectors of channels)")
            pops[name] = Input(name=new, size=int(shape[0]), channels=int(shape[1]) if shape.size > 1 else 1)
        elif type(n).__name__ in _NEURON:
            try:
                pop, gain = population_from_nir(new, n, dt)
            except IRValidationError as exc:
                raise NIRImportError(file, name, f"({type(n).__name__}) {exc.msg}", _dt_hint(exc, nodes, names)) from None
            if reset is ResetMode.SNNTORCH_ZERO and (isinstance(n, nir.CubaLIF) or (
                    isinstance(n, nir.LIF) and _on_cycle(name, edges, nodes))):
                pop = pop.replace(refractory=1)
            pops[name], gains[name] = pop, gain
    projections, bias = _projections(nodes, edges, pops, gains, names, dt, file)
    outputs = _outputs(nodes, edges, pops, names, file)
    populations = [pops[k] for k in nodes if k in pops]
    if bias:
        populations, projections = _add_bias_neuron(populations, projections, bias, names)
        notes.append(f"Affine biases into {', '.join(sorted(bias))} come from the always-on neuron "
                     f"{BIAS_NEURON!r} (exact; see docs/format.md)")
    if reset is ResetMode.SNNTORCH_ZERO:
        delayed = [p.name for p in pops.values() if getattr(p, "refractory", 0)]
        notes.append(f"reset snntorch-zero: {', '.join(delayed) or 'no population'} zero v one step after a spike "
                     "(refractory 1: snnTorch's Synaptic / RSynaptic / RLeaky); plain LIF nodes (Leaky) reset in the "
                     "same step")
    renamed = {names[k]: k for k in nodes if names[k] != k}
    metadata: dict = {"nir.dt_source": why, "nir.reset": reset.value}
    if renamed:
        metadata["nir.names"] = json.dumps(renamed)
        notes.append(f"renamed {len(renamed)} node(s) to valid names (originals in metadata 'nir.names'): "
                     + ", ".join(f"{o!r} -> {n!r}" for n, o in list(renamed.items())[:6])
                     + (" ..." if len(renamed) > 6 else ""))
    try:
        graph = Graph(populations=tuple(populations), projections=tuple(projections), outputs=tuple(outputs),
                      dt=float(dt), metadata=metadata)
    except IRValidationError as exc:
        raise NIRImportError(file, exc.node, f"{exc.field + ': ' if exc.field else ''}{exc.msg}",
                             "the converted graph is invalid; check this node's shapes in the file") from None
    return NIRImport(graph=graph, dt=float(dt), dt_source=why, notes=tuple(notes))


def _on_cycle(node: str, edges: list, nodes: dict) -> bool:
    """True when ``node`` reaches itself through Linear/Affine/Scale/Delay nodes only."""
    out: dict[str, list[str]] = {}
    for a, b in edges:
        out.setdefault(a, []).append(b)
    seen, todo = set(), list(out.get(node, []))
    while todo:
        n = todo.pop()
        if n == node:
            return True
        if n in seen or type(nodes[n]).__name__ not in _LINEAR:
            continue
        seen.add(n)
        todo.extend(out.get(n, []))
    return False


def _dt_hint(exc: IRValidationError, nodes: dict, names: dict) -> str:
    if exc.field in ("du", "dv"):
        return "use a smaller dt: " + _suggest_dt(nodes, names).replace("pass --dt; ", "")
    return "check the node's parameters in the file"


def population_from_nir(name: str, n: Any, dt: float) -> tuple[Any, np.ndarray]:
    """(plastix population, input gain per neuron) of a NIR neuron node (module doc table)."""
    kind = type(n).__name__
    if kind == "Threshold":
        vth = _arr(n.threshold)
        if np.any(vth <= 0):
            raise IRValidationError(name, "vth", "a threshold <= 0 fires without input; plastix needs vth > 0")
        return CubaLIF(name=name, size=vth.size, du=1.0, dv=1.0, vth=vth), np.ones(vth.size)
    if kind in ("IF", "I"):
        r = _arr(n.r)
        if kind == "I":
            return LIReadout(name=name, size=r.size, du=1.0, dv=0.0), dt * r
        vth = np.broadcast_to(_arr(n.v_threshold), r.shape)
        _check_reset(name, n)
        return CubaLIF(name=name, size=vth.size, du=1.0, dv=0.0, vth=vth), np.broadcast_to(dt * r, vth.shape).copy()
    taus = _taus(n)
    tau_mem = taus.get("tau_mem", taus.get("tau"))
    dv = dt / tau_mem
    du = dt / taus["tau_syn"] if "tau_syn" in taus else np.ones_like(dv)
    w_in = _arr(n.w_in) if "tau_syn" in taus else 1.0
    for field, val, tau in (("du", du, "tau_syn"), ("dv", dv, "tau_mem")):
        if np.any(val > 1) or np.any(val < 0) or not np.all(np.isfinite(val)):
            raise IRValidationError(name, field, f"{tau} shorter than dt = {dt:g} s gives {field} = "
                                    f"{float(np.max(val)):g} outside [0, 1]")
    gain = np.broadcast_to(dv * _arr(n.r) * du * w_in, dv.shape).copy()
    bias = dv * _arr(n.v_leak)
    if kind in ("CubaLIF", "LIF"):
        _check_reset(name, n)
        return CubaLIF(name=name, size=dv.size, du=du, dv=dv, vth=_arr(n.v_threshold), bias=bias), gain
    return LIReadout(name=name, size=dv.size, du=du, dv=dv, bias=bias), gain


def _check_reset(name: str, n: Any) -> None:
    if np.any(_arr(getattr(n, "v_reset", 0.0)) != 0):
        raise IRValidationError(name, "v_reset", "a non-zero v_reset has no plastix form (v resets to 0)")


def _projections(nodes: dict, edges: list, pops: dict, gains: dict, names: dict, dt: float,
                 file: str) -> tuple[list[Projection], dict[str, np.ndarray]]:
    """One projection per path pop -> (Linear | Affine | Scale | Delay)* -> pop, the path's
    linear maps composed; Affine biases collected per post population."""
    out_edges: dict[str, list[str]] = {}
    for a, b in edges:
        out_edges.setdefault(a, []).append(b)
    projs: list[Projection] = []
    bias: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def walk(src: str, node: str, m: np.ndarray, b: np.ndarray, delay: float, via: list[str]) -> None:
        n = nodes[node]
        kind = type(n).__name__
        if node in pops:
            if type(pops[node]) is Input:
                raise NIRImportError(file, node, "(Input) receives an edge", "inputs take no synapses")
            _emit(src, node, m, b, delay, via)
            return
        if kind == "Output":
            if via:
                raise NIRImportError(file, via[-1], f"({type(nodes[via[-1]]).__name__}) feeds an Output with no "
                                     "neuron after it", "plastix outputs are populations: end the net with a "
                                     "neuron (e.g. an LI readout)")
            return
        if node in via:
            raise NIRImportError(file, node, "a cycle of Linear/Affine/Scale/Delay nodes with no neuron in it",
                                 "every cycle needs a neuron")
        if kind in ("Linear", "Affine"):
            w = _np(n.weight)
            if w.ndim != 2 or w.shape[1] != m.shape[0]:
                raise NIRImportError(file, node, f"({kind}) weight {w.shape} does not fit its input of size "
                                     f"{m.shape[0]}", "plastix imports 2-D (out, in) weights")
            m, b = w @ m, w @ b + (_arr(n.bias) if kind == "Affine" else 0.0)
        elif kind == "Scale":
            s = _arr(n.scale)
            m, b = s[:, None] * m, s * b
        elif kind == "Delay":
            d = _arr(n.delay) / dt
            if d.size == 0 or not np.allclose(d, np.round(d), atol=1e-6) or np.ptp(np.round(d)) != 0:
                raise NIRImportError(file, node, f"(Delay) delays {np.unique(_arr(n.delay))} s are not one whole "
                                     f"number of steps of dt = {dt:g} s", "plastix delays are per projection; "
                                     "use one delay that is a multiple of dt")
            delay += float(np.round(d).flat[0])
        for nxt in out_edges.get(node, []):
            walk(src, nxt, m, b, delay, via + [node])

    def _emit(src: str, post: str, m: np.ndarray, b: np.ndarray, delay: float, via: list[str]) -> None:
        g = gains[post]
        if m.shape[0] != g.size:
            raise NIRImportError(file, via[-1] if via else post, f"output size {m.shape[0]} does not match "
                                 f"{post!r} of size {g.size}", "check the weight shapes")
        lin = [v for v in via if type(nodes[v]).__name__ in ("Linear", "Affine")]
        base = names[lin[-1]] if lin else f"{names[src]}_to_{names[post]}"
        name, i = base, 1
        while name in used or name in {names[k] for k in pops}:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        projs.append(Projection(name=name, pre=names[src], post=names[post], weight=g[:, None] * m, delay=int(delay)))
        if np.any(b != 0):
            bias[names[post]] = bias.get(names[post], 0.0) + g * b

    for src, pop in pops.items():
        n_out = pop.size
        for nxt in out_edges.get(src, []):
            walk(src, nxt, np.eye(n_out), np.zeros(n_out), 0.0, [])
    return projs, bias


def _outputs(nodes: dict, edges: list, pops: dict, names: dict, file: str) -> list[str]:
    outs = []
    for a, b in edges:
        if type(nodes[b]).__name__ == "Output" and a in pops:
            outs.append(names[a])
    if not outs:
        raise NIRImportError(file, "", "no neuron feeds an Output node", "plastix outputs are populations: end the "
                             "net with a neuron (e.g. an LI readout)")
    return list(dict.fromkeys(outs))


def _add_bias_neuron(populations: list, projections: list, bias: dict, names: dict) -> tuple[list, list]:
    """The always-on neuron and one projection per biased population, delayed to the population's
    depth (module doc)."""
    taken = {p.name for p in populations} | {p.name for p in projections}
    src = BIAS_NEURON
    while src in taken:
        src = f"_{src}"
    depth = {p.name: 0 for p in populations if isinstance(p, Input)}
    frontier = list(depth)
    while frontier:
        nxt = []
        for pr in projections:
            if pr.pre in frontier and pr.post not in depth:
                depth[pr.post] = depth[pr.pre] + 1
                nxt.append(pr.post)
        frontier = nxt
    always_on = CubaLIF(name=src, size=1, du=1.0, dv=1.0, vth=1.0, bias=2.0)
    extra = []
    for post, b in bias.items():
        name = f"{post}_bias"
        while name in taken:
            name = f"_{name}"
        extra.append(Projection(name=name, pre=src, post=post, weight=np.asarray(b, dtype=np.float64)[:, None],
                                delay=max(depth.get(post, 1) - 1, 0)))
    return [always_on] + populations, projections + extra
