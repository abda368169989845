"""ES generations per hour on the T-maze (Bertens & Lee 2020) at population 1024: one process vs Ray.

A generation evaluates P offspring + the search mean, each on ``E`` = 8 envs for 400 steps, as a
network of ENUs (:mod:`plastix.trainer.experiments.enu_net`, 13,312 parameters). Full generations at P = 1024
take many minutes here, so this times evaluations of ``--short`` and ``--steps`` steps (energy set
so high that no agent dies: every env runs every step, the worst case), takes the difference as
the per-step cost and the rest as the per-evaluation setup, and extrapolates to
``setup + 400 * per-step``; the output says so. ES ask/tell (O(P * D) vector work) is left out.

* ``local``: :func:`plastix.trainer.algorithms.es_eval.evaluate_population` in this process, with
  ``torch.set_num_threads`` 1 and 2;
* ``ray``: :class:`plastix.trainer.algorithms.es_ray.RayEvaluator` on a local Ray instance (``--ray-cpus``
  CPUs, one chunk per CPU); Ray start-up and the first call (worker imports) are excluded by a
  warm-up call; the population is shipped to the workers in every call, as in training.

``--compare-unfused`` first times the fused ENU network step (:class:`~plastix.backends.torch.neurons.FusedENU`,
the default) against the functional one (``population_model(..., fused=False)``: ``enu_step`` with state
passed around) on the same population, alternating, best of 3, and prints the ratio.

``--full-generation`` also times one real ES generation (``ESJob.step``: ask, evaluation of P + 1
on the paper's T-maze config with the real energy budget, tell) from the initial mean, locally (1
thread) and through Ray; early generations are cheap because most agents die after 40 steps.

``--compare-compaction`` times one real evaluation (``--task-config``'s energy budget, 400 env steps) of a
population around ``--around MODEL.plx`` (sigma ``--sigma``; default the initial mean) with and without
dropping the individuals whose every env has ended (``rollout(compact=...)``), alternating, best of 3,
and prints the ratio and whether the fitness is identical. A generation lasts until its last agent
dies; without compaction the dead ones are simulated to that step.

Also printed: analytic gate-matmul FLOPs per generation (2 per multiply-add; elementwise work
left out) and the load average, since the machine is shared.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/tmaze_generation.py --population 1024 --steps 10
    python benchmarks/tmaze_generation.py --population 8 --steps 2 --no-ray   # seconds
    python benchmarks/tmaze_generation.py --compare-compaction --population 64 --around MODEL.plx --task-config navigate
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _peak import load_average  # noqa: E402

from plastix.tasks.registry import make_task, task_config  # noqa: E402
from plastix.trainer.experiments.enu_net import NetworkSpec  # noqa: E402
from plastix.trainer.algorithms.es_eval import evaluate_population  # noqa: E402

EPISODE_STEPS = 400


def flops_per_generation(spec: NetworkSpec, population: int, num_envs: int, steps: int = EPISODE_STEPS,
                         substeps: int = 1) -> int:
    """Gate-matmul FLOPs of one generation: (P + 1) individuals x E envs x steps x substeps network steps
    (``substeps``: network steps per environment step, 4 with the default ``decision="substeps"``)."""
    return spec.flops_per_step() * (population + 1) * num_envs * steps * substeps


def full_generation(a) -> None:
    """One ``ESJob.step`` (paper T-maze config, population ``a.population``) locally and via Ray."""
    from plastix.trainer.experiments.es_run import ESJob, es_config

    es = es_config("tmaze", "paper", population=a.population)
    torch.set_num_threads(1)
    evaluators = {"local, 1 thread": None}
    if not a.no_ray:
        from plastix.trainer.algorithms.es_ray import RayEvaluator

        evaluators[f"ray, {a.ray_cpus} CPUs"] = RayEvaluator("tmaze", task_config("tmaze", "paper"),
                                                             num_cpus=a.ray_cpus, chunks=a.ray_cpus)
    for name, ev in evaluators.items():
        job = ESJob("tmaze", a.model, "paper", seed=a.seed, es=es, evaluator=ev)
        state = job.init_state()
        if ev is not None:
            ev(job.spec, state.es.mean[None].expand(a.ray_cpus, -1).contiguous(), 0)  # warm-up
        t0 = time.perf_counter()
        _, metrics = job.step(state, 0)
        sec = time.perf_counter() - t0
        print(f"full generation 1 ({name}): {sec:.0f} s, fitness mean {metrics['fitness_mean']:.3f}")
        if ev is not None:
            ev.shutdown()


class _Unfused:
    """``spec`` whose population model runs the functional cell steps (the fused path's baseline)."""

    def __init__(self, spec: NetworkSpec) -> None:
        self.spec = spec

    def population_model(self, population):
        return self.spec.population_model(population, fused=False)

    def __getattr__(self, name):
        return getattr(self.spec, name)


def compare_unfused(spec: NetworkSpec, pop: torch.Tensor, cfg, reps: int = 3) -> dict:
    """Seconds of one evaluation (``cfg``'s steps) per path, alternating, best of ``reps``; 1 thread."""
    torch.set_num_threads(1)
    P, sec, fit = pop.shape[0], {"fused": [], "functional": []}, {}
    for _ in range(reps):
        for name, s in (("fused", spec), ("functional", _Unfused(spec))):
            t0 = time.perf_counter()
            fit[name] = evaluate_population(s, pop, make_task("tmaze", cfg, population=P), seed=1)
            sec[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in sec.items()}
    print(f"fused vs functional ENU network step ({P} individuals, {cfg.num_envs} envs, {cfg.steps} env steps, "
          f"1 thread, best of {reps}): fused {best['fused']:.2f} s, functional {best['functional']:.2f} s, "
          f"ratio {best['functional'] / best['fused']:.2f}x; max |fitness difference| "
          f"{float((fit['fused'] - fit['functional']).abs().max()):.2e}")
    return best


def compare_compaction(spec: NetworkSpec, pop: torch.Tensor, cfg, reps: int = 3) -> dict:
    """Seconds of one real evaluation with / without dropping ended agents, alternating, best of ``reps``."""
    from plastix.trainer.algorithms.es_eval import rollout

    torch.set_num_threads(1)
    P, sec, fit = pop.shape[0], {"compacted": [], "everyone": []}, {}
    task = make_task("tmaze", cfg, population=P)
    for _ in range(reps):
        for name in sec:
            t0 = time.perf_counter()
            fit[name] = rollout(spec, pop, task, seed=1, compact=name == "compacted")["fitness"]
            sec[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in sec.items()}
    f = fit["everyone"]
    print(f"dropping ended agents ({P} individuals, {cfg.num_envs} envs, energy {cfg.energy}, 1 thread, best of "
          f"{reps}; fitness mean {float(f.mean()):.2f}, max {float(f.max()):.2f}): compacted {best['compacted']:.2f} s, "
          f"everyone {best['everyone']:.2f} s, ratio {best['everyone'] / best['compacted']:.2f}x; fitness identical: "
          f"{bool(torch.equal(fit['compacted'], f))}")
    return best


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--population", type=int, default=1024)
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="steps of the long timed evaluation")
    ap.add_argument("--short", type=int, default=2, help="steps of the short timed evaluation")
    ap.add_argument("--model", default="enu")
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--full-generation", action="store_true", help="also time one real ES generation")
    ap.add_argument("--compare-unfused", action="store_true", help="time the fused ENU step against the functional one")
    ap.add_argument("--compare-compaction", action="store_true",
                    help="time one real evaluation with and without dropping ended agents, then exit")
    ap.add_argument("--around", default=None, help="--compare-compaction: a T-maze network model.plx to perturb")
    ap.add_argument("--sigma", type=float, default=0.05, help="--compare-compaction: perturbation std")
    ap.add_argument("--task-config", default="paper", help="--compare-compaction: T-maze preset (paper, navigate, ...)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.compare_compaction:
        from plastix.ir import load
        from plastix.trainer.experiments.enu_net import genome_from_graph

        spec = NetworkSpec(a.model)
        g = torch.Generator().manual_seed(a.seed)
        mean = genome_from_graph(spec, load(a.around)) if a.around else spec.init_genome(g)
        pop = mean + a.sigma * torch.randn(a.population + 1, spec.num_params, generator=g)
        print(f"load average before: {load_average()}")
        best = compare_compaction(spec, pop, task_config("tmaze", a.task_config, num_envs=a.num_envs))
        print(f"load average after: {load_average()}")
        return best
    spec = NetworkSpec(a.model)
    g = torch.Generator().manual_seed(a.seed)
    P = a.population + 1
    mean = spec.init_genome(g)
    pop = mean + 0.01 * torch.randn(P, spec.num_params, generator=g)
    if not 1 <= a.short < a.steps:
        raise SystemExit("need 1 <= --short < --steps")
    cfgs = {n: task_config("tmaze", "paper", num_envs=a.num_envs, steps=n, energy=10**9) for n in (a.short, a.steps)}
    tc = cfgs[a.steps]
    flops = flops_per_generation(spec, a.population, a.num_envs,
                                 substeps=tc.action_window if tc.decision == "substeps" else 1)
    print(f"T-maze {a.model} network ({spec.num_params} params), population {a.population} (+ mean), "
          f"{a.num_envs} envs; evaluations of {a.short} and {a.steps} steps timed, extrapolated to "
          f"setup + {EPISODE_STEPS} x per-step")
    print(f"gate-matmul FLOPs per generation ({EPISODE_STEPS} env steps, nobody dies): {flops / 1e12:.2f} TFLOP")
    print(f"load average before: {load_average()}")
    if a.compare_unfused:
        compare_unfused(spec, pop, cfgs[a.steps])
    def extrapolate(evaluate) -> tuple[float, float, float]:
        """(setup s, s per step, s per 400-step generation) from a short and a long evaluation."""
        sec = {}
        for n in (a.short, a.steps):
            t0 = time.perf_counter()
            evaluate(n)
            sec[n] = time.perf_counter() - t0
        per_step = max(sec[a.steps] - sec[a.short], 0.0) / (a.steps - a.short)
        setup = max(sec[a.short] - a.short * per_step, 0.0)
        return setup, per_step, setup + EPISODE_STEPS * per_step

    rows = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rows[f"local, {threads} thread(s)"] = extrapolate(
            lambda n: evaluate_population(spec, pop, make_task("tmaze", cfgs[n], population=P), seed=1))
    if not a.no_ray:
        from plastix.trainer.algorithms.es_ray import RayEvaluator

        torch.set_num_threads(1)
        evs = {n: RayEvaluator("tmaze", cfgs[n], num_cpus=a.ray_cpus, chunks=a.ray_cpus) for n in cfgs}
        try:
            for ev in evs.values():
                ev(spec, pop[: a.ray_cpus], 1)                  # warm-up: workers import torch/plastix
            rows[f"ray, {a.ray_cpus} CPUs ({a.ray_cpus} chunks)"] = extrapolate(lambda n: evs[n](spec, pop, 1))
        finally:
            for ev in evs.values():
                ev.shutdown()
    print("| path | setup s | s / step | s / generation (extrapolated) | generations / hour | GFLOP/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (setup, per_step, sec) in rows.items():
        print(f"| {name} | {setup:.1f} | {per_step:.2f} | {sec:.0f} | {3600 / sec:.2f} | {flops / sec / 1e9:.1f} |")
    if a.full_generation:
        full_generation(a)
    print(f"load average after: {load_average()}")
    return rows


if __name__ == "__main__":
    main()
