"""One BPTT iteration (forward + backward + Adam) of the Meta-SpikePropamine cue network.

plastix (``plastix.backends.torch.compile(cue_association_net())``) vs a plain hand-written PyTorch
loop of the same math (same parameters, same step order; its spikes are checked equal to plastix's
in the same run), eager and, unless ``--no-compile``, with ``torch.compile`` on the baseline's step
function (compile time reported separately). Each configuration runs with 1 and 2 threads; results
are seconds per iteration, the ratio to the eager baseline measured in the same run, and the
fraction of this machine's fp32 matmul peak (a large ``torch.mm`` measured in the same run) that the
iteration's useful FLOPs (counted analytically, see ``flops_per_iteration``) reach.

    .venv/bin/python benchmarks/bptt_plastic.py            # T = 1050, batch 64
    .venv/bin/python benchmarks/bptt_plastic.py --quick    # T = 50 smoke run (used by the tests)

snnTorch / Norse have no trainable three-factor plasticity to compare against; they are not run.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

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


def make_step(decay_pre, decay_post):
    def step(x, ls, st, W):  # noqa: ANN001
        (u_h, v_h, s_h, u_y, v_y, s_y, u_1, v_1, s_1, u_2, v_2, s_2, a_h, a_y, a_1, a_2, w, ep, em, xpre, xpost) = st
        B = x.shape[0]
        m = torch.tanh(s_2 @ W["mod_w_t"] + W["mod.b"]).view(B, 2, 20)  # modulator reads nm2[t-1]
        s_h, u_h, v_h = lif(a_h, u_h, v_h, W["hidden.ku"], W["hidden.kv"], W["hidden.vth"], W["hidden.bias"])
        s_y, u_y, v_y = lif(a_y, u_y, v_y, W["action.ku"], W["action.kv"], W["action.vth"], W["action.bias"])
        s_1, u_1, v_1 = lif(a_1, u_1, v_1, W["nm1.ku"], W["nm1.kv"], W["nm1.vth"], W["nm1.bias"])
        s_2, u_2, v_2 = lif(a_2, u_2, v_2, W["nm2.ku"], W["nm2.kv"], W["nm2.vth"], W["nm2.bias"])
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


def matmul_peak(n=1024, reps=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


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


def time_it(fn, iters):
    fn()  # warm-up
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
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--threads", type=str, default="1,2")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = ap.parse_args(argv)
    T = 50 if args.quick else args.T
    B = args.batch
    iters = 1 if args.quick else args.iters
    graph = cue_association_net()
    cues, ls, target = make_inputs(T, B)
    flops = flops_per_iteration(graph, T, B)

    net = px_compile(graph)
    opt_px = torch.optim.Adam(net.parameters(), lr=1e-3)
    xs = {"cues": cues.unsqueeze(1), "learning_signal": ls.unsqueeze(1)}

    P, consts, (dpre, dpost) = baseline_params(graph, "cpu")
    opt_bl = torch.optim.Adam(list(P.values()), lr=1e-3)
    step = make_step(dpre, dpost)

    # same spikes before any training step
    with torch.no_grad():
        out, st_px = net.run(xs)
        out_px = out["action"][:, 0]
        out_bl, st_bl = baseline_run(step, P, consts, cues, ls)
    w_px, w_bl = st_px.projs["cues_to_hidden"].rule.w[0], st_bl[16]
    same = bool(torch.equal(out_px, out_bl)) and bool(torch.allclose(w_px, w_bl, rtol=1e-5, atol=1e-6))
    print(f"# cue network 20->48->2 + 2x64 modulatory SNN, three-factor eligibility STDP; T={T} B={B}", flush=True)
    print(f"# plastix and baseline identical output spikes and final plastic weights: {same}; output spikes: "
          f"{int(out_px.sum())}, hidden spikes (plastix): {int(st_px.out['hidden'].sum())} at the last step, "
          f"mean |W_T - W_0| = {float((w_px - net.params['cues_to_hidden/weight'].detach()).abs().mean()):.2e}", flush=True)
    if not same:
        raise SystemExit("baseline and plastix disagree")

    def it_px():
        opt_px.zero_grad()
        loss_of(net.run(xs)[0]["action"][:, 0], target).backward()
        opt_px.step()

    def make_it_bl(stepfn):
        def it():
            opt_bl.zero_grad()
            loss_of(baseline_run(stepfn, P, consts, cues, ls)[0], target).backward()
            opt_bl.step()
        return it

    rows = []
    for nt in [int(n) for n in args.threads.split(",")]:
        torch.set_num_threads(nt)
        peak = matmul_peak()
        t_bl = time_it(make_it_bl(step), iters)
        t_px = time_it(it_px, iters)
        rows.append((nt, "baseline eager", t_bl, peak))
        rows.append((nt, "plastix eager", t_px, peak))
        print(f"# {nt} thread(s): baseline eager {t_bl:.3f} s/iter, plastix eager {t_px:.3f} s/iter", flush=True)
        if not args.no_compile:
            try:
                cstep = torch.compile(step, dynamic=False)
                t0 = time.perf_counter()
                make_it_bl(cstep)()
                t_compile = time.perf_counter() - t0
                t_c = time_it(make_it_bl(cstep), iters)
                rows.append((nt, f"baseline torch.compile (compile {t_compile:.1f}s)", t_c, peak))
                print(f"# {nt} thread(s): baseline torch.compile {t_c:.3f} s/iter (compile + first iteration {t_compile:.1f} s)", flush=True)
            except Exception as exc:  # pragma: no cover - depends on the machine's toolchain
                print(f"# torch.compile failed: {type(exc).__name__}: {exc}", flush=True)
    print(f"{'threads':>7}  {'variant':<42} {'s/iter':>8} {'x baseline':>10} {'% fp32 peak':>11}", flush=True)
    base = {nt: t for nt, name, t, _ in rows if name == "baseline eager"}
    for nt, name, t, peak in rows:
        print(f"{nt:>7}  {name:<42} {t:8.3f} {t / base[nt]:10.2f} {100 * flops / t / peak:10.2f}%", flush=True)
    for nt in sorted({r[0] for r in rows}):
        peak = next(r[3] for r in rows if r[0] == nt)
        print(f"# {nt} thread(s): fp32 torch.mm peak {peak / 1e9:.1f} GFLOP/s; iteration = {flops / 1e9:.2f} GFLOP (analytic)", flush=True)
    return rows


if __name__ == "__main__":
    main()
