"""Policy-gradient BPTT on SpikePropamine's noisy cue-association T-maze (Schmidgall et al. 2021).

Network (Section 3.1, Fig. 3): 40 inputs -> 64 CUBA LIF hidden -> 2 CUBA LIF outputs, fully
connected, feed-forward (no recurrence). :func:`cue_tmaze_net` emits the IR graph of one
:class:`PlasticVariant`: both projections are static (non-plastic) or carry the same SpikePropamine
rule, ``W_eff = W + α ⊙ E`` (eq. 7) with E from DP linear decay (eq. 10), DP-Oja (eq. 11), DP-BCM
(eqs. 12-14), or their neuromodulated forms NDP-Oja / NDP-BCM (eqs. 16-21) whose per-post signal
``M = W_m r_post + b`` is an IR modulator read from the projection's own post population.

Our choices where the paper's text (its appendix is not in our copy) leaves them open, stated once:
NDP's modulator reads the post *spikes of the previous step* (IR modulator timing) rather than the
interval rate, and has a learned bias ``b`` (init 1, so NDP starts as DP; eq. 17 has none); rates
are spike averages over Δτ = 5 steps; ``|E| <= 1``; α starts at N(0, (4/√n_pre)²); rule
coefficients and modulator weights learn with 10x the weights' Adam rate (pilots at one shared rate
left α too small to matter within our budget).

Policy: the output spike rates averaged over the decision window, times a learned gain, are the
logits of the two turns; one turn is sampled per episode; reward +1 / -1. The loss is REINFORCE
with a leave-one-out batch-mean baseline (:func:`plastix.trainer.experiments.bptt.reinforce_loss`),
backpropagated through time through neurons and plasticity (SLAYER's exponential surrogate
gradient, as the paper), Adam. The
paper's *training loss* is -accuracy of the sampled turns; it stops training at <= -0.97.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from plastix.ir import BCM, Graph, GraphBuilder, HebbianDecay, Modulator, Oja
from plastix.tasks.cue_tmaze import CueTMazeConfig, cue_tmaze_episodes, maze_config, reward_of

from ..algorithms.gradient import GradientJob, GradientState, PlasticNet, reinforce_loss

STOP_LOSS = -0.97  # the paper's stopping loss (Fig. 2 caption)


class PlasticVariant(str, enum.Enum):
    """A SpikePropamine network variant: static, or every projection plastic with one rule."""

    NON_PLASTIC = "non_plastic"
    DP_LINEAR_DECAY = "dp_linear_decay"
    DP_OJA = "dp_oja"
    DP_BCM = "dp_bcm"
    NDP_OJA = "ndp_oja"
    NDP_BCM = "ndp_bcm"

    @property
    def neuromodulated(self) -> bool:
        return self in (PlasticVariant.NDP_OJA, PlasticVariant.NDP_BCM)


TMazeVariant = PlasticVariant  # the T-maze's name for it


def parse_variant(name: str | PlasticVariant) -> PlasticVariant:
    try:
        return PlasticVariant(name)
    except ValueError:
        raise ValueError(f"unknown variant {name!r}; known: {[v.value for v in PlasticVariant]}") from None


@dataclass(frozen=True)
class NetInit:
    """Initial values of the graph (all learned afterwards except the neuron constants)."""

    w_scale_in: float = 0.6     # |N(0, s²/n_pre)| magnitudes with random signs (GraphBuilder.connect)
    w_scale_out: float = 0.6
    alpha_scale: float = 4.0    # α ~ N(0, (s / sqrt(n_pre))²) per synapse
    eta: float = 0.1            # E update rate per interval
    eta_phi: float = 0.1        # BCM sliding-threshold rate
    interval: int = 5           # Δτ: rates are spike averages over this many steps
    clip: float = 1.0           # |E| <= clip
    mod_scale: float = 0.1      # W_m ~ N(0, s²/n_post); bias b = 1 so NDP starts as DP
    du: float = 0.3
    dv: float = 0.2
    vth: float = 1.0
    readout_gain: float = 5.0   # logits = gain * decision-window output rate


def _rule(variant: PlasticVariant, n_post: int, n_pre: int, init: NetInit, rng: np.random.Generator,
          modulator: str | None):
    alpha = rng.normal(0.0, init.alpha_scale / math.sqrt(n_pre), size=(n_post, n_pre))
    common = dict(eta=init.eta, alpha=alpha, interval=init.interval, clip=init.clip, modulator=modulator)
    if variant is PlasticVariant.DP_LINEAR_DECAY:
        return HebbianDecay(**common)
    if variant in (PlasticVariant.DP_OJA, PlasticVariant.NDP_OJA):
        return Oja(**common)
    return BCM(eta_phi=np.full(n_pre, init.eta_phi), psi=np.zeros(n_pre), **common)


def plastic_feedforward(variant: PlasticVariant | str, layers: Sequence[tuple[str, int]], *, scales: Sequence[float],
                        seed: int = 0, init: NetInit = NetInit(), metadata: dict | None = None) -> Graph:
    """A feed-forward SpikePropamine network: input ``layers[0] = (name, size)``, then one CUBA LIF
    population per later entry, each fully connected from the previous one with |N(0, s²/n_pre)|
    weights of random sign (``scales``: one ``s`` per projection). Every projection is static
    (``non_plastic``) or carries the variant's rule, ``W_eff = W + α ⊙ E`` (eq. 7; eqs. 10-21); NDP
    variants read a per-post modulator ``M = W_m r_post + b`` from the projection's own post
    population (module docstring). The last layer is the graph's output."""
    variant = parse_variant(variant)
    if len(layers) < 2 or len(scales) != len(layers) - 1:
        raise ValueError(f"plastic_feedforward: need >= 2 layers and one scale per projection, got "
                         f"{len(layers)} layers, {len(scales)} scales")
    b = GraphBuilder(dt=1e-3, seed=seed)
    rng = np.random.default_rng(seed + 1)
    pops = [b.input(*layers[0])]
    pops += [b.cuba_lif(name, size, du=init.du, dv=init.dv, vth=init.vth) for name, size in layers[1:]]
    for pre, post, scale in zip(pops[:-1], pops[1:], scales):
        b.connect(pre, post, scale=scale)
    g = b.build(outputs=[pops[-1]], metadata=metadata)
    if variant is PlasticVariant.NON_PLASTIC:
        return g
    mods, projs = [], []
    for pr in g.projections:
        mod = None
        if variant.neuromodulated:
            mod = f"m_{pr.post}"
            w = rng.normal(0.0, init.mod_scale / math.sqrt(pr.n_post), size=(pr.n_post, pr.n_post))
            mods.append(Modulator(name=mod, source=pr.post, size=pr.n_post, weight=w, bias=np.ones(pr.n_post)))
        projs.append(pr.replace(rule=_rule(variant, pr.n_post, pr.n_pre, init, rng, mod)))
    return g.replace(projections=tuple(projs), modulators=tuple(mods))


def cue_tmaze_net(variant: PlasticVariant | str, *, n_in: int = 40, n_hidden: int = 64, n_out: int = 2, seed: int = 0,
                  init: NetInit = NetInit()) -> Graph:
    """The SpikePropamine cue-association network (Fig. 3) for one variant (see module docstring).
    Input ``cues`` (n_in), output population ``action`` (n_out)."""
    variant = parse_variant(variant)
    return plastic_feedforward(
        variant, [("cues", n_in), ("hidden", n_hidden), ("action", n_out)], scales=(init.w_scale_in, init.w_scale_out),
        seed=seed, init=init, metadata={"source": "Schmidgall et al. 2021, SpikePropamine (noisy cue-association T-maze)",
                                        "variant": variant.value, "readout_gain": init.readout_gain, "readout_offset": 0.0})


# ---------------------------------------------------------------------------------------------
# config


@dataclass(frozen=True)
class PGConfig:
    """Training settings; ``maze`` is the task config. Presets: :data:`CONFIGS`."""

    task: str = "cue_tmaze"
    variant: str = PlasticVariant.NDP_OJA.value
    iterations: int = 300
    batch: int = 32
    lr: float = 1e-3
    grad_clip: float = 1.0
    n_hidden: int = 64
    seed: int = 0
    surrogate: str = "exponential"  # SLAYER's, as the paper
    train_neurons: bool = False
    eval_episodes: int = 256
    eval_every: int = 25
    rule_lr_scale: float = 10.0  # Adam lr of rule coefficients and modulators = lr * this
    init: NetInit = field(default_factory=NetInit)
    maze: CueTMazeConfig = field(default_factory=lambda: maze_config("quick"))

    def __post_init__(self) -> None:
        parse_variant(self.variant)
        if self.task != "cue_tmaze":
            raise ValueError(f"PGConfig.task: only 'cue_tmaze' is trained by policy gradient, got {self.task!r}")
        if self.batch < 2:
            raise ValueError(f"PGConfig.batch must be >= 2 (leave-one-out baseline), got {self.batch}")
        if isinstance(self.maze, dict):  # from a JSON config
            object.__setattr__(self, "maze", CueTMazeConfig(**self.maze))
        if isinstance(self.init, dict):
            object.__setattr__(self, "init", NetInit(**self.init))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


CONFIGS: dict[str, PGConfig] = {
    "quick": PGConfig(iterations=400, batch=32, maze=maze_config("quick"), eval_episodes=256, eval_every=25),
    "paper": PGConfig(iterations=2000, batch=64, maze=maze_config("paper"), eval_episodes=500, eval_every=50),
}


# ---------------------------------------------------------------------------------------------
# model, policy, evaluation


class TMazeModel(PlasticNet):
    """The compiled network plus the readout gain (:class:`~.gradient.PlasticNet`: freezing of neuron
    constants, projection of bounded rule coefficients, export)."""

    def forward(self, spikes: torch.Tensor, decision: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, 2), output spikes (T, B, 2))`` for input spikes ``(T, B, 40)``: the
        logits are the output rates averaged over the ``decision`` (T,) window times the gain."""
        out, _ = self.net.run({"cues": spikes})
        act = out["action"][:, 0]
        return self.gain * act[decision].mean(0) + self.offset, act


def sample_turns(logits: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one turn per episode from ``softmax(logits)`` with a CPU generator (device-agnostic);
    returns ``(turn (B,) long, log π(turn) (B,))``."""
    logp = torch.log_softmax(logits, -1)
    u = torch.rand(logits.shape[0], generator=generator).to(logits.device)
    turn = (u < logp[:, 1].detach().exp()).long()
    return turn, logp.gather(1, turn[:, None])[:, 0]


def expected_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean probability the policy gives the correct turn (the expected sampled accuracy)."""
    return torch.softmax(logits, -1).gather(1, labels.long()[:, None]).mean()


def loo_baseline(reward: torch.Tensor) -> torch.Tensor:
    """Leave-one-out mean reward of the other episodes of the batch (an unbiased baseline)."""
    n = reward.shape[0]
    return (reward.sum() - reward) / (n - 1)


def evaluate(model: TMazeModel, maze: CueTMazeConfig, n_episodes: int, *, seed: int, batch: int = 128) -> dict:
    """Sampled-turn and greedy accuracy on ``n_episodes`` fixed (seeded) episodes."""
    g = torch.Generator().manual_seed(seed)
    sampled = greedy = 0.0
    done = 0
    with torch.no_grad():
        while done < n_episodes:
            n = min(batch, n_episodes - done)
            ep = cue_tmaze_episodes(n, maze, generator=g, device=model.gain.device)
            logits, _ = model(ep.spikes, ep.decision)
            turn, _ = sample_turns(logits, g)
            sampled += float((turn == ep.labels).float().sum())
            unique = logits[:, 0] != logits[:, 1]
            greedy += float(((logits.argmax(-1) == ep.labels) & unique).float().sum())
            done += n
    return {"accuracy": sampled / n_episodes, "greedy_accuracy": greedy / n_episodes}


# ---------------------------------------------------------------------------------------------
# the job driven by trainer.runner


PGState = GradientState


class PGJob(GradientJob):
    """One policy-gradient iteration per :meth:`step`: a batch of episodes, sampled turns, REINFORCE
    loss backpropagated through time, clip, Adam, projection of bounded rule coefficients."""

    EVAL_SEED = 24680

    def build_graph(self) -> Graph:
        c = self.cfg
        return cue_tmaze_net(c.variant, n_in=c.maze.n_inputs, n_hidden=c.n_hidden, seed=c.seed, init=c.init)

    def init_state(self) -> PGState:
        model = TMazeModel(self.graph or self.build_graph(), self.cfg)
        model.offset.requires_grad_(False)  # a common logit offset cancels in the softmax
        plastic = [p for n, p in model.net.named_parameters() if p.requires_grad and ("/rule/" in n or n.startswith("params.m_"))]
        ids = {id(p) for p in plastic}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest}] + ([{"params": plastic, "lr": self.cfg.lr * self.cfg.rule_lr_scale}] if plastic else [])
        opt = torch.optim.Adam(groups, lr=self.cfg.lr)
        return PGState(model, opt, torch.Generator().manual_seed(self.cfg.seed))

    def step(self, state: PGState, index: int) -> tuple[PGState, dict[str, float]]:
        cfg, model = self.cfg, state.model
        ep = cue_tmaze_episodes(cfg.batch, cfg.maze, generator=state.generator, device=model.gain.device)
        logits, act = model(ep.spikes, ep.decision)
        turn, logp = sample_turns(logits, state.generator)
        reward = reward_of(turn, ep.labels, cfg.maze)
        loss = reinforce_loss(logp, reward, loo_baseline(reward))
        grad_norm = self.optimize(state, loss)
        acc = float((turn == ep.labels).float().mean())
        metrics = {"loss": -acc, "pg_loss": float(loss.detach()), "reward": float(reward.mean()),
                   "expected_accuracy": float(expected_accuracy(logits.detach(), ep.labels)),
                   "output_rate": float(act.detach().mean()), "grad_norm": grad_norm}
        if (index + 1) % cfg.eval_every == 0:
            ev = evaluate(model, cfg.maze, cfg.eval_episodes, seed=self.EVAL_SEED)
            metrics.update(eval_accuracy=ev["accuracy"], eval_greedy_accuracy=ev["greedy_accuracy"])
        return state, metrics


def first_reaching(losses: list[float], *, window: int, threshold: float = STOP_LOSS) -> int | None:
    """The first iteration whose mean training loss over the last ``window`` iterations (the
    paper averages accuracy over 100 trials) is ``<= threshold``; None if never."""
    if window < 1:
        raise ValueError(f"first_reaching: window must be >= 1, got {window}")
    x = torch.tensor([math.nan if v is None else v for v in losses], dtype=torch.float64)
    if x.numel() < window:
        return None
    avg = x.unfold(0, window, 1).mean(1)
    hit = torch.nonzero(avg <= threshold)
    return int(hit[0, 0]) + window - 1 if hit.numel() else None
