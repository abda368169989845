"""Surrogate-gradient BPTT through neuron *and* plasticity dynamics, with meta-learning episodes.

The inner loop is the network's own plasticity: every episode (one cue-association problem) starts
from the stored weights with all plastic state reset, and the rule changes the weights while the
episode runs. The outer loop is Adam on the stored weights, the rule coefficients (η±, γ, α, ...)
and the neuromodulatory network (Meta-SpikePropamine eqs. 1-2), with gradients backpropagated
through time through both (surrogate gradient for spikes).

Losses are pure functions: :func:`bce_loss` (Meta-SpikePropamine: binary cross entropy on the
weighted output activity), :func:`cross_entropy_loss` and :func:`reinforce_loss` (policy gradient
with a baseline, SpikePropamine). :class:`BPTTJob` plugs into the shared checkpoint / resume /
progress / log / plot loop of :mod:`plastix.trainer.runner`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from plastix.backends.torch import compile as compile_torch
from plastix.ir import Graph, ThreeFactor
from plastix.ir import load as load_graph
from plastix.ir.examples import cue_association_net
from plastix.tasks.cue_association import CueProblems, OneShotCueConfig, one_shot_cue_problems

# rule coefficients with IR bounds [lo, hi] that the optimiser must respect (projected gradient)
_BOUNDED = {"gamma": (0.0, 1.0), "eta": (0.0, 1.0), "eta_phi": (0.0, 1.0)}
_NEURON_FIELDS = ("du", "dv", "vth", "bias")
_NEURON_BOUNDED = {"du": (0.0, 1.0), "dv": (0.0, 1.0)}
_RATE_FIELDS = ("eta_plus", "eta_minus", "eta_pair")
READOUTS = ("decision", "trial")


# ---------------------------------------------------------------------------------------------
# losses


def bce_loss(activity: torch.Tensor, labels: torch.Tensor, gain: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Meta-SpikePropamine's meta-loss: BCE of ``p_i = σ(gain·activity_i + offset)`` against the
    one-hot label, summed over the two outputs and averaged over the batch.
    ``activity``: (B, 2) output activity (the trainer passes firing rates over the readout window);
    ``labels``: (B,)."""
    target = torch.nn.functional.one_hot(labels.long(), activity.shape[-1]).to(activity.dtype)
    logits = gain * activity + offset
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1).mean()


def rate_penalty(activity: torch.Tensor, steps: int, target: float) -> torch.Tensor:
    """Mean squared deviation of the output firing rates (spikes per step over the readout window,
    ``activity`` (B, 2) counts over ``steps`` steps) from ``target``: a silent readout has no
    surrogate gradient left, and silence is the loss minimum while nothing is discriminated."""
    return ((activity / steps - target) ** 2).mean()


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross entropy, ``logits`` (B, C), ``labels`` (B,)."""
    return torch.nn.functional.cross_entropy(logits, labels.long())


def reinforce_loss(log_prob: torch.Tensor, reward: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a baseline: ``-(R - b) log π(a)`` (the advantage carries no gradient)."""
    return -((reward - baseline).detach() * log_prob).mean()


def accuracy(activity: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of problems whose most active output is the label (ties count as wrong)."""
    top = activity.max(-1, keepdim=True).values
    unique = (activity == top).sum(-1) == 1
    return ((activity.argmax(-1) == labels) & unique).float().mean()


# ---------------------------------------------------------------------------------------------
# configs


@dataclass(frozen=True)
class BPTTConfig:
    """Outer-loop and task/model settings. The ``quick``, ``unpermuted`` and ``paper`` presets live in :data:`CONFIGS`."""

    task: str = "one_shot_cue"
    iterations: int = 200
    batch: int = 32
    lr: float = 2e-3
    rule_lr: float = 0.005           # lr multiplier for the STDP rates η± (initial 1e-4: Adam steps ~lr would swamp them)
    readout_lr: float = 10.0         # lr multiplier for the BCE readout gain/offset (O(1) scalars; slow ones leave the
                                     # outputs miscalibrated and training drifts to silence)
    grad_clip: float = 1.0
    n_cues: int = 5
    n_hidden: int = 48
    n_mod: int = 64
    seed: int = 0
    surrogate: str = "fast_sigmoid"
    train_neurons: bool = False
    eval_problems: int = 128
    eval_every: int = 10
    # task / model variants (see docs/results.md for which ones learn)
    permute: bool = True             # permute the sensory neurons per problem (the meta-learning task)
    readout: str = "decision"        # output spikes counted over the test "decision" window or the whole test "trial"
    rule: str = "eligibility_pair"   # one of plastix.ir.examples.CUE_RULES
    modulation: str = "per_pre"      # M_i (paper), per_post M_j or global M
    gamma: float = 0.95              # initial eligibility decay
    mod_scale: float = 1.0           # initial modulator readout scale (cue_association_net)
    eta: float = 1e-4                # initial STDP rates η±
    timing: tuple[int, int, int, int] = (25, 30, 50, 25)  # cue, rest, delay, decision steps (paper: 25/30/50/25 ms)
    rate_reg: float = 0.0            # weight of the output-rate penalty (keeps the readout out of the silent minimum)
    target_rate: float = 0.05        # output spikes per step the penalty pulls towards
    init: str | None = None          # start from this trained model.plx instead of a fresh cue_association_net

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ValueError(f"unknown readout {self.readout!r}; known: {', '.join(READOUTS)}")
        if len(self.timing) != 4 or min(self.timing) < 1:
            raise ValueError(f"timing must be 4 positive step counts (cue, rest, delay, decision), got {self.timing!r}")
        object.__setattr__(self, "timing", tuple(int(t) for t in self.timing))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


_SHORT = (10, 10, 20, 10)  # cue, rest, delay, decision steps: the paper's pattern shortened ~2.5x for 2 CPU cores

CONFIGS = {
    # small enough for a demo on 2 CPU cores: M = 1 cue, 3 x 50-step trials, readout over the test trial
    "quick": BPTTConfig(iterations=60, batch=16, n_cues=1, eval_problems=64, eval_every=10, timing=_SHORT,
                        readout="trial", modulation="per_post", rate_reg=100.0),
    # the quick task without the per-problem permutation: the cue -> action map is fixed, so a network
    # must learn it even without plasticity (a check of the gradient path, not the meta-learning task)
    "unpermuted": BPTTConfig(iterations=40, batch=16, n_cues=1, eval_problems=64, eval_every=10, timing=_SHORT,
                             readout="trial", modulation="per_post", rate_reg=100.0, permute=False),
    # the paper's setting: M = 5 cues, 3 x 350 ms trials, per-pre modulation M_i
    "paper": BPTTConfig(iterations=2000, batch=64, n_cues=5, eval_problems=500, eval_every=50, readout="trial",
                        rate_reg=100.0, mod_scale=0.2),
}


# ---------------------------------------------------------------------------------------------
# model


class CueModel(nn.Module):
    """The compiled plastic network plus the readout gain/offset of the BCE loss."""

    def __init__(self, graph: Graph, cfg: BPTTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = compile_torch(graph, surrogate=cfg.surrogate)
        self.gain = nn.Parameter(torch.tensor(float(graph.metadata.get("readout_gain", 10.0)) if graph.metadata else 10.0))
        self.offset = nn.Parameter(torch.tensor(float(graph.metadata.get("readout_offset", -1.0)) if graph.metadata else -1.0))
        for name, p in self.net.named_parameters():
            field = name.rsplit("/", 1)[-1]
            if field in _NEURON_FIELDS and "/rule/" not in name and not cfg.train_neurons:
                p.requires_grad_(False)

    def forward(self, cues: torch.Tensor, signal: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        """Output spike counts (B, 2) over the (T,) bool ``window``, one episode per batch element."""
        out, _ = self.net.run({"cues": cues, "learning_signal": signal})
        action = out["action"][:, 0]  # (T, B, 2), population dim P = 1
        return action[window].sum(0)

    def param_groups(self) -> list[dict]:
        """Adam groups: the network at ``lr``, the STDP rates η± at ``lr * rule_lr``, the readout
        gain/offset at ``lr * readout_lr``."""
        rates, rest = [], []
        for name, p in self.net.named_parameters():
            if p.requires_grad:
                (rates if "/rule/" in name and name.rsplit("/", 1)[-1] in _RATE_FIELDS else rest).append(p)
        groups = [{"params": rest, "lr": self.cfg.lr}, {"params": [self.gain, self.offset], "lr": self.cfg.lr * self.cfg.readout_lr}]
        return groups + ([{"params": rates, "lr": self.cfg.lr * self.cfg.rule_lr}] if rates else [])

    def loss(self, counts: torch.Tensor, labels: torch.Tensor, steps: int) -> torch.Tensor:
        """BCE on the output firing rates (counts / window steps), so that the readout's scale does not
        depend on the window length (a 25-step decision period or a 350-step test trial)."""
        return bce_loss(counts / steps, labels, self.gain, self.offset)

    def window(self, problems: CueProblems) -> torch.Tensor:
        """The readout window of ``cfg.readout``: the test decision period or the whole test trial."""
        return problems.decision if self.cfg.readout == "decision" else problems.test

    def project_(self) -> None:
        """Keep bounded rule coefficients inside their IR ranges after an optimiser step."""
        with torch.no_grad():
            for name, p in self.net.named_parameters():
                field = name.rsplit("/", 1)[-1]
                if field in _BOUNDED and "/rule/" in name:
                    p.clamp_(*_BOUNDED[field])
                elif field in _NEURON_BOUNDED and "/rule/" not in name and p.requires_grad:
                    p.clamp_(*_NEURON_BOUNDED[field])

    def to_graph(self) -> Graph:
        g = self.net.to_graph()
        meta = dict(g.metadata or {})
        meta.update(readout_gain=float(self.gain.detach()), readout_offset=float(self.offset.detach()))
        return g.replace(metadata=meta)


def build_graph(cfg: BPTTConfig) -> Graph:
    """The initial network: ``cfg.init`` (a trained model) if set, else a fresh :func:`cue_association_net`."""
    if cfg.task != "one_shot_cue":
        raise ValueError(f"unknown BPTT task {cfg.task!r}; known: one_shot_cue")
    if cfg.init is not None:
        return load_graph(cfg.init)
    return cue_association_net(n_hidden=cfg.n_hidden, n_mod=cfg.n_mod, seed=cfg.seed, rule=cfg.rule,
                               gamma=cfg.gamma, modulation=cfg.modulation, mod_scale=cfg.mod_scale,
                               eta=cfg.eta)


def task_config(cfg: BPTTConfig, n_cues: int | None = None) -> OneShotCueConfig:
    cue, rest, delay, decision = cfg.timing
    return OneShotCueConfig(n_cues=n_cues or cfg.n_cues, permute=cfg.permute, cue_steps=cue, rest_steps=rest,
                            delay_steps=delay, decision_steps=decision)


def evaluate(model: CueModel, n_problems: int, *, n_cues: int, seed: int, batch: int = 128) -> dict:
    """Accuracy and loss on ``n_problems`` fixed test problems (seeded: the same problems every call)."""
    g = torch.Generator().manual_seed(seed)
    correct, loss, done = 0.0, 0.0, 0
    with torch.no_grad():
        while done < n_problems:
            n = min(batch, n_problems - done)
            pr = one_shot_cue_problems(n, task_config(model.cfg, n_cues), generator=g)
            act = model(pr.cues, pr.signal, model.window(pr))
            correct += float(accuracy(act, pr.test_labels)) * n
            loss += float(model.loss(act, pr.test_labels, int(model.window(pr).sum()))) * n
            done += n
    return {"accuracy": correct / n_problems, "loss": loss / n_problems}


# ---------------------------------------------------------------------------------------------
# the job driven by trainer.runner


@dataclass
class GradientState:
    """Loop state of a gradient-trained model: the model, its optimizer and the data generator."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator


BPTTState = GradientState


class GradientJob:
    """What every BPTT job shares: the clipped, finite-guarded optimizer step and the checkpoint
    state (model, optimizer, generator) that :mod:`plastix.trainer.runner` saves and restores.
    Subclasses implement ``init_state`` and ``step``; ``cfg`` needs ``grad_clip``, ``seed`` and ``to_json``.
    ``graph``: a model to start from instead of the one the config builds."""

    def __init__(self, cfg: Any, graph: Graph | None = None) -> None:
        self.cfg = cfg
        self.graph = graph

    def config(self) -> dict:
        """The run's identity for resume checks: every config field but the iteration budget, which
        is the runner's ``total_steps`` (a run resumed with more iterations continues)."""
        return {k: v for k, v in self.cfg.to_json().items() if k != "iterations"}

    def init_state(self) -> GradientState:  # pragma: no cover - abstract
        raise NotImplementedError

    def optimize(self, state: GradientState, loss: torch.Tensor) -> float:
        """Backpropagate ``loss``, clip the global gradient norm to ``cfg.grad_clip`` and, if the
        norm is finite, take the optimizer step and project bounded parameters (``model.project_``).
        Returns the pre-clip norm, NaN when the step was skipped."""
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in state.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        if not bool(torch.isfinite(grad_norm)):
            return math.nan
        state.optimizer.step()
        state.model.project_()
        return float(grad_norm)

    def state_dict(self, state: GradientState) -> dict:
        return {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
                "generator": state.generator.get_state()}

    def load_state_dict(self, data: dict) -> GradientState:
        state = self.init_state()
        state.model.load_state_dict(data["model"])
        state.optimizer.load_state_dict(data["optimizer"])
        state.generator.set_state(data["generator"])
        return state


class BPTTJob(GradientJob):
    """One outer-loop iteration per :meth:`step`: sample a batch of problems, run the episodes,
    backpropagate the test-trial loss through time, clip, Adam step, project."""

    EVAL_SEED = 12345

    def init_state(self) -> BPTTState:
        model = CueModel(self.graph or build_graph(self.cfg), self.cfg)
        opt = torch.optim.Adam(model.param_groups())
        return BPTTState(model, opt, torch.Generator().manual_seed(self.cfg.seed))

    def step(self, state: BPTTState, index: int) -> tuple[BPTTState, dict[str, float]]:
        cfg, model = self.cfg, state.model
        pr = one_shot_cue_problems(cfg.batch, task_config(cfg), generator=state.generator)
        window = model.window(pr)
        act = model(pr.cues, pr.signal, window)
        loss = model.loss(act, pr.test_labels, int(window.sum()))
        total = loss + cfg.rate_reg * rate_penalty(act, int(window.sum()), cfg.target_rate) if cfg.rate_reg else loss
        grad_norm = self.optimize(state, total)
        metrics = {"loss": float(loss.detach()), "train_accuracy": float(accuracy(act.detach(), pr.test_labels)),
                   "grad_norm": grad_norm}
        if (index + 1) % cfg.eval_every == 0:
            ev = evaluate(model, cfg.eval_problems, n_cues=cfg.n_cues, seed=self.EVAL_SEED)
            metrics.update(test_accuracy=ev["accuracy"], test_loss=ev["loss"])
        return state, metrics


def plastic_rule_kinds(graph: Graph) -> list[str]:
    """Kinds of the rules on plastic projections (for logs)."""
    return [p.rule.kind + (f"({p.rule.base.kind})" if isinstance(p.rule, ThreeFactor) else "")
            for p in graph.plastic_projections]
