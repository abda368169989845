"""Where a hardware-aware cue model loses accuracy in Loihi fixed point (docs/results.md, issue 15).

    .venv/bin/python tools/fixed_point_gap.py plastix/data/cue_engine.plx [--problems 256] [--seed 1]

A diagnostic, not library code: it measures the model in Loihi units on the torch backend and
prints (1) float vs fixed accuracy and the share of each decision, (2) how often float and fixed
spikes differ with plasticity removed, (3) the float run's spikes replayed through the bit-accurate
learning-engine emulation (tag vs eligibility, final weights), and (4) float accuracy with the
engine's rounding emulated one effect at a time and all together (by patching the float backend's
step functions in this process: truncated membrane decays, stochastic rounding with one random
number per step shared by all synapses of weights, traces and tags, floored third factor).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import plastix.backends.torch.network as nw
import plastix.backends.torch.neurons as nrn
import plastix.backends.torch.rules as rl
import plastix.ir as ir
from plastix.backends.learning_engine import engine_rule
from plastix.backends.torch import compile as compile_torch
from plastix.backends.torch.fixed import dense_fixed_step
from plastix.backends.torch.fixed_learning import engine_step
from plastix.tasks.cue_association import one_shot_cue_problems
from plastix.trainer.experiments.cue_eval import CueSetting, evaluate_model
from plastix.trainer.algorithms.hardware_aware import for_fixed_point

PLASTIC, MOD = "cues_to_hidden", "dopamine"


def decisions(g, n: int, seed: int, precision: str) -> dict:
    r = evaluate_model(g, n_problems=n, seed=seed, precision=precision)
    c, lab = torch.tensor(r["counts"]).float(), torch.tensor(r["labels"])
    return {"accuracy": r["accuracy"], "share_action1": float((c.argmax(-1) == 1).float().mean()),
            "share_label1": float(lab.float().mean()), "mean_counts": [round(v, 1) for v in c.mean(0).tolist()]}


def static_difference(g, pr) -> dict:
    projs = tuple(p.replace(rule=None) if p.name == PLASTIC else p for p in g.projections)
    gs = g.replace(projections=projs, modulators=(), outputs=("action", "hidden", "nm2"))
    inp = {"cues": pr.cues.double(), "learning_signal": pr.signal.double()}
    with torch.no_grad():
        of = compile_torch(gs, dtype=torch.float64).run(inp)[0]
        ox = compile_torch(gs, dtype=torch.float64, precision="fixed").run(inp)[0]
    return {k: round(float((of[k] != ox[k]).float().mean()), 4) for k in of}


def replay(g, pr) -> dict:
    """The float run's pre/post/NM spikes through the fixed-point engine (no closed loop)."""
    g2 = g.replace(outputs=("hidden", "nm2"))
    B, T = pr.cues.shape[1], pr.cues.shape[0]
    with torch.no_grad():
        of, sf = compile_torch(g2, dtype=torch.float64).run({"cues": pr.cues.double(), "learning_signal": pr.signal.double()})
    nx = compile_torch(g2, dtype=torch.float64, precision="fixed")
    rule = nx.init_state(B=B).projs[PLASTIC].rule
    nx._ensure(T + 1, torch.device("cpu"))  # the emulator's pre-drawn random streams
    er = nx._engine[PLASTIC]
    (_, _, wexp, _), = nx._mods.values()
    x, y, nm = pr.cues.to(torch.int64).unsqueeze(1), of["hidden"].to(torch.int64), of["nm2"].to(torch.int64)
    third = None
    for t in range(T):
        rule = engine_step(x[t], y[t], third, t + 1, rule, er)
        third = (dense_fixed_step(nm[t], nx.m0, wexp), None)
    rf = sf.projs[PLASTIC].rule
    w0 = torch.tensor(np.asarray(g.projection(PLASTIC).weight))
    a, b = (rf.w[0] - w0).flatten().numpy(), (rule.w[0].double() - w0).flatten().numpy()
    e, tag = (rf.inner.e_plus - rf.inner.e_minus)[0].flatten().numpy(), rule.tag[0].double().flatten().numpy()
    return {"tag_vs_eligibility_corr": round(float(np.corrcoef(e, tag)[0, 1]), 4),
            "tag_mean_abs_diff": round(float(np.abs(e - tag).mean()), 2), "eligibility_mean": round(float(e.mean()), 2),
            "dw_corr": round(float(np.corrcoef(a, b)[0, 1]), 4), "dw_mean_abs_diff_lsb": round(float(np.abs(a - b).mean()), 2),
            "dw_bias_lsb": round(float((b - a).mean()), 2)}


def rounding_ablation(g, n: int, seed: int) -> dict:
    """Float accuracy with the engine's rounding emulated (Loihi units: LSB 1 for weights, traces and
    tags; the third factor floored to 2^-third_shift)."""
    shift = engine_rule(g, g.projection(PLASTIC))[0].third_shift
    orig = {"weights": rl.apply_dw, "tags": rl.eligibility_step, "traces": rl.advance_trace, "neurons": nrn.lif_step,
            "third factor": nw._modulate}

    def sr(v):  # one random number per step and batch element, shared by all synapses (Lava's streams)
        f = torch.floor(v)
        u = torch.rand(v.shape[:2] + (1,) * (v.dim() - 2), dtype=v.dtype)
        return f + (u < (v - f)).to(v.dtype)

    def weights(w, dw, p, mask):
        return orig["weights"](torch.zeros_like(w), sr(w + dw), p, mask)

    def tags(inputs, state, p):
        out, st = orig["tags"](inputs, state, p)
        return out, st._replace(e_plus=sr(st.e_plus), e_minus=sr(st.e_minus))

    def traces(tr, s, decay, kind, beta, x_max, bound=None):
        new = sr(decay * tr) + beta * s
        return new if bound is None else new.clamp_max(bound)

    def neurons(a, state, p, spike):
        u = torch.trunc(p.keep_u * state.u * 64) / 64 + a
        v = torch.trunc(p.keep_v * state.v * 64) / 64 + u + p.bias
        s = spike(v - p.vth)
        return s, nrn.LIFState(u, v * (1.0 - s), state.ref)

    def third(*a, **k):
        return torch.floor(orig["third factor"](*a, **k) * 2 ** shift) / 2 ** shift

    patched = {"weights": weights, "tags": tags, "traces": traces, "neurons": neurons, "third factor": third}
    targets = {"weights": (rl, "apply_dw"), "tags": (rl, "eligibility_step"), "traces": (rl, "advance_trace"),
               "neurons": (nrn, "lif_step"), "third factor": (nw, "_modulate")}

    def acc(on: set) -> float:
        for k, (mod, name) in targets.items():
            setattr(mod, name, patched[k] if k in on else orig[k])
        try:
            torch.manual_seed(0)
            return evaluate_model(g, n_problems=n, seed=seed)["accuracy"]
        finally:
            for k, (mod, name) in targets.items():
                setattr(mod, name, orig[k])

    out = {k: acc({k}) for k in patched}
    out["all together"] = acc(set(patched))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--problems", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    g = for_fixed_point(ir.load(args.model))
    pr = one_shot_cue_problems(16, CueSetting.of(g).task, generator=torch.Generator().manual_seed(3))
    report = {"float": decisions(g, args.problems, args.seed, "float"),
              "fixed": decisions(g, args.problems, args.seed, "fixed"),
              "static_spike_difference": static_difference(g, pr), "replay": replay(g, pr),
              "float_with_emulated_rounding": rounding_ablation(g, args.problems, args.seed)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
