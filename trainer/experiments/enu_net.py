r"""Networks of gated units for the T-maze tasks (Bertens & Lee 2020, "Network of ENUs", Methods,
Extended Data Fig. 6): every synapse and every neuron is a gated cell; all synapses share one
cell's parameters and all neurons another's (one genome ``[synapse cell, neuron cell]``); for
``sharedenu`` one ENU serves both (the paper's SHAREDENU ablation).

Topology (paper: "six ENU neurons, of which three are output neurons. Each neuron has eight ENU
synapses ... two to the sensory neurons, two to the hidden neurons, two to the output neurons, one
to the reward neuron and one to itself"). Sources: three sensory neurons, one reward neuron, three
hidden and three motor ENU neurons. Hidden neuron ``i`` listens to sensors ``i, i+1``, the two
other hidden neurons, motors ``i, i+1``, the reward neuron and itself; motor ``j`` to sensors
``j+2, j``, hidden ``j, j+1``, the two other motors, the reward neuron and itself (indices mod 3;
which sensors and motors meet is our choice; the task shuffles both per env). A sensory neuron
puts its input in channel 0 of its output, the reward neuron the positive reward in channel 1 and
the negative one in channel 2 (paper). The action is channel 0 of the three motor neurons.

One step ``t``: synapse ``(j, i)`` maps source ``i``'s output (sensors and reward at ``t``,
neurons at ``t-1``) to ``z_{ji}[t]`` (the IR's :class:`~plastix.ir.GatedSynapse`: the synapse
input is the pre output only); neuron ``j`` gets ``sum_i z_{ji}[t]``. The exported graph keeps
this wiring but the IR adds one step of latency per projection (``docs/semantics.md``).

The initial output state ``o_0`` of every ENU neuron and synapse is ``N(0, init_noise^2)`` (paper:
"we also add noise to the output gate of the ENU ... so each neuron and synapse behaves slightly
different on initialization"; the IR's ``GatedPopulation.init_noise``), drawn per episode from
the rollout seed and shared by all individuals (common random numbers). GRU / LSTM networks have
no output state and start from zeros (their units differ through their inputs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch.utils import _pytree as pytree

from plastix.ir import GatedPopulation, GatedSynapse, Graph, Input, Projection

from ..algorithms.es_eval import FusedENU, cell_params, cell_step, init_state
from ..algorithms.models import ModelKind, ModelSpec

Tensor = torch.Tensor

N_SENSORS, N_HIDDEN, N_MOTOR = 3, 3, 3
REWARD = N_SENSORS                      # source index of the reward neuron
HIDDEN0 = N_SENSORS + 1                 # first hidden neuron's source index
MOTOR0 = HIDDEN0 + N_HIDDEN             # first motor neuron's source index
N_SOURCES = MOTOR0 + N_MOTOR
N_NEURONS = N_HIDDEN + N_MOTOR
SYN_PER_NEURON = 8


def connectivity() -> Tensor:
    """(N_NEURONS, 8) source index of every synapse (hidden neurons first, then motors)."""
    rows = []
    for i in range(N_HIDDEN):
        rows.append([i, (i + 1) % 3, HIDDEN0 + (i + 1) % 3, HIDDEN0 + (i + 2) % 3,
                     MOTOR0 + i, MOTOR0 + (i + 1) % 3, REWARD, HIDDEN0 + i])
    for j in range(N_MOTOR):
        rows.append([(j + 2) % 3, j, HIDDEN0 + j, HIDDEN0 + (j + 1) % 3,
                     MOTOR0 + (j + 1) % 3, MOTOR0 + (j + 2) % 3, REWARD, MOTOR0 + j])
    return torch.tensor(rows, dtype=torch.long)


@dataclass(frozen=True)
class NetworkSpec:
    """Genome layout of a T-maze network: ``kind`` picks the cell (enu, nfenu, gru, lstm) and
    whether synapses and neurons share it (sharedenu). ``init_noise``: std of ``o_0``.
    ``post_feedback``: a synapse ENU's feedback input carries its postsynaptic neuron's output instead
    of its own (Bertens & Lee, Methods: "a feedback connection from the postsynaptic neuron"; the IR's
    ``GatedSynapse.post_feedback``), so a synapse sees pre and post and can learn Hebbian or
    reward-modulated rules within an episode. Cells without a feedback input (nfenu, gru, lstm) see
    the presynaptic neuron only."""

    kind: ModelKind = ModelKind.ENU
    memory: int = 32
    channels: int = 16
    init_noise: float = 0.1
    post_feedback: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ModelSpec(self.kind).kind)
        if self.init_noise < 0:
            raise ValueError(f"NetworkSpec.init_noise must be >= 0, got {self.init_noise}")

    @property
    def cell(self) -> ModelSpec:
        """The per-cell layout (sharedenu: a plain ENU used twice)."""
        kind = ModelKind.ENU if self.kind is ModelKind.SHAREDENU else self.kind
        return ModelSpec(kind, memory=self.memory, channels=self.channels)

    @property
    def synapses_see_post(self) -> bool:
        """Whether the synapses' feedback input is the post neuron's output (needs a feedback cell)."""
        return self.post_feedback and self.cell.feedback and self.cell.cell_kind == "enu_cell"

    @property
    def shared(self) -> bool:
        return self.kind is ModelKind.SHAREDENU

    @property
    def num_params(self) -> int:
        return self.cell.num_params * (1 if self.shared else 2)

    def split(self, genome: Tensor) -> tuple[Tensor, Tensor]:
        """``genome`` (..., D) -> (synapse genome, neuron genome)."""
        if genome.shape[-1] != self.num_params:
            raise ValueError(f"{self.kind.value} network: genome has {genome.shape[-1]} values, needs {self.num_params}")
        if self.shared:
            return genome, genome
        n = self.cell.num_params
        return genome[..., :n], genome[..., n:]

    def init_genome(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        parts = [self.cell.init_genome(generator, dtype) for _ in range(1 if self.shared else 2)]
        return torch.cat(parts)

    def population_model(self, population: Tensor, *, fused: bool = True) -> "NetworkModel":
        return NetworkModel(self, population, fused=fused)

    def flops_per_step(self) -> int:
        """Multiply-adds x 2 of the gate matmuls of one network step for one individual and env
        (elementwise work left out; it is O(memory) per cell against O(memory^2))."""
        c = self.cell
        per_cell = 2 * sum(math.prod(s) for name, s in c.param_shapes() if len(s) == 2)
        return per_cell * (N_NEURONS * SYN_PER_NEURON + N_NEURONS)

    # -- IR ----------------------------------------------------------------------------------
    def to_graph(self, genome: Tensor | np.ndarray, *, metadata: Mapping[str, object] | None = None) -> Graph:
        """IR graph: Inputs ``sensors`` (3) and ``reward`` (1), GatedPopulations ``hidden`` and
        ``motor`` (3 each, the neuron cell), masked projections whose rule is a
        :class:`~plastix.ir.GatedSynapse` with the synapse cell. Output: ``motor``."""
        g = torch.as_tensor(np.asarray(genome, dtype=np.float32))
        syn, neu = self.split(g)
        syn_cell, neu_cell = self.cell.cell(syn), self.cell.cell(neu)
        conn = connectivity()
        groups = {"sensors": range(0, N_SENSORS), "reward": range(REWARD, REWARD + 1),
                  "hidden": range(HIDDEN0, MOTOR0), "motor": range(MOTOR0, N_SOURCES)}
        posts = {"hidden": range(0, N_HIDDEN), "motor": range(N_HIDDEN, N_NEURONS)}
        projections = []
        for post, prow in posts.items():
            for pre, srcs in groups.items():
                mask = np.array([[int(s) in set(conn[r].tolist()) for s in srcs] for r in prow], dtype=bool)
                if mask.any():
                    projections.append(Projection(name=f"{pre}_to_{post}", pre=pre, post=post,
                                                  weight=np.ones(mask.shape, dtype=np.float32), mask=mask,
                                                  rule=GatedSynapse(cell=syn_cell,
                                                                    post_feedback=self.synapses_see_post)))
        meta = {"model": f"{self.kind.value}_network", "num_params": self.num_params,
                "io": "sensors: channel 0; reward: channel 1 (+) / 2 (-); action = motor channel 0, "
                      "arg-max over 4 steps", **dict(metadata or {})}
        return Graph(populations=(Input(name="sensors", size=N_SENSORS, channels=self.channels),
                                  Input(name="reward", size=1, channels=self.channels),
                                  GatedPopulation(name="hidden", size=N_HIDDEN, cell=neu_cell, init_noise=self.init_noise),
                                  GatedPopulation(name="motor", size=N_MOTOR, cell=neu_cell, init_noise=self.init_noise)),
                     projections=tuple(projections), outputs=("motor",), metadata=meta)


def _take(obj, idx: Tensor, population: int):
    """``obj`` (a tensor, or nested tuples / NamedTuples of them) with every tensor of leading dim
    ``population`` narrowed to the rows ``idx``; other values unchanged."""
    def narrow(leaf):
        if isinstance(leaf, Tensor) and leaf.ndim and leaf.shape[0] == population:
            return leaf.index_select(0, idx)
        return leaf
    return pytree.tree_map(narrow, obj)


def add_memory_gain(spec: NetworkSpec, genome: Tensor, gain: float) -> None:
    """Add ``gain`` x I to the candidate gate's memory block of every ENU cell in ``genome`` (in place; once for a
    shared genome, which serves synapses and neurons alike): with the reset gate near 1/2 and no biases (Bertens &
    Lee eq. 1), ``h_t ~ h_{t-1}/2 + tanh(W_c [r h, o, x])/2`` forgets half its memory per step at a small random
    genome; gain ~1 (r h ~ h/2, so 2 x 1/2) brings the memory block near the integrator ``h_t ~ h_{t-1}`` (an
    identity init, as for plain RNNs) so a pulse is still felt hundreds of steps later."""
    cs = spec.cell
    if cs.cell_kind != "enu_cell":
        raise ValueError(f"add_memory_gain: only for ENU cells, not {spec.kind.value}")
    parts = spec.split(genome)
    with torch.no_grad():
        for part in parts[:1] if spec.shared else parts:   # a shared genome serves synapses and neurons: once
            part_w = cs.unflatten(part)["w_c"]          # a view into genome
            part_w[:, :cs.memory] += gain * torch.eye(cs.memory, dtype=genome.dtype)


def genome_from_graph(spec: NetworkSpec, graph: Graph) -> Tensor:
    """The genome of a T-maze network graph written by :meth:`NetworkSpec.to_graph` (inverse of it): the
    synapse cell from the projections' rule, the neuron cell from the ``hidden`` population.
    ``ValueError`` if the graph is another model's."""
    model = graph.metadata.get("model")
    if model != f"{spec.kind.value}_network":
        raise ValueError(f"the graph holds a {model!r} model, not a {spec.kind.value} T-maze network")
    rule = graph.projections[0].rule
    if rule.post_feedback != spec.synapses_see_post:
        raise ValueError(f"the graph's synapses {'see' if rule.post_feedback else 'do not see'} their post neuron, "
                         f"this {spec.kind.value} network's {'do' if spec.synapses_see_post else 'do not'}")
    syn = spec.cell.genome_of(rule.cell)
    neu = spec.cell.genome_of(next(p for p in graph.populations if p.name == "hidden").cell)
    return syn if spec.shared else torch.cat([syn, neu])


class NetworkModel:
    """A population of T-maze networks: ``act(obs (P, E, 5), state) -> (action (P, E, 3), state)``.
    All synapses of all envs of an individual run as one batched matmul, then all its neurons.

    ENU cells (enu, nfenu, sharedenu) run on :class:`~plastix.backends.torch.neurons.FusedENU` by default
    (preallocated buffers, in-place gates; same equations, other float summation order): their
    state then lives in those buffers, set up by :meth:`init_state`, and the returned state is a
    placeholder. ``fused=False`` (and GRU / LSTM) passes the state functionally."""

    def __init__(self, spec: NetworkSpec, population: Tensor, *, fused: bool = True) -> None:
        self.spec = spec
        syn, neu = spec.split(population)
        cs = spec.cell
        self.fused = fused and cs.cell_kind == "enu_cell"
        self._genomes = (syn, neu)
        if not self.fused:
            self.syn = cell_params(cs, syn)
            self.neu = self.syn if spec.shared else cell_params(cs, neu)
        self.P = population.shape[0]
        self.device, self.dtype = population.device, population.dtype
        self.pre = connectivity().flatten().to(self.device)          # (N * 8,)

    def _cell(self, x: Tensor, state: tuple, p) -> tuple[Tensor, tuple]:
        return cell_step(self.spec.cell)(x, state, p)

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> tuple:
        """(synapse state, neuron state, neuron outputs); cells flattened as (P, E * cells, width)."""
        cs, P, E = self.spec.cell, self.P, batch
        n_syn = N_NEURONS * SYN_PER_NEURON
        noise = cs.cell_kind == "enu_cell" and self.spec.init_noise > 0 and generator is not None

        def noisy(n: int) -> Tensor:
            eps = torch.randn(1, E * n, cs.channels, generator=generator) * self.spec.init_noise
            return eps.to(self.device, self.dtype).expand(P, -1, -1)

        if self.fused:
            C, (syn_g, neu_g) = cs.channels, self._genomes
            self._fsyn = FusedENU(cell_params(cs, syn_g, column_major=False), E * n_syn, C,
                                  own_feedback=not self.spec.synapses_see_post)
            self._fneu = FusedENU(cell_params(cs, neu_g, column_major=False), E * N_NEURONS, C)
            if noise and cs.feedback:   # the initial feedback input o_0
                self._fsyn.feedback_slot.copy_(noisy(n_syn))
                self._fneu.feedback_slot.copy_(noisy(N_NEURONS))
            self._src = torch.zeros(P, E, N_SOURCES, C, device=self.device, dtype=self.dtype)
            self._x = torch.empty(P, E, N_NEURONS * SYN_PER_NEURON, C, device=self.device, dtype=self.dtype)
            return ()
        syn = init_state(cs, P, E * n_syn, device=self.device, dtype=self.dtype)
        neu = init_state(cs, P, E * N_NEURONS, device=self.device, dtype=self.dtype)
        if noise:
            syn = syn._replace(o=noisy(n_syn).contiguous())
            neu = neu._replace(o=noisy(N_NEURONS).contiguous())
        out = torch.zeros(P, E, N_NEURONS, cs.channels, device=self.device, dtype=self.dtype)
        return syn, neu, out

    def keep(self, idx: Tensor, state: tuple) -> tuple:
        """Go on with the individuals ``idx`` (1-d index over the current P) only; returns their state
        (a rollout drops agents whose every env has ended, see :meth:`plastix.tasks.base.BatchedTask.keep`)."""
        P = self.P
        take = lambda obj: _take(obj, idx, P)  # noqa: E731
        if self.fused:
            self._fsyn.keep(idx)
            self._fneu.keep(idx)
            self._src, self._x = self._src.index_select(0, idx), self._x.index_select(0, idx)
        else:
            self.syn = take(self.syn)
            self.neu = self.syn if self.spec.shared else take(self.neu)
        self.P = int(idx.numel())
        return take(state)

    def act(self, obs: Tensor, state: tuple, act_dim: int = N_MOTOR) -> tuple[Tensor, tuple]:
        if self.fused:
            return self._act_fused(obs), state
        syn, neu, out = state
        P, E, C = self.P, obs.shape[1], self.spec.channels
        obs = obs.to(self.dtype).expand(P, -1, -1)
        inputs = obs.new_zeros(P, E, N_SENSORS + 1, C)
        inputs[:, :, :N_SENSORS, 0] = obs[..., :N_SENSORS]
        inputs[:, :, REWARD, 1:3] = obs[..., N_SENSORS:N_SENSORS + 2]
        src = torch.cat([inputs, out], dim=2)                                       # (P, E, sources, C)
        x = src.index_select(2, self.pre).reshape(P, -1, C)                         # (P, E * N * 8, C)
        z, syn = self._cell(x, syn, self.syn)
        a = z.reshape(P, E, N_NEURONS, SYN_PER_NEURON, -1).sum(dim=3)                # (P, E, N, C)
        o, neu = self._cell(a.reshape(P, E * N_NEURONS, -1), neu, self.neu)
        out = o.reshape(P, E, N_NEURONS, -1)
        if self.spec.synapses_see_post:                                             # feedback <- post output
            syn = syn._replace(o=self._per_synapse(out))
        return out[:, :, N_HIDDEN:, 0], (syn, neu, out)

    def _per_synapse(self, out: Tensor) -> Tensor:
        """Neuron outputs (P, E, N, C) -> each synapse's post neuron output (P, E * N * 8, C)."""
        P, E, N, C = out.shape
        return out[:, :, :, None, :].expand(P, E, N, SYN_PER_NEURON, C).reshape(P, E * N * SYN_PER_NEURON, C)

    def _act_fused(self, obs: Tensor) -> Tensor:
        P, E, C, src = self.P, obs.shape[1], self.spec.channels, self._src
        obs = obs.to(self.dtype)
        src[:, :, :N_SENSORS, 0] = obs[..., :N_SENSORS]
        src[:, :, REWARD, 1:3] = obs[..., N_SENSORS:N_SENSORS + 2]
        x = torch.index_select(src, 2, self.pre, out=self._x)
        z = self._fsyn.step(x.view(P, -1, C))
        a = z.view(P, E, N_NEURONS, SYN_PER_NEURON, C).sum(dim=3)
        o = self._fneu.step(a.view(P, E * N_NEURONS, C)).view(P, E, N_NEURONS, C)
        src[:, :, HIDDEN0:].copy_(o)
        if self.spec.synapses_see_post:  # the synapses' feedback slot [m, x0) <- their post neuron's output
            self._fsyn.feedback_slot.copy_(self._per_synapse(o))
        return o[:, :, N_HIDDEN:, 0].clone()
