"""One BPTT iteration (forward + backward + Adam) of the Meta-SpikePropamine cue network.

Variants, in one run, each with 1 and 2 threads (``--threads``):

* ``plastix eager``: ``plastix.backends.torch.compile(cue_association_net())``;
* ``plastix jit``: the same with ``jit=True`` (``torch.compile`` of ``--chunk`` unrolled steps;
  compile time reported separately, not in the per-iteration time);
* ``baseline eager`` / ``baseline torch.compile``: a plain hand-written PyTorch loop of the same
  math (same parameters, same step order), eager and with ``torch.compile`` on its step function;
* ``snntorch eager``: ``snntorch.Synaptic`` neurons (reset to zero, no reset delay, fast-sigmoid
  slope 10: the same CUBA dynamics) with the same hand-written plasticity.

Before timing, the run checks that plastix eager, the baseline and snnTorch (and, on its first
compiled forward, plastix jit) give identical output spikes and (to 1e-5) final plastic weights. Norse is not run: it is not installable
here without pulling a CUDA build of torch (and torchvision). Results: seconds per iteration (best of
``--iters`` after a warm-up), ratio to the eager baseline of the same thread count, and the fraction
of this machine's fp32 matmul peak (``benchmarks/_peak.py``, measured per thread count) that the
iteration's useful FLOPs (counted analytically, see ``flops_per_iteration``) reach. The machine's
load average is printed: on a shared machine, timings are only comparable within one run.

    .venv/bin/python benchmarks/bptt_plastic.py            # T = 1050, batch 64
    .venv/bin/python benchmarks/bptt_plastic.py --quick    # T = 50 smoke run (used by the tests)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the shared helper next to this file
from _peak import load_average, matmul_peak  # noqa: E402

from plastix.backends.torch import compile as px_compile
from plastix.ir.examples import cue_association_net

# ---------------------------------------------------------------------------------------------
# the hand-written baseline


def baseline_params(graph, device):
    """Plain tensors (leaf, requires_grad) for the baseline, taken from the same graph."""
    P = {}
    for pop in graph.populations:
        if pop.kind == "cuba_lif":
            for f in ("du", "dv", "vth", "bias"):
                P[f"{pop.name}.{f}"] = torch.tensor(np.broadcast_to(getattr(pop, f), (pop.size,)).copy(), dtype=torch.float32)
    consts = {}
    for pr in graph.projections:
        P[f"{pr.name}.w"] = torch.tensor(np.asarray(pr.weight), dtype=torch.float32)
        mask = np.ones(pr.weight.shape) if pr.mask is None else np.asarray(pr.mask, dtype=float)
        sign = None if pr.sign is None else np.asarray(pr.sign, dtype=float)
        consts[pr.name] = (torch.tensor(mask, dtype=torch.float32),
                           None if sign is None else torch.tensor(sign, dtype=torch.float32))
    rule = graph.projection("cues_to_hidden").rule
    stdp = rule.base.base
    P["eta_plus"] = torch.tensor(np.asarray(stdp.eta_plus), dtype=torch.float32)
    P["eta_minus"] = torch.tensor(np.asarray(stdp.eta_minus), dtype=torch.float32)
    P["gamma"] = torch.tensor(np.asarray(rule.base.gamma), dtype=torch.float32)
    m = graph.modulator("dopamine")
    P["mod.w"] = torch.tensor(np.asarray(m.weight), dtype=torch.float32)
    P["mod.b"] = torch.tensor(np.broadcast_to(m.bias, (m.weight.shape[0],)).copy(), dtype=torch.float32)
    P = {k: v.to(device).requires_grad_(True) for k, v in P.items()}
    consts = {k: (a.to(device), None if b is None else b.to(device)) for k, (a, b) in consts.items()}
    return P, consts, (stdp.decay_pre, stdp.decay_post)


class Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001
        (x,) = ctx.saved_tensors
        return g / (1.0 + 10.0 * x.abs()) ** 2


def lif(a, u, v, ku, kv, vth, bias):  # noqa: ANN001
    u = ku * u + a
    v = kv * v + u + bias
    s = Spike.apply(v - vth)
    return s, u, v * (1.0 - s)


def hand_neurons(W):  # noqa: ANN001
    """The hand-written CUBA LIF of each population: ``pop -> (a, u, v) -> (s, u, v)``."""
    return {pop: (lambda a, u, v, p=pop: lif(a, u, v, W[f"{p}.ku"], W[f"{p}.kv"], W[f"{p}.vth"], W[f"{p}.bias"]))
            for pop in ("hidden", "action", "nm1", "nm2")}


def make_step(decay_pre, decay_post, neurons=hand_neurons):
    """The baseline's step; ``neurons(W)`` gives each population's neuron function (hand-written
    LIF, or snnTorch's ``Synaptic``)."""
    def step(x, ls, st, W):  # noqa: ANN001
        (u_h, v_h, s_h, u_y, v_y, s_y, u_1, v_1, s_1, u_2, v_2, s_2, a_h, a_y, a_1, a_2, w, ep, em, xpre, xpost) = st
        B = x.shape[0]
        nf = neurons(W)
        m = torch.tanh(s_2 @ W["mod_w_t"] + W["mod.b"]).view(B, 2, 20)  # modulator reads nm2[t-1]
        s_h, u_h, v_h = nf["hidden"](a_h, u_h, v_h)
        s_y, u_y, v_y = nf["action"](a_y, u_y, v_y)
        s_1, u_1, v_1 = nf["nm1"](a_1, u_1, v_1)
        s_2, u_2, v_2 = nf["nm2"](a_2, u_2, v_2)
        w_eff = W["in_sm"] * w.abs()
        a_h = torch.bmm(w_eff, x.unsqueeze(-1)).squeeze(-1) + s_h @ W["hh_t"]
        a_y = s_h @ W["hy_t"]
        a_1 = x @ W["c1_t"] + ls @ W["l1_t"] + s_h @ W["h1_t"]
        a_2 = s_1 @ W["12_t"]
        ltp = W["eta_plus"] * (s_h.unsqueeze(-1) * xpre.unsqueeze(-2))
        ltd = W["eta_minus"] * (xpost.unsqueeze(-1) * x.unsqueeze(-2))
        dw = m[:, 0].unsqueeze(-2) * ep - m[:, 1].unsqueeze(-2) * em
        ep = W["gamma"] * ep + ltp
        em = W["gamma"] * em + ltd
        w = w + dw * W["in_mask"]
        w = w + W["in_sign"] * torch.relu(-W["in_sign"] * w)  # a signed synapse stops at zero
        xpre = decay_pre * xpre + x
        xpost = decay_post * xpost + s_h
        return s_y, (u_h, v_h, s_h, u_y, v_y, s_y, u_1, v_1, s_1, u_2, v_2, s_2, a_h, a_y, a_1, a_2, w, ep, em, xpre, xpost)
    return step


def baseline_derived(P, consts):
    """Per-iteration derived tensors (differentiable): decay factors, signed/masked static weights."""
    W = dict(P)
    for pop in ("hidden", "action", "nm1", "nm2"):
        W[f"{pop}.ku"] = 1.0 - P[f"{pop}.du"]
        W[f"{pop}.kv"] = 1.0 - P[f"{pop}.dv"]

    def eff(name):  # noqa: ANN001
        mask, sign = consts[name]
        w = P[f"{name}.w"]
        if sign is not None:
            w = torch.where(sign != 0, sign * w.abs(), w)
        return (w * mask).t()

    W["hh_t"], W["hy_t"] = eff("hidden_to_hidden"), eff("hidden_to_action")
    W["c1_t"], W["l1_t"], W["h1_t"], W["12_t"] = eff("cues_to_nm1"), eff("learning_signal_to_nm1"), eff("hidden_to_nm1"), eff("nm1_to_nm2")
    mask, sign = consts["cues_to_hidden"]
    W["in_mask"] = mask
    W["in_sm"] = sign * mask
    W["in_sign"] = sign
    W["mod_w_t"] = P["mod.w"].t()
    return W


def baseline_run(step, P, consts, cues, ls):
    T, B = cues.shape[0], cues.shape[1]
    W = baseline_derived(P, consts)
    z = lambda n: cues.new_zeros(B, n)  # noqa: E731
    w0 = P["cues_to_hidden.w"].expand(B, 48, 20)
    st = (z(48), z(48), z(48), z(2), z(2), z(2), z(64), z(64), z(64), z(64), z(64), z(64),
          z(48), z(2), z(64), z(64), w0, cues.new_zeros(B, 48, 20), cues.new_zeros(B, 48, 20), z(20), z(48))
    outs = []
    for t in range(T):
        y, st = step(cues[t], ls[t], st, W)
        outs.append(y)
    return torch.stack(outs), st


# ---------------------------------------------------------------------------------------------


def flops_per_iteration(graph, T, B):
    """Useful FLOPs of one iteration, counted analytically: per step 2*B*K*N per dense product
    (masked synapses included, as both implementations compute them), ~12 elementwise ops per
    plastic synapse, ~8 per neuron; backward counted as 2x forward."""
    mm = sum(pr.weight.size for pr in graph.projections) + sum(m.weight.size for m in graph.modulators)
    plastic = sum(pr.weight.size for pr in graph.projections if pr.rule is not None)
    neurons = sum(p.size for p in graph.populations if p.kind == "cuba_lif")
    fwd = T * B * (2 * mm + 12 * plastic + 8 * neurons)
    return 3 * fwd


# ---------------------------------------------------------------------------------------------
# snnTorch neurons with the same hand-written plasticity


def snntorch_neurons(graph, P):  # noqa: ANN001
    """One ``snntorch.Synaptic`` per CUBA population, its decays and threshold trainable and
    initialised from the graph: ``syn = alpha syn + a``, ``mem = beta mem + syn``, spike
    ``mem > threshold``, reset to zero in the same step (``reset_delay=False``) -- CubaLIF with
    ``alpha = 1 - du``, ``beta = 1 - dv`` (the cue network's biases are 0; checked)."""
    import snntorch as snn
    from snntorch import surrogate as sg

    mods = {}
    for pop in ("hidden", "action", "nm1", "nm2"):
        if bool(P[f"{pop}.bias"].detach().abs().max() > 0):
            raise SystemExit(f"snnTorch variant: population {pop!r} has a bias; snn.Synaptic has none")
        mods[pop] = snn.Synaptic(alpha=(1.0 - P[f"{pop}.du"]).detach().clone(), beta=(1.0 - P[f"{pop}.dv"]).detach().clone(),
                                 threshold=P[f"{pop}.vth"].detach().clone(), spike_grad=sg.fast_sigmoid(slope=10),
                                 learn_alpha=True, learn_beta=True, learn_threshold=True, reset_mechanism="zero",
                                 reset_delay=False)
    return torch.nn.ModuleDict(mods)


def snn_neuron_fns(mods):  # noqa: ANN001
    def neurons(W):  # noqa: ANN001, ARG001
        return {pop: (lambda a, u, v, m=m: m(a, u, v)) for pop, m in mods.items()}
    return neurons


def make_inputs(T, B, seed=0):
    g = torch.Generator().manual_seed(seed)
    cues = (torch.rand(T, B, 20, generator=g) < 0.3).float()  # dense enough that every layer spikes
    ls = torch.zeros(T, B, 2)
    ls[T - 50:, :, 0] = 1.0
    target = (torch.rand(B, 2, generator=g) < 0.5).float()
    return cues, ls, target


def loss_of(out_spikes, target):
    rate = out_spikes.mean(0)
    return torch.nn.functional.binary_cross_entropy(rate.clamp(1e-4, 1 - 1e-4), target)


def time_it(fn, iters, warm=True):
    """Best of ``iters`` timed calls (after one untimed warm-up call if ``warm``)."""
    if warm:
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="T = 50 smoke run")
    ap.add_argument("--T", type=int, default=1050)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=2, help="timed iterations per variant (best is reported)")
    ap.add_argument("--threads", type=str, default="1,2")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile / jit variants")
    ap.add_argument("--no-snntorch", action="store_true", help="skip the snnTorch variant")
    ap.add_argument("--chunk", type=int, default=8, help="steps per compiled chunk of plastix jit")
    args = ap.parse_args(argv)
    T = 50 if args.quick else args.T
    B = args.batch
    iters = 1 if args.quick else args.iters
    if T < 1 or B < 1 or iters < 1 or args.chunk < 1:
        raise SystemExit("--T, --batch, --iters and --chunk must be >= 1")
    graph = cue_association_net()
    cues, ls, target = make_inputs(T, B)
    flops = flops_per_iteration(graph, T, B)
    xs = {"cues": cues.unsqueeze(1), "learning_signal": ls.unsqueeze(1)}
    print(f"# cue network 20->48->2 + 2x64 modulatory SNN, three-factor eligibility STDP; T={T} B={B}; "
          f"torch {torch.__version__}; {load_average()}", flush=True)
    print("# Norse: not run (not installable here without pulling a CUDA build of torch and torchvision)", flush=True)

    # one model + optimiser per variant, all starting from the same graph
    net = px_compile(graph)
    P, consts, (dpre, dpost) = baseline_params(graph, "cpu")
    step = make_step(dpre, dpost)
    snn_mods = None
    if not args.no_snntorch:
        P_snn, _, _ = baseline_params(graph, "cpu")
        snn_mods = snntorch_neurons(graph, P_snn)
        snn_step = make_step(dpre, dpost, snn_neuron_fns(snn_mods))

    # same spikes and plastic weights before any training step
    w0 = net.params["cues_to_hidden/weight"].detach()
    with torch.no_grad():
        out, st_px = net.run(xs)
        out_px, w_px = out["action"][:, 0], st_px.projs["cues_to_hidden"].rule.w[0]
        out_bl, st_bl = baseline_run(step, P, consts, cues, ls)
        checks = {"baseline": (out_bl, st_bl[16])}
        if snn_mods is not None:
            out_sn, st_sn = baseline_run(snn_step, P_snn, consts, cues, ls)
            checks["snntorch"] = (out_sn, st_sn[16])
    print(f"# output spikes (plastix eager): {int(out_px.sum())}, hidden spikes at the last step: "
          f"{int(st_px.out['hidden'].sum())}, mean |W_T - W_0| = {float((w_px - w0).abs().mean()):.2e}", flush=True)

    def check(name, o, w):
        same = bool(torch.equal(out_px, o)) and bool(torch.allclose(w_px, w, rtol=1e-5, atol=1e-6))
        print(f"# plastix eager and {name}: identical output spikes and final plastic weights: {same}", flush=True)
        if not same:
            raise SystemExit(f"{name} and plastix disagree")

    for name, (o, w) in checks.items():
        check(name, o, w)

    def make_it_px(model):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def it():
            opt.zero_grad()
            loss_of(model.run(xs)[0]["action"][:, 0], target).backward()
            opt.step()
        return it

    def make_it_bl(stepfn, params, extra=()):
        opt = torch.optim.Adam(list(params.values()) + list(extra), lr=1e-3)

        def it():
            opt.zero_grad()
            loss_of(baseline_run(stepfn, params, consts, cues, ls)[0], target).backward()
            opt.step()
        return it

    def jit_checked():
        """A fresh jit network whose first (compiling, grad-mode) forward is checked against eager."""
        net_j = px_compile(graph, jit=True, jit_chunk=args.chunk)
        out_j, st_j = net_j.run(xs)
        check(f"plastix jit (chunk {args.chunk})", out_j["action"][:, 0].detach(),
              st_j.projs["cues_to_hidden"].rule.w[0].detach())
        return make_it_px(net_j)

    def compiled(name, build):
        """Time building (for plastix: the checked first forward) + the first iteration, i.e. the
        compile, separately; then best-of-iters. None if compiling fails."""
        try:
            torch._dynamo.reset()  # compile for this thread count; no cache carried between variants
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)  # a silent eager fallback would mislabel the row
                fn = build()
                fn()
            return time.perf_counter() - t0, time_it(fn, iters, warm=False)
        except Exception as exc:  # noqa: BLE001 - depends on the machine's compiler toolchain
            print(f"# {name}: torch.compile failed: {type(exc).__name__}: {exc}", flush=True)
            return None

    rows = []
    for nt in [int(n) for n in args.threads.split(",")]:
        torch.set_num_threads(nt)
        peak = matmul_peak(1024)
        print(f"# {nt} thread(s): fp32 torch.mm peak {peak / 1e9:.1f} GFLOP/s; {load_average()}", flush=True)

        def add(name, t, compile_s=None):
            rows.append((nt, name, t, peak, compile_s))
            extra = "" if compile_s is None else f" (compile + first iteration {compile_s:.1f} s)"
            print(f"# {nt} thread(s): {name} {t:.3f} s/iter{extra}; {load_average()}", flush=True)

        add("baseline eager", time_it(make_it_bl(step, P), iters))
        if snn_mods is not None:
            add("snntorch eager", time_it(make_it_bl(snn_step, P_snn, snn_mods.parameters()), iters))
        add("plastix eager", time_it(make_it_px(net), iters))
        if not args.no_compile:
            r = compiled("baseline", lambda: make_it_bl(torch.compile(step, dynamic=False), P))
            if r is not None:
                add("baseline torch.compile", r[1], r[0])
            r = compiled("plastix jit", jit_checked)
            if r is not None:
                add(f"plastix jit (chunk {args.chunk})", r[1], r[0])
    print(f"{'threads':>7}  {'variant':<28} {'s/iter':>8} {'x baseline':>10} {'% fp32 peak':>11} {'compile s':>9}", flush=True)
    base = {nt: t for nt, name, t, _, _ in rows if name == "baseline eager"}
    for nt, name, t, peak, cs in rows:
        cstr = "" if cs is None else f"{cs:9.1f}"
        print(f"{nt:>7}  {name:<28} {t:8.3f} {t / base[nt]:10.2f} {100 * flops / t / peak:10.2f}% {cstr}", flush=True)
    print(f"# iteration = {flops / 1e9:.2f} GFLOP (analytic); 'x baseline' = s/iter over the eager hand-written loop's; "
          f"{load_average()}", flush=True)
    return rows


if __name__ == "__main__":
    main()
