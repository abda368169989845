"""Runs of synaptic Q-learning and of its gradient-descent baseline (called by the CLI).

``train_synq(task, config, out_dir, *, seed, form, resume)`` and
``train_gd_baseline(task, config, out_dir, *, seed, resume)``: ``task`` and ``config`` name an
entry of :mod:`plastix.tasks.synq_configs`. Both drive a job through the shared loop of
:mod:`plastix.trainer.runner`; one runner *step* is a chunk of ``eval_every`` training iterations
followed by an evaluation. Each run writes into ``out_dir``:

* ``checkpoint.pt`` (atomic; every ``checkpoint_every`` iterations, at the end and on interruption),
  ``metrics.jsonl`` (one line per chunk: ``iteration``, minibatch loss, train/valid loss and
  accuracy), ``curve.png``, ``config.json`` -- the runner's files. ``resume=True`` continues
  from the checkpoint bit for bit (generator state, minibatch and histories are in the state);
  a run can be extended by resuming with more ``iterations``.
* ``result.json`` -- the returned dict;
* ``policy.plx`` (synaptic Q only) -- the final Q table as a :class:`plastix.ir.SynapticQ` rule
  (:func:`plastix.trainer.algorithms.synq.save_policy`), reloadable with ``policy=...``; with
  ``q_average_from=N`` the mean of the tables after iterations N .. end instead (``SynQParams.average_from``).

**The paper's two-phase protocol** (its Fig. 1a and section 3): learn the table on the decision
boundary task (``train_synq("boundary", "paper", ...)``, table learned online from zeros), then apply
it frozen to the OCR nets (``train_synq("digits_0hu", "authors_final", ..., policy=<its policy.plx>)``).
``policy="shipped"`` is the package's own boundary-learned table (:data:`SHIPPED_POLICY`, made by the
command in docs/results.md); ``train_policy=True`` keeps learning a given table (online).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from plastix.ir import QUpdateForm
from plastix.ir.serialize import atomic_write_bytes
from plastix.tasks import synq_configs
from plastix.tasks.datasets import SupervisedData, build

from ..runner import RunOptions, run
from ..algorithms.synq import (MLPSpec, SynQ, SynQParams, SynQState, init_state, load_policy, policy_table, rebase_loss,
                               save_policy)

SHIPPED_POLICY = "shipped"
"""The ``policy`` name of the package's boundary-learned table (``plastix/data/synq_boundary_policy.plx``)."""


def policy_path(policy) -> Path:
    """A policy argument as a file: :data:`SHIPPED_POLICY` names the package data file."""
    if str(policy) == SHIPPED_POLICY:
        return Path(str(resources.files("plastix") / "data" / "synq_boundary_policy.plx"))
    return Path(policy)


# ---------------------------------------------------------------------------------------------
# losses and metrics


def loss_of(data: SupervisedData) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy on logits (``classes``) or mean squared error to ±1 labels (``sign``)."""
    if data.kind == "classes":
        return F.cross_entropy
    return lambda out, y: ((out - y) ** 2).mean()


def accuracy(data: SupervisedData, out: torch.Tensor, y: torch.Tensor) -> float:
    if data.kind == "classes":
        return float((out.argmax(1) == y).float().mean())
    return float(((out > 0).float() * 2 - 1 == y).float().mean())


def evaluate(spec: MLPSpec, theta: torch.Tensor, data: SupervisedData) -> dict:
    lf = loss_of(data)
    out = {}
    with torch.no_grad():
        for split in ("train", "valid"):
            x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
            pred = spec.forward(theta, x)
            out[f"{split}_loss"] = float(lf(pred, y))
            out[f"{split}_acc"] = accuracy(data, pred, y)
    return out


# ---------------------------------------------------------------------------------------------
# jobs for the shared runner


def _experiment(task: str, config: str, iterations: int | None, gd_protocol: str | None = None):
    exp = synq_configs.get(task, config)
    if gd_protocol is not None:
        exp = synq_configs.gd_protocol(gd_protocol).apply(exp)
    if iterations is not None:
        exp = replace(exp, iterations=int(iterations))
    return exp


def _init_theta(spec: MLPSpec, exp, g: torch.Generator, dev: torch.device) -> torch.Tensor:
    """The experiment's initial parameters (weights ``init_scale``, biases ``bias_init_scale``)."""
    b = float(exp.bias_init_scale)
    return spec.init(generator=g, scale=exp.init_scale, zero_bias=b == 0, bias_scale=b, device=dev)


def _load_data(exp, seed: int, dev: torch.device) -> SupervisedData:
    data = build(exp.dataset, seed=seed)
    return replace(data, **{k: getattr(data, k).to(dev) for k in ("x_train", "y_train", "x_valid", "y_valid")})


class SynQJob:
    """Runner job: state = :class:`SynQState` + generator state + current minibatch."""

    def __init__(self, exp, data: SupervisedData, params: SynQParams, q0, *, seed: int, device, meta: dict):
        self.exp, self.data, self.params, self.q0, self.seed, self.meta = exp, data, params, q0, int(seed), meta
        self.dev = torch.device(device)
        self.spec = MLPSpec(tuple(exp.sizes), hidden=exp.hidden, output=exp.output)
        self.algo = SynQ(params, self.spec.bias_mask(self.dev))
        self.lf = loss_of(data)
        self.n_train = data.x_train.shape[0]
        self.bs = min(exp.batch_size, self.n_train)
        self.g = torch.Generator(device=self.dev).manual_seed(self.seed)

    def config(self) -> dict:
        exp = {k: v for k, v in asdict(self.exp).items() if k != "iterations"}  # runs may be extended
        return {"method": "synaptic_q", **self.meta, "seed": self.seed, "experiment": exp,
                "params": {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(self.params).items()}}

    def _batch_loss(self, idx):
        xb, yb = self.data.x_train[idx], self.data.y_train[idx]
        return lambda th: self.lf(self.spec.forward(th, xb), yb)

    def init_state(self):
        theta = _init_theta(self.spec, self.exp, self.g, self.dev)
        idx = torch.randperm(self.n_train, generator=self.g, device=self.dev)[:self.bs]
        with torch.no_grad():
            l0 = self._batch_loss(idx)(theta)
        return {"synq": init_state(theta, l0, self.q0), "idx": idx, "batch_at": 0}

    def step(self, state: dict, index: int):
        exp = self.exp
        st, idx, batch_at = state["synq"], state["idx"], state["batch_at"]
        end = min((index + 1) * exp.eval_every, exp.iterations)
        while st.iteration < end:
            it = st.iteration
            if it % exp.batch_interval == 0 and batch_at != it:  # reselect the minibatch
                idx, batch_at = torch.randperm(self.n_train, generator=self.g, device=self.dev)[:self.bs], it
                with torch.no_grad():
                    st = rebase_loss(st, self._batch_loss(idx)(st.theta))
            stop = min(end, (it // exp.batch_interval + 1) * exp.batch_interval)
            if exp.step_switch_iteration > it:
                stop = min(stop, exp.step_switch_iteration)
            scale = exp.step_switch_factor if 0 <= exp.step_switch_iteration <= it else 1.0
            st = self.algo.run(st, self._batch_loss(idx), stop - it, step_scale=scale)
        metrics = {"iteration": st.iteration, "batch_loss": float(st.prev_loss),
                   **evaluate(self.spec, st.theta, self.data)}
        return {"synq": st, "idx": idx, "batch_at": batch_at}, metrics

    def state_dict(self, state: dict) -> dict:
        st = state["synq"]
        return {**{k: v for k, v in st._asdict().items()}, "generator": self.g.get_state(), "idx": state["idx"],
                "batch_at": int(state["batch_at"])}

    def load_state_dict(self, data: dict) -> dict:
        self.g.set_state(data["generator"])
        st = SynQState(*[data[k].to(self.dev) if isinstance(data.get(k), torch.Tensor) else data.get(k)
                         for k in SynQState._fields])  # checkpoints from before q_mean have none
        return {"synq": st, "idx": data["idx"].to(self.dev), "batch_at": int(data["batch_at"])}


class GDJob:
    """Runner job for the gradient-descent baseline (same MLP, data and iteration budget)."""

    def __init__(self, exp, data: SupervisedData, *, seed: int, device, meta: dict):
        self.exp, self.data, self.seed, self.meta = exp, data, int(seed), meta
        self.dev = torch.device(device)
        self.spec = MLPSpec(tuple(exp.sizes), hidden=exp.hidden, output=exp.output)
        self.lf = loss_of(data)
        self.g = torch.Generator(device=self.dev).manual_seed(self.seed)

    def config(self) -> dict:
        exp = {k: v for k, v in asdict(self.exp).items() if k != "iterations"}
        return {"method": "gradient_descent", **self.meta, "seed": self.seed, "experiment": exp}

    def init_state(self):
        return {"theta": _init_theta(self.spec, self.exp, self.g, self.dev), "iteration": 0}

    def step(self, state: dict, index: int):
        exp, data = self.exp, self.data
        theta = state["theta"].clone().requires_grad_(True)
        it = state["iteration"]
        end = min((index + 1) * exp.eval_every, exp.iterations)
        loss = torch.tensor(float("nan"))
        while it < end:
            if exp.gd_batch_size > 0:
                idx = torch.randint(0, data.x_train.shape[0], (exp.gd_batch_size,), generator=self.g, device=self.dev)
                xb, yb = data.x_train[idx], data.y_train[idx]
            else:
                xb, yb = data.x_train, data.y_train
            loss = self.lf(self.spec.forward(theta, xb), yb)
            (grad,) = torch.autograd.grad(loss, theta)
            with torch.no_grad():
                theta -= exp.gd_lr * grad
            it += 1
        theta = theta.detach()
        metrics = {"iteration": it, "batch_loss": float(loss.detach()), **evaluate(self.spec, theta, data)}
        return {"theta": theta, "iteration": it}, metrics

    def state_dict(self, state: dict) -> dict:
        return {"theta": state["theta"], "iteration": int(state["iteration"]), "generator": self.g.get_state()}

    def load_state_dict(self, data: dict) -> dict:
        self.g.set_state(data["generator"])
        return {"theta": data["theta"].to(self.dev), "iteration": int(data["iteration"])}


def _run(job, exp, out: Path, resume: bool, progress: bool, desc: str):
    steps = math.ceil(exp.iterations / exp.eval_every)
    every = max(1, exp.checkpoint_every // exp.eval_every)
    return run(job, RunOptions(out_dir=out, total_steps=steps, resume=resume, checkpoint_every=every,
                               progress=progress, plot_keys=("train_acc", "valid_acc", "batch_loss"),
                               postfix_key="valid_acc", step_name="chunk", desc=desc))


def _summary(records: list[dict], final: dict) -> dict:
    return {"final": {k: final[k] for k in ("train_loss", "valid_loss", "train_acc", "valid_acc")},
            "best_valid_acc": max((r["valid_acc"] for r in records), default=final["valid_acc"]),
            "wall_s": round(sum(r.get("wall_time", 0.0) for r in records), 2)}


# ---------------------------------------------------------------------------------------------
# entry points


def train_synq(task: str, config: str, out_dir, *, seed: int, form: str = "additive", resume: bool = False,
               policy=None, train_policy: bool | None = None, iterations: int | None = None,
               aggregation: str | None = None, bias_init_scale: float | None = None, q_average_from: int | None = None,
               device: str = "cpu", progress: bool = False) -> dict:
    """Train an MLP with synaptic Q-learning on ``task`` (``synq_configs`` name) under ``config``
    (``"quick"`` | ``"paper"`` | ``"authors"`` | ``"authors_final"``), writing into ``out_dir`` (module doc).

    ``form``: ``"additive"`` (authors' code) or ``"multiplicative"`` (paper eq. 3). ``policy``: a
    ``.plx`` file holding a :class:`SynapticQ` rule to start from, or :data:`SHIPPED_POLICY`; with
    a policy the table is frozen unless ``train_policy=True`` (the paper applies the boundary
    task's policy frozen to OCR); without one a zero table is learned online. ``iterations``
    overrides the config's budget (and extends a resumed run); ``bias_init_scale`` the config's
    bias initialisation (biases ~ U[-b, b]; the multiplicative form needs b > 0 to move them).
    ``q_average_from`` overrides the config's ``q_average_from``: from that iteration on keep the
    running mean of the learned table and save it as ``policy.plx`` (-1: save the last table).
    Returns the dict also written to ``result.json``.
    """
    exp = _experiment(task, config, iterations)
    if bias_init_scale is not None:
        exp = replace(exp, bias_init_scale=float(bias_init_scale))
    if q_average_from is not None:
        exp = replace(exp, q_average_from=int(q_average_from))
    out = Path(out_dir)
    dev = torch.device(device)
    data = _load_data(exp, seed, dev)
    policy = policy_path(policy) if policy is not None else None
    q0 = load_policy(policy)[0] if policy is not None else None
    learn = (policy is None) if train_policy is None else bool(train_policy)
    params = SynQParams(step=exp.step, form=QUpdateForm(form), epsilon=exp.epsilon, gamma=exp.gamma, lr=exp.q_lr,
                        bias_step_scale=exp.bias_step_scale, aggregation=aggregation or exp.aggregation,
                        train_policy=learn, seed=int(seed), average_from=exp.q_average_from)
    meta = {"task": task, "config": config, "policy_in": str(policy) if policy is not None else None}
    job = SynQJob(exp, data, params, q0, seed=seed, device=dev, meta=meta)
    res = _run(job, exp, out, resume, progress, f"synq {task}/{config}/{params.form.value}")
    st: SynQState = res.state["synq"]
    final = res.records[-1] if res.records else evaluate(job.spec, st.theta, data)
    save_policy(out / "policy.plx", policy_table(st), params,
                metadata={"task": task, "config": config, "seed": int(seed), "iterations": int(st.iteration),
                          "trained_policy": bool(learn), "q_average_from": int(exp.q_average_from)})
    result = {"method": "synaptic_q", "task": task, "config": config, "dataset": exp.dataset, "note": data.note,
              "seed": int(seed), "form": params.form.value, "aggregation": params.aggregation.value,
              "policy_in": meta["policy_in"], "train_policy": learn, "iterations": int(st.iteration),
              "n_synapses": job.spec.n_params, "sizes": list(job.spec.sizes), **_summary(res.records, final),
              "experiment": asdict(exp), "policy_out": str(out / "policy.plx")}
    result["iters_per_s"] = round(result["iterations"] / max(result["wall_s"], 1e-9), 1)
    atomic_write_bytes(out / "result.json", json.dumps(result, indent=1).encode())
    return result


def train_gd_baseline(task: str, config: str, out_dir, *, seed: int, resume: bool = False, protocol: str = "strong",
                      iterations: int | None = None, device: str = "cpu", progress: bool = False) -> dict:
    """Plain gradient descent (no momentum, no regularisation) on the same MLP and data split;
    full batch with ``gd_lr`` 0.1 as in the paper unless ``gd_batch_size`` > 0. ``protocol``
    (:data:`plastix.tasks.synq_configs.GD_PROTOCOLS`): ``"strong"`` (the synaptic-Q run's init and
    budget) or ``"authors"`` (the authors' notebook: U[-1, 1] weights, lr 0.1, 5,000 iterations);
    ``iterations`` overrides either budget."""
    exp = _experiment(task, config, iterations, protocol)
    out = Path(out_dir)
    dev = torch.device(device)
    data = _load_data(exp, seed, dev)
    job = GDJob(exp, data, seed=seed, device=dev, meta={"task": task, "config": config, "gd_protocol": protocol})
    res = _run(job, exp, out, resume, progress, f"gd {task}/{config}/{protocol}")
    final = res.records[-1] if res.records else evaluate(job.spec, res.state["theta"], data)
    result = {"method": "gradient_descent", "task": task, "config": config, "dataset": exp.dataset,
              "note": data.note, "seed": int(seed), "gd_protocol": protocol, "lr": exp.gd_lr, "batch": exp.gd_batch_size or "full",
              "iterations": int(res.state["iteration"]), "n_synapses": job.spec.n_params,
              "sizes": list(job.spec.sizes), **_summary(res.records, final), "experiment": asdict(exp)}
    atomic_write_bytes(out / "result.json", json.dumps(result, indent=1).encode())
    return result
