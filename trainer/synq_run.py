"""Runs of synaptic Q-learning and of its gradient-descent baseline, with checkpoints and logs.

``train_synq(task, config, out_dir, *, seed, form, resume)`` and
``train_gd_baseline(task, config, out_dir, *, seed, resume)`` are the CLI entry points. ``task`` and
``config`` name an entry of :mod:`plastix.tasks.synq_configs`. Each run writes into ``out_dir``:

* ``checkpoint.pt`` -- written atomically (temp file + ``os.replace``) every ``checkpoint_every``
  iterations and at the end; ``resume=True`` continues from it and gives the same numbers as an
  uninterrupted run (generator state, minibatch and histories are all saved);
* ``metrics.jsonl`` -- one JSON line per evaluation (iteration, minibatch loss, train/valid loss and
  accuracy, wall seconds);
* ``result.json`` -- the returned dict; ``curves.png`` -- loss/accuracy curves;
* ``policy.plx`` (synaptic Q only) -- the final Q table as a :class:`plastix.ir.SynapticQ` rule
  (:func:`plastix.trainer.synq.save_policy`), reloadable with ``policy=...``.

(The shared checkpoint/progress module of the ES trainer did not exist when this was written; the
checkpoint code here is minimal and local, see ``_atomic_torch_save``.)
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from plastix.ir import QUpdateForm
from plastix.tasks import synq_configs
from plastix.tasks.datasets import SupervisedData, build

from .synq import MLPSpec, SynQ, SynQParams, SynQState, init_state, load_policy, rebase_loss, save_policy

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
# files


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _plot(history: list[dict], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # plotting is optional
        return
    it = [h["iteration"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot(it, [h["train_loss"] for h in history], label="train")
    ax1.plot(it, [h["valid_loss"] for h in history], label="valid")
    ax1.set_xlabel("iteration"); ax1.set_ylabel("loss"); ax1.legend()
    ax2.plot(it, [h["train_acc"] for h in history], label="train")
    ax2.plot(it, [h["valid_acc"] for h in history], label="valid")
    ax2.set_xlabel("iteration"); ax2.set_ylabel("accuracy"); ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _experiment(task: str, config: str, iterations: int | None):
    exp = synq_configs.get(task, config)
    if iterations is not None:
        exp = replace(exp, iterations=int(iterations))
    return exp


# ---------------------------------------------------------------------------------------------
# synaptic Q


def train_synq(task: str, config: str, out_dir, *, seed: int, form: str = "additive", resume: bool = False,
               policy=None, train_policy: bool | None = None, iterations: int | None = None,
               aggregation: str | None = None, device: str = "cpu",
               log: Callable[[str], None] | None = print) -> dict:
    """Train an MLP with synaptic Q-learning on ``task`` (``synq_configs`` name) under ``config``
    (``"quick"`` | ``"paper"``), writing into ``out_dir`` (module doc).

    ``form``: ``"additive"`` (authors' code) or ``"multiplicative"`` (paper eq. 3). ``policy``: a
    ``.plx`` file holding a :class:`SynapticQ` rule to start from; with a policy the table is
    static unless ``train_policy=True`` (the paper applies the boundary task's policy statically
    to OCR); without one a zero table is learned online. ``iterations`` overrides the config's
    budget. Returns the dict also written to ``result.json``.
    """
    exp = _experiment(task, config, iterations)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    data = build(exp.dataset, seed=seed)
    data = replace(data, **{k: getattr(data, k).to(dev) for k in ("x_train", "y_train", "x_valid", "y_valid")})
    spec = MLPSpec(tuple(exp.sizes), hidden=exp.hidden, output=exp.output)
    q0 = None
    if policy is not None:
        q0, _ = load_policy(policy)
    learn = (policy is None) if train_policy is None else bool(train_policy)
    params = SynQParams(step=exp.step, form=QUpdateForm(form), epsilon=exp.epsilon, gamma=exp.gamma, lr=exp.q_lr,
                        bias_step_scale=exp.bias_step_scale, aggregation=aggregation or exp.aggregation,
                        train_policy=learn)
    algo = SynQ(params, spec.bias_mask(dev))
    lf = loss_of(data)
    n_train = data.x_train.shape[0]
    bs = min(exp.batch_size, n_train)

    g = torch.Generator(device=dev).manual_seed(int(seed))
    ckpt_path = out / "checkpoint.pt"
    history: list[dict] = []
    elapsed0 = 0.0
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        st = SynQState(*[ck["state"][k] for k in SynQState._fields])
        g.set_state(ck["generator"])
        idx, batch_at = ck["batch_idx"].to(dev), ck["batch_at"]
        history, elapsed0 = ck["history"], ck["elapsed"]
        if log:
            log(f"[synq] resumed {task}/{config} at iteration {st.iteration}")
    else:
        theta = spec.init(generator=g, scale=exp.init_scale, device=dev)
        idx, batch_at = torch.randperm(n_train, generator=g, device=dev)[:bs], 0
        with torch.no_grad():
            l0 = lf(spec.forward(theta, data.x_train[idx]), data.y_train[idx])
        st = init_state(theta, l0, q0)
        (out / "metrics.jsonl").write_text("")

    xb, yb = data.x_train[idx], data.y_train[idx]

    def batch_loss(th):
        return lf(spec.forward(th, xb), yb)

    t0 = time.perf_counter() - elapsed0

    def save_ckpt():
        _atomic_torch_save({"state": st._asdict(), "generator": g.get_state(), "batch_idx": idx, "batch_at": batch_at,
                            "history": history,
                            "elapsed": time.perf_counter() - t0, "task": task, "config": config, "seed": seed,
                            "form": params.form.value}, ckpt_path)

    with torch.no_grad():
        while st.iteration < exp.iterations:
            it = st.iteration
            if it % exp.batch_interval == 0 and batch_at != it:  # reselect the minibatch
                idx, batch_at = torch.randperm(n_train, generator=g, device=dev)[:bs], it
                xb, yb = data.x_train[idx], data.y_train[idx]
                st = rebase_loss(st, batch_loss(st.theta))
            # run up to the next event (batch change, step switch, evaluation, checkpoint, end)
            events = [exp.iterations, (it // exp.batch_interval + 1) * exp.batch_interval,
                      (it // exp.eval_every + 1) * exp.eval_every,
                      (it // exp.checkpoint_every + 1) * exp.checkpoint_every]
            if exp.step_switch_iteration > it:
                events.append(exp.step_switch_iteration)
            stop = min(events)
            scale = exp.step_switch_factor if 0 <= exp.step_switch_iteration <= it else 1.0
            st = algo.run(st, batch_loss, stop - it, generator=g, step_scale=scale)
            it = st.iteration
            if it % exp.eval_every == 0 or it == exp.iterations:
                rec = {"iteration": it, "batch_loss": float(st.prev_loss), **evaluate(spec, st.theta, data),
                       "wall_s": round(time.perf_counter() - t0, 3)}
                history.append(rec)
                with open(out / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                if log:
                    log(f"[synq {task}] it {it:>7d}  batch {rec['batch_loss']:.4f}  train {rec['train_acc']:.4f}  "
                        f"valid {rec['valid_acc']:.4f}  {rec['wall_s']:.1f}s")
            if it % exp.checkpoint_every == 0 or it == exp.iterations:
                save_ckpt()

    wall = time.perf_counter() - t0
    final = history[-1] if history else evaluate(spec, st.theta, data)
    save_policy(out / "policy.plx", st.q, params,
                metadata={"task": task, "config": config, "seed": int(seed), "iterations": int(st.iteration),
                          "trained_policy": bool(learn)})
    result = {"method": "synaptic_q", "task": task, "config": config, "dataset": exp.dataset, "note": data.note,
              "seed": int(seed), "form": params.form.value, "aggregation": params.aggregation.value,
              "policy_in": str(policy) if policy is not None else None, "train_policy": learn,
              "iterations": int(st.iteration), "n_synapses": spec.n_params, "sizes": list(spec.sizes),
              "final": {k: final[k] for k in ("train_loss", "valid_loss", "train_acc", "valid_acc")},
              "best_valid_acc": max((h["valid_acc"] for h in history), default=final["valid_acc"]),
              "wall_s": round(wall, 2), "iters_per_s": round(st.iteration / max(wall, 1e-9), 1),
              "experiment": asdict(exp), "policy_out": str(out / "policy.plx")}
    _atomic_write_text(out / "result.json", json.dumps(result, indent=1))
    _plot(history, out / "curves.png", f"synaptic Q ({params.form.value}) {task}")
    return result


# ---------------------------------------------------------------------------------------------
# gradient-descent baseline


def train_gd_baseline(task: str, config: str, out_dir, *, seed: int, resume: bool = False,
                      iterations: int | None = None, device: str = "cpu",
                      log: Callable[[str], None] | None = print) -> dict:
    """Plain gradient descent (no momentum, no regularisation) on the same MLP, data split and
    iteration budget; full batch with ``gd_lr`` 0.1 as in the paper unless ``gd_batch_size`` > 0."""
    exp = _experiment(task, config, iterations)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    data = build(exp.dataset, seed=seed)
    data = replace(data, **{k: getattr(data, k).to(dev) for k in ("x_train", "y_train", "x_valid", "y_valid")})
    spec = MLPSpec(tuple(exp.sizes), hidden=exp.hidden, output=exp.output)
    lf = loss_of(data)
    g = torch.Generator(device=dev).manual_seed(int(seed))
    n_train = data.x_train.shape[0]
    ckpt_path = out / "checkpoint.pt"
    history: list[dict] = []
    it, elapsed0 = 0, 0.0
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        theta, it, history, elapsed0 = ck["theta"], ck["iteration"], ck["history"], ck["elapsed"]
        g.set_state(ck["generator"])
    else:
        theta = spec.init(generator=g, scale=exp.init_scale, device=dev)
        (out / "metrics.jsonl").write_text("")
    theta = theta.clone().requires_grad_(True)
    t0 = time.perf_counter() - elapsed0
    bs = exp.gd_batch_size
    while it < exp.iterations:
        if bs > 0:
            idx = torch.randint(0, n_train, (bs,), generator=g, device=dev)
            xb, yb = data.x_train[idx], data.y_train[idx]
        else:
            xb, yb = data.x_train, data.y_train
        loss = lf(spec.forward(theta, xb), yb)
        (grad,) = torch.autograd.grad(loss, theta)
        with torch.no_grad():
            theta -= exp.gd_lr * grad
        it += 1
        if it % exp.eval_every == 0 or it == exp.iterations:
            rec = {"iteration": it, "batch_loss": float(loss.detach()), **evaluate(spec, theta.detach(), data),
                   "wall_s": round(time.perf_counter() - t0, 3)}
            history.append(rec)
            with open(out / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            if log:
                log(f"[gd {task}] it {it:>7d}  train {rec['train_acc']:.4f}  valid {rec['valid_acc']:.4f}  "
                    f"{rec['wall_s']:.1f}s")
        if it % exp.checkpoint_every == 0 or it == exp.iterations:
            _atomic_torch_save({"theta": theta.detach(), "iteration": it, "history": history,
                                "generator": g.get_state(), "elapsed": time.perf_counter() - t0}, ckpt_path)
    wall = time.perf_counter() - t0
    final = history[-1] if history else evaluate(spec, theta.detach(), data)
    result = {"method": "gradient_descent", "task": task, "config": config, "dataset": exp.dataset,
              "note": data.note, "seed": int(seed), "lr": exp.gd_lr, "batch": bs or "full",
              "iterations": it, "n_synapses": spec.n_params, "sizes": list(spec.sizes),
              "final": {k: final[k] for k in ("train_loss", "valid_loss", "train_acc", "valid_acc")},
              "best_valid_acc": max((h["valid_acc"] for h in history), default=final["valid_acc"]),
              "wall_s": round(wall, 2), "experiment": asdict(exp)}
    _atomic_write_text(out / "result.json", json.dumps(result, indent=1))
    _plot(history, out / "curves.png", f"gradient descent {task}")
    return result


def main(argv=None) -> None:
    """``python -m plastix.trainer.synq_run TASK CONFIG OUT_DIR [--seed N] [--form F] [--method synq|gd]
    [--policy FILE] [--train-policy 0|1] [--iterations N] [--aggregation A] [--resume]`` (stop-gap
    until the plastix CLI wires these functions)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m plastix.trainer.synq_run", description=main.__doc__)
    ap.add_argument("task", choices=sorted(synq_configs.PAPER))
    ap.add_argument("config", choices=sorted(synq_configs.CONFIGS))
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--form", choices=[f.value for f in QUpdateForm], default="additive")
    ap.add_argument("--method", choices=["synq", "gd"], default="synq")
    ap.add_argument("--policy", default=None)
    ap.add_argument("--train-policy", type=int, choices=[0, 1], default=None)
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--aggregation", choices=["sequential", "mean"], default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    log = None if a.quiet else print
    if a.method == "gd":
        res = train_gd_baseline(a.task, a.config, a.out_dir, seed=a.seed, resume=a.resume, iterations=a.iterations,
                                log=log)
    else:
        tp = None if a.train_policy is None else bool(a.train_policy)
        res = train_synq(a.task, a.config, a.out_dir, seed=a.seed, form=a.form, resume=a.resume, policy=a.policy,
                         train_policy=tp, iterations=a.iterations, aggregation=a.aggregation, log=log)
    print(json.dumps({k: res[k] for k in ("method", "task", "seed", "iterations", "final", "best_valid_acc",
                                          "wall_s")}))


if __name__ == "__main__":
    main()
