"""Hardware-aware training: the network trains with the values Loihi's learning engine will run.

Every iteration the current parameters (IR units) are written into a graph, scaled to Loihi units
(:func:`plastix.backends.hardware_aware.to_loihi_units`, fixed per-population scales), rounded to
what the engine and Loihi fixed point represent (:func:`~plastix.backends.hardware_aware.project_to_engine`:
``M 2^E`` rule literals, 8-bit integer plastic weights, ``m 2^e`` static weights, 12-bit decays,
integer thresholds; the engine's 8-bit weight saturation becomes hard bounds) and scaled back; the network runs on those values, and the gradient passes
straight through the rounding to the raw parameters (straight-through estimator). The exported
model is therefore exactly the model that deploys: :func:`deployable` gives it in Loihi units.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from plastix.backends.hardware_aware import (engine_violations, loihi_scales, project_to_engine, to_loihi_units,
                                            with_engine_saturation)
from plastix.backends.torch.hardware_aware import straight_through
from plastix.backends.torch.network import export_graph
from plastix.ir.spec import get_path
from plastix.ir import Graph

SCALE_KEY = "loihi.scale."
IMPULSE_KEY, GAIN_KEY = "loihi.trace_impulse", "loihi.mod_gain"
UNITS_KEY = "loihi.units"  # "loihi" on a model written in Loihi units (model_loihi.plx)


@dataclass(frozen=True)
class LoihiUnits:
    """How a graph maps to Loihi units: per-population scales, trace impulse and modulator gain."""

    scales: dict
    trace_impulse: float = 8.0
    mod_gain: float = 8.0

    @classmethod
    def of(cls, graph: Graph, *, trace_impulse: float | None = None, mod_gain: float | None = None) -> "LoihiUnits":
        """The units stored in ``graph``'s metadata (a model that was trained hardware-aware), else
        fresh scales (:func:`~plastix.backends.hardware_aware.loihi_scales`) and the given (default 8)
        trace impulse and modulator gain."""
        meta = dict(graph.metadata or {})
        stored = {k[len(SCALE_KEY):]: float(v) for k, v in meta.items() if k.startswith(SCALE_KEY)}
        imp = float(meta.get(IMPULSE_KEY, 8.0)) if trace_impulse is None else trace_impulse
        gain = float(meta.get(GAIN_KEY, 8.0)) if mod_gain is None else mod_gain
        return cls(stored or loihi_scales(graph), imp, gain)

    def to_loihi(self, graph: Graph) -> Graph:
        return to_loihi_units(graph, self.scales, trace_impulse=self.trace_impulse, mod_gain=self.mod_gain)

    def from_loihi(self, graph: Graph) -> Graph:
        return to_loihi_units(graph, self.scales, trace_impulse=self.trace_impulse, mod_gain=self.mod_gain,
                              inverse=True)

    def project(self, graph: Graph) -> Graph:
        """``graph`` (IR units) with every value rounded as the engine runs it and the engine's
        8-bit weight saturation as hard bounds, still in IR units."""
        return self.from_loihi(project_to_engine(with_engine_saturation(self.to_loihi(graph))))

    def tag(self, graph: Graph) -> Graph:
        """``graph`` with the scales in its metadata (so that a continued run uses the same ones)."""
        meta = dict(graph.metadata or {})
        meta.update({SCALE_KEY + k: float(v) for k, v in self.scales.items()})
        meta.update({IMPULSE_KEY: float(self.trace_impulse), GAIN_KEY: float(self.mod_gain)})
        return graph.replace(metadata=meta)


def deployable(graph: Graph, units: LoihiUnits) -> Graph:
    """The trained model in Loihi units, rounded: what ``plastix deploy`` runs on the learning
    engine. Raises ``ValueError`` listing what the engine cannot run exactly (a structure the
    engine lacks, e.g. a mask or per-pre modulation)."""
    g = project_to_engine(with_engine_saturation(units.to_loihi(graph)))
    bad = engine_violations(g)
    if bad:
        raise ValueError("not learning-engine form: " + "; ".join(f"{v.where}: {v.why}" for v in bad[:5]))
    return g.replace(metadata={**dict(graph.metadata or {}), UNITS_KEY: "loihi"})


def is_hardware_aware(graph: Graph) -> bool:
    """Whether ``graph`` is a hardware-aware model in IR units (its Loihi scales in the metadata)."""
    meta = dict(graph.metadata or {})
    return meta.get(UNITS_KEY) != "loihi" and any(k.startswith(SCALE_KEY) for k in meta)


def for_fixed_point(graph: Graph) -> Graph:
    """The graph to run in Loihi fixed point: a hardware-aware model in IR units is converted to Loihi
    units with its stored scales (:func:`deployable`); anything else is returned as given."""
    return deployable(graph, LoihiUnits.of(graph)) if is_hardware_aware(graph) else graph


class EngineProjection(nn.Module):
    """The straight-through projection of a compiled network's parameters (module docstring)."""

    def __init__(self, net: nn.Module, units: LoihiUnits) -> None:
        super().__init__()
        self.net = [net]  # not a submodule (the CueModel owns it)
        self.units = units

    def overrides(self, base: dict | None) -> dict[str, torch.Tensor]:
        """Projected values of every parameter (leading population dim 1, as ``run(params=...)``
        takes them), given the overrides ``base`` another reparameterisation computed."""
        net = self.net[0]
        values = {k: (base[k][0] if base and k in base else p) for k, p in net.params.items()}
        projected = self.units.project(export_graph(net, params=values))
        nodes = {n.name: n for n in (*projected.populations, *projected.projections, *projected.modulators)}
        out = {}
        for key, v in values.items():
            node, path = key.split("/", 1)
            target = torch.as_tensor(np.array(get_path(nodes[node], path)), dtype=v.dtype, device=v.device).reshape(v.shape)
            out[key] = straight_through(v, target).unsqueeze(0)
        return out
