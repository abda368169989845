"""A short builder API for writing graphs by hand.

>>> from plastix.ir import GraphBuilder
>>> b = GraphBuilder(seed=0)
>>> x = b.input("x", 4)
>>> h = b.cuba_lif("h", 3, du=0.1, dv=0.1, vth=1.0)
>>> _ = b.connect(x, h, p=0.5)
>>> b.build(outputs=[h]).population("h").size
3
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .graph import Graph
from .neurons import CubaLIF, GatedPopulation, Input, LIReadout, Population
from .synapses import Activation, Modulator, Projection


class GraphBuilder:
    """Collects populations, projections and modulators; ``build()`` validates the whole graph.

    Random initial weights come from ``seed`` (a private numpy generator; nothing global).
    """

    def __init__(self, *, dt: float = 1e-3, seed: int = 0) -> None:
        self.dt = dt
        self.rng = np.random.default_rng(seed)
        self._pops: dict[str, Population] = {}
        self._projs: list[Projection] = []
        self._mods: list[Modulator] = []

    def _add(self, pop: Population) -> str:
        if pop.name in self._pops:
            raise ValueError(f"population {pop.name!r} already exists")
        self._pops[pop.name] = pop
        return pop.name

    def input(self, name: str, size: int, channels: int = 1) -> str:
        return self._add(Input(name=name, size=size, channels=channels))

    def cuba_lif(self, name: str, size: int, *, du: Any = 0.1, dv: Any = 0.1, vth: Any = 1.0,
                 bias: Any = 0.0, refractory: int = 0, u_init: Any = 0.0, v_init: Any = 0.0) -> str:
        return self._add(CubaLIF(name=name, size=size, du=du, dv=dv, vth=vth, bias=bias, refractory=refractory,
                                 u_init=u_init, v_init=v_init))

    def li(self, name: str, size: int, *, du: Any = 0.1, dv: Any = 0.1, bias: Any = 0.0, u_init: Any = 0.0,
           v_init: Any = 0.0) -> str:
        return self._add(LIReadout(name=name, size=size, du=du, dv=dv, bias=bias, u_init=u_init, v_init=v_init))

    def gated(self, name: str, size: int, cell: Any, *, init_noise: float = 0.0) -> str:
        return self._add(GatedPopulation(name=name, size=size, cell=cell, init_noise=init_noise))

    def connect(self, pre: str, post: str, *, weight: Any = None, scale: float = 1.0, p: float = 1.0,
                inhibitory: float = 0.0, delay: int = 0, rule: Any = None, name: str | None = None,
                mask: Any = None, sign: Any = None) -> str:
        """Add a projection. Without ``weight``: |N(0, scale²/n_pre)| magnitudes, a random mask with
        connection probability ``p`` (when < 1) and, with ``inhibitory`` > 0, a fixed sign per
        synapse that is -1 with that probability (the sign constraint keeps it during learning).
        An explicit ``mask`` / ``sign`` ``(n_post, n_pre)`` is used as given (e.g. ``sign`` all +1:
        a Lava ``LearningDense`` with sign mode EXCITATORY)."""
        n_pre, n_post = self._pops[pre].size, self._pops[post].size
        name = name or f"{pre}_to_{post}"
        explicit_mask, explicit_sign = mask, sign
        mask = sign = None
        if weight is None:
            weight = np.abs(self.rng.normal(0.0, scale / np.sqrt(n_pre), size=(n_post, n_pre)))
            if inhibitory > 0:
                sign = np.where(self.rng.random((n_post, n_pre)) < inhibitory, -1, 1)
                weight = weight * sign
            else:
                weight = weight * np.where(self.rng.random((n_post, n_pre)) < 0.5, -1.0, 1.0)
        if p < 1.0:
            mask = self.rng.random((n_post, n_pre)) < p
        mask = mask if explicit_mask is None else explicit_mask
        sign = sign if explicit_sign is None else explicit_sign
        self._projs.append(Projection(name=name, pre=pre, post=post, weight=weight, mask=mask, sign=sign,
                                      delay=delay, rule=rule))
        return name

    def modulator(self, name: str, source: str, size: int, *, channels: int = 1, weight: Any = None,
                  scale: float = 1.0, activation: str | Activation = Activation.IDENTITY) -> str:
        src = self._pops[source]
        width = src.size * src.out_channels
        if weight is None:
            weight = self.rng.normal(0.0, scale / np.sqrt(width), size=(channels * size, width))
        self._mods.append(Modulator(name=name, source=source, size=size, weight=weight, channels=channels,
                                    activation=Activation(activation)))
        return name

    def build(self, outputs: Sequence[str], *, inputs: Sequence[str] = (), metadata: dict | None = None) -> Graph:
        return Graph(populations=tuple(self._pops.values()), projections=tuple(self._projs),
                     modulators=tuple(self._mods), inputs=tuple(inputs), outputs=tuple(outputs),
                     dt=self.dt, metadata=metadata)
