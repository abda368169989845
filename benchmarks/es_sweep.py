"""One reduced-budget ES sweep over the ENU paper's tasks: every model, the same budget.

T-maze tasks (``--tasks tmaze double_tmaze --models enu gru lstm nfenu sharedenu --config paper``)
evolve networks of cells (:mod:`plastix.trainer.experiments.enu_net`) with the paper's ES settings (sigma 0.01,
lr 1, momentum 0.9), 400-step episodes and 8 envs; the paper's values are Table 1 / Extended Data
Table 1 (30,000 generations of 1,024 offspring).

For each task (``iaf``, ``stdp``, ``complex_stdp``) and model (``enu``, ``gru``, ``lstm``,
``nfenu``) this calls :func:`plastix.trainer.experiments.es_run.train_es` with the task's ``quick`` ES settings
(sigma 0.1 for IAF, 0.02 otherwise; lr 1, momentum 0.9, paper rank shaping) and the overrides
``generations``, ``population``, ``num_envs``, one run after another. Then the final search mean of
every run is scored on one fixed evaluation set: ``--eval-envs`` episodes drawn with
``--eval-seed`` (the same episodes for every model of a task). Prints a markdown table beside the
paper's Table 1 / Extended Data Fig. 3 values.

Scales differ from the paper (see ``plastix.tasks.mimic``): our IAF fitness of a silent model is
about -800 (eq. 3 as we read it, spike threshold 0), so IAF numbers are not comparable to Table 1
in absolute terms; STDP uses eq. 5 over 100 steps as the paper does, but with our open choices
(w0 = 1, spike window [5, 45)). The paper trained with population 1024 for 3,000-10,000
generations; this budget is far smaller, so only the ordering of models is meaningful.

    OMP_NUM_THREADS=1 nice -n 15 python benchmarks/es_sweep.py --out /tmp/es_sweep \\
        --generations 250 --population 256 --num-envs 8
    python benchmarks/es_sweep.py --out /tmp/es_sweep --table-only   # table of finished runs

Finished runs (``result.json`` present with the requested generations) are not re-run; an
interrupted run resumes from its checkpoint.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from plastix.trainer.experiments.es_run import mimic_fitness, train_es, trivial_fitness

TASKS = ("iaf", "stdp", "complex_stdp")
MODELS = ("enu", "gru", "lstm", "nfenu")
# Bertens & Lee 2020: Table 1 (IAF, STDP) and Extended Data Fig. 3 (complex STDP: ENU vs GRU only)
PAPER = {
    "iaf": {"enu": -18.22, "gru": -47.73, "lstm": -43.54, "nfenu": -32.34},
    "stdp": {"enu": -8.42, "gru": -96.34, "lstm": -41.52, "nfenu": -60.55},
    "complex_stdp": {"enu": -19.55, "gru": -108.31},
    "tmaze": {"enu": 36.65, "gru": 26.16, "lstm": 26.33, "nfenu": 31.18, "sharedenu": 21.37},
    "double_tmaze": {"enu": 18.79, "gru": 16.91, "lstm": 16.42, "nfenu": 18.39, "sharedenu": 12.35},
}


def final_fitness(task: str, model: str, mean: torch.Tensor, *, eval_envs: int, eval_seed: int,
                  config: str = "quick") -> float:
    """Fitness of one genome (the search mean) on ``eval_envs`` episodes drawn with ``eval_seed``."""
    return mimic_fitness(task, model, mean, episodes=eval_envs, seed=eval_seed, config=config)


def baseline_fitness(task: str, *, eval_envs: int, eval_seed: int) -> float:
    """IAF silent, (complex) STDP copying its input, on the same evaluation episodes."""
    return trivial_fitness(task, episodes=eval_envs, seed=eval_seed)


def run_sweep(out: Path, *, generations: int, population: int, num_envs: int, seed: int, eval_envs: int,
              eval_seed: int, tasks=TASKS, models=MODELS, table_only: bool = False, progress: bool = False,
              config: str = "quick", sigma: float | None = None) -> dict:
    results: dict = {}
    for task in tasks:
        for model in models:
            d = out / f"{task}-{model}"
            res_file = d / "result.json"
            done = res_file.exists() and json.loads(res_file.read_text()).get("generations") == generations
            if not done and table_only:
                continue
            if not done:
                t0 = time.perf_counter()
                train_es(task, model, config, d, resume=(d / "checkpoint.pt").exists(), seed=seed,
                         generations=generations, population=population, num_envs=num_envs,
                         checkpoint_every=5, progress=progress, sigma=sigma)
                print(f"{task}/{model}: trained in {time.perf_counter() - t0:.0f} s", flush=True)
            summary = json.loads(res_file.read_text())
            ck = torch.load(d / "checkpoint.pt", weights_only=True)
            mean = ck["state"]["es"]["mean"]
            summary["final_fitness"] = final_fitness(task, model, mean, eval_envs=eval_envs, eval_seed=eval_seed,
                                                     config=config)
            summary["train_wall_s"] = sum(json.loads(line)["wall_time"] for line in (d / "metrics.jsonl").open())
            results[(task, model)] = summary
            print(f"{task}/{model}: final fitness {summary['final_fitness']:.2f}", flush=True)
    return results


def table(results: dict, *, generations: int, population: int, num_envs: int, seed: int, eval_envs: int,
          eval_seed: int, config: str = "quick") -> str:
    lines = [f"Budget per run: {generations} generations, population {population}, {num_envs} envs per "
             f"evaluation, train seed {seed}; final fitness = the search mean on {eval_envs} fixed episodes "
             f"(seed {eval_seed}), task config {config!r}. Paper: population 1024, 3,000-10,000 generations "
             f"(T-mazes 30,000).", "",
             "| task | model | final fitness (ours) | best offspring fitness during run | train wall s | paper |",
             "|---|---|---:|---:|---:|---:|"]
    for (task, model), s in results.items():
        if (task, model) == next((k for k in results if k[0] == task), None) and task in ("iaf", "stdp", "complex_stdp"):
            b = baseline_fitness(task, eval_envs=eval_envs, eval_seed=eval_seed)
            what = "silent (all 0)" if task == "iaf" else "copy input (no weight change)"
            lines.append(f"| {task} | baseline: {what} | {b:.2f} | | | |")
        paper = PAPER.get(task, {}).get(model)
        lines.append(f"| {task} | {model} | {s['final_fitness']:.2f} | {s['best_fitness']:.2f} | "
                     f"{s['train_wall_s']:.0f} | {'' if paper is None else f'{paper:.2f}'} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/es_sweep")
    ap.add_argument("--generations", type=int, default=250)
    ap.add_argument("--population", type=int, default=256)
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-envs", type=int, default=64)
    ap.add_argument("--eval-seed", type=int, default=12345)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--config", default="quick", help="quick | paper: the ES and task config of every run")
    ap.add_argument("--sigma", type=float, default=None, help="override the config's ES noise std")
    ap.add_argument("--table-only", action="store_true", help="only tabulate finished runs")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    kw = dict(generations=a.generations, population=a.population, num_envs=a.num_envs, seed=a.seed,
              eval_envs=a.eval_envs, eval_seed=a.eval_seed)
    t0 = time.perf_counter()
    results = run_sweep(Path(a.out), tasks=a.tasks, models=a.models, table_only=a.table_only, config=a.config,
                        sigma=a.sigma, **kw)
    print(table(results, config=a.config, **kw) + (f"\nES sigma overridden: {a.sigma}" if a.sigma else ""))
    print(f"\nsweep wall time (this invocation): {time.perf_counter() - t0:.0f} s")
    return results


if __name__ == "__main__":
    main()
