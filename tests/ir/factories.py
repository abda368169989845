"""One small valid instance of every registered IR kind, embedded in a graph.

``KIND_FACTORIES`` must cover the registry: ``test_roundtrip`` fails for a kind without one, so a
new kind cannot land without a round-trip test.
"""
from __future__ import annotations

import numpy as np

import plastix.ir as ir

N_PRE, N_POST = 3, 2
RNG = np.random.default_rng(0)


def _w(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape)


def enu_cell(cin: int = 1, cout: int = 1, memory: int = 4) -> ir.ENUCell:
    concat = memory + cout + cin
    return ir.ENUCell(memory=memory, in_channels=cin, out_channels=cout, w_z=_w(memory, concat),
                      w_r=_w(memory, concat), w_c=_w(memory, concat), w_o=_w(cout, memory))


def gru_cell(cin: int = 1, cout: int = 1, hidden: int = 3) -> ir.GRUCell:
    return ir.GRUCell(hidden=hidden, in_channels=cin, out_channels=cout, w_ih=_w(3 * hidden, cin),
                      w_hh=_w(3 * hidden, hidden), w_o=_w(cout, hidden), b_ih=_w(3 * hidden))


def lstm_cell(cin: int = 1, cout: int = 1, hidden: int = 3) -> ir.LSTMCell:
    return ir.LSTMCell(hidden=hidden, in_channels=cin, out_channels=cout, w_ih=_w(4 * hidden, cin),
                       w_hh=_w(4 * hidden, hidden), w_o=_w(cout, hidden), b_o=_w(cout))


def pair() -> ir.PairSTDP:
    return ir.PairSTDP(eta_plus=_w(N_POST, N_PRE), eta_minus=0.01, decay_pre=0.9, decay_post=0.8,
                       mu=1.0, w_min=-1.0, w_max=1.0, hard_bounds=True, trace=ir.TraceKind.SATURATING)


def triplet() -> ir.TripletSTDP:
    return ir.TripletSTDP(eta_plus=0.1, eta_minus=0.05, decay_pre=0.9, decay_post=0.8, decay_slow=0.95,
                          eta_pair=np.full((N_POST, N_PRE), 0.01))


def base_graph(rule: ir.Rule | None = None, *, modulator: ir.Modulator | None = None,
               pre: ir.Population | None = None, post: ir.Population | None = None) -> ir.Graph:
    pre = pre or ir.Input(name="x", size=N_PRE)
    post = post or ir.CubaLIF(name="h", size=N_POST, du=0.2, dv=np.array([0.1, 0.3]), vth=1.0, bias=0.05, refractory=2)
    pops = [pre, post] if isinstance(pre, ir.Input) else [ir.Input(name="x", size=pre.size), pre, post]
    projs = [ir.Projection(name="syn", pre=pre.name, post=post.name, weight=_w(post.size, pre.size),
                           mask=RNG.random((post.size, pre.size)) < 0.7, sign=np.array([[1, -1, 0], [0, 1, 1]])[:, :pre.size],
                           delay=1, rule=rule)]
    if not isinstance(pre, ir.Input):
        projs.append(ir.Projection(name="feed", pre="x", post=pre.name, weight=_w(pre.size, pre.size)))
    mods = (modulator,) if modulator is not None else ()
    return ir.Graph(populations=tuple(pops), projections=tuple(projs), modulators=mods,
                    outputs=(post.name,), dt=1e-3, metadata={"note": "factory", "seed": 0})


def modulator(size: int, channels: int = 1) -> ir.Modulator:
    return ir.Modulator(name="m", source="h", size=size, weight=_w(channels * size, N_POST), channels=channels,
                        activation=ir.Activation.TANH)


KIND_FACTORIES = {
    "graph": lambda: base_graph(),
    "projection": lambda: base_graph(),
    "input": lambda: base_graph(),
    "cuba_lif": lambda: base_graph(),
    "li": lambda: base_graph(post=ir.LIReadout(name="h", size=N_POST, du=0.5, dv=0.2, bias=0.1)),
    "modulator": lambda: base_graph(ir.ThreeFactor(base=pair(), modulator="m", mode=ir.ModulationMode.PER_POST),
                                    modulator=modulator(N_POST)),
    "enu_cell": lambda: base_graph(post=ir.GatedPopulation(name="h", size=N_POST, cell=enu_cell(), init_noise=0.1)),
    "gated": lambda: base_graph(post=ir.GatedPopulation(name="h", size=N_POST, cell=enu_cell(), init_noise=0.1)),
    "gru_cell": lambda: base_graph(ir.GatedSynapse(cell=gru_cell())),
    "lstm_cell": lambda: base_graph(ir.GatedSynapse(cell=lstm_cell())),
    "gated_synapse": lambda: base_graph(ir.GatedSynapse(cell=enu_cell(memory=3))),
    "hebbian_decay": lambda: base_graph(ir.HebbianDecay(eta=0.1, alpha=_w(N_POST, N_PRE), interval=5, clip=2.0)),
    "oja": lambda: base_graph(ir.Oja(eta=0.2, alpha=_w(N_POST, N_PRE), modulator="m"), modulator=modulator(N_POST)),
    "bcm": lambda: base_graph(ir.BCM(eta=0.1, eta_phi=np.array([0.1, 0.2, 0.3]), psi=_w(N_PRE), alpha=0.5)),
    "pair_stdp": lambda: base_graph(pair()),
    "triplet_stdp": lambda: base_graph(ir.ThreeFactor(base=triplet(), modulator="m", mode=ir.ModulationMode.GLOBAL),
                                       modulator=modulator(1)),
    "eligibility": lambda: base_graph(ir.ThreeFactor(base=ir.EligibilityTrace(base=pair(), gamma=0.9), modulator="m",
                                                     mode=ir.ModulationMode.PER_PRE), modulator=modulator(N_PRE, 2)),
    "three_factor": lambda: base_graph(ir.ThreeFactor(base=ir.EligibilityTrace(base=triplet(), gamma=_w(N_POST, N_PRE) ** 2 / 10),
                                                      modulator="m", mode=ir.ModulationMode.PER_SYNAPSE),
                                       modulator=modulator(N_PRE * N_POST, 2)),
    "synaptic_q": lambda: base_graph(ir.SynapticQ(q_table=_w(81, 3), form=ir.QUpdateForm.MULTIPLICATIVE)),
    "loihi": lambda: base_graph(ir.LoihiRule(dw="2^-2*x1*y0 - 2^-2*y1*x0 + u0*t*y2", dt="x0*y1 - t*2^-3",
                                             x1_impulse=16, x1_tau=10, y1_impulse=16, y1_tau=10, t_epoch=2,
                                             rng_seed=3, modulator="m"), modulator=modulator(N_POST)),
}
