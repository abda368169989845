"""Reference graphs built with the builder API (used by docs, tests and demos)."""
from __future__ import annotations

import numpy as np

from .builder import GraphBuilder
from .graph import Graph
from .rules import EligibilityTrace, ModulationMode, PairSTDP, ThreeFactor, TripletSTDP

#: plasticity variants of :func:`cue_association_net` (Meta-SpikePropamine Methods): modulated
#: eligibility traces (eqs. 16, 19) of pair (eq. 12) or triplet (eq. 15) STDP, or the modulated STDP
#: terms directly (three-factor form without a trace, eqs. 17-19)
CUE_RULES = ("eligibility_pair", "eligibility_triplet", "pair", "triplet")


def cue_association_net(*, n_in: int = 20, n_hidden: int = 48, n_out: int = 2, n_mod: int = 64,
                        seed: int = 0, rule: str = "eligibility_pair", gamma: float = 0.95,
                        modulation: str | ModulationMode = ModulationMode.PER_PRE, mod_scale: float = 1.0,
                        eta: float = 1e-4) -> Graph:
    """The Meta-SpikePropamine one-shot cue-association network: 20 inputs -> 48 CUBA LIF
    (50 % connectivity, 20 % inhibitory synapses) -> 2 readout neurons; a 2 x 64 CUBA
    neuromodulatory SNN (fed by the inputs, a learning signal and the hidden layer) drives
    per-pre LTP/LTD modulation of eligibility-trace pair STDP on input -> hidden.

    ``rule`` picks one of :data:`CUE_RULES`; ``gamma`` is the eligibility decay (eq. 16);
    ``modulation`` the broadcast of M (``per_pre`` M_i as in the paper, or ``per_post``/``global``);
    ``eta`` the initial STDP rates η±; ``mod_scale`` the initial scale of the modulator readout (long episodes need a smaller one: the
    weight change grows with the episode length)."""
    if rule not in CUE_RULES:
        raise ValueError(f"unknown cue-association rule {rule!r}; known: {', '.join(CUE_RULES)}")
    b = GraphBuilder(dt=1e-3, seed=seed)
    x = b.input("cues", n_in)
    sig = b.input("learning_signal", 2)
    h = b.cuba_lif("hidden", n_hidden, du=0.2, dv=0.1, vth=1.0)
    y = b.cuba_lif("action", n_out, du=0.2, dv=0.1, vth=1.0)
    m1 = b.cuba_lif("nm1", n_mod, du=0.2, dv=0.1, vth=1.0)
    m2 = b.cuba_lif("nm2", n_mod, du=0.2, dv=0.1, vth=1.0)
    # initial scales chosen for sparse activity (hidden ~15 % of steps, action ~4 % on cue input)
    # the learning signal is the only label-carrying input: it starts strong enough to make nm1 fire
    for src, scale in ((x, 0.15), (sig, 1.5), (h, 0.15)):
        b.connect(src, m1, scale=scale)
    b.connect(m1, m2, scale=0.4)
    mode = ModulationMode(modulation)
    n_m = {ModulationMode.PER_PRE: n_in, ModulationMode.PER_POST: n_hidden}.get(mode, 1)
    if mode is ModulationMode.PER_SYNAPSE:
        raise ValueError("per_synapse modulation is not offered for the cue-association net")
    b.modulator("dopamine", m2, size=n_m, channels=2, activation="tanh", scale=mod_scale)
    rates = np.full((n_hidden, n_in), eta)
    if rule.endswith("triplet"):
        stdp = TripletSTDP(eta_plus=rates, eta_minus=rates, decay_pre=0.9, decay_post=0.9, decay_slow=0.97)
    else:
        stdp = PairSTDP(eta_plus=rates, eta_minus=rates, decay_pre=0.9, decay_post=0.9)
    base = EligibilityTrace(base=stdp, gamma=gamma) if rule.startswith("eligibility") else stdp
    plastic = ThreeFactor(base=base, modulator="dopamine", mode=mode)
    b.connect(x, h, p=0.5, inhibitory=0.2, scale=0.15, rule=plastic)
    b.connect(h, h, p=0.5, inhibitory=0.2, scale=0.05)
    b.connect(h, y, scale=0.5)
    return b.build(outputs=[y], metadata={"source": "Schmidgall & Hays, Meta-SpikePropamine (cue association)"})
