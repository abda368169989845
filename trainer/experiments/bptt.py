"""Meta-SpikePropamine's one-shot cue association, meta-learned by surrogate-gradient BPTT through
neuron *and* plasticity dynamics (the experiment; the shared algorithm is :mod:`.gradient`).

The inner loop is the network's own plasticity: every episode (one cue-association problem) starts
from the stored weights with all plastic state reset, and the rule changes the weights while the
episode runs. The outer loop is Adam on the stored weights, the rule coefficients (η±, γ, α, ...)
and the neuromodulatory network (Meta-SpikePropamine eqs. 1-2), with gradients backpropagated
through time through both (surrogate gradient for spikes).

:class:`CueModel` is a :class:`~.gradient.PlasticNet` with the task's episodes and BCE loss;
:class:`BPTTJob` plugs into the shared checkpoint / resume / progress / log / plot loop of
:mod:`plastix.trainer.runner`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plastix.backends.torch import compile as compile_torch
from plastix.ir import EligibilityTrace, Graph, ModulationMode, Modulator, ThreeFactor, consumes
from plastix.ir.rules import TraceKind
from plastix.ir import load as load_graph
from plastix.ir import save as save_graph
from plastix.ir.examples import add_anti_hebbian_pool, add_nm_memory, cue_association_net
from plastix.tasks.cue_association import CueProblems, OneShotCueConfig, one_shot_cue_problems

from .cue_eval import EVAL_BATCH, accuracy, evaluate_model, run_frozen_test
from ..algorithms.gradient import GradientJob, GradientState, PlasticNet, bce_loss, rate_penalty

BPTTState = GradientState

READOUTS = ("decision", "trial")


# ---------------------------------------------------------------------------------------------
# configs


NM_INPUTS = ("all", "signal", "signal_fast")


@dataclass(frozen=True)
class BPTTConfig:
    """Outer-loop and task/model settings. The presets live in :data:`CONFIGS`."""

    task: str = "one_shot_cue"
    iterations: int = 200
    batch: int = 32
    lr: float = 2e-3
    rule_lr: float = 0.005           # lr multiplier for the STDP rates and eligibility time constants (raw rates
                                     # start at 1e-4: Adam steps ~lr would swamp them; log-space ones want ~5)
    readout_lr: float = 10.0         # lr multiplier for the BCE readout gain/offset (O(1) scalars; slow ones leave the
                                     # outputs miscalibrated and training drifts to silence)
    grad_clip: float = 1.0
    n_cues: int = 5
    n_hidden: int = 48
    n_mod: int = 64
    seed: int = 0
    surrogate: str = "fast_sigmoid"
    train_neurons: bool = False
    neuron_lr: float = 1.0           # lr multiplier for the neuron constants when train_neurons (bias, vth, du, dv)
    bias_lr: float | None = None     # lr multiplier for the neuron biases alone (None: neuron_lr): a bias moves the
                                     # operating point at any size, a step in du of a slow neuron (0.06) is not small
    hidden_bias: float = 0.0         # initial bias of the hidden CUBA neurons (< 0: a thresholded, selective readout
                                     # of the stored association; tools/cue_storage_probe.py, docs/results.md issue 14)
    eval_problems: int = 128
    eval_every: int = 10
    # task / model variants (see docs/results.md for which ones learn)
    permute: bool = True             # permute the sensory neurons per problem (the meta-learning task)
    readout: str = "decision"        # output spikes counted over the test "decision" window or the whole test "trial"
    rule: str = "eligibility_pair"   # one of plastix.ir.examples.CUE_RULES
    modulation: str = "per_pre"      # M_i (paper), per_post M_j or global M
    gamma: float = 0.95              # initial eligibility decay (used when tau_e is None)
    tau_e: tuple[float, float] | None = None  # initial eligibility time constants 1/(1 - gamma), log-spaced over
                                     # the hidden neurons from tau_e[0] to tau_e[1] steps (replaces gamma)
    log_params: bool = False         # learn the STDP rates and eligibility time constants in log space, with a
                                     # unit-gain trace (E <- gamma E + (1 - gamma) STDP; CueModel.reparam)
    mod_scale: float = 1.0           # initial modulator readout scale (cue_association_net)
    eta: float = 1e-4                # initial STDP rate eta+ (with log_params: the unit-gain rate)
    eta_minus_ratio: float = 1.0     # initial eta- / eta+
    decay_pre: float = 0.9           # STDP trace decays alpha_x (eq. 9)
    stdp_trace: str = "linear"       # STDP trace update: "linear" (eq. 9) or "saturating" (eq. 10, beta = x_max = 1:
                                     # a spike sets the trace to ~1, so a slow post trace reads "fired recently" and
                                     # the LTD term counts pre spikes alike for every active hidden neuron)
    decay_post: float = 0.9
    w_max: float | None = None       # hard bounds [-w_max, w_max] on the plastic weights
    nm_scales: tuple[float, float, float] = (0.15, 1.5, 0.15)  # cues, learning signal, hidden -> NM-SNN
    mod_channels: int = 2            # 2: separate LTP / LTD modulation; 1: one signal on LTP - LTD
    mod_activation: str = "tanh"
    p_in: float = 0.5                # input -> hidden connection probability and inhibitory fraction (the paper's;
    inhibitory_in: float = 0.2       # 1 / 0: dense and unsigned, as Loihi's learning engine needs)
    excitatory_in: bool = False      # every input -> hidden synapse excitatory (the engine's EXCITATORY sign mode)
    scalar_rates: bool = False       # one eta+ / eta- for all plastic synapses (the learning engine's form)
    mixed_polarity: bool = False     # every second hidden neuron starts with negated STDP rates (kept in log space):
                                     # under per-pre or global modulation all hidden neurons would otherwise write the
                                     # association with one sign; per-post learns both (a differential code,
                                     # docs/results.md, issue 14)
    shared_mod_init: bool = False    # the write modulator's readout rows start equal within each channel (M_i = M for
                                     # every i at the start: a global signal gradient descent can then specialise);
                                     # random rows give per-pre M_i random signs per input, noise under permuted inputs
    trace_includes_spike: bool = False  # Loihi's trace convention in the STDP terms (exact on the learning engine)
    in_scale: float = 0.15           # initial weight scales: input -> hidden, hidden -> hidden (0: none), hidden -> action
    recurrent_scale: float = 0.05
    out_scale: float = 0.5
    timing: tuple[int, int, int, int] = (25, 30, 50, 25)  # cue, rest, delay, decision steps (paper: 25/30/50/25 ms)
    rate_reg: float = 0.0            # weight of the output-rate penalty (keeps the readout out of the silent minimum)
    target_rate: float = 0.05        # output spikes per step the penalty pulls towards
    hidden_floor: float = 0.0        # floor on every hidden neuron's mean rate (spikes per step over the batch's
                                     # episodes), penalised with rate_reg like the output floor: a negative hidden
                                     # bias learnt fast (bias_lr) must not silence the layer (no post spikes, no
                                     # writes: the run's dead end in docs/results.md, issue 14)
    init: str | None = None          # start from this trained model.plx instead of a fresh cue_association_net
    mod_quiet: float = 0.0           # weight of the mean |M| outside the feedback windows in the loss (a rule
                                     # that rewrites weights all episode amplifies fixed-point rounding)
    nm_memory: int = 0               # slow NM-SNN neurons that remember the feedback (ir.examples.add_nm_memory;
    nm_memory_du: float = 0.002      # added to an ``init`` model that has none)
    pool: int = 0                    # pooled anti-Hebbian input: that many neurons counting all inputs, their
                                     # plastic synapses onto the hidden layer write against the inputs' (centres
                                     # the store; ir.examples.add_anti_hebbian_pool; added to an ``init`` model)
    consume: float = 0.0             # initial trace use-up by the modulator (ir.ThreeFactor.consume; learnt in log
                                     # space with log_params; set on an ``init`` model that has none)
    consume_at_feedback: bool = False  # the learning signal, not the write modulator, uses the trace up: a fixed
                                     # modulator FEEDBACK_RESET = |learning signal| per hidden neuron (consume_by)
    hardware_aware: bool = False     # train with the values Loihi's learning engine runs (straight-through
                                     # rounding in Loihi units; trainer/algorithms/hardware_aware.py)
    fixed_in_loop: bool = False      # hardware-aware: the forward pass is the bit-exact fixed-point run (spikes
                                     # forced straight-through into the float graph, whose surrogate gives the gradient)
    trace_impulse: float = 8.0       # hardware-aware: trace impulse in Loihi units (7-bit traces)
    mod_gain: float = 8.0            # hardware-aware: modulator divided, rates multiplied (finer fixed point)
    curriculum: tuple[tuple[int, int], ...] = ()  # ((first iteration, M), ...): train at fewer cues first;
                                     # evaluation is always at n_cues (the M the rule is meant for)
    nm_inputs: str = "all"           # what drives the NM-SNN: "all" (cues, learning signal, hidden; the paper's) or
                                     # "signal" (the learning signal alone, modulator bias fixed at 0: plasticity only
                                     # around the feedback, so the association must be stored in the synapses);
                                     # "signal_fast": the same with memoryless NM neurons (du = dv = 1), so M stops
                                     # 3 steps after the feedback instead of ~25 (signal_driven_nm)

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ValueError(f"unknown readout {self.readout!r}; known: {', '.join(READOUTS)}")
        if len(self.timing) != 4 or min(self.timing) < 1:
            raise ValueError(f"timing must be 4 positive step counts (cue, rest, delay, decision), got {self.timing!r}")
        object.__setattr__(self, "timing", tuple(int(t) for t in self.timing))
        if self.tau_e is not None:
            if len(self.tau_e) != 2 or not 1.0 < self.tau_e[0] <= self.tau_e[1]:
                raise ValueError(f"tau_e must be (lo, hi) time constants with 1 < lo <= hi, got {self.tau_e!r}")
            object.__setattr__(self, "tau_e", tuple(float(t) for t in self.tau_e))
        if len(self.nm_scales) != 3:
            raise ValueError(f"nm_scales must be 3 scales (cues, learning signal, hidden), got {self.nm_scales!r}")
        object.__setattr__(self, "nm_scales", tuple(float(v) for v in self.nm_scales))
        stages = tuple((int(i), int(m)) for i, m in self.curriculum)
        if any(m < 1 for _, m in stages) or [i for i, _ in stages] != sorted({i for i, _ in stages}):
            raise ValueError(f"curriculum must be ((first iteration, M >= 1), ...) with increasing iterations, "
                             f"got {self.curriculum!r}")
        object.__setattr__(self, "curriculum", stages)
        if self.stdp_trace not in {k.value for k in TraceKind}:
            raise ValueError(f"stdp_trace must be one of {', '.join(k.value for k in TraceKind)}, got {self.stdp_trace!r}")
        if self.neuron_lr <= 0 or (self.bias_lr is not None and self.bias_lr <= 0):
            raise ValueError(f"neuron_lr and bias_lr must be > 0, got {self.neuron_lr!r}, {self.bias_lr!r}")
        if not 0.0 <= self.hidden_floor < 1.0 or (self.hidden_floor and not self.rate_reg):
            raise ValueError(f"hidden_floor must be in [0, 1) spikes per step and needs rate_reg > 0 (its weight), "
                             f"got hidden_floor={self.hidden_floor!r}, rate_reg={self.rate_reg!r}")
        if self.shared_mod_init and self.init is not None:
            raise ValueError("shared_mod_init sets a fresh network's modulator; a model given by init keeps its own")
        if self.hidden_bias and self.init is not None:
            raise ValueError("hidden_bias sets a fresh network's start; a model given by init keeps its own bias")
        if self.fixed_in_loop and not self.hardware_aware:
            raise ValueError("fixed_in_loop needs hardware_aware=True (the model must have a fixed-point form)")
        if self.nm_inputs not in NM_INPUTS:
            raise ValueError(f"unknown nm_inputs {self.nm_inputs!r}; known: {', '.join(NM_INPUTS)}")
        if self.pool < 0:
            raise ValueError(f"pool must be >= 0, got {self.pool!r}")
        if self.mixed_polarity and self.scalar_rates:
            raise ValueError("mixed_polarity needs per-synapse rates (scalar_rates=False)")
        if self.nm_inputs != "all" and self.nm_memory:
            raise ValueError("nm_inputs='signal' confines plasticity to the feedback; nm_memory neurons fire tonically "
                             "after it and would modulate all episode: use one or the other")

    def cues_at(self, iteration: int) -> int:
        """The cue count M trained at ``iteration`` (the last curriculum stage started, else ``n_cues``)."""
        m = self.n_cues
        for first, stage_m in self.curriculum:
            if iteration >= first:
                m = stage_m
        return m

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


_SHORT = (10, 10, 20, 10)  # cue, rest, delay, decision steps: the paper's pattern shortened ~2.5x for 2 CPU cores

#: the paper's task (M = 5, 3 x 350-step trials, batch 64, 2000 iterations) with the model settings
#: that learn here (docs/results.md): unit-gain eligibility with log-spaced time constants 100-800
#: steps learnt in log space, pair STDP with a slow post trace (decay 0.99, eta- = eta+ / 10: the LTP
#: and LTD terms of uncorrelated spikes cancel, so the trace measures the pre/post covariance),
#: plastic weights bounded by 0.1 (signed synapses stop at zero), an NM-SNN that starts driven by the
#: learning signal alone (cue and hidden inputs at 0.02), no hidden recurrence, and a curriculum
#: M = 1 -> 3 -> 5 over the first 600 iterations
_PAPER = BPTTConfig(iterations=2000, batch=64, n_cues=5, eval_problems=500, eval_every=50, readout="trial",
                    rate_reg=100.0, lr=1e-3, rule_lr=5.0, log_params=True, tau_e=(100.0, 800.0), eta=3e-3,
                    eta_minus_ratio=0.1, decay_post=0.99, w_max=0.1, nm_scales=(0.02, 3.0, 0.02), mod_scale=2.0,
                    in_scale=0.1, recurrent_scale=0.0, curriculum=((0, 1), (300, 3), (600, 5)))

#: per-post, storing the association in the synapses (docs/results.md, issue 14: `sigchain0`, 0.860 at M = 5):
#: an NM-SNN driven by the learning signal alone with memoryless neurons (plasticity only at the feedback), a
#: trace the write uses up, eligibility time constants 300-2,000 steps, M = 3 then 5; the hidden and action
#: neurons' constants trained (the readout needs a negative hidden bias), every input connected to every hidden
#: neuron at half the initial scale
_STORING = dataclasses.replace(_PAPER, modulation="per_post", nm_inputs="signal_fast", consume=0.1, tau_e=(300.0, 2000.0),
                               curriculum=((0, 3), (300, 5)), train_neurons=True, p_in=1.0, in_scale=0.05, iterations=4000)

_POOL_TUNE = dataclasses.replace(_STORING, pool=8, curriculum=(), iterations=1500)

CONFIGS = {
    # the paper_per_post model on a task small enough for tests on 2 CPU cores: M = 1 cue, 3 x 50-step trials
    "quick": dataclasses.replace(_PAPER, modulation="per_post", iterations=60, batch=16, n_cues=1, eval_problems=64,
                                 eval_every=10, timing=_SHORT, tau_e=(20.0, 160.0), curriculum=()),
    # the quick task without the per-problem permutation: the cue -> action map is fixed, so a network
    # must learn it even without plasticity (a check of the gradient path, not the meta-learning task)
    "unpermuted": BPTTConfig(iterations=40, batch=16, n_cues=1, eval_problems=64, eval_every=10, timing=_SHORT,
                             readout="trial", modulation="per_post", rate_reg=100.0, permute=False),
    # the paper's setting with its input-neuron-specific modulation M_i, and the two forms Loihi's
    # learning engine can run (per post neuron M_j, global M)
    "paper": dataclasses.replace(_PAPER, modulation="per_pre"),
    "paper_per_post": dataclasses.replace(_PAPER, modulation="per_post"),
    "paper_global": dataclasses.replace(_PAPER, modulation="global"),
    # per-post, storing the association in the synapses (_STORING)
    "paper_storing": _STORING,
    # the same recipe with the paper's input-neuron-specific modulation M_i and with one global M (the three forms the
    # issue asks for at one budget)
    "paper_storing_per_pre": dataclasses.replace(_STORING, modulation="per_pre"),
    "paper_storing_global": dataclasses.replace(_STORING, modulation="global"),
    # ... with every second hidden neuron's rates negated (mixed_polarity): the differential store per-post learns
    "paper_storing_per_pre_mixed": dataclasses.replace(_STORING, modulation="per_pre", mixed_polarity=True),
    "paper_storing_global_mixed": dataclasses.replace(_STORING, modulation="global", mixed_polarity=True),
    # ... per-pre starting as the global form (equal readout rows), so the mixed-polarity code is there from the start
    "paper_storing_per_pre_shared_mixed": dataclasses.replace(_STORING, modulation="per_pre", mixed_polarity=True,
                                                              shared_mod_init=True),
    # the storing recipe with saturating STDP traces (eq. 10) and a 200-step post trace, LTD as strong as LTP, every
    # hidden neuron held above 0.02 spikes per step: a store closer to the count learner's (docs/results.md, issue 14:
    # on a trained chain the LTD term of such a trace stores 0.95-0.96 where the model's own store gives 0.80)
    "paper_storing_sat": dataclasses.replace(_STORING, stdp_trace="saturating", decay_post=0.995, eta_minus_ratio=1.0,
                                             hidden_floor=0.02),
    # the storing recipe with pooled anti-Hebbian input (8 pool neurons): the store centred over the inputs
    # (docs/results.md, issue 14: an uncentred Hebbian count store caps near 0.80 at M = 5, a centred one 0.98)
    "paper_storing_pool": dataclasses.replace(_STORING, pool=8),
    # the same added to a trained paper_storing model (--init its best.plx): M = 5 from the start, 1,500 iterations
    "paper_storing_pool_tune": _POOL_TUNE,
    # ... for a paper_storing_per_pre model (the pool neurons get their own signals M_k) and a paper_storing_global one
    "paper_storing_pool_tune_per_pre": dataclasses.replace(_POOL_TUNE, modulation="per_pre"),
    "paper_storing_pool_tune_global": dataclasses.replace(_POOL_TUNE, modulation="global"),
    # second stage of paper_storing (run with --init its best.plx): M = 5 only, the neuron biases learnt 10x
    # faster so the hidden bias can reach the selective readout the storage probe found (-0.38 over an ideal
    # store), with every hidden neuron held above 0.02 spikes per step so the layer cannot fall silent
    "paper_storing_tune": dataclasses.replace(_STORING, curriculum=(), iterations=1500, bias_lr=10.0, hidden_floor=0.02),
    # the paper's task in the form Loihi's learning engine runs (issue 15): a dense, excitatory plastic
    # matrix (sign mode EXCITATORY: weights stop at 0), one eta+- and one eligibility time constant
    # (128 steps: 1 - gamma = 2^-7, the engine's smallest decay literal), Loihi's trace convention, an
    # identity per-post modulator of one channel; a curriculum M = 1 -> 3 -> 5
    "paper_engine": dataclasses.replace(_PAPER, modulation="per_post", mod_channels=1, mod_activation="identity",
                                        p_in=1.0, excitatory_in=True, scalar_rates=True, trace_includes_spike=True,
                                        tau_e=(128.0, 128.0), in_scale=0.05, curriculum=((0, 1), (300, 3), (800, 5))),
}


# ---------------------------------------------------------------------------------------------
# model


class CueModel(PlasticNet):
    """The one-shot cue-association network (Meta-SpikePropamine) as a :class:`PlasticNet`: episodes
    of cue spikes and a learning signal, a BCE loss on the output rates over the readout window; the
    hidden layer and the NM-SNN's last layer are probed for :func:`diagnostics`."""

    def __init__(self, graph: Graph, cfg: BPTTConfig, *, jit: bool = False) -> None:
        super().__init__(graph, cfg, jit=jit, probes=("action", "hidden", "nm2"))
        fixed = {f"{m.name}/bias" for m in graph.modulators} if cfg.nm_inputs != "all" else set()
        if cfg.nm_inputs == "signal_fast":  # the NM neurons stay memoryless (du = dv = 1) when neurons are trained
            fixed |= {f"{pop}/{f}" for pop in ("nm1", "nm2") for f in ("du", "dv", "vth", "bias")}
        for name, p in self.net.params.items():  # the feedback reset is a fixed wire, not learnt, and a
            if name.startswith(FEEDBACK_RESET + "/") or name in fixed:  # signal-driven NM keeps M = f(0) = 0
                p.requires_grad_(False)

    def run(self, cues: torch.Tensor, signal: torch.Tensor, force: dict | None = None) -> tuple[dict, Any]:
        """The network's outputs and final state for a batch of episodes (``force``: see
        :meth:`TorchNetwork.run`)."""
        return self.net.run({"cues": cues, "learning_signal": signal}, params=self.overrides(), force=force)

    def fixed_point_spikes(self, cues: torch.Tensor, signal: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every population's spikes ``(T, B, n)`` when the current model runs in Loihi fixed point
        (bit-exact with Lava's fixed-point processes and learning engine), without gradients."""
        from ..algorithms.hardware_aware import for_fixed_point

        g = for_fixed_point(self.to_graph())
        names = tuple(p.name for p in g.populations if p.kind != "input")
        net = compile_torch(g.replace(outputs=names), dtype=torch.float64, precision="fixed")
        with torch.no_grad():
            outs, _ = net.run({"cues": cues.double(), "learning_signal": signal.double()})
        return {n: v[:, 0].to(cues.dtype) for n, v in outs.items()}

    def episode(self, cues: torch.Tensor, signal: torch.Tensor, window: torch.Tensor, *,
                fixed_in_loop: bool = False) -> tuple[torch.Tensor, dict]:
        """Output spike counts (B, 2) over the (T,) bool ``window`` and all probed outputs. With
        ``fixed_in_loop`` every population's spikes are those of the fixed-point run, straight-through
        (hardware in the loop: the loss is the fixed-point loss, the gradient the float surrogate's
        along the fixed-point trajectory)."""
        force = self.fixed_point_spikes(cues, signal) if fixed_in_loop else None
        out, _ = self.run(cues, signal, force)
        action = out["action"][:, 0]  # (T, B, 2), population dim P = 1
        return action[window].sum(0), out

    def forward(self, cues: torch.Tensor, signal: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """Output spike counts (B, 2) over the (T,) bool ``window``, one episode per batch element."""
        return self.episode(cues, signal, window)[0]

    def off_signal_modulation(self, outs: dict, signal: torch.Tensor) -> torch.Tensor:
        """Mean |M| of the plastic projection's modulator outside the learning-signal windows: the
        weight writes no feedback asked for (``cfg.mod_quiet`` penalises it)."""
        proj = next(p for p in self.net.graph.plastic_projections if isinstance(p.rule, ThreeFactor))
        mod = self.net.graph.modulator(proj.rule.modulator)
        m = self.net.modulator_values(mod.name, outs[mod.source], params=self.overrides())[:, 0].abs()
        return m[signal.sum(-1) == 0].mean()

    def loss(self, counts: torch.Tensor, labels: torch.Tensor, steps: int) -> torch.Tensor:
        """BCE on the output firing rates (counts / window steps), so that the readout's scale does not
        depend on the window length (a 25-step decision period or a 350-step test trial)."""
        return bce_loss(counts / steps, labels, self.gain, self.offset)

    def window(self, problems: CueProblems) -> torch.Tensor:
        """The readout window of ``cfg.readout``: the test decision period or the whole test trial."""
        return problems.decision if self.cfg.readout == "decision" else problems.test


def build_graph(cfg: BPTTConfig) -> Graph:
    """The initial network: ``cfg.init`` (a trained model) if set, else a fresh :func:`cue_association_net`."""
    if cfg.task != "one_shot_cue":
        raise ValueError(f"unknown BPTT task {cfg.task!r}; known: one_shot_cue")
    if cfg.init is not None:
        g = load_graph(cfg.init)
        rule = next((p.rule for p in g.projections if p.name == "cues_to_hidden"), None)
        if isinstance(rule, ThreeFactor) and rule.mode.value != cfg.modulation:
            raise ValueError(f"{cfg.init}: its cues -> hidden rule is modulated {rule.mode.value}, the config says "
                             f"{cfg.modulation} (pick the preset of that form)")
        if cfg.nm_memory and not any(p.name == "nm_mem" for p in g.populations):
            g = add_nm_memory(g, cfg.nm_memory, du=cfg.nm_memory_du, seed=cfg.seed)
    else:
        g = _fresh_graph(cfg)
    if cfg.pool and not any(p.name == "pool" for p in g.populations):
        g = add_anti_hebbian_pool(g, cfg.pool, seed=cfg.seed)
    if cfg.nm_inputs != "all":
        g = signal_driven_nm(g, fast=cfg.nm_inputs == "signal_fast")
    if cfg.hidden_bias:
        g = g.replace(populations=tuple(p.replace(bias=np.full(p.size, cfg.hidden_bias) if np.ndim(p.bias) else cfg.hidden_bias)
                                        if p.name == "hidden" else p for p in g.populations))
    return with_consume(g, cfg.consume, at_feedback=cfg.consume_at_feedback)


def signal_driven_nm(graph: Graph, *, fast: bool = False, fast_gain: float = 10.0) -> Graph:
    """The cue net with an NM-SNN driven by the learning signal alone: the cue and hidden -> ``nm1``
    projections removed and every modulator's bias 0 (the trainer keeps it there), so M = f(0) = 0
    while the NM-SNN is silent: plasticity happens at the feedback and while the NM currents decay
    after it (~25 steps with the default du = 0.2, into the next trial's first cue). ``fast``: ``nm1``
    and ``nm2`` memoryless (du = dv = 1: a neuron spikes at t iff its input at t exceeds vth) and the
    ``nm1 -> nm2`` weights x ``fast_gain`` (else the sparse binary layer leaves ``nm2`` silent), so M
    starts 3 steps after the feedback and stops 3 steps after it. Needs a zero-preserving modulator
    activation. Idempotent: a graph whose NM neurons are memoryless already (a ``signal_fast`` model given
    by ``cfg.init``) keeps its ``nm1 -> nm2`` weights."""
    if "nm_mem" in {p.name for p in graph.populations}:
        raise ValueError("signal_driven_nm: the NM memory neurons fire tonically after a feedback (remove them)")
    for m in graph.modulators:
        if m.activation.value not in ("tanh", "identity"):
            raise ValueError(f"signal_driven_nm needs f(0) = 0; modulator {m.name!r} has {m.activation.value}")
    projs = tuple(p for p in graph.projections if not (p.post == "nm1" and p.pre in ("cues", "hidden")))
    mods = tuple(m.replace(bias=np.zeros(np.asarray(m.weight).shape[0])) for m in graph.modulators)
    pops = graph.populations
    already_fast = all(np.all(np.asarray(p.du) == 1) and np.all(np.asarray(p.dv) == 1)
                       for p in pops if p.name in ("nm1", "nm2"))
    if fast and not already_fast:
        pops = tuple(p.replace(du=np.ones(p.size), dv=np.ones(p.size)) if p.name in ("nm1", "nm2") else p for p in pops)
        projs = tuple(p.replace(weight=np.asarray(p.weight) * fast_gain) if p.name == "nm1_to_nm2" else p for p in projs)
    return graph.replace(projections=projs, modulators=mods, populations=pops)


FEEDBACK_RESET = "feedback_reset"


def with_consume(graph: Graph, consume: float, *, at_feedback: bool = False) -> Graph:
    """``graph`` with ``consume`` on its three-factor eligibility rules that do not consume yet
    (``consume`` = 0: unchanged). ``at_feedback``: the trace is used up by the learning signal (a fixed
    identity modulator :data:`FEEDBACK_RESET` summing ``|learning_signal|`` per post neuron; the rule's
    ``consume_by``) instead of by the write modulator: a trace reset at the feedback."""
    if not consume:
        if at_feedback:
            raise ValueError("consume_at_feedback needs consume > 0")
        return graph
    mods = graph.modulators
    projs = []
    for p in graph.projections:
        if isinstance(p.rule, ThreeFactor) and isinstance(p.rule.base, EligibilityTrace) and not consumes(p.rule):
            rule = p.rule.replace(consume=float(consume))
            if at_feedback:
                if p.rule.mode != ModulationMode.PER_POST:
                    raise ValueError(f"consume_at_feedback is built for per-post modulation, not {p.rule.mode.value}")
                n_post = np.asarray(p.weight).shape[0]
                signal = graph.population("learning_signal")
                mods = (*mods, Modulator(name=FEEDBACK_RESET, source=signal.name, size=n_post,
                                         weight=np.ones((n_post, signal.size), dtype=np.float32)))
                rule = rule.replace(consume_by=FEEDBACK_RESET)
            p = p.replace(rule=rule)
        projs.append(p)
    return graph.replace(projections=tuple(projs), modulators=mods)


def shared_rows(graph: Graph, modulator: str = "dopamine") -> Graph:
    """``graph`` with every readout row of ``modulator`` equal to its channel's first (``M_i = M`` for all i)."""
    m = graph.modulator(modulator)
    w = np.asarray(m.weight)
    w = np.repeat(w.reshape(m.channels, m.size, -1)[:, :1], m.size, axis=1).reshape(w.shape)
    return graph.replace(modulators=tuple(x.replace(weight=w) if x.name == modulator else x for x in graph.modulators))


def _fresh_graph(cfg: BPTTConfig) -> Graph:
    gamma = cfg.gamma
    if cfg.tau_e is not None and cfg.tau_e[0] == cfg.tau_e[1]:  # one time constant
        gamma = 1.0 - 1.0 / cfg.tau_e[0]
    elif cfg.tau_e is not None:  # log-spaced time constants, shuffled over the hidden neurons
        tau = np.exp(np.linspace(math.log(cfg.tau_e[0]), math.log(cfg.tau_e[1]), cfg.n_hidden))
        gamma = 1.0 - 1.0 / np.random.default_rng(cfg.seed).permutation(tau)
    eta = cfg.eta
    if cfg.log_params:  # cfg.eta is the unit-gain rate; the IR stores eta (1 - gamma)
        if cfg.scalar_rates and np.ndim(gamma):
            raise ValueError("scalar_rates with log_params needs one eligibility time constant (tau_e = (t, t))")
        eta = cfg.eta * (1.0 - np.asarray(gamma, dtype=np.float64))
        eta = eta[:, None] if np.ndim(eta) == 1 else float(eta) if np.ndim(eta) == 0 else eta
    if cfg.mixed_polarity:  # rows of odd hidden neurons negated
        eta = np.asarray(eta, dtype=np.float64) * np.where(np.arange(cfg.n_hidden) % 2 == 0, 1.0, -1.0)[:, None]
    g = cue_association_net(n_hidden=cfg.n_hidden, n_mod=cfg.n_mod, seed=cfg.seed, rule=cfg.rule,
                            gamma=gamma, modulation=cfg.modulation, mod_scale=cfg.mod_scale, eta=eta,
                            eta_minus=eta * cfg.eta_minus_ratio, decay_pre=cfg.decay_pre,
                            decay_post=cfg.decay_post, w_max=cfg.w_max, nm_scales=cfg.nm_scales,
                            mod_channels=cfg.mod_channels, mod_activation=cfg.mod_activation,
                            in_scale=cfg.in_scale, recurrent_scale=cfg.recurrent_scale,
                            out_scale=cfg.out_scale, p_in=cfg.p_in, inhibitory_in=cfg.inhibitory_in,
                            scalar_rates=cfg.scalar_rates, trace_includes_spike=cfg.trace_includes_spike,
                            excitatory_in=cfg.excitatory_in, nm_memory=cfg.nm_memory,
                            nm_memory_du=cfg.nm_memory_du, trace=cfg.stdp_trace)
    return shared_rows(g) if cfg.shared_mod_init else g


def task_config(cfg: BPTTConfig, n_cues: int | None = None) -> OneShotCueConfig:
    cue, rest, delay, decision = cfg.timing
    return OneShotCueConfig(n_cues=n_cues or cfg.n_cues, permute=cfg.permute, cue_steps=cue, rest_steps=rest,
                            delay_steps=delay, decision_steps=decision)


def task_metadata(cfg: BPTTConfig) -> dict:
    """The task settings a trained model carries in its metadata (read back by ``CueSetting.of``)."""
    return dict(n_cues=cfg.n_cues, readout=cfg.readout, timing=",".join(map(str, cfg.timing)), permute=cfg.permute)


def evaluate(model: CueModel, n_problems: int, *, n_cues: int, seed: int, batch: int = EVAL_BATCH,
             return_counts: bool = False) -> dict:
    """Accuracy (ties wrong) and loss on ``n_problems`` fixed test problems (seeded: the same
    problems every call). Problems are drawn in full batches of ``batch`` (one compiled shape for a
    jit model); the last batch's surplus is dropped. ``return_counts`` adds the output counts
    ``(n_problems, 2)`` and labels."""
    g = torch.Generator().manual_seed(seed)
    batch = min(batch, n_problems)
    counts, labels, losses = [], [], []
    with torch.no_grad():
        done = 0
        while done < n_problems:
            n = min(batch, n_problems - done)
            pr = one_shot_cue_problems(batch, task_config(model.cfg, n_cues), generator=g)
            act = model(pr.cues, pr.signal, model.window(pr))[:n]
            lab = pr.test_labels[:n]
            counts.append(act)
            labels.append(lab)
            losses.append(float(model.loss(act, lab, int(model.window(pr).sum()))) * n)
            done += n
    act, lab = torch.cat(counts), torch.cat(labels)
    res = {"accuracy": float(accuracy(act, lab)), "loss": sum(losses) / n_problems}
    if return_counts:
        res.update(counts=act, labels=lab)
    return res


def diagnostics(model: CueModel, problems: CueProblems) -> dict[str, float]:
    """Why a run learns or not, from one batch of episodes: firing rates of the hidden layer, the
    two action neurons and the NM-SNN's output layer; the mean |M| of the modulator inside the
    learning-signal windows and outside them, and its ratio between the second and the first
    training trial's feedback (how much the NM-SNN scales the second write); the learnt trace use-up rate
    ``consume``; the mean |ΔW| of the plastic projection over an
    episode against mean |W0|; the eligibility time constants 1 / (1 - γ) (10/50/90 % quantiles) and
    the mean STDP rates η± of the IR."""
    net = model.net
    proj = net.graph.plastic_projections[0] if net.graph.plastic_projections else None
    with torch.no_grad():
        outs, state = model.run(problems.cues, problems.signal)
        res: dict[str, float] = {"rate_hidden": float(outs["hidden"].mean())} if "hidden" in outs else {}
        act = outs["action"][:, 0].mean((0, 1))
        res.update({f"rate_action{k}": float(v) for k, v in enumerate(act)})
        if proj is None or not isinstance(proj.rule, ThreeFactor):
            return res
        prm = dict(net.params.items())
        prm.update({k: v[0] for k, v in (model.overrides() or {}).items()})
        mod = net.graph.modulator(proj.rule.modulator)
        if mod.source in outs:
            res["rate_" + mod.source] = float(outs[mod.source].mean())
            m = net.modulator_values(mod.name, outs[mod.source], params=model.overrides())[:, 0].abs()
            on = problems.signal.sum(-1) > 0  # (T, B)
            res["mod_in_signal"] = float(m[on].mean())
            res["mod_outside"] = float(m[~on].mean())
            first = torch.zeros_like(on)
            first[: on.shape[0] // 3] = True  # the first of the three trials
            res["mod_second_over_first"] = float(m[on & ~first].mean() / (m[on & first].mean() + 1e-12))
        if model.reparam is not None and model.reparam.log_consume is not None:
            res["consume"] = float(model.reparam.log_consume.exp())  # the learnt trace use-up rate c
        w0 = prm[f"{proj.name}/weight"]
        mask = torch.as_tensor(np.array(proj.mask), dtype=w0.dtype) if proj.mask is not None else torch.ones_like(w0)
        w1 = state.projs[proj.name].rule.w[0]
        res["dw_over_w0"] = float(((w1 - w0).abs() * mask).mean() / ((w0.abs() * mask).mean() + 1e-12))
        if isinstance(proj.rule.base, EligibilityTrace):
            tau = 1.0 / (1.0 - prm[f"{proj.name}/rule/base/gamma"].clamp(max=1 - 1e-6)).reshape(-1)
            for q in (0.1, 0.5, 0.9):
                res[f"tau_e_q{int(q * 100)}"] = float(tau.quantile(q))
            stdp = f"{proj.name}/rule/base/base"
        else:
            stdp = f"{proj.name}/rule/base"
        res["eta_plus"] = float(prm[f"{stdp}/eta_plus"].mean())
        res["eta_minus"] = float(prm[f"{stdp}/eta_minus"].mean())
        res["accuracy_frozen_test"] = frozen_test_accuracy(model, problems)
    return res


def frozen_test_accuracy(model: CueModel, problems: CueProblems) -> float:
    """Accuracy with every modulator silenced (M = 0) during the test trial: what the synapses written
    at the training feedbacks hold. Far below the plain accuracy means the model computes its answer
    with plasticity during the test trial instead of storing the association (the paper's mechanism)."""
    with torch.no_grad():
        outs, _ = run_frozen_test(model.net, {"cues": problems.cues, "learning_signal": problems.signal},
                                  int(problems.test.nonzero()[0]), params=model.overrides())
    counts = outs["action"][:, 0][model.window(problems)].sum(0)
    return float(accuracy(counts, problems.test_labels))


# ---------------------------------------------------------------------------------------------
# the job driven by trainer.runner


class BPTTJob(GradientJob):
    """One outer-loop iteration per :meth:`step`: sample a batch of problems, run the episodes,
    backpropagate the test-trial loss through time, clip, Adam step, project. Every
    ``eval_every`` iterations: test accuracy on fixed problems and :func:`diagnostics`.
    ``jit``: run the network compiled (``compile(graph, jit=True)``)."""

    EVAL_SEED = 12345
    DIAG_SEED = 4321

    def __init__(self, cfg: BPTTConfig, graph: Graph | None = None, *, jit: bool = False,
                 metadata: dict | None = None) -> None:
        super().__init__(cfg, graph)
        self.jit = jit
        self.metadata = dict(metadata or {})  # extra metadata of saved models (train_bptt: task, config, seed)

    def model_graph(self, model: CueModel) -> Graph:
        """The model as a graph with the metadata a trained cue model carries (``CueSetting.of`` reads it)."""
        g = model.to_graph()
        return g.replace(metadata={**(g.metadata or {}), **self.metadata, "trainer": "bptt", **task_metadata(self.cfg)})

    def save_best(self, state: BPTTState, out_dir: Path) -> None:
        """``out_dir/best.plx``: the model now (the runner calls this when its ``best_key`` peaks)."""
        save_graph(self.model_graph(state.model), Path(out_dir) / "best.plx")

    def init_state(self) -> BPTTState:
        model = CueModel(self.graph or build_graph(self.cfg), self.cfg, jit=self.jit)
        opt = torch.optim.Adam(model.param_groups())
        return BPTTState(model, opt, torch.Generator().manual_seed(self.cfg.seed))

    def step(self, state: BPTTState, index: int) -> tuple[BPTTState, dict[str, float]]:
        cfg, model = self.cfg, state.model
        n_cues = cfg.cues_at(index)
        pr = one_shot_cue_problems(cfg.batch, task_config(cfg, n_cues), generator=state.generator)
        window = model.window(pr)
        act, outs = model.episode(pr.cues, pr.signal, window, fixed_in_loop=cfg.fixed_in_loop)
        loss = model.loss(act, pr.test_labels, int(window.sum()))
        total = loss + cfg.rate_reg * rate_penalty(act, int(window.sum()), cfg.target_rate) if cfg.rate_reg else loss
        if cfg.hidden_floor:  # each hidden neuron's rate over all steps and problems: (n_hidden,)
            rates = outs["hidden"].flatten(0, -2).mean(0)
            total = total + cfg.rate_reg * rate_penalty(rates, 1, cfg.hidden_floor)
        if cfg.mod_quiet:
            total = total + cfg.mod_quiet * model.off_signal_modulation(outs, pr.signal)
        grad_norm = self.optimize(state, total)
        metrics = {"loss": float(loss.detach()), "train_accuracy": float(accuracy(act.detach(), pr.test_labels)),
                   "grad_norm": grad_norm, "train_cues": n_cues}
        if (index + 1) % cfg.eval_every == 0:
            ev = evaluate(model, cfg.eval_problems, n_cues=cfg.n_cues, seed=self.EVAL_SEED)
            metrics.update(test_accuracy=ev["accuracy"], test_loss=ev["loss"])
            if cfg.fixed_in_loop:  # what the loss trains: the fixed-point accuracy on the same problems
                metrics["test_accuracy_fixed"] = evaluate_model(self.model_graph(model), n_problems=cfg.eval_problems,
                                                                seed=self.EVAL_SEED, precision="fixed")["accuracy"]
            diag = one_shot_cue_problems(min(EVAL_BATCH, cfg.eval_problems), task_config(cfg),
                                         generator=torch.Generator().manual_seed(self.DIAG_SEED))
            metrics.update(diagnostics(model, diag))
        return state, metrics


def plastic_rule_kinds(graph: Graph) -> list[str]:
    """Kinds of the rules on plastic projections (for logs)."""
    return [p.rule.kind + (f"({p.rule.base.kind})" if isinstance(p.rule, ThreeFactor) else "")
            for p in graph.plastic_projections]
