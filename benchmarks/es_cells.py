"""Seconds per ES population evaluation on the IAF mimic task, per model kind: the fused open-loop path
against stepping the task through its contract, side by side in one run.

``rollout`` takes its fast path for a single cell on an open-loop task (``plastix.trainer.algorithms.es_eval``:
a one-individual twin of the task supplies the common inputs, :class:`FusedENU` / :class:`FusedGated` run the
population in preallocated buffers, the returns are computed once at the end). ``contract`` is the same
evaluation stepping the (P, E) task every step with the functional cell step (``rollout(..., max_steps=T)``
skips the fast path). Both compute the same fitness up to float summation order
(``tests/trainer/test_es_eval_fast.py``; printed: the share of individuals whose fitness differs by more than
0.1 %, as a threshold crossing can amplify a 1e-7 difference); the ratio is what the fast path buys. Also printed: the cells' matmul FLOPs per evaluation and the fraction of this
machine's single-thread fp32 matmul peak (a 2048^3 ``torch.mm`` timed in the same run). One thread;
best of ``--reps``.

    python benchmarks/es_cells.py                     # P = 1,024 offspring + mean, 32 envs, 100 steps (the paper's IAF)
    python benchmarks/es_cells.py --quick             # seconds; used by the test suite (no timing asserts)
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the shared helper next to this file
from _peak import load_average, matmul_peak  # noqa: E402

from plastix.tasks.registry import make_task  # noqa: E402
from plastix.trainer.algorithms.es_eval import rollout  # noqa: E402
from plastix.trainer.algorithms.models import ModelKind, ModelSpec  # noqa: E402


def cell_flops(spec: ModelSpec, obs_dim: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of one cell step for one individual and env, counting the input
    columns the fused step uses (``obs_dim``; the others are zero and dropped by both paths' cost model)."""
    total = 0
    for name, shape in spec.param_shapes():
        if len(shape) != 2:
            continue
        rows, cols = shape
        if name == "w_ih":
            cols = obs_dim
        elif spec.cell_kind == "enu_cell" and name != "w_o":
            cols = cols - spec.channels + obs_dim
        total += 2 * rows * cols
    return total


def best_of(fn, reps: int) -> float:
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> list[tuple[str, float, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, default=1025)
    ap.add_argument("--envs", type=int, default=32)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["enu", "nfenu", "gru", "lstm"])
    ap.add_argument("--quick", action="store_true", help="P = 9, 4 envs, 20 steps, 1 rep")
    args = ap.parse_args(argv)
    if args.quick:
        args.population, args.envs, args.steps, args.reps = 9, 4, 20, 1
    torch.set_num_threads(1)
    peak = matmul_peak(512 if args.quick else 2048, 1 if args.quick else 5)
    print(f"P = {args.population}, {args.envs} envs x {args.steps} steps (IAF mimic), 1 thread; fp32 matmul peak "
          f"{peak / 1e9:.1f} GFLOP/s; {load_average()}")
    rows = []
    for kind in args.models:
        spec = ModelSpec(ModelKind(kind))
        g = torch.Generator().manual_seed(0)
        pop = spec.init_genome(g)[None] + 0.1 * torch.randn(args.population, spec.num_params, generator=g)
        task = make_task("iaf", "paper", population=args.population, num_envs=args.envs, steps=args.steps)
        obs_dim = task.single_observation_spec.shape[0]
        fast = lambda: rollout(spec, pop, task, seed=1)  # noqa: E731
        slow = lambda: rollout(spec, pop, task, seed=1, max_steps=args.steps)  # noqa: E731
        a, b = fast()["fitness"], slow()["fitness"]
        # the paths sum in another order; a spike threshold can turn a 1e-7 difference into a different spike
        differ = float(((a - b).abs() > 1e-3 * b.abs().clamp(min=1.0)).double().mean())
        t_fast, t_slow = best_of(fast, args.reps), best_of(slow, args.reps)
        flops = cell_flops(spec, obs_dim) * args.population * args.envs * args.steps
        print(f"{kind:6s} fused {t_fast:7.3f} s  contract {t_slow:7.3f} s  ratio {t_slow / t_fast:5.2f}x  "
              f"{flops / t_fast / 1e9:5.1f} GFLOP/s fused ({flops / t_fast / peak:5.1%} of peak)  fitness differs (> 0.1 %) for {differ:.1%} of P")
        rows.append((kind, t_fast, t_slow))
    return rows


if __name__ == "__main__":
    main()
