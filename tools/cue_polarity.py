"""Which sign does each hidden neuron store a one-shot cue association with? (issue 14, docs/results.md)

    .venv/bin/python tools/cue_polarity.py MODEL.plx [--problems 200] [--seed 1] [--cues 5] [--json]

A diagnostic, not library code. The model runs ``--problems`` problems with the test trial's plasticity frozen;
per problem and hidden neuron ``j`` the weight change of the two training trials, ``dW_j`` (its row of the
cue -> hidden projection), is projected on the centred count difference ``n_left - n_right`` of the left- and
the right-labelled training trial. A neuron's *polarity* is the mean sign of that projection over the problems:
+1 a neuron that always writes the left trial's inputs up relative to the right one's (a left detector), -1 the
opposite. A per-post model can learn both kinds (a differential code: the difference cancels what both trials
share); under per-pre or global modulation with one sign of rates every neuron writes with the same sign.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import plastix.ir as ir
from plastix.tasks.cue_association import one_shot_cue_problems
from plastix.trainer.experiments.cue_eval import CueSetting, run_torch

PLASTIC = "cues_to_hidden"


def polarity(graph: ir.Graph, *, problems: int = 200, seed: int = 1, cues: int = 5, threshold: float = 0.3) -> dict:
    """``{"polarity": per hidden neuron in [-1, 1], "moved": bool per neuron, "left" / "right": counts of moving
    neurons with polarity > threshold / < -threshold}`` (module docstring)."""
    st = CueSetting.of(graph, cues)
    pr = one_shot_cue_problems(problems, st.task, generator=torch.Generator().manual_seed(seed))
    _, state = run_torch(graph, pr, freeze_test=True)
    w0 = torch.tensor(np.array(graph.projection(PLASTIC).weight), dtype=torch.float64)
    dw = state.projs[PLASTIC].rule.w[0] - w0                           # (B, H, I)
    L = st.task.trial_steps
    n1, n2 = pr.cues[:L].sum(0).double(), pr.cues[L:2 * L].sum(0).double()  # (B, I) per training trial
    left_first = (pr.labels[:, 0] == 1)[:, None]
    diff = torch.where(left_first, n1 - n2, n2 - n1)                   # n_left - n_right
    diff = diff - diff.mean(1, keepdim=True)
    proj = torch.einsum("bhi,bi->bh", dw, diff)
    moved = dw.abs().sum(-1).mean(0) > 1e-6
    pol = torch.sign(proj).mean(0)
    return {"problems": problems, "seed": seed, "cues": cues, "polarity": [round(float(p), 3) for p in pol],
            "moved": moved.tolist(), "threshold": threshold,
            "left": int((pol[moved] > threshold).sum()), "right": int((pol[moved] < -threshold).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cues", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=0.3, help="|polarity| that counts as a detector")
    ap.add_argument("--json", action="store_true", help="one JSON object")
    a = ap.parse_args()
    r = polarity(ir.load(a.model), problems=a.problems, seed=a.seed, cues=a.cues, threshold=a.threshold)
    if a.json:
        print(json.dumps(r))
        return
    moving = [(j, p) for j, (p, m) in enumerate(zip(r["polarity"], r["moved"])) if m]
    print(f"{len(moving)} of {len(r['moved'])} hidden neurons move; polarity (mean sign of <dW_j, n_L - n_R> over "
          f"{r['problems']} problems):")
    print("  " + "  ".join(f"{j}:{p:+.2f}" for j, p in moving))
    t = r["threshold"]
    print(f"left detectors (> {t}): {r['left']}, right detectors (< -{t}): {r['right']}")


if __name__ == "__main__":
    main()
