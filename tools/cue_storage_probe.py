"""Is a trained one-shot cue model limited by what it stores or by how it reads the store out?
(docs/results.md, issue 14.)

    .venv/bin/python tools/cue_storage_probe.py MODEL.plx [--problems 500] [--seed 1] [--cues 5] [--dense]
    .venv/bin/python tools/cue_storage_probe.py MODEL.plx --train-chain 400 [--dense]
    .venv/bin/python tools/cue_storage_probe.py MODEL.plx --hebbian 0.9,0.99,1

A diagnostic, not library code. The model runs the two training trials as trained; then, with every
modulator silenced for the test trial (as ``plastix evaluate --freeze-test``), the test trial reads

1. the weights the training trials wrote (the model's own frozen-test accuracy),
2. the initial weights (nothing stored: chance expected),
3. an *oracle store*: the initial input -> hidden weights (scaled by ``W0 x``) plus
   ``k * mean|dW| * sign(a_j) * (n_i(right trial) - n_i(left trial))``, normalised to mean magnitude 1, where
   ``n_i`` is input ``i``'s spike count in a training trial, ``a_j`` hidden neuron ``j``'s output-0 minus
   output-1 weight and ``mean|dW|`` the mean magnitude of what the model itself wrote. This is the one-shot
   Hebbian learner that reaches ~98 % at M = 5 on counts, written into the synapses ideally; the sign
   constraint is kept (a weight stops at zero) and the bounds clip at ``w_max``.

If (3) is no better than (1), storage is not what limits the model: the test trial's readout through the
hidden layer is. (4) rescales the model's own writes the same way: if it gains what (3) gains, the store is
only too small; if not, it is too noisy. ``--hebbian DECAYS`` (5) writes Hebbian stores computed from the
model's own hidden spikes (pre trace decay d, centred over the inputs) the same way: how much of the gap is the
post factor of a pair rule. ``--dense`` connects every input to every hidden neuron (new synapses start at 0,
unsigned ones excitatory) before the oracle runs.

``--train-chain STEPS`` asks whether that readout *can* do better: it trains only the readout chain on the
test trial over the oracle store (input -> hidden weights, hidden -> action weights, hidden and action
biases, the write scale k, the BCE gain/offset; Adam, batch 64 fresh problems per step, the trainer's
BCE + output-rate floor, the test trial started from rest), printing the accuracy on the evaluation problems
every 50 steps. Float32; about 1.7 s per step on one core.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import plastix.ir as ir
from plastix.backends.torch import compile as compile_torch
from plastix.trainer.experiments.cue_eval import CueSetting, accuracy, problem_batches, silent_modulators

PROJ, READOUT = "cues_to_hidden", "hidden_to_action"


def densified(graph: ir.Graph) -> ir.Graph:
    p = graph.projection(PROJ)
    mask = np.ones_like(np.asarray(p.weight)) if p.mask is None else np.asarray(p.mask)
    sign = np.ones_like(mask) if p.sign is None else np.where(np.asarray(p.sign) != 0, np.asarray(p.sign), 1)
    dense = p.replace(mask=np.ones_like(mask), weight=np.asarray(p.weight) * mask, sign=sign)
    return graph.replace(projections=tuple(dense if q.name == PROJ else q for q in graph.projections))


def oracle_weights(w0: torch.Tensor, sign: torch.Tensor, out_w: torch.Tensor, assoc: torch.Tensor, k,
                   scale: float, w_hi: float) -> torch.Tensor:
    """``(1, B, n_post, n_pre)`` raw weights whose effective values are ``scale * W0 + k * store``, clipped at zero
    (sign constraint) and ``w_hi``; ``store = sign(a_j) assoc_i`` with mean magnitude 1 (``out_w`` None: ``assoc``
    is the whole ``(B, n_post, n_pre)`` store)."""
    store = assoc if out_w is None else torch.sign(out_w[0] - out_w[1]).detach()[None, :, None] * assoc[:, None, :]
    return sign_clipped(scale * sign * w0.abs() + k * store / store.abs().mean(), sign, w_hi)[None]


def sign_clipped(eff: torch.Tensor, sign: torch.Tensor, w_hi: float) -> torch.Tensor:
    """Effective weights ``eff`` as the plastic synapses hold them: stopped at zero (their sign) and at ``w_hi``."""
    return sign * (sign * eff).clamp(0.0, w_hi)


def hebbian_store(pr, hidden: torch.Tensor, trial_steps: int, decay: float) -> torch.Tensor:
    """``(B, n_post, n_pre)``: right-trial minus left-trial ``sum_t x_i(t) h_j(t)`` over the two training trials,
    ``x`` the inputs' pre trace (``x <- decay x + s``), ``hidden`` the hidden spikes ``(T, B, n_post)``."""
    cues = pr.cues.to(hidden.dtype)
    store = torch.zeros(hidden.shape[1], hidden.shape[2], cues.shape[-1], dtype=hidden.dtype)
    for t in range(2):
        side = torch.where(pr.labels[:, t] == 0, 1.0, -1.0).to(hidden.dtype)[:, None, None]
        x = torch.zeros_like(cues[0])
        for tau in range(t * trial_steps, (t + 1) * trial_steps):
            x = decay * x + cues[tau]
            store += side * hidden[tau][:, :, None] * x[:, None, :]
    return store


def training_counts(pr, trial_steps: int) -> torch.Tensor:
    """Right-trial minus left-trial spike count of every input, ``(B, n_in)``."""
    n1, n2 = pr.cues[:trial_steps].sum(0), pr.cues[trial_steps:2 * trial_steps].sum(0)
    return torch.where(pr.labels[:, :1] == 0, n1 - n2, n2 - n1).to(pr.cues.dtype)


def train_chain(graph: ir.Graph, setting: CueSetting, steps: int, problems: int, seed: int, w_hi: float,
                written: float) -> None:
    from plastix.tasks.cue_association import one_shot_cue_problems
    from plastix.trainer.algorithms.gradient import bce_loss, rate_penalty

    net = compile_torch(graph.replace(outputs=("action",)))
    proj = graph.projection(PROJ)
    sign = _sign(proj, torch.float32)
    silent = silent_modulators(net)
    keys = (f"{PROJ}/weight", f"{READOUT}/weight", "hidden/bias", "action/bias")
    prm = {k: net.params[k].detach().clone()[None].requires_grad_() for k in keys}
    log_k = torch.tensor(float(np.log(2.0 * written)), requires_grad=True)
    gain, offset = torch.tensor(10.0, requires_grad=True), torch.tensor(-1.0, requires_grad=True)
    opt = torch.optim.Adam([{"params": [prm[k] for k in keys[:2]], "lr": 1e-3},
                            {"params": [prm[k] for k in keys[2:]] + [log_k], "lr": 1e-2},
                            {"params": [gain, offset], "lr": 5e-2}])
    L = setting.task.trial_steps

    def sample(n: int, g: torch.Generator):
        pr = one_shot_cue_problems(n, setting.task, generator=g)
        return pr.cues[pr.test], training_counts(pr, L), pr.test_labels

    def counts(cues: torch.Tensor, assoc: torch.Tensor) -> torch.Tensor:
        w = oracle_weights(prm[keys[0]][0], sign, prm[keys[1]][0], assoc, torch.exp(log_k), 1.0, w_hi)
        st = net.init_state(1, cues.shape[1], params={**silent, **prm})
        rule = st.projs[PROJ].rule
        st = st._replace(projs={**st.projs, PROJ: st.projs[PROJ]._replace(rule=rule._replace(w=w))})
        out, _ = net.run({"cues": cues, "learning_signal": torch.zeros(*cues.shape[:2], 2)}, st, params={**silent, **prm})
        return out["action"][:, 0].sum(0)

    ev = sample(problems, torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1000)
    for step in range(steps + 1):
        if step % 50 == 0:
            with torch.no_grad():
                acc = float(accuracy(counts(ev[0], ev[1]), ev[2]))
            print(f"   step {step:4d}: accuracy {acc:.3f}  k/mean|dW| {float(torch.exp(log_k).detach()) / written:.2f}  "
                  f"hidden bias {float(prm['hidden/bias'].detach()):+.3f}  action bias {float(prm['action/bias'].detach()):+.3f}", flush=True)
        if step == steps:
            break
        cues, assoc, lab = sample(64, g)
        c = counts(cues, assoc)
        loss = bce_loss(c / cues.shape[0], lab, gain, offset) + 100.0 * rate_penalty(c, cues.shape[0], 0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()


def _sign(proj, dtype) -> torch.Tensor:
    return torch.ones(np.asarray(proj.weight).shape, dtype=dtype) if proj.sign is None else \
        torch.as_tensor(np.where(np.asarray(proj.sign) != 0, np.asarray(proj.sign), 1), dtype=dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--problems", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cues", type=int, default=None)
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--train-chain", type=int, default=0, metavar="STEPS")
    ap.add_argument("--hebbian", default=None, metavar="DECAYS",
                    help="comma list of pre-trace decays for section 5 (e.g. 0.9,0.99,1)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    graph = ir.load(args.model)
    setting = CueSetting.of(graph, args.cues)
    if setting.readout != "trial":
        raise SystemExit("the probe reads the whole test trial; this model counts the decision window only")
    if args.dense:
        graph = densified(graph)
    net = compile_torch(graph.replace(outputs=("action", "hidden")), dtype=torch.float64)
    pr, _ = next(problem_batches(setting, args.problems, args.seed, batch=args.problems))
    x = {"cues": pr.cues.double(), "learning_signal": pr.signal.double()}
    t0, L = int(pr.test.nonzero()[0]), setting.task.trial_steps
    silent = silent_modulators(net)
    proj = graph.projection(PROJ)
    w_hi = getattr(proj.rule.base.base, "w_max", None) if hasattr(proj.rule, "base") else None
    w_hi = float(w_hi) if w_hi is not None else float("inf")
    sign = _sign(proj, torch.float64)

    with torch.no_grad():
        train_outs, state = net.run({k: v[:t0] for k, v in x.items()})
        rule = state.projs[PROJ].rule
        w0 = net.params[f"{PROJ}/weight"].detach()
        out_w = net.params[f"{READOUT}/weight"].detach()
        written = float((rule.w - w0).abs().mean())

        def test_accuracy(w: torch.Tensor) -> float:
            st = state._replace(projs={**state.projs, PROJ: state.projs[PROJ]._replace(rule=rule._replace(w=w))})
            after, _ = net.run({k: v[t0:] for k, v in x.items()}, st, params=silent)
            return float(accuracy(after["action"][:, 0][pr.test[t0:]].sum(0), pr.test_labels))

        assoc = training_counts(pr, L).double()
        print(f"model {args.model}  M = {setting.task.n_cues}  problems {args.problems}  seed {args.seed}"
              f"{'  dense' if args.dense else ''}")
        print(f"1. what the training trials wrote (mean |dW| {written:.4g}): {test_accuracy(rule.w):.3f}")
        print(f"2. nothing stored (initial weights): {test_accuracy(w0.expand_as(rule.w).clone()):.3f}")
        print("3. oracle store: accuracy by W0 scale (rows) and k (columns)")
        ks = (0.5, 1.0, 2.0, 4.0, 8.0)
        print("   W0 x  " + "".join(f"{k:>8}" for k in ks))
        for scale in (1.0, 0.5, 0.25, 0.0):
            row = []
            for k in ks:
                row.append(test_accuracy(oracle_weights(w0, sign, out_w, assoc, k * written, scale, w_hi)))
            print(f"   {scale:4.2f}  " + "".join(f"{a:8.3f}" for a in row), flush=True)
        print("4. the model's own store rescaled: scale * W0 + k * dW, clipped as above (k = 1, W0 x 1: row 1)")
        print("   W0 x  " + "".join(f"{k:>8}" for k in ks))
        for scale in (1.0, 0.5, 0.25):
            row = [test_accuracy(sign_clipped(scale * w0 + k * (rule.w - w0), sign, w_hi)) for k in ks]
            print(f"   {scale:4.2f}  " + "".join(f"{a:8.3f}" for a in row), flush=True)
        if args.hebbian:
            print("5. Hebbian stores from the model's own hidden spikes h_j in the training trials: E_t[j, i] = "
                  "sum x_i h_j (x: pre trace of decay d), store sign(a_j) (E_right - E_left) centred over i, "
                  "written like the oracle (W0 x 1, k 1 | W0 x 0.5, k 4)")
            for d in (float(v) for v in args.hebbian.split(",")):
                store = hebbian_store(pr, train_outs["hidden"][:, 0].double(), L, d)
                store = torch.sign(out_w[0] - out_w[1])[None, :, None] * (store - store.mean(-1, keepdim=True))
                row = [test_accuracy(oracle_weights(w0, sign, None, store, k * written, scale, w_hi))
                       for k, scale in ((1.0, 1.0), (4.0, 0.5))]
                print(f"   d = {d}: " + "  ".join(f"{a:.3f}" for a in row), flush=True)
    if args.train_chain:
        print(f"6. the readout chain trained over the oracle store ({args.train_chain} steps)")
        train_chain(graph, setting, args.train_chain, args.problems, args.seed, w_hi, written)


if __name__ == "__main__":
    main()
