"""What every gradient-trained plastic network shares (the algorithm side of BPTT training).

Losses are pure functions: :func:`bce_loss` (Meta-SpikePropamine: binary cross entropy on the
weighted output activity), :func:`rate_penalty`, :func:`cross_entropy_loss` and
:func:`reinforce_loss` (policy gradient with a baseline, SpikePropamine). :class:`RuleReparam`
learns an eligibility rule's coefficients in log space; :class:`PlasticNet` is a compiled plastic
network with its readout, optimiser groups, projection and export; :class:`GradientJob` the
clipped, finite-guarded optimiser step and the checkpoint state that
:mod:`plastix.trainer.runner` saves and restores. The experiments (the cue association of
:mod:`plastix.trainer.experiments.bptt`, the T-maze of :mod:`plastix.trainer.experiments.pg`) build on these.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from plastix.backends.torch import compile as compile_torch
from plastix.backends.torch import export_graph
from plastix.ir import EligibilityTrace, Graph, ThreeFactor, consumes

# rule coefficients with IR bounds [lo, hi] that the optimiser must respect (projected gradient)
_BOUNDED = {"gamma": (0.0, 1.0), "eta": (0.0, 1.0), "eta_phi": (0.0, 1.0), "consume": (0.0, 1e3)}
_NEURON_FIELDS = ("du", "dv", "vth", "bias")
_NEURON_BOUNDED = {"du": (0.0, 1.0), "dv": (0.0, 1.0)}
_RATE_FIELDS = ("eta_plus", "eta_minus", "eta_pair")


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
    """Mean squared shortfall of the output firing rates (spikes per step over the readout window,
    ``activity`` (B, 2) counts over ``steps`` steps) below ``target`` (a floor: rates above it cost
    nothing): a silent readout has no surrogate gradient left, and silence is the loss minimum while
    nothing is discriminated."""
    return (torch.relu(target - activity / steps) ** 2).mean()


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross entropy, ``logits`` (B, C), ``labels`` (B,)."""
    return torch.nn.functional.cross_entropy(logits, labels.long())


def reinforce_loss(log_prob: torch.Tensor, reward: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """REINFORCE with a baseline: ``-(R - b) log π(a)`` (the advantage carries no gradient)."""
    return -((reward - baseline).detach() * log_prob).mean()


# ---------------------------------------------------------------------------------------------
# models


class RuleReparam(nn.Module):
    r"""The eligibility rule's coefficients learnt in log space (magnitudes; each rate keeps its initial
    sign, so an anti-Hebbian projection stays one), with a unit-gain trace.

    For ``ThreeFactor(EligibilityTrace(STDP))`` on projection ``proj``: the eligibility time
    constant :math:`\tau = 1 / (1 - \gamma)` (one per hidden neuron when the IR's ``gamma`` rows are
    constant, else per synapse) and the STDP rates :math:`\tilde\eta_\pm` are learnt as logarithms, and
    the IR's rates are :math:`\eta_\pm = (1 - \gamma)\,\tilde\eta_\pm`, i.e. the trace
    :math:`E \leftarrow \gamma E + (1 - \gamma)\,\mathrm{STDP}(\tilde\eta)` is an average whose
    scale does not change with :math:`\tau` (eq. 16 with :math:`\alpha = 1 - \gamma`). An Adam step
    then changes a rate or a time constant by a fixed *fraction*, whatever its size. The IR keeps
    the plain ``gamma`` and ``eta_plus``/``eta_minus`` (:meth:`overrides`)."""

    TAU_RANGE = (1.0, 1e4)

    def __init__(self, net: nn.Module, proj: str) -> None:
        super().__init__()
        self.gamma_key = f"{proj}/rule/base/gamma"
        self.eta_keys = (f"{proj}/rule/base/base/eta_plus", f"{proj}/rule/base/base/eta_minus")
        gamma = net.params[self.gamma_key].detach()
        self.shape = tuple(gamma.shape)
        if gamma.dim() == 2 and bool((gamma == gamma[:, :1]).all()):
            gamma = gamma[:, :1]  # one time constant per post neuron
        keep = (1.0 - gamma).clamp(1.0 / self.TAU_RANGE[1], 1.0)
        self.log_tau = nn.Parameter(-keep.log())
        etas = [net.params[k].detach() for k in self.eta_keys]
        for i, e in enumerate(etas):  # not in the state dict: the signs follow from the graph
            self.register_buffer(f"eta_sign_{i}", torch.where(e < 0, -1.0, 1.0).to(e.dtype), persistent=False)
        self.log_eta = nn.ParameterList([nn.Parameter((e.abs().clamp_min(1e-12) / keep).log()) for e in etas])
        self.consume_key = f"{proj}/rule/consume"
        self.log_consume = None  # the use-up rate c of a consuming rule, learnt in log space
        if consumes(net.graph.projection(proj).rule):
            self.log_consume = nn.Parameter(net.params[self.consume_key].detach().clamp_min(1e-6).log())
            net.params[self.consume_key].requires_grad_(False)
        for k in (self.gamma_key, *self.eta_keys):
            net.params[k].requires_grad_(False)

    def overrides(self) -> dict[str, torch.Tensor]:
        """IR parameter values (leading population dim 1) for ``TorchNetwork.run(params=...)``."""
        keep = torch.exp(-self.log_tau)
        out = {self.gamma_key: (1.0 - keep).expand(self.shape).unsqueeze(0)}
        for i, (k, le) in enumerate(zip(self.eta_keys, self.log_eta)):
            out[k] = (getattr(self, f"eta_sign_{i}") * le.exp() * keep).unsqueeze(0)
        if self.log_consume is not None:
            out[self.consume_key] = self.log_consume.exp().unsqueeze(0)
        return out

    def project_(self) -> None:
        with torch.no_grad():
            self.log_tau.clamp_(math.log(self.TAU_RANGE[0]), math.log(self.TAU_RANGE[1]))


class PlasticNet(nn.Module):
    """A compiled plastic network trained by gradient descent, plus the readout gain/offset of its loss.

    What every gradient-trained experiment shares: neuron constants frozen unless
    ``cfg.train_neurons``; with ``cfg.log_params`` the eligibility rule's rates and time constants
    (and a consuming rule's use-up rate) learnt through :class:`RuleReparam`; with
    ``cfg.hardware_aware`` the forward pass runs the values Loihi's learning engine runs
    (:mod:`plastix.trainer.algorithms.hardware_aware`); Adam groups per parameter kind; projection of bounded
    rule coefficients after each step; export of the trained values (:meth:`to_graph`). ``jit`` runs
    the network through ``compile(graph, jit=True)`` (chunks of ``jit_chunk`` ``torch.compile``d steps; the
    same math, 3-4x faster per BPTT iteration; eager if compiling fails). ``probes``: populations the network
    outputs besides the graph's outputs (for diagnostics). ``schedule``: the torch backend's order of
    computation (``"step"`` or ``"layerwise"`` for feed-forward graphs; same results). ``cfg`` needs ``surrogate``,
    ``train_neurons``, ``lr``, ``readout_lr`` and ``rule_lr``."""

    def __init__(self, graph: Graph, cfg: Any, *, jit: bool = False, jit_chunk: int = 8,
                 probes: tuple[str, ...] = ("action",), schedule: str = "step") -> None:
        super().__init__()
        self.cfg = cfg
        self.units = None
        if getattr(cfg, "hardware_aware", False):
            from .hardware_aware import LoihiUnits

            self.units = LoihiUnits.of(graph, trace_impulse=cfg.trace_impulse, mod_gain=cfg.mod_gain)
            graph = self.units.tag(self.units.project(graph))  # start from values the engine runs
        self.outputs = graph.outputs
        probes = tuple(n for n in probes if any(p.name == n for p in graph.populations))
        self.net = compile_torch(graph.replace(outputs=probes), surrogate=cfg.surrogate, jit=jit, jit_chunk=jit_chunk,
                                 schedule=schedule)
        meta = graph.metadata or {}
        self.gain = nn.Parameter(torch.tensor(float(meta.get("readout_gain", 10.0))))
        self.offset = nn.Parameter(torch.tensor(float(meta.get("readout_offset", -1.0))))
        for name, p in self.net.named_parameters():
            field = name.rsplit("/", 1)[-1]
            if field in _NEURON_FIELDS and "/rule/" not in name and not cfg.train_neurons:
                p.requires_grad_(False)
        if getattr(cfg, "mod_activation", None) == "identity":  # the learning engine's graded Dense has no bias
            for m in graph.modulators:
                self.net.params[f"{m.name}/bias"].requires_grad_(False)
        self.reparam = None
        self.more_reparams = nn.ModuleList()  # further eligibility projections (e.g. the anti-Hebbian pool)
        if getattr(cfg, "log_params", False):  # configs without it (PGConfig) do not reparameterise
            projs = [p for p in graph.plastic_projections
                     if isinstance(p.rule, ThreeFactor) and isinstance(p.rule.base, EligibilityTrace)]
            if not projs:
                raise ValueError("log_params needs a three-factor eligibility rule (rule='eligibility_pair' or "
                                 "'eligibility_triplet')")
            self.reparam = RuleReparam(self.net, projs[0].name)
            self.more_reparams.extend(RuleReparam(self.net, p.name) for p in projs[1:])
        self.engine = None
        if self.units is not None:
            from .hardware_aware import EngineProjection

            self.engine = EngineProjection(self.net, self.units)

    @property
    def reparams(self) -> tuple[RuleReparam, ...]:
        """Every eligibility projection's :class:`RuleReparam` (empty without ``log_params``)."""
        return () if self.reparam is None else (self.reparam, *self.more_reparams)

    def overrides(self) -> dict | None:
        ov = {k: v for r in self.reparams for k, v in r.overrides().items()} or None
        return ov if self.engine is None else self.engine.overrides(ov)

    def param_groups(self) -> list[dict]:
        """Adam groups: the network at ``lr``, the readout gain/offset at ``lr * readout_lr``, the
        STDP rates η± (and with ``log_params`` the eligibility time constants) at ``lr * rule_lr``,
        trained neuron constants at ``lr * neuron_lr`` and their biases at ``lr * bias_lr`` (when the
        config has multipliers other than 1; ``bias_lr`` None: ``neuron_lr``)."""
        rates, rest, neurons = [], [], {}
        neuron_lr = getattr(self.cfg, "neuron_lr", 1.0)
        bias_lr = getattr(self.cfg, "bias_lr", None)
        bias_lr = neuron_lr if bias_lr is None else bias_lr
        populations = {p.name for p in self.net.graph.populations}
        for name, p in self.net.named_parameters():
            if not p.requires_grad:
                continue
            field = name.rsplit("/", 1)[-1]
            owner = name.split("/", 1)[0].rsplit(".", 1)[-1]  # "params.hidden/bias" -> "hidden"
            neuron = field in _NEURON_FIELDS and owner in populations  # not a modulator's bias
            mult = (bias_lr if field == "bias" else neuron_lr) if neuron else 1.0
            if "/rule/" in name and field in _RATE_FIELDS:
                rates.append(p)
            elif "/rule/" not in name and mult != 1.0:
                neurons.setdefault(mult, []).append(p)
            else:
                rest.append(p)
        rates += [p for r in self.reparams for p in r.parameters()]
        groups = [{"params": rest, "lr": self.cfg.lr}, {"params": [self.gain, self.offset], "lr": self.cfg.lr * self.cfg.readout_lr}]
        groups += [{"params": ps, "lr": self.cfg.lr * m} for m, ps in neurons.items()]
        return groups + ([{"params": rates, "lr": self.cfg.lr * self.cfg.rule_lr}] if rates else [])

    def project_(self) -> None:
        """Keep bounded rule coefficients inside their IR ranges after an optimiser step."""
        with torch.no_grad():
            for name, p in self.net.named_parameters():
                field = name.rsplit("/", 1)[-1]
                if field in _BOUNDED and "/rule/" in name:
                    p.clamp_(*_BOUNDED[field])
                elif field in _NEURON_BOUNDED and "/rule/" not in name and p.requires_grad:
                    p.clamp_(*_NEURON_BOUNDED[field])
        for r in self.reparams:
            r.project_()

    def to_graph(self) -> Graph:
        """The trained network as a graph: the values the forward pass uses (reparameterised and,
        hardware-aware, rounded to what the engine runs, in IR units with the Loihi scales in its
        metadata)."""
        with torch.no_grad():
            ov = self.overrides()
        g = export_graph(self.net, params=None if ov is None else {k: v[0] for k, v in ov.items()})
        if self.units is not None:
            g = self.units.tag(g)
        meta = dict(g.metadata or {})
        meta.update(readout_gain=float(self.gain.detach()), readout_offset=float(self.offset.detach()))
        return g.replace(metadata=meta, outputs=self.outputs)


# ---------------------------------------------------------------------------------------------
# the job driven by trainer.runner


@dataclass
class GradientState:
    """Loop state of a gradient-trained model: the model, its optimizer and the data generator."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator



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

    def config_defaults(self) -> dict:
        """The config's defaults in :meth:`config`'s JSON form (see ``runner.config_changes``)."""
        out = {}
        for f in dataclasses.fields(self.cfg):
            if f.default is not dataclasses.MISSING:
                out[f.name] = json.loads(json.dumps(f.default))
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = json.loads(json.dumps(f.default_factory()))
        return out

    def init_state(self) -> GradientState:  # pragma: no cover - abstract
        raise NotImplementedError

    def optimize(self, state: GradientState, loss: torch.Tensor) -> float:
        """Backpropagate ``loss``, clip the global gradient norm to ``cfg.grad_clip`` and, if the
        norm is finite, take the optimizer step and project bounded parameters (``model.project_``).
        Returns the pre-clip norm, NaN when the step was skipped."""
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return self.apply_gradients(state)

    def apply_gradients(self, state: GradientState) -> float:
        """The part of :meth:`optimize` after the backward pass, for gradients accumulated over several
        backward passes (micro-batches): clip, and if the norm is finite, step and project. Returns
        the pre-clip norm, NaN when the step was skipped."""
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
