r"""Loihi 2 resource model and a modelled energy per step (numpy; reads the IR and the Lava plan).

Limits (named constants; sources beside each). Intel publishes chip-level Loihi 2 figures; where a
per-core figure is not published it is the chip figure divided by the core count, and where Loihi 2
publishes nothing (fan-in / fan-out, per-op energies) the Loihi 1 figures of Davies et al. 2018
stand in, labelled as such. Everything here is a **model** for planning, not a measurement.

* Intel, "Taking Neuromorphic Computing to the Next Level with Loihi 2", technology brief (2021):
  128 neuromorphic cores per chip, up to 1 M neurons and 120 M synapses per chip.
* M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning", IEEE Micro
  38(1), 2018, Table 1 (Loihi 1): 4,096 fan-in axons and 4,096 fan-out axons per core;
  energy per synaptic spike op 23.6 pJ, per synaptic update (learning) 120 pJ, per neuron update
  52 pJ (active), per spike within a tile 1.7 pJ.
* Lava ``Loihi2FLearningRule`` / ``Loihi3FLearningRule`` (lava-nc 0.10.0): pre traces ``x1, x2``,
  post traces ``y1, y2, y3`` (``y2, y3`` carry the third factor), one tag ``t`` and delay ``d``.

Mapping model: each non-input population is placed on its own cores; a population needs
``max(ceil(neurons / NEURONS_PER_CORE), ceil(incoming synapses / SYNAPSES_PER_CORE))`` cores,
neurons and synapses split evenly over them. It *fits* when every neuron's fan-in (synapses onto
it) is at most ``FAN_IN_AXONS_PER_CORE`` (its inputs arrive on one core's input axons) and every
neuron's fan-out in axons -- one per destination core, i.e. the summed cores of the populations it
projects to -- is at most ``FAN_OUT_AXONS_PER_CORE``. Input populations are spike sources off the
neurocores. Host-emulated nodes (gated units) run on the host and take no neurocore resources;
they are listed as such.
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

CORES_PER_CHIP = 128
"""Neuromorphic cores per Loihi 2 chip (Intel Loihi 2 brief, 2021)."""
NEURONS_PER_CHIP = 1_048_576
"""Max neurons per Loihi 2 chip, "up to 1 million" (Intel Loihi 2 brief, 2021): 2^20."""
SYNAPSES_PER_CHIP = 120_000_000
"""Max synapses per Loihi 2 chip (Intel Loihi 2 brief, 2021)."""
NEURONS_PER_CORE = NEURONS_PER_CHIP // CORES_PER_CHIP
"""8,192: chip figure / cores (no per-core figure is published)."""
SYNAPSES_PER_CORE = SYNAPSES_PER_CHIP // CORES_PER_CHIP
"""937,500: chip figure / cores (the real limit depends on the synapse encoding)."""
FAN_IN_AXONS_PER_CORE = 4096
"""Input axons per core: the Loihi 1 figure (Davies et al. 2018, Table 1), a stand-in."""
FAN_OUT_AXONS_PER_CORE = 4096
"""Output axons per core: the Loihi 1 figure (Davies et al. 2018, Table 1), a stand-in."""
PRE_TRACES = ("x1", "x2")
POST_TRACES = ("y1", "y2", "y3")
"""Learning-engine traces available per synapse group (Lava Loihi2F/3F learning rules)."""

ENERGY_PJ = {"synaptic_op": 23.6, "plasticity_op": 120.0, "neuron_update": 52.0, "spike": 1.7}
"""Per-op energies in pJ: Loihi 1 measurements (Davies et al. 2018, Table 1) used as a model."""
ENERGY_SOURCE = "model: Loihi 1 per-op energies (Davies et al. 2018, IEEE Micro, Table 1); no Loihi 2 figures published"


def _nnz(pr: Any) -> np.ndarray:
    """Boolean (n_post, n_pre): synapses that exist (mask and nonzero sign/weight of static ones)."""
    exists = np.ones((pr.n_post, pr.n_pre), dtype=bool) if pr.mask is None else np.asarray(pr.mask, dtype=bool)
    if pr.rule is None:
        exists = exists & (np.asarray(pr.weight) != 0)
    return exists


def traces_used(engine: dict | None) -> dict:
    """Learning-engine traces a lowered rule uses (from its ``dw``/``dt``/``dd`` strings)."""
    if not engine:
        return {}
    text = " ".join(str(engine.get(k, "")) for k in ("dw", "dt", "dd"))
    used = sorted(set(re.findall(r"\b([xy][0-3])\b", text)) - {"x0", "y0"})
    return {"pre": [t for t in used if t in PRE_TRACES], "post": [t for t in used if t in POST_TRACES],
            "tag": bool(str(engine.get("dt", " ")).strip()), "delay_var": bool(str(engine.get("dd", " ")).strip())}


def resources(graph: Any, support: dict, engines: dict | None = None) -> dict:
    """Per population: neurons, incoming synapses, max fan-in / fan-out, cores needed and whether it
    fits; per plastic projection: learning-engine trace counts. ``support`` is
    :func:`plastix.backends.lava.support` of the graph; ``engines`` maps projection -> the plan's
    learning-engine dict (for trace counts)."""
    engines = engines or {}
    fan_out: dict[str, np.ndarray] = {p.name: np.zeros(p.size, dtype=np.int64) for p in graph.populations}
    fan_in: dict[str, np.ndarray] = {p.name: np.zeros(p.size, dtype=np.int64) for p in graph.populations}
    syn_in: dict[str, int] = {p.name: 0 for p in graph.populations}
    for pr in graph.projections:
        e = _nnz(pr)
        fan_out[pr.pre] += e.sum(0)
        fan_in[pr.post] += e.sum(1)
        syn_in[pr.post] += int(e.sum())
    on_core = {p.name: p.kind != "input" and support["populations"][p.name]["how"] != "host-emulated"
               for p in graph.populations}
    cores = {p.name: max(math.ceil(p.size / NEURONS_PER_CORE), math.ceil(syn_in[p.name] / SYNAPSES_PER_CORE), 1)
             if on_core[p.name] else 0 for p in graph.populations}
    dest_cores = {p.name: 0 for p in graph.populations}
    for pr in graph.projections:
        if _nnz(pr).any():
            dest_cores[pr.pre] += cores[pr.post]
    pops = {}
    for p in graph.populations:
        host_in = [pr.name for pr in graph.projections
                   if pr.post == p.name and support["projections"][pr.name]["how"] == "host-emulated"]
        fi = int(fan_in[p.name].max()) if p.size else 0
        fo = int(fan_out[p.name].max()) if p.size else 0
        c = cores[p.name]
        fits = fi <= FAN_IN_AXONS_PER_CORE and dest_cores[p.name] <= FAN_OUT_AXONS_PER_CORE
        pops[p.name] = {"kind": p.kind, "neurons": p.size, "synapses_in": syn_in[p.name], "max_fan_in": fi,
                        "max_fan_out": fo, "fan_out_axons": dest_cores[p.name], "cores": c,
                        "on_neurocores": on_core[p.name],
                        "neurons_per_core": math.ceil(p.size / c) if c else 0,
                        "synapses_per_core": math.ceil(syn_in[p.name] / c) if c else 0,
                        "fits": fits if on_core[p.name] or p.kind == "input" else None,
                        "host_emulated_inputs": host_in}
    rules = {}
    for pr in graph.projections:
        if pr.rule is None:
            continue
        how = support["rules"][pr.name]["how"]
        tr = traces_used(engines.get(pr.name)) if how == "learning engine" else {}
        rules[pr.name] = {"kind": pr.rule.kind, "how": how, "synapses": int(_nnz(pr).sum()),
                          "pre_traces": len(tr.get("pre", [])), "post_traces": len(tr.get("post", [])),
                          "tag": tr.get("tag", False), "delay_var": tr.get("delay_var", False),
                          "traces": tr.get("pre", []) + tr.get("post", [])}
    total = sum(v["cores"] for v in pops.values())
    return {"populations": pops, "rules": rules, "cores": total, "chips": math.ceil(total / CORES_PER_CHIP) if total else 0,
            "limits": {"NEURONS_PER_CORE": NEURONS_PER_CORE, "SYNAPSES_PER_CORE": SYNAPSES_PER_CORE,
                       "FAN_IN_AXONS_PER_CORE": FAN_IN_AXONS_PER_CORE, "FAN_OUT_AXONS_PER_CORE": FAN_OUT_AXONS_PER_CORE,
                       "CORES_PER_CHIP": CORES_PER_CHIP}}


def energy_per_step(ops: dict) -> dict:
    """Modelled energy (pJ) per step from measured per-step op counts
    (``synaptic_ops``, ``plasticity_ops``, ``neuron_updates``, ``spikes``) and :data:`ENERGY_PJ`."""
    keys = {"synaptic_ops": "synaptic_op", "plasticity_ops": "plasticity_op", "neuron_updates": "neuron_update",
            "spikes": "spike"}
    terms = {k: float(ops.get(k, 0.0)) * ENERGY_PJ[c] for k, c in keys.items()}
    return {"label": "model", "source": ENERGY_SOURCE, "coefficients_pJ": dict(ENERGY_PJ), "terms_pJ": terms,
            "total_pJ": sum(terms.values())}
