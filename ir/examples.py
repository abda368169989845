"""Reference graphs built with the builder API (used by docs, tests and demos)."""
from __future__ import annotations

import numpy as np

from .builder import GraphBuilder
from .graph import Graph
from .rules import EligibilityTrace, ModulationMode, PairSTDP, ThreeFactor


def cue_association_net(*, n_in: int = 20, n_hidden: int = 48, n_out: int = 2, n_mod: int = 64,
                        seed: int = 0) -> Graph:
    """The Meta-SpikePropamine one-shot cue-association network: 20 inputs -> 48 CUBA LIF
    (50 % connectivity, 20 % inhibitory synapses) -> 2 readout neurons; a 2 x 64 CUBA
    neuromodulatory SNN (fed by the inputs, a learning signal and the hidden layer) drives
    per-pre LTP/LTD modulation of eligibility-trace pair STDP on input -> hidden."""
    b = GraphBuilder(dt=1e-3, seed=seed)
    x = b.input("cues", n_in)
    sig = b.input("learning_signal", 2)
    h = b.cuba_lif("hidden", n_hidden, du=0.2, dv=0.1, vth=1.0)
    y = b.cuba_lif("action", n_out, du=0.2, dv=0.1, vth=1.0)
    m1 = b.cuba_lif("nm1", n_mod, du=0.2, dv=0.1, vth=1.0)
    m2 = b.cuba_lif("nm2", n_mod, du=0.2, dv=0.1, vth=1.0)
    # initial scales chosen for sparse activity (hidden ~15 % of steps, action ~4 % on cue input)
    for src in (x, sig, h):
        b.connect(src, m1, scale=0.15)
    b.connect(m1, m2, scale=0.4)
    b.modulator("dopamine", m2, size=n_in, channels=2, activation="tanh", scale=0.2)
    stdp = PairSTDP(eta_plus=np.full((n_hidden, n_in), 1e-4), eta_minus=np.full((n_hidden, n_in), 1e-4),
                    decay_pre=0.9, decay_post=0.9)
    rule = ThreeFactor(base=EligibilityTrace(base=stdp, gamma=0.95), modulator="dopamine", mode=ModulationMode.PER_PRE)
    b.connect(x, h, p=0.5, inhibitory=0.2, scale=0.15, rule=rule)
    b.connect(h, h, p=0.5, inhibitory=0.2, scale=0.05)
    b.connect(h, y, scale=0.5)
    return b.build(outputs=[y], metadata={"source": "Schmidgall & Hays, Meta-SpikePropamine (cue association)"})
