r"""Gated-unit models of the ENU paper as flat genomes and as IR graphs.

A :class:`ModelSpec` fixes the parameter layout of one model kind (the genome an ES evolves) and
builds the IR graph of a genome for export (:meth:`ModelSpec.to_graph`). Kinds (Bertens & Lee
2020, Table 1; memory 32, 16 channels):

=========== ====================================================================== =========
kind        model                                                                   params
=========== ====================================================================== =========
enu         one ENU neuron (eq. 1, output-gate feedback, no biases)                 6,656
nfenu       the same without the ``o_{t-1}`` feedback (NFENU ablation)               5,120
gru         GRU (hidden 32, biases) with a linear 16-channel output                 5,328
lstm        LSTM (hidden 32, biases) with a linear 16-channel output                6,928
sharedenu   an ENU synapse feeding an ENU neuron, both with the same parameters     6,656
=========== ====================================================================== =========

Task I/O convention (mimic tasks): the observation ``(..., d)`` fills input channels ``0..d-1``
(the rest are 0) and the action is output channel 0 (``..., :action_dim``).

In the exported graph the observation enters through an :class:`~plastix.ir.Input` population
and a projection, which by the IR's timing (``docs/semantics.md``) adds one step of latency; the
ES evaluator in :mod:`plastix.trainer.algorithms.es_eval` drives the cell directly (the paper's setting: the
ENU sees ``x_t`` and answers at ``t``). Running an exported mimic model on a backend therefore
gives the trained outputs one step late.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from plastix.ir import ENUCell, GatedPopulation, GatedSynapse, Graph, GRUCell, Input, LSTMCell, Projection

Tensor = torch.Tensor


class ModelKind(str, enum.Enum):
    ENU = "enu"
    NFENU = "nfenu"
    GRU = "gru"
    LSTM = "lstm"
    SHAREDENU = "sharedenu"


@dataclass(frozen=True)
class ModelSpec:
    """Layout of one model's genome. ``memory``: ENU memory / GRU-LSTM hidden size;
    ``channels``: input and output channels of the cell."""

    kind: ModelKind = ModelKind.ENU
    memory: int = 32
    channels: int = 16

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", ModelKind(self.kind))
        except ValueError:
            raise ValueError(f"unknown model {self.kind!r}; known: {[k.value for k in ModelKind]}") from None
        if self.memory < 1 or self.channels < 1:
            raise ValueError(f"ModelSpec: memory and channels must be >= 1, got {self.memory}, {self.channels}")

    # -- layout ------------------------------------------------------------------------------
    @property
    def cell_kind(self) -> str:
        return {ModelKind.GRU: "gru_cell", ModelKind.LSTM: "lstm_cell"}.get(self.kind, "enu_cell")

    @property
    def feedback(self) -> bool:
        return self.kind is not ModelKind.NFENU

    def param_shapes(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(field, shape)`` in genome order; field names are the IR cell's."""
        m, c = self.memory, self.channels
        if self.cell_kind == "enu_cell":
            concat = m + (c if self.feedback else 0) + c
            return (("w_z", (m, concat)), ("w_r", (m, concat)), ("w_c", (m, concat)), ("w_o", (c, m)))
        g = (3 if self.kind is ModelKind.GRU else 4) * m
        return (("w_ih", (g, c)), ("w_hh", (g, m)), ("w_o", (c, m)), ("b_ih", (g,)), ("b_hh", (g,)), ("b_o", (c,)))

    @property
    def num_params(self) -> int:
        return sum(math.prod(s) for _, s in self.param_shapes())

    def unflatten(self, genome: Tensor) -> dict[str, Tensor]:
        """``genome`` (..., D) -> {field: (..., *shape)} (views)."""
        if genome.shape[-1] != self.num_params:
            raise ValueError(f"{self.kind.value}: genome has {genome.shape[-1]} values, needs {self.num_params}")
        out, i = {}, 0
        lead = genome.shape[:-1]
        for name, shape in self.param_shapes():
            n = math.prod(shape)
            out[name] = genome[..., i:i + n].reshape(*lead, *shape)
            i += n
        return out

    def flatten(self, params: Mapping[str, Tensor]) -> Tensor:
        """Inverse of :meth:`unflatten`."""
        parts = []
        for name, shape in self.param_shapes():
            p = torch.as_tensor(params[name])
            parts.append(p.reshape(*p.shape[:p.ndim - len(shape)], -1))
        return torch.cat(parts, dim=-1)

    def init_genome(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """Initial genome: every weight and bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's RNN
        init uses ``1/sqrt(hidden)``; fan-in here is the row width, ``hidden`` for biases)."""
        parts = []
        for name, shape in self.param_shapes():
            fan_in = shape[1] if len(shape) == 2 else self.memory
            k = 1.0 / math.sqrt(fan_in)
            parts.append((torch.rand(math.prod(shape), generator=generator, dtype=dtype) * 2 - 1) * k)
        return torch.cat(parts)

    # -- IR ----------------------------------------------------------------------------------
    def cell(self, genome: Tensor | np.ndarray):
        """The IR cell (:class:`~plastix.ir.ENUCell` / ``GRUCell`` / ``LSTMCell``) of a genome (D,)."""
        g = torch.as_tensor(np.asarray(genome, dtype=np.float32))
        arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.unflatten(g).items()}
        if self.cell_kind == "enu_cell":
            return ENUCell(memory=self.memory, in_channels=self.channels, out_channels=self.channels,
                           feedback=self.feedback, **arrays)
        cls = GRUCell if self.kind is ModelKind.GRU else LSTMCell
        return cls(hidden=self.memory, in_channels=self.channels, out_channels=self.channels, **arrays)

    def genome_of(self, cell) -> Tensor:
        """Inverse of :meth:`cell`: the genome (D,) of an IR cell of this layout."""
        params = {}
        for name, shape in self.param_shapes():
            value = np.array(getattr(cell, name, None), dtype=np.float32)  # a copy: IR arrays are read-only
            if value.shape != tuple(shape):
                raise ValueError(f"{self.kind.value}: the {type(cell).__name__}'s {name} has shape {value.shape}, "
                                 f"this layout needs {tuple(shape)}")
            params[name] = torch.from_numpy(value)
        return self.flatten(params)

    def to_graph(self, genome: Tensor | np.ndarray, *, metadata: Mapping[str, object] | None = None) -> Graph:
        """IR graph ``x`` (Input, 1 x channels) -> ``unit`` (GatedPopulation of size 1); for
        ``sharedenu`` the projection is an ENU synapse (:class:`~plastix.ir.GatedSynapse`) with the
        neuron's cell. Output: ``unit``."""
        cell = self.cell(genome)
        rule = GatedSynapse(cell=cell) if self.kind is ModelKind.SHAREDENU else None
        meta = {"model": self.kind.value, "num_params": self.num_params,
                "io": "obs fills input channels 0..d-1; action = output channel 0", **dict(metadata or {})}
        return Graph(populations=(Input(name="x", size=1, channels=self.channels),
                                  GatedPopulation(name="unit", size=1, cell=cell)),
                     projections=(Projection(name="x_to_unit", pre="x", post="unit",
                                             weight=np.ones((1, 1), dtype=np.float32), rule=rule),),
                     outputs=("unit",), metadata=meta)


def model_spec(kind: str | ModelKind, **kw: int) -> ModelSpec:
    """A spec from a model name (``enu``, ``nfenu``, ``gru``, ``lstm``, ``sharedenu``)."""
    return ModelSpec(kind=kind, **kw)
