"""Meta-SpikePropamine's one-shot character recognition ("Recognizing novel character classes from a
single example", Figs. 5-6), meta-learned by surrogate-gradient BPTT through the episode.

The model (:class:`GlyphModel`) is the paper's: a CNN (:class:`GlyphCNN`; conv 3 x 3 1 -> 4, batch
norm, ReLU, 2 x 2 max-pool, conv 3 x 3 4 -> 4, batch norm, ReLU, 2 x 2 max-pool, flatten: 4 x 7 x 7 =
196 features of a 28 x 28 image) whose features drive 196 CUBA input neurons of the plastic SNN
:func:`plastix.ir.examples.one_shot_glyph_net` (DP-SNN 196 -> 48 with additive triplet STDP in LTP /
LTD eligibility traces, per-input-neuron modulation M_i from a 2 x 64 NM-SNN, eqs. 6-7, 14-16, 19).
The IR has no convolution, batch-norm or pooling node, so the CNN is a torch module of the trainer:
the exported ``model.plx`` is the SNN, its input ``features`` is the CNN's output, and the CNN's
weights travel in the graph's metadata (``frontend``) for the evaluation to rebuild it.

Episode (:mod:`plastix.tasks.one_shot_glyphs`): image ``k`` of a problem is shown during slot ``k``
(20 steps), its CNN features as constant current. The input ``nm_gate`` is 1 from step
``present_steps - 1`` on and silences the NM-SNN's output layer, so the modulation reaching the
synapses is exactly 0 once the first phase-2 image's spikes arrive (the one-step lead is the
network's latency: features -> input neurons -> synapses). The readout ``readout[t] = w . hidden[t-1]``
lags the image by :data:`READOUT_LAG` = 3 steps (features -> input neurons -> hidden -> readout), so
the episode runs ``120 + 3`` steps (the last 3 with a blank image) and slot ``k``'s score is the mean
readout over its 20 steps shifted by 3. The answer is the phase-2 slot with the highest score; the
meta-loss is the softmax cross entropy of ``gain * score`` over the ``n_way`` phase-2 slots.

Speed (exact, not an approximation): once the modulation is 0 the plastic weights no longer change,
so with ``split_phases`` the episode runs its first ``present_steps + 1`` steps on the plastic
network and the rest on the static DP-SNN (:func:`static_graph`) whose input weights are each
problem's learnt ones (problems as individuals P, see :meth:`TorchNetwork.run` ``params``);
``tests/trainer/test_glyphs.py`` checks that both give the same readout.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from plastix.backends.torch import NetState
from plastix.backends.torch import compile as compile_torch
from plastix.ir import Graph, ThreeFactor
from plastix.ir import save as save_graph
from plastix.ir.examples import GLYPH_FEATURES, GLYPH_GATE, one_shot_glyph_net
from plastix.tasks.glyphs import GlyphSet, load_glyph_standin
from plastix.tasks.one_shot_glyphs import GlyphProblems, OneShotGlyphConfig, one_shot_glyph_problems

from ..algorithms.gradient import GradientJob, GradientState, PlasticNet

TASK = "one_shot_glyphs"
VARIANTS = ("plastic", "nonplastic")
DATASETS = ("glyph_standin", "glyph_standin_small")
READOUT_LAG = 3  # steps from an image's features to the readout: input neurons, hidden, readout
FROZEN = ("features_to_sensory/weight", "nm_gate_to_nm2/weight", "dopamine/bias")  # fixed wiring, not learnt
EVAL_BATCH = 128
FRONTEND_NOTE = ("CNN front end (conv3x3(pad 1)-batchnorm-relu-maxpool2, twice; flatten), Meta-SpikePropamine "
                 "Architecture: not an IR node (the IR has no convolution, batch norm or pooling); it runs in torch "
                 "and its output is this graph's input 'features'; its weights are the JSON in 'frontend'")


# ---------------------------------------------------------------------------------------------
# configs


@dataclass(frozen=True)
class GlyphConfig:
    """Outer loop, task and model settings (presets: :data:`CONFIGS`)."""

    task: str = TASK
    variant: str = "plastic"         # plastic (DP-SNN + NM-SNN) or nonplastic (same DP-SNN, static weights)
    data: str = "glyph_standin"      # the stand-in (3,432 / 860 classes) or its small subset (tests)
    data_seed: int = 0
    iterations: int = 2000
    batch: int = 256                 # problems per gradient (the paper's 256)
    micro_batch: int = 64            # problems per forward/backward (gradients accumulated; memory only)
    lr: float = 1e-3
    cnn_lr: float = 1.0              # lr multiplier of the CNN
    rule_lr: float = 5.0             # lr multiplier of the STDP rates and eligibility time constants (log space)
    readout_lr: float = 10.0         # lr multiplier of the softmax gain
    grad_clip: float = 1.0
    seed: int = 0
    surrogate: str = "fast_sigmoid"
    train_neurons: bool = False
    eval_problems: int = 512
    eval_every: int = 25
    present_steps: int = 20
    n_way: int = 5
    split_phases: bool = True        # run phase 2 on the static DP-SNN (exact; see the module doc)
    # model (one_shot_glyph_net)
    n_hidden: int = 48
    n_mod: int = 64
    channels: tuple[int, int] = (4, 4)
    log_params: bool = True          # STDP rates and eligibility time constants learnt in log space (unit-gain
                                     # trace); always False for the non-plastic variant
    eta: float = 0.02                # initial unit-gain STDP rate eta+ (log_params) or raw eta+
    eta_minus_ratio: float = 1.0
    tau_e: tuple[float, float] = (10.0, 40.0)  # eligibility time constants, log-spaced over the hidden neurons
    decay_pre: float = 0.8
    decay_post: float = 0.8
    decay_slow: float = 0.95
    w_max: float | None = None
    input_gain: float = 0.3
    in_scale: float = 0.25
    nm_scales: tuple[float, float] = (2.0, 2.0)
    nm_recurrent_scale: float = 5.0
    mod_scale: float = 1.0
    out_scale: float = 1.0
    du: float = 0.5                  # current / voltage decay of every CUBA population (not in the paper; faster
    dv: float = 0.3                  # than the cue net's 0.2 / 0.1 so that a 20-step image is not half charging)
    mod_activation: str = "tanh"     # fixed by the graph (PlasticNet reads it)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; known: {', '.join(VARIANTS)}")
        if self.data not in DATASETS:
            raise ValueError(f"unknown data {self.data!r}; known: {', '.join(DATASETS)}")
        if self.batch < 1 or self.micro_batch < 1:
            raise ValueError(f"batch and micro_batch must be >= 1, got {self.batch}, {self.micro_batch}")
        if len(self.tau_e) != 2 or not 1.0 < self.tau_e[0] <= self.tau_e[1]:
            raise ValueError(f"tau_e must be (lo, hi) with 1 < lo <= hi, got {self.tau_e!r}")
        if not self.plastic:  # nothing to reparameterise without a plastic rule
            object.__setattr__(self, "log_params", False)
        for name in ("tau_e", "nm_scales", "channels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        OneShotGlyphConfig(present_steps=self.present_steps, n_way=self.n_way)  # validates both

    @property
    def plastic(self) -> bool:
        return self.variant == "plastic"

    def task_config(self, split: str = "train") -> OneShotGlyphConfig:
        return OneShotGlyphConfig(present_steps=self.present_steps, n_way=self.n_way, split=split)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


#: ``paper``: the paper's budget (256 problems x 2,000 updates, 5-way, 20 steps per image);
#: ``quick``: a short run on the full stand-in for demos and timing; ``tiny``: the small stand-in
#: subset and a small net, for tests on 2 cores
CONFIGS = {
    "paper": GlyphConfig(),
    "quick": GlyphConfig(iterations=200, batch=64, eval_problems=256, eval_every=10),
    "tiny": GlyphConfig(data="glyph_standin_small", iterations=8, batch=16, micro_batch=16, eval_problems=32,
                        eval_every=4, n_hidden=16, n_mod=16, n_way=3, lr=3e-3),
}


def load_glyphs(cfg: GlyphConfig) -> GlyphSet:
    """The stand-in ``cfg.data`` of seed ``cfg.data_seed`` (cached: :func:`load_glyph_standin`)."""
    return load_glyph_standin(cfg.data_seed, small=cfg.data == "glyph_standin_small")


# ---------------------------------------------------------------------------------------------
# the CNN (a torch module: the IR has no convolution, batch norm or pooling)


class GlyphCNN(nn.Module):
    """Meta-SpikePropamine's pre-processing CNN ("Architecture"): conv 3 x 3 (1 -> c1, padding 1),
    batch norm, ReLU, 2 x 2 max-pool, conv 3 x 3 (c1 -> c2, padding 1), batch norm, ReLU, 2 x 2
    max-pool, flatten. ``(N, 28, 28)`` images -> ``(N, c2 * 7 * 7)`` = ``(N, 196)`` features. The
    paper does not state the padding; padding 1 gives its 196 features for 28 x 28 images."""

    def __init__(self, channels: tuple[int, int] = (4, 4), *, seed: int = 0) -> None:
        super().__init__()
        c1, c2 = channels
        self.channels = (int(c1), int(c2))
        conv = partial(nn.utils.skip_init, nn.Conv2d, kernel_size=3, padding=1)  # no draw from the global RNG
        self.conv1, self.bn1 = conv(1, c1), nn.BatchNorm2d(c1)
        self.conv2, self.bn2 = conv(c1, c2), nn.BatchNorm2d(c2)
        g = torch.Generator().manual_seed(seed)  # torch's default conv init, U(+-1/sqrt(fan_in)), from the seed
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                bound = 1.0 / math.sqrt(conv.weight[0].numel())
                for t in (conv.weight, conv.bias):
                    t.copy_((torch.rand(t.shape, generator=g) * 2 - 1) * bound)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(images.unsqueeze(1)))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return x.flatten(1)

    def n_features(self, image_size: int = 28) -> int:
        return self.channels[1] * (image_size // 4) ** 2

    def to_metadata(self) -> dict[str, str]:
        """Graph metadata entries: ``frontend`` (JSON: kind, channels and every weight and batch-norm
        statistic as nested lists) and ``frontend_note`` (what it is, for people and reports)."""
        state = {k: v.detach().cpu().double().tolist() for k, v in self.state_dict().items()}
        return {"frontend": json.dumps({"kind": "cnn", "channels": list(self.channels), "state": state}),
                "frontend_note": FRONTEND_NOTE}

    @classmethod
    def from_metadata(cls, meta: dict) -> "GlyphCNN":
        """The CNN stored by :meth:`to_metadata` in a graph's ``meta`` (eval mode: batch norm uses its
        running statistics)."""
        try:
            spec = json.loads(meta["frontend"])
            if spec.get("kind") != "cnn":
                raise ValueError
            cnn = cls(tuple(spec["channels"]))
            own = cnn.state_dict()
            cnn.load_state_dict({k: torch.as_tensor(np.asarray(v), dtype=own[k].dtype) for k, v in spec["state"].items()})
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise ValueError(f"the model's metadata has no readable CNN front end ('frontend'): {exc}") from None
        return cnn.eval()


# ---------------------------------------------------------------------------------------------
# graphs and episodes


def build_graph(cfg: GlyphConfig) -> Graph:
    """The SNN of ``cfg`` (:func:`one_shot_glyph_net`), eligibility time constants log-spaced over the
    hidden neurons and, with ``log_params``, the unit-gain rates ``eta (1 - gamma)`` in the IR."""
    tau = np.exp(np.linspace(math.log(cfg.tau_e[0]), math.log(cfg.tau_e[1]), cfg.n_hidden))
    gamma = 1.0 - 1.0 / np.random.default_rng(cfg.seed).permutation(tau)
    eta = cfg.eta * (1.0 - gamma)[:, None] if cfg.log_params else cfg.eta
    n_features = GlyphCNN(cfg.channels).n_features()
    return one_shot_glyph_net(n_features=n_features, n_hidden=cfg.n_hidden, n_mod=cfg.n_mod, seed=cfg.seed,
                              plastic=cfg.plastic, eta=eta, eta_minus=np.asarray(eta) * cfg.eta_minus_ratio,
                              gamma=gamma, decay_pre=cfg.decay_pre, decay_post=cfg.decay_post,
                              decay_slow=cfg.decay_slow, w_max=cfg.w_max, input_gain=cfg.input_gain,
                              in_scale=cfg.in_scale, nm_scales=cfg.nm_scales,
                              nm_recurrent_scale=cfg.nm_recurrent_scale, mod_scale=cfg.mod_scale,
                              out_scale=cfg.out_scale, du=cfg.du, dv=cfg.dv)


def static_graph(graph: Graph, outputs: tuple[str, ...] | None = None) -> Graph:
    """``graph`` with every rule and modulator removed and only the populations that still reach
    ``outputs`` (default: the graph's): the network once its plasticity has stopped."""
    outputs = tuple(outputs or graph.outputs)
    projs = tuple(p.replace(rule=None) if p.rule is not None else p for p in graph.projections)
    topo = nx.DiGraph([(p.pre, p.post) for p in projs])
    topo.add_nodes_from(p.name for p in graph.populations)
    keep = set(outputs).union(*(nx.ancestors(topo, o) for o in outputs))
    pops = tuple(p for p in graph.populations if p.name in keep)
    return graph.replace(populations=pops, projections=tuple(p for p in projs if p.pre in keep and p.post in keep),
                         modulators=(), inputs=tuple(n for n in graph.inputs if n in keep), outputs=outputs)


def gate_signal(steps: int, present_steps: int) -> torch.Tensor:
    """``(steps, 1)``: 1 from step ``present_steps - 1`` on (the NM-SNN silenced: no modulation
    once phase-2 spikes reach the synapses)."""
    return (torch.arange(steps) >= present_steps - 1).float()[:, None]


def episode_inputs(features: torch.Tensor, problems: GlyphProblems, present_steps: int,
                   graph_inputs: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The network's inputs ``(T + READOUT_LAG, B, n)`` for CNN ``features`` ``(B, slots, n)``: each
    slot's features for its steps, then :data:`READOUT_LAG` blank steps; the gate if the graph has one."""
    movie = features[:, problems.slot_of_step].transpose(0, 1)  # (T, B, n)
    movie = torch.cat([movie, movie.new_zeros(READOUT_LAG, *movie.shape[1:])])
    out = {GLYPH_FEATURES: movie}
    if GLYPH_GATE in graph_inputs:
        out[GLYPH_GATE] = gate_signal(movie.shape[0], present_steps).to(movie)[:, None].expand(-1, movie.shape[1], 1)
    return out


def slot_scores(readout: torch.Tensor, problems: GlyphProblems) -> torch.Tensor:
    """``(B, n_way)``: the mean readout over each phase-2 slot's steps, shifted by :data:`READOUT_LAG`
    (``readout`` ``(T + READOUT_LAG, B)``)."""
    act = readout[READOUT_LAG:]
    n_slots = problems.images.shape[1]
    onehot = F.one_hot(problems.slot_of_step, n_slots).to(act.dtype)  # (T, slots)
    per_slot = (onehot.T @ act) / onehot.sum(0)[:, None]
    return per_slot[1:].T


def _to_individuals(x: Any) -> Any:
    """A state leaf or NamedTuple of leaves ``(1, B, ...)`` -> ``(B, 1, ...)``."""
    if x is None:
        return None
    if isinstance(x, tuple):
        return type(x)(*(_to_individuals(v) for v in x))
    return x.transpose(0, 1)


def tie_parameters(static: Any, net: Any) -> None:
    """Make every parameter of ``static`` (:func:`static_graph` of ``net.graph``, compiled) the very
    tensor of ``net`` with that name: one set of values, gradients reach ``net``."""
    for key in list(static.params.keys()):
        static.params[key] = net.params[key]


def run_episode(net: Any, static: Any, inputs: dict[str, torch.Tensor], *, split_at: int | None,
                params: dict | None = None) -> dict[str, torch.Tensor]:
    """Every output ``(T, B, n)`` of ``net`` over ``inputs`` ``(T, B, n)``. With ``split_at``, steps
    ``split_at``.. run on ``static`` (:func:`static_graph` of ``net.graph``, compiled alike, its
    parameters tied to ``net``'s: :func:`tie_parameters`) with each problem's final plastic weights,
    the problems as individuals P: exact when the plastic weights no longer change after ``split_at``
    (no modulation). ``params``: ``net``'s overrides (leading P = 1; none may be a static parameter)."""
    if params and split_at is not None and any(k in static.params for k in params):
        raise ValueError("run_episode: overrides of parameters the static network uses are not passed on to it")
    if split_at is None or not net.graph.plastic_projections:
        out, _ = net.run(inputs, params=params)
        return {k: v[:, 0] for k, v in out.items()}
    first, state = net.run({k: v[:split_at] for k, v in inputs.items()}, params=params)
    proj = net.graph.plastic_projections[0].name
    prm = {f"{proj}/weight": state.projs[proj].rule.w[0]}  # (B, n_post, n_pre): each problem's learnt W
    pops = [p.name for p in static.graph.populations]
    init = static.init_state(prm[f"{proj}/weight"].shape[0], 1, params=prm)
    moved = NetState(state.t, {n: _to_individuals(state.out[n]) for n in pops},
                     {n: _to_individuals(state.a[n]) for n in pops if n in state.a},
                     {n: _to_individuals(state.neurons[n]) for n in pops}, init.projs)
    rest = {k: v[split_at:].unsqueeze(2) for k, v in inputs.items() if k in static.inputs}  # (T, P=B, 1, n)
    second, _ = static.run(rest, moved, params=prm)
    return {k: torch.cat([first[k][:, 0], second[k][:, :, 0]]) for k in second}


def glyph_episode(cnn: GlyphCNN, net: Any, static: Any, problems: GlyphProblems, present_steps: int, *,
                  split_at: int | None, params: dict | None = None) -> tuple[torch.Tensor, dict]:
    """One batch of problems through the CNN and the compiled SNN ``net`` (with ``static`` =
    :func:`static_graph` of its graph for ``split_at``, see :func:`run_episode`): the phase-2 slot
    scores ``(B, n_way)`` and every output of ``net`` ``(T + READOUT_LAG, B, n)``."""
    images = problems.images.to(next(cnn.parameters()).dtype)
    feats = cnn(images.flatten(0, 1)).view(*images.shape[:2], -1)
    inputs = episode_inputs(feats.to(net.dtype), problems, present_steps, net.inputs)
    outs = run_episode(net, static, inputs, split_at=split_at, params=params)
    return slot_scores(outs["readout"][..., 0], problems), outs


# ---------------------------------------------------------------------------------------------
# model


class GlyphModel(PlasticNet):
    """The CNN + SNN of the one-shot character task as a :class:`PlasticNet`: :meth:`episode` gives
    each problem's phase-2 slot scores; the loss is their softmax cross entropy (gain learnt)."""

    PROBES = ("readout", "hidden", "sensory", "nm2")

    def __init__(self, graph: Graph, cfg: GlyphConfig, *, jit: bool = False) -> None:
        super().__init__(graph, cfg, jit=jit, probes=self.PROBES)
        self.cnn = GlyphCNN(cfg.channels, seed=cfg.seed)
        for key in FROZEN:
            if key in self.net.params:
                self.net.params[key].requires_grad_(False)
        probes = tuple(n for n in self.PROBES if n in {p.name for p in static_graph(graph).populations})
        # not a registered submodule: its parameters are the net's own (tie_parameters)
        static = compile_torch(static_graph(graph, probes), surrogate=cfg.surrogate)
        tie_parameters(static, self.net)
        self._static = (static,)

    def param_groups(self) -> list[dict]:
        return super().param_groups() + [{"params": list(self.cnn.parameters()), "lr": self.cfg.lr * self.cfg.cnn_lr}]

    @property
    def split_at(self) -> int | None:
        """First step run on the static network: the gate is on from step ``present_steps - 1``, so
        ``nm2`` is silent from ``present_steps`` and ``M[t] = f(W nm2[t-1])`` is 0 from
        ``present_steps + 1`` on; the weights written at step ``present_steps`` are final
        (:func:`diagnostics` logs ``mod_after``, the largest |M| after it: 0)."""
        return self.cfg.present_steps + 1 if self.cfg.split_phases and self.cfg.plastic else None

    def episode(self, problems: GlyphProblems, *, split: bool = True) -> tuple[torch.Tensor, dict]:
        """Slot scores ``(B, n_way)`` and every probed output ``(T + lag, B, n)`` of a batch of problems."""
        return glyph_episode(self.cnn, self.net, self._static[0], problems, self.cfg.present_steps,
                             split_at=self.split_at if split else None, params=self.overrides())

    def loss(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Softmax cross entropy of ``gain * scores`` over the phase-2 slots."""
        return F.cross_entropy(self.gain * scores, target)

    def to_graph(self) -> Graph:
        g = super().to_graph()
        return g.replace(metadata={**(g.metadata or {}), **self.cnn.to_metadata()})


def take_problems(pr: GlyphProblems, rows: slice) -> GlyphProblems:
    """The problems ``rows`` of a batch (the per-step tensors are shared)."""
    return pr._replace(images=pr.images[rows], target=pr.target[rows], classes=pr.classes[rows],
                       samples=pr.samples[rows])


def accuracy(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of problems whose highest-scoring phase-2 slot is the target (ties: the earliest
    slot wins, as :func:`plastix.tasks.one_shot_glyphs.score_one_shot_glyphs`)."""
    return (scores.argmax(-1) == target).float().mean()


def evaluate(model: GlyphModel, glyphs: GlyphSet, *, split: str = "test", n_problems: int = 512,
             seed: int = 12345, batch: int = EVAL_BATCH) -> dict:
    """Accuracy, error and loss on ``n_problems`` seeded problems of ``glyphs``' ``split`` classes
    (the same problems every call), the CNN's batch norm on its running statistics."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    hits, losses, done = 0.0, 0.0, 0
    try:
        with torch.no_grad():
            while done < n_problems:
                n = min(batch, n_problems - done)
                pr = one_shot_glyph_problems(n, glyphs, model.cfg.task_config(split), generator=g)
                scores, _ = model.episode(pr)
                hits += float(accuracy(scores, pr.target)) * n
                losses += float(model.loss(scores, pr.target)) * n
                done += n
    finally:
        model.train(was)
    acc = hits / n_problems
    return {"accuracy": acc, "error": 1.0 - acc, "loss": losses / n_problems, "problems": n_problems}


def diagnostics(model: GlyphModel, problems: GlyphProblems) -> dict[str, float]:
    """Firing rates (input neurons, hidden, NM-SNN output layer) in phase 1 and phase 2 (as they reach
    the readout), the mean |M| up to ``present_steps + 1`` and the largest |M| after it (``mod_after``:
    0 by construction, which :attr:`GlyphModel.split_at` relies on), from one full (unsplit) run."""
    with torch.no_grad():
        _, outs = model.episode(problems, split=False)
    p1 = slice(0, model.cfg.present_steps + READOUT_LAG)  # phase 1 as it reaches the readout
    p2 = slice(model.cfg.present_steps + READOUT_LAG, None)
    res = {}
    for name in ("sensory", "hidden", "nm2"):
        if name in outs:
            res[f"rate_{name}_p1"] = float(outs[name][p1].mean())
            res[f"rate_{name}_p2"] = float(outs[name][p2].mean())
    net = model.net
    proj = next((p for p in net.graph.plastic_projections if isinstance(p.rule, ThreeFactor)), None)
    if proj is None:
        return res
    with torch.no_grad():
        m = net.modulator_values(proj.rule.modulator, outs["nm2"][:, None], params=model.overrides())[:, 0].abs()
        split = model.cfg.present_steps + 1
        res["mod_phase1"] = float(m[:split].mean())
        res["mod_after"] = float(m[split:].max()) if m.shape[0] > split else 0.0
    return res


# ---------------------------------------------------------------------------------------------
# the job driven by trainer.runner


class GlyphJob(GradientJob):
    """One outer-loop iteration per :meth:`step`: ``batch`` training problems (in chunks of
    ``micro_batch``, gradients accumulated), BPTT of the cross entropy through the episodes, clip,
    Adam, project. Every ``eval_every`` iterations: accuracy on fixed problems of the held-out test
    classes and :func:`diagnostics`."""

    EVAL_SEED = 12345
    DIAG_SEED = 4321

    def __init__(self, cfg: GlyphConfig, glyphs: GlyphSet | None = None, *, jit: bool = False,
                 metadata: dict | None = None) -> None:
        super().__init__(cfg, None)
        self.glyphs = glyphs if glyphs is not None else load_glyphs(cfg)
        self.jit = jit
        self.metadata = dict(metadata or {})

    def model_graph(self, model: GlyphModel) -> Graph:
        """The trained SNN with the CNN and the task settings in its metadata."""
        g = model.to_graph()
        cfg = self.cfg
        meta = {**(g.metadata or {}), **self.metadata, "trainer": "bptt", "task": TASK, "variant": cfg.variant,
                "present_steps": cfg.present_steps, "n_way": cfg.n_way, "readout_lag": READOUT_LAG,
                "data": cfg.data, "data_seed": cfg.data_seed}
        return g.replace(metadata=meta)

    def save_best(self, state: GradientState, out_dir: Path) -> None:
        save_graph(self.model_graph(state.model), Path(out_dir) / "best.plx")

    def init_state(self) -> GradientState:
        model = GlyphModel(build_graph(self.cfg), self.cfg, jit=self.jit)
        return GradientState(model, torch.optim.Adam(model.param_groups()), torch.Generator().manual_seed(self.cfg.seed))

    def step(self, state: GradientState, index: int) -> tuple[GradientState, dict[str, float]]:
        cfg, model = self.cfg, state.model
        pr = one_shot_glyph_problems(cfg.batch, self.glyphs, cfg.task_config("train"), generator=state.generator)
        state.optimizer.zero_grad(set_to_none=True)
        loss_sum, hits = 0.0, 0.0
        for lo in range(0, cfg.batch, cfg.micro_batch):
            sub = take_problems(pr, slice(lo, lo + cfg.micro_batch))
            scores, _ = model.episode(sub)
            loss = model.loss(scores, sub.target)
            (loss * (len(sub.target) / cfg.batch)).backward()
            loss_sum += float(loss.detach()) * len(sub.target)
            hits += float(accuracy(scores.detach(), sub.target)) * len(sub.target)
        grad_norm = self.apply_gradients(state)
        metrics = {"loss": loss_sum / cfg.batch, "train_accuracy": hits / cfg.batch, "grad_norm": grad_norm}
        if (index + 1) % cfg.eval_every == 0:
            ev = evaluate(model, self.glyphs, split="test", n_problems=cfg.eval_problems, seed=self.EVAL_SEED)
            metrics.update(test_accuracy=ev["accuracy"], test_error=ev["error"], test_loss=ev["loss"])
            diag = one_shot_glyph_problems(min(EVAL_BATCH, cfg.eval_problems), self.glyphs, cfg.task_config("test"),
                                           generator=torch.Generator().manual_seed(self.DIAG_SEED))
            model.eval()
            metrics.update(diagnostics(model, diag))
            model.train()
        return state, metrics
