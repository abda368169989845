"""Reference graphs built with the builder API (used by docs, tests and demos)."""
from __future__ import annotations

import dataclasses

import numpy as np

from .builder import GraphBuilder
from .graph import Graph
from .neurons import CubaLIF
from .rules import EligibilityTrace, ModulationMode, PairSTDP, ThreeFactor, TraceKind, TripletSTDP
from .synapses import Modulator, Projection

#: plasticity variants of :func:`cue_association_net` (Meta-SpikePropamine Methods): modulated
#: eligibility traces (eqs. 16, 19) of pair (eq. 12) or triplet (eq. 15) STDP, or the modulated STDP
#: terms directly (three-factor form without a trace, eqs. 17-19)
CUE_RULES = ("eligibility_pair", "eligibility_triplet", "pair", "triplet")


def cue_association_net(*, n_in: int = 20, n_hidden: int = 48, n_out: int = 2, n_mod: int = 64,
                        seed: int = 0, rule: str = "eligibility_pair", gamma: float | np.ndarray = 0.95,
                        modulation: str | ModulationMode = ModulationMode.PER_PRE, mod_scale: float = 1.0,
                        eta: float = 1e-4, eta_minus: float | None = None, decay_pre: float = 0.9,
                        decay_post: float = 0.9, w_max: float | None = None,
                        nm_scales: tuple[float, float, float] = (0.15, 1.5, 0.15), mod_channels: int = 2,
                        mod_activation: str = "tanh", in_scale: float = 0.15, recurrent_scale: float = 0.05,
                        out_scale: float = 0.5, p_in: float = 0.5, inhibitory_in: float = 0.2,
                        scalar_rates: bool = False, trace_includes_spike: bool = False,
                        excitatory_in: bool = False, nm_memory: int = 0, nm_memory_du: float = 0.002,
                        trace: str = "linear") -> Graph:
    """The Meta-SpikePropamine one-shot cue-association network: 20 inputs -> 48 CUBA LIF
    (50 % connectivity, 20 % inhibitory synapses) -> 2 readout neurons; a 2 x 64 CUBA
    neuromodulatory SNN (fed by the inputs, a learning signal and the hidden layer) drives
    LTP/LTD modulation of eligibility-trace pair STDP on input -> hidden.

    ``rule`` picks one of :data:`CUE_RULES`; ``gamma`` is the eligibility decay (eq. 16): a scalar
    or one value per hidden neuron; ``modulation`` the broadcast of M (``per_pre`` M_i as in the
    paper, or ``per_post``/``global``); ``eta`` / ``eta_minus`` the initial STDP rates η+ / η- (η-
    defaults to η+); ``decay_pre`` / ``decay_post`` the STDP trace decays α_x; ``w_max`` hard
    bounds ``[-w_max, w_max]`` on the plastic weights (signed synapses also stop at zero);
    ``nm_scales`` the initial weight scales of cues, learning signal and hidden layer into the
    NM-SNN; ``mod_channels`` (2: separate LTP/LTD signals), ``mod_activation`` and ``mod_scale``
    shape the modulator readout (long episodes need a smaller scale: the weight change grows with
    the episode length); ``in_scale``, ``recurrent_scale`` (0: no hidden recurrence) and
    ``out_scale`` the initial scales of input -> hidden, hidden -> hidden and hidden -> action;
    ``p_in`` / ``inhibitory_in`` the connection probability and inhibitory fraction of input ->
    hidden (the paper's 50 % / 20 %; 1 / 0 gives a dense, unsigned matrix as Loihi's learning engine
    needs); ``excitatory_in`` makes every input -> hidden synapse excitatory (sign +1, a Lava
    ``LearningDense`` with sign mode EXCITATORY); ``scalar_rates`` one η± for all synapses;
    ``trace_includes_spike`` Loihi's trace convention for the STDP terms; ``trace`` the STDP traces'
    update, ``linear`` (eq. 9) or ``saturating`` (eq. 10 with beta = x_max = 1: a spike sets the trace to
    ~1); ``nm_memory`` > 0 adds
    that many slow NM neurons (:func:`add_nm_memory`)."""
    if rule not in CUE_RULES:
        raise ValueError(f"unknown cue-association rule {rule!r}; known: {', '.join(CUE_RULES)}")
    b = GraphBuilder(dt=1e-3, seed=seed)
    x = b.input("cues", n_in)
    sig = b.input("learning_signal", 2)
    h = b.cuba_lif("hidden", n_hidden, du=0.2, dv=0.1, vth=1.0)
    y = b.cuba_lif("action", n_out, du=0.2, dv=0.1, vth=1.0)
    m1 = b.cuba_lif("nm1", n_mod, du=0.2, dv=0.1, vth=1.0)
    m2 = b.cuba_lif("nm2", n_mod, du=0.2, dv=0.1, vth=1.0)
    # default scales chosen for sparse activity (hidden ~15 % of steps, action ~4 % on cue input);
    # the learning signal is the only label-carrying input: it starts strong enough to make nm1 fire
    for src, scale in zip((x, sig, h), nm_scales):
        b.connect(src, m1, scale=scale)
    b.connect(m1, m2, scale=0.4)
    mode = ModulationMode(modulation)
    n_m = {ModulationMode.PER_PRE: n_in, ModulationMode.PER_POST: n_hidden}.get(mode, 1)
    if mode is ModulationMode.PER_SYNAPSE:
        raise ValueError("per_synapse modulation is not offered for the cue-association net")
    b.modulator("dopamine", m2, size=n_m, channels=mod_channels, activation=mod_activation, scale=mod_scale)
    minus = eta if eta_minus is None else eta_minus
    plus, minus = (eta, minus) if scalar_rates else (np.full((n_hidden, n_in), eta), np.full((n_hidden, n_in), minus))
    kw = dict(eta_plus=plus, eta_minus=minus, decay_pre=decay_pre, decay_post=decay_post,
              trace_includes_spike=trace_includes_spike, trace=TraceKind(trace))
    if w_max is not None:
        kw.update(w_min=-w_max, w_max=w_max, hard_bounds=True)
    stdp = TripletSTDP(decay_slow=0.97, **kw) if rule.endswith("triplet") else PairSTDP(**kw)
    g = np.asarray(gamma, dtype=np.float64)
    if g.ndim == 1:  # one eligibility time constant per hidden neuron
        g = np.repeat(g[:, None], n_in, axis=1)
    base = EligibilityTrace(base=stdp, gamma=g) if rule.startswith("eligibility") else stdp
    plastic = ThreeFactor(base=base, modulator="dopamine", mode=mode)
    if excitatory_in:
        w_in = np.abs(np.random.default_rng(seed + 1).normal(0.0, in_scale / np.sqrt(n_in), (n_hidden, n_in)))
        b.connect(x, h, weight=w_in, p=p_in, rule=plastic, sign=np.ones((n_hidden, n_in), dtype=int))
    else:
        b.connect(x, h, p=p_in, inhibitory=inhibitory_in, scale=in_scale, rule=plastic)
    if recurrent_scale:
        b.connect(h, h, p=0.5, inhibitory=0.2, scale=recurrent_scale)
    b.connect(h, y, scale=out_scale)
    g = b.build(outputs=[y], metadata={"source": "Schmidgall & Hays, Meta-SpikePropamine (cue association)"})
    return add_nm_memory(g, nm_memory, du=nm_memory_du, seed=seed) if nm_memory else g


def add_nm_memory(graph: Graph, size: int, *, du: float = 0.002, signal_scale: float = 0.01,
                  out_scale: float = 0.05, seed: int = 0) -> Graph:
    """Give the NM-SNN of a cue-association net a memory of the feedback it has seen: ``size`` CUBA
    neurons with a slow current (``du``; 0.002 keeps ~half the current for a 350-step trial), driven
    by the learning signal (weights ~ ``signal_scale``), feeding ``nm2`` (weights ~ ``out_scale``).

    Why: the eligibility trace still holds the first training trial when the second trial's
    feedback arrives, so equal modulation at both feedbacks writes ``E_1 - (gamma^L E_1 + E_2)``
    instead of ``E_1 - E_2`` (tasks/cue_bounds.py: ceiling 0.61 -> 0.97 at M = 5 for tau = 1000
    steps when the second write is scaled by ``1 / (1 + gamma^L)``). Scaling the second write needs
    the NM-SNN to know that a feedback came before: these neurons fire tonically after one.
    Works on a fresh net and on a trained one (the new synapses start small)."""
    if size < 1:
        raise ValueError(f"nm_memory size must be >= 1, got {size}")
    names = {p.name for p in graph.populations}
    if not {"learning_signal", "nm2"} <= names or "nm_mem" in names:
        raise ValueError("add_nm_memory needs a cue-association net with 'learning_signal' and 'nm2' and no 'nm_mem'")
    rng = np.random.default_rng(seed + 7)
    n2 = graph.population("nm2").size
    n_sig = graph.population("learning_signal").size
    mem = CubaLIF(name="nm_mem", size=size, du=du, dv=0.1, vth=1.0)
    w_in = np.abs(rng.normal(signal_scale, signal_scale / 2, (size, n_sig)))
    w_out = rng.normal(0.0, out_scale / np.sqrt(size), (n2, size))
    projs = (Projection(name="learning_signal_to_nm_mem", pre="learning_signal", post="nm_mem", weight=w_in),
             Projection(name="nm_mem_to_nm2", pre="nm_mem", post="nm2", weight=w_out))
    return graph.replace(populations=graph.populations + (mem,), projections=graph.projections + projs)


def _with_pre_size(node, n_pre_old: int, n_pre: int):
    """``node`` (a rule tree) with every per-synapse ``(n_post, n_pre_old)`` array replaced by its row mean
    repeated over ``n_pre`` columns; other fields unchanged."""
    changes = {}
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[1] == n_pre_old:
            changes[f.name] = np.repeat(v.mean(axis=1, keepdims=True), n_pre, axis=1)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            changes[f.name] = _with_pre_size(v, n_pre_old, n_pre)
    return dataclasses.replace(node, **changes)


def add_anti_hebbian_pool(graph: Graph, size: int, *, in_weight: float = 0.02, seed: int = 0) -> Graph:
    """Pooled anti-Hebbian input for a cue-association net: ``size`` CUBA ``pool`` neurons driven by every
    input (non-plastic weights ~ ``in_weight``: a pool neuron fires roughly in proportion to the total
    input activity) and a plastic ``pool -> hidden`` projection (unsigned, starting at 0) under the input
    -> hidden rule with its rates negated (same modulator -- under per-pre modulation the pool neurons
    get their own signals ``M_k``, a modulator ``<name>_pool`` starting at the inputs' mean; time
    constants and rate magnitudes start at each hidden neuron's mean): what the inputs' synapses write,
    these synapses write with the opposite sign, in proportion to the activity of all inputs.

    Why (docs/results.md, issue 14): a Hebbian store of the two training trials' *raw* spike counts,
    read out linearly in the test trial, is right on ~80 % of M = 5 problems; the same store centred over
    the inputs on ~98 %. A per-post (or global) modulated pair rule only writes terms proportional to
    each input's own activity, so it cannot centre; an anti-Hebbian synapse from a neuron that counts
    *all* inputs stores the mean term with the opposite sign and so subtracts it in the test trial. Works
    on a fresh net and on a trained one (the new synapses start at 0)."""
    if size < 1:
        raise ValueError(f"anti-Hebbian pool size must be >= 1, got {size}")
    names = {p.name for p in graph.populations}
    if not {"cues", "hidden"} <= names or "pool" in names:
        raise ValueError("add_anti_hebbian_pool needs a cue-association net with 'cues' and 'hidden' and no 'pool'")
    src = next((p for p in graph.projections if p.pre == "cues" and p.post == "hidden"), None)
    if src is None or not isinstance(src.rule, ThreeFactor):
        raise ValueError("add_anti_hebbian_pool needs the plastic three-factor cues -> hidden projection")
    rng = np.random.default_rng(seed + 11)
    n_in, n_hidden = graph.population("cues").size, graph.population("hidden").size
    pool = CubaLIF(name="pool", size=size, du=0.2, dv=0.1, vth=1.0)
    w_in = rng.uniform(0.5 * in_weight, 1.5 * in_weight, (size, n_in))
    rule = _with_pre_size(src.rule, n_in, size)
    stdp = rule.base.base if isinstance(rule.base, EligibilityTrace) else rule.base
    stdp = dataclasses.replace(stdp, eta_plus=-np.asarray(stdp.eta_plus), eta_minus=-np.asarray(stdp.eta_minus))
    rule = rule.replace(base=rule.base.replace(base=stdp) if isinstance(rule.base, EligibilityTrace) else stdp)
    mods = graph.modulators
    if rule.mode is ModulationMode.PER_PRE:  # one signal per input: the pool neurons get their own, from the same source
        mod = _pool_modulator(graph.modulator(rule.modulator), size)
        mods, rule = mods + (mod,), rule.replace(modulator=mod.name)
    projs = (Projection(name="cues_to_pool", pre="cues", post="pool", weight=w_in),
             Projection(name="pool_to_hidden", pre="pool", post="hidden", weight=np.zeros((n_hidden, size)), rule=rule))
    return graph.replace(populations=graph.populations + (pool,), projections=graph.projections + projs, modulators=mods)


def _pool_modulator(m: Modulator, size: int) -> Modulator:
    """Per-pre signals ``M_k`` for ``size`` pool neurons next to the inputs' ``M_i`` (modulator ``m``):
    same source, channels and activation, every pool row starting at the mean of its channel's input rows
    (so each pool neuron starts with the inputs' mean modulation: the mean term it is there to subtract)."""
    w = np.asarray(m.weight, dtype=np.float64).reshape(m.channels, m.size, -1)
    b = np.broadcast_to(np.asarray(m.bias, dtype=np.float64), (m.channels * m.size,)).reshape(m.channels, m.size)
    return Modulator(name=f"{m.name}_pool", source=m.source, size=size, channels=m.channels, activation=m.activation,
                     weight=np.repeat(w.mean(1, keepdims=True), size, axis=1).reshape(m.channels * size, -1),
                     bias=np.repeat(b.mean(1, keepdims=True), size, axis=1).reshape(-1))


#: population and input names of :func:`one_shot_glyph_net` (the trainer and the evaluation feed these)
GLYPH_FEATURES, GLYPH_GATE = "features", "nm_gate"


def one_shot_glyph_net(*, n_features: int = 196, n_hidden: int = 48, n_mod: int = 64, seed: int = 0,
                       plastic: bool = True, eta: float | np.ndarray = 1e-3, eta_minus: float | np.ndarray | None = None,
                       gamma: float | np.ndarray = 0.95, decay_pre: float = 0.8, decay_post: float = 0.8,
                       decay_slow: float = 0.95, w_max: float | None = None, input_gain: float = 0.1,
                       in_scale: float = 1.0, p_in: float = 0.5, inhibitory_in: float = 0.2,
                       nm_scales: tuple[float, float] = (1.0, 1.0), nm_recurrent_scale: float = 1.0,
                       mod_scale: float = 1.0, out_scale: float = 1.0, gate_strength: float = 1e3,
                       du: float = 0.2, dv: float = 0.1) -> Graph:
    """The Meta-SpikePropamine one-shot character network (Fig. 6) behind its CNN: the CNN's flattened
    features (``n_features`` = 196 for 28 x 28 images; the CNN is not an IR node, the trainer runs it)
    arrive as graded current on the input ``features`` and drive 196 CUBA ``sensory`` neurons one to
    one (weight ``input_gain``, fixed). DP-SNN: ``sensory`` -> 48 CUBA ``hidden`` (``p_in`` = 50 %
    connectivity, ``inhibitory_in`` = 20 % inhibitory synapses), plastic with additive triplet STDP
    (eqs. 14-15) in separate LTP / LTD eligibility traces (eq. 16), modulated per input neuron
    (``M_i``, eq. 19) on two channels (LTP, LTD) by the NM-SNN: two layers ``nm1``, ``nm2`` of
    ``n_mod`` = 64 CUBA neurons, ``nm1`` reading ``sensory`` and ``hidden`` (no other input),
    read out by the modulator ``dopamine`` (tanh, no bias: silent ``nm2`` means M = 0).

    Modulation only in phase 1: the input ``nm_gate`` (1 while modulation is off) inhibits ``nm2``
    with weight ``-gate_strength``, so ``nm2`` is silent and M is exactly 0 while it is on.

    Output ``readout``: one leaky integrator with ``du = dv = 1``, i.e. ``readout[t] = w . hidden[t-1]``
    (a linear readout of the hidden spikes); the phase-2 image with the largest summed readout is the
    answer. ``plastic=False`` is the non-plastic baseline: the same sensory -> hidden -> readout
    path with static (trainable) weights, and no NM-SNN, modulator or gate (nothing to modulate).

    ``eta`` / ``eta_minus`` are the initial rates eta+ / eta- (scalars or ``(n_hidden, n_features)``);
    ``gamma`` the eligibility decay (scalar or one per hidden neuron); ``decay_pre`` / ``decay_post`` /
    ``decay_slow`` the STDP trace decays (fast pre, fast post, slow post); ``w_max`` hard bounds
    ``[-w_max, w_max]``; ``in_scale``, ``nm_scales`` (sensory, hidden -> nm1), ``nm_recurrent_scale``
    (nm1 -> nm2), ``mod_scale`` and ``out_scale`` the initial weight scales (|N(0, s^2 / n_pre)|);
    ``du`` / ``dv`` the current and voltage decays of every CUBA population (threshold 1; the paper
    does not state them for this task)."""
    b = GraphBuilder(dt=1e-3, seed=seed)
    f = b.input(GLYPH_FEATURES, n_features)
    s = b.cuba_lif("sensory", n_features, du=du, dv=dv, vth=1.0)
    h = b.cuba_lif("hidden", n_hidden, du=du, dv=dv, vth=1.0)
    y = b.li("readout", 1, du=1.0, dv=1.0)
    b.connect(f, s, weight=input_gain * np.eye(n_features), mask=np.eye(n_features, dtype=bool))
    rule = None
    if plastic:
        shape = (n_hidden, n_features)
        plus = np.broadcast_to(np.asarray(eta, dtype=np.float64), shape).copy()
        minus = plus if eta_minus is None else np.broadcast_to(np.asarray(eta_minus, dtype=np.float64), shape).copy()
        kw = dict(eta_plus=plus, eta_minus=minus, decay_pre=decay_pre, decay_post=decay_post, decay_slow=decay_slow)
        if w_max is not None:
            kw.update(w_min=-w_max, w_max=w_max, hard_bounds=True)
        g = np.asarray(gamma, dtype=np.float64)
        g = np.repeat(g[:, None], n_features, axis=1) if g.ndim == 1 else g
        rule = ThreeFactor(base=EligibilityTrace(base=TripletSTDP(**kw), gamma=g), modulator="dopamine",
                           mode=ModulationMode.PER_PRE)
    # the DP-SNN's weights first, so that the plastic and the non-plastic net start from the same ones
    b.connect(s, h, p=p_in, inhibitory=inhibitory_in, scale=in_scale, rule=rule)
    b.connect(h, y, scale=out_scale)
    if plastic:
        gate = b.input(GLYPH_GATE, 1)
        m1 = b.cuba_lif("nm1", n_mod, du=du, dv=dv, vth=1.0)
        m2 = b.cuba_lif("nm2", n_mod, du=du, dv=dv, vth=1.0)
        b.connect(s, m1, scale=nm_scales[0])
        b.connect(h, m1, scale=nm_scales[1])
        b.connect(m1, m2, scale=nm_recurrent_scale)
        b.connect(gate, m2, weight=np.full((n_mod, 1), -float(gate_strength)))
        b.modulator("dopamine", m2, size=n_features, channels=2, activation="tanh", scale=mod_scale)
    return b.build(outputs=[y], metadata={"source": "Schmidgall & Hays, Meta-SpikePropamine (one-shot characters)"})
