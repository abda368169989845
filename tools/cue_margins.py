"""Which one-shot cue problems does a trained model lose? Accuracy by the cue margins of the training
and test trials, next to the one-shot Hebbian learner on spike counts (docs/results.md, issue 14).

    .venv/bin/python tools/cue_margins.py MODEL.plx [--problems 1000] [--seed 1] [--cues 5]
    .venv/bin/python tools/cue_margins.py --counts-only [--problems 4000] [--cues 5]
    .venv/bin/python tools/cue_margins.py MODEL.plx --consume-scale 0.5,1,2 [--problems 500]
    .venv/bin/python tools/cue_margins.py MODEL.plx --trace-scale 1,2,4,8 [--trace-cues 5,9,15] [--problems 200]

A diagnostic, not library code. A trial's margin is |#right cues - #left cues| (1, 3 or 5 at M = 5). The
count learner stores ``w * s_1 n_1 + s_2 n_2`` (``n_t`` every input's spike count in training trial ``t``,
``s_t`` = +1 for a right trial, -1 for a left one) and answers with the sign of the store times the test
trial's centred counts; ``w`` = 1 is the ideal learner, ``w`` < 1 weights the first training trial less
(a trace the first write leaves behind and the second write subtracts again). ``--counts-only`` also prints
the *uncentred* learner (raw test counts, what a hidden neuron summing ``store * spikes`` computes): a pair rule
whose writes are proportional to each input's own activity stores that, and it caps near 0.80 at M = 5. ``--consume-scale`` runs the
model with its trace use-up (ThreeFactor ``consume``) scaled by each factor, untrained otherwise;
``--trace-scale`` with every eligibility trace k times slower (``gamma' = 1 - (1 - gamma) / k``, rates / k: the
unit gain kept), at each M of ``--trace-cues`` (is the rule's time scale what limits the longer trials?).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import plastix.ir as ir
from plastix.tasks.cue_association import RIGHT, CueProblems, OneShotCueConfig, one_shot_cue_problems
from plastix.trainer.experiments.cue_eval import CueSetting, evaluate_model, problem_batches, run_torch

FIRST_TRIAL_WEIGHTS = (1.0, 0.75, 0.5)


def margins(pr: CueProblems, task: OneShotCueConfig, n: int) -> torch.Tensor:
    """``(n, 3)`` cue margins of the two training trials and the test trial, from the firing rates."""
    L, lo, hi = task.trial_steps, task.p_background, task.p_active
    right = (pr.permutation[:n] // task.group) == RIGHT
    out = []
    for t in range(3):
        r = pr.rates[t * L:(t + 1) * L, :n]
        mean_right = (r * right[None]).sum(-1) / right.sum(-1)[None]       # the right group's rate, (L, n)
        k = ((mean_right.sum(0) - lo * L) / ((hi - lo) * task.cue_steps)).round()
        out.append((2 * k - task.n_cues).abs())
    return torch.stack(out, 1)


def count_learner(pr: CueProblems, task: OneShotCueConfig, w: float = 1.0, centred: bool = True) -> torch.Tensor:
    """``(B,)`` bool: the count learner's test answer is right (``centred``: the test counts minus their mean
    over the inputs, equivalently the store centred over the inputs)."""
    L = task.trial_steps
    n = [pr.cues[t * L:(t + 1) * L].sum(0).double() for t in range(3)]
    s = [torch.where(pr.labels[:, t:t + 1] == RIGHT, 1.0, -1.0).double() for t in range(2)]
    test = n[2] - n[2].mean(-1, keepdim=True) if centred else n[2]
    score = ((w * s[0] * n[0] + s[1] * n[1]) * test).sum(-1)
    return (score < 0).long() == pr.test_labels


def table(name: str, ok: torch.Tensor, m: torch.Tensor) -> None:
    """Accuracy overall and by margins; ``m`` (B, 3) from :func:`margins`."""
    both = (m[:, 0] == 1) & (m[:, 1] == 1)
    print(f"{name}: all {ok.float().mean():.3f} ({len(ok)} problems); both training trials at margin 1 "
          f"{ok[both].float().mean():.3f} ({both.float().mean():.0%}), else {ok[~both].float().mean():.3f}")
    for v in sorted(set(m[:, 2].tolist())):
        sel = m[:, 2] == v
        print(f"   test margin {int(v)}: {ok[sel].float().mean():.3f} ({int(sel.sum())} problems)")


def with_consume_scaled(graph: ir.Graph, factor: float) -> ir.Graph:
    """``graph`` with every three-factor rule's ``consume`` times ``factor``."""
    return graph.replace(projections=tuple(
        p.replace(rule=p.rule.replace(consume=np.asarray(p.rule.consume) * factor)) if hasattr(p.rule, "consume") else p
        for p in graph.projections))


def with_traces_slowed(graph: ir.Graph, k: float) -> ir.Graph:
    """``graph`` with every eligibility-trace time constant ``1 / (1 - gamma)`` times ``k`` and the STDP rates under
    it divided by ``k``: the trace of a constant drive reaches the same level, ``k`` times later."""
    def slowed(rule):
        et = rule.base
        if not isinstance(et, ir.EligibilityTrace):
            return rule
        st = et.base
        st = st.replace(eta_plus=np.asarray(st.eta_plus) / k, eta_minus=np.asarray(st.eta_minus) / k)
        return rule.replace(base=et.replace(base=st, gamma=1.0 - (1.0 - np.asarray(et.gamma, dtype=np.float64)) / k))
    return graph.replace(projections=tuple(p.replace(rule=slowed(p.rule)) if isinstance(p.rule, ir.ThreeFactor) else p
                                           for p in graph.projections))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--problems", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cues", type=int, default=5)
    ap.add_argument("--counts-only", action="store_true")
    ap.add_argument("--consume-scale", default=None, help="comma list of factors")
    ap.add_argument("--trace-scale", default=None, help="comma list of factors k (eligibility traces k x slower)")
    ap.add_argument("--trace-cues", default="5,9,15", help="comma list of M for --trace-scale")
    a = ap.parse_args()
    if a.counts_only == (a.model is not None):
        ap.error("give a MODEL.plx or --counts-only")
    if a.counts_only:
        task = OneShotCueConfig(n_cues=a.cues)
        pr = one_shot_cue_problems(a.problems or 4000, task, generator=torch.Generator().manual_seed(a.seed))
        m = margins(pr, task, len(pr.labels))
        for w in FIRST_TRIAL_WEIGHTS:
            table(f"count learner, first training trial x {w}", count_learner(pr, task, w), m)
        table("count learner, uncentred", count_learner(pr, task, centred=False), m)
        return
    graph = ir.load(a.model)
    if a.consume_scale:
        for f in (float(v) for v in a.consume_scale.split(",")):
            r = evaluate_model(with_consume_scaled(graph, f), n_problems=a.problems or 500, n_cues=a.cues, seed=a.seed)
            print(f"consume x {f}: accuracy {r['accuracy']:.3f}", flush=True)
        return
    if a.trace_scale:
        cues = [int(v) for v in a.trace_cues.split(",")]
        for k in (float(v) for v in a.trace_scale.split(",")):
            accs = [evaluate_model(with_traces_slowed(graph, k), n_problems=a.problems or 200, n_cues=m, seed=a.seed)
                    ["accuracy"] for m in cues]
            print(f"traces x {k} slower: " + ", ".join(f"M = {m}: {acc:.3f}" for m, acc in zip(cues, accs)), flush=True)
        return
    setting = CueSetting.of(graph, a.cues)
    oks, ms = [], []
    for pr, n in problem_batches(setting, a.problems or 1000, a.seed):
        act = run_torch(graph, pr)[0]["action"][setting.window(pr)].sum(0)[:n]
        oks.append((act.argmax(-1) == pr.test_labels[:n]) & (act[:, 0] != act[:, 1]))  # ties are wrong
        ms.append(margins(pr, setting.task, n))
    table(a.model, torch.cat(oks), torch.cat(ms))


if __name__ == "__main__":
    main()
