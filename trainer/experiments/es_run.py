"""ES runs on the ENU-paper tasks: configs, the run job and :func:`train_es` (called by the CLI).

``train_es("iaf", "enu", "quick", "runs/iaf-enu", resume=False, seed=0)`` evolves the model with
OpenAI-ES through the shared loop of :mod:`plastix.trainer.runner` and writes into ``out_dir``:
``checkpoint.pt``, ``metrics.jsonl``, ``curve.png``, ``config.json``, and at the end
``model.plx`` (the IR graph of the final search mean) and ``result.json``.

Every generation: ``ask`` (antithetic noise from the run's generator), one task seed drawn from
the same generator, one batched rollout of the P offspring plus the current mean (so
``center_fitness`` is measured on the same envs), ``tell``. The generator's state is part of the
checkpointed loop state, so a resumed run equals an uninterrupted one bit for bit.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from plastix.ir import load as load_graph, save as save_graph
from plastix.ir.atomic import write_bytes as atomic_write_bytes
from plastix.tasks.registry import get_entry, make_task, task_config
from plastix.tasks.tmaze import ACTION_LETTERS, SENSOR_LETTERS

from ..algorithms.base import ESParams, ESState, Optimizer, Shaping
from .enu_net import NetworkSpec, genome_from_graph
from ..algorithms.es_eval import evaluate_population, rollout
from ..algorithms.models import ModelKind, ModelSpec
from ..algorithms.openai_es import OpenAIES
from ..runner import RunOptions, run


@dataclass(frozen=True)
class ESRunConfig:
    """ES hyper-parameters of a run (``paper``: Bertens & Lee 2020, Methods)."""

    population: int = 1024
    generations: int = 3000
    sigma: float = 0.01
    lr: float = 1.0
    momentum: float = 0.9
    optimizer: Optimizer = Optimizer.SGD
    weight_decay: float = 0.0
    shaping: Shaping = Shaping.PAPER_RANK
    rank_alpha: float = 5.0
    antithetic: bool = True
    checkpoint_every: int = 10
    step: str = "offspring_mean"  # or "paper_literal": G = sum F_i eps_i, classic momentum (ESParams doc)

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizer", Optimizer(self.optimizer))
        object.__setattr__(self, "shaping", Shaping(self.shaping))
        if self.generations < 0:
            raise ValueError(f"ESRunConfig.generations must be >= 0, got {self.generations}")
        if self.step not in ES_STEPS:
            raise ValueError(f"ESRunConfig.step must be one of {ES_STEPS}, got {self.step!r}")

    def params(self) -> ESParams:
        literal = self.step == "paper_literal"
        return ESParams(sigma=self.sigma, lr=self.lr, optimizer=self.optimizer, momentum=self.momentum,
                        weight_decay=self.weight_decay, rank_alpha=self.rank_alpha, noise_units=literal,
                        momentum_form="classic" if literal else "damped")


#: readings of the paper's ES step (Algorithm 1): to the rank-weighted offspring mean with damped
#: momentum (default), or the text literally (G = sum_i F_i eps_i, classic momentum)
ES_STEPS = ("offspring_mean", "paper_literal")


_PAPER = ESRunConfig()
# quick: small enough for a demo on two shared CPU cores (about a minute)
_QUICK = ESRunConfig(population=64, generations=100, sigma=0.02, lr=1.0, momentum=0.9, checkpoint_every=10)
ES_CONFIGS: dict[str, dict[str, ESRunConfig]] = {
    # sigma 0.1 for the quick IAF run: with 64 offspring and sigma 0.02 the search settles on the silent
    # model (all outputs 0, fitness ~ -800), a plateau of eq. 3 (see docs in tasks/mimic.py)
    # paper_budget: the paper's 1,024 x 3,000 with the quick preset's sigma 0.1: at the paper's 0.01 the ENU's
    # search mean fell onto that plateau within 20 generations and every offspring then scored the same
    # (seed 0: fitness std over the 1,024 offspring, median 0.07 from generation 30 to 503; docs/results.md)
    "iaf": {"quick": replace(_QUICK, sigma=0.1), "paper": _PAPER,              # Fig. 3: 3,000 generations
            "paper_budget": replace(_PAPER, sigma=0.1)},
    "stdp": {"quick": _QUICK, "paper": replace(_PAPER, generations=10_000)},   # Fig. 3: 10,000 generations
    "complex_stdp": {"quick": _QUICK, "paper": _PAPER},                         # Ext. Data Fig. 3: 3,000
    # T-maze: 30,000 generations (Fig. 4); quick: 32 offspring, a few minutes on two shared cores
    # reduced: a budget these 2-core machines run in ~1-2 h (64 offspring, sigma 0.05: with sigma 0.01
    # the offspring of a first generation act alike and all score ~0); curriculum stages on the same
    # budget (tasks/registry.py): navigate (no shuffle, no swaps) -> fixed_io (no shuffle) -> shuffle_inputs -> reduced,
    # each starting from the last stage's model.plx (--init)
    "tmaze": {"quick": replace(_QUICK, population=32, generations=30), "paper": replace(_PAPER, generations=30_000),
              **{name: replace(_PAPER, population=64, sigma=0.05, generations=300)
                 for name in ("reduced", "fixed_io", "navigate", "shuffle_inputs", "navigate_shuffle_outputs",
                              "navigate_shuffle_outputs_bonus")},
              # fine-tuning a trained network on the paper's task: the paper's sigma 0.01 (at 0.05 the offspring
              # of the fixed_io stage's model score ~3.6 against its ~13, so every step leads down) and 32 episodes
              "reduced_e32": replace(_PAPER, population=64, sigma=0.01, generations=300),
              # fine-tuning on every assignment once (stratified): without the assignment draw's noise the offspring's
              # ranking repeats across episode seeds (Spearman 0.98; 0.93 with 32 random-assignment episodes), but the
              # fixed_io model is a sharp optimum (its offspring at sigma 0.01 / 0.005 / 0.002 score 7.0 / 7.8 / 10.4
              # against its 14.1), hence sigma 0.002
              "reduced_s36": replace(_PAPER, population=64, sigma=0.002, generations=300),
              # from the fixed_io model, whose forward motor is fixed by its wiring (docs/results.md, by assignment),
              # or from an imitated network with fewer motor maps to tell apart (m2 / m3, tasks/registry.py),
              # or fewer input orders (colour_swap*), or on the paper's task up to the ring symmetry (reduced_s12)
              **{name: replace(_PAPER, population=64, sigma=0.005, generations=300)
                 for name in ("shuffle_outputs", "shuffle_outputs_m2", "shuffle_outputs_m3", "colour_swap",
                              "colour_swap_m2", "colour_swap_m3", "reduced_s12")}},
    "double_tmaze": {"quick": replace(_QUICK, population=32, generations=30),
                     "paper": replace(_PAPER, generations=30_000)},
}
# tasks whose agent is a network of cells (trainer.experiments.enu_net) rather than one cell; the registry
# names them again (_ES_NETWORK_TASKS: it may not import this module at start-up)
NETWORK_TASKS = frozenset({"tmaze", "double_tmaze"})


def model_for_task(task: str, model: str) -> ModelSpec | NetworkSpec:
    """The genome layout of ``model`` on ``task``: a network of cells for the T-mazes, else one cell."""
    return NetworkSpec(ModelKind(model)) if task in NETWORK_TASKS else ModelSpec(ModelKind(model))


def es_config(task: str, config: str = "quick", **overrides: Any) -> ESRunConfig:
    get_entry(task)
    try:
        cfg = ES_CONFIGS[task][config]
    except KeyError:
        raise KeyError(f"no ES config {config!r} for task {task!r}; known tasks {list(ES_CONFIGS.keys())}, "
                       f"configs {list(ES_CONFIGS.get(task, {}).keys())}") from None
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(cfg, **overrides) if overrides else cfg


@dataclass(frozen=True)
class ESRunState:
    """Loop state: the ES state plus the run generator's state (a uint8 tensor)."""

    es: ESState
    rng: torch.Tensor


class ESJob:
    """A :class:`plastix.trainer.runner.Job` evolving one model on one task."""

    def __init__(self, task: str, model: str, config: str = "quick", *, seed: int = 0,
                 es: ESRunConfig | None = None, task_overrides: dict | None = None, evaluator=None,
                 init: str | Path | None = None) -> None:
        """``evaluator(spec, population, seed) -> fitness``: default the single-process batched
        rollout; :class:`plastix.trainer.algorithms.es_ray.RayEvaluator` spreads it over Ray.
        ``init``: a ``model.plx`` of the same model (e.g. an earlier curriculum stage) whose genome
        is the initial search mean instead of a random one."""
        self.task_name, self.config_name, self.seed = task, config, int(seed)
        self.init = None if init is None else Path(init)
        try:
            self.spec = model_for_task(task, model)
        except ValueError:
            raise ValueError(f"unknown model {model!r}; known: {[k.value for k in ModelKind]}") from None
        self.es_cfg = es or es_config(task, config)
        self.task_cfg = task_config(task, config, **(task_overrides or {}))
        self.strategy = OpenAIES(self.es_cfg.population, self.spec.num_params, antithetic=self.es_cfg.antithetic,
                                 shaping=self.es_cfg.shaping)
        self.params = self.es_cfg.params()
        # P offspring + the current mean, evaluated together
        self.task = make_task(task, self.task_cfg, population=self.es_cfg.population + 1)
        self.evaluator = evaluator or self._local

    def _local(self, spec, population: torch.Tensor, seed: int) -> torch.Tensor:
        return evaluate_population(spec, population, self.task, seed=seed)

    def config(self) -> dict:
        """What must match to resume (the run length and checkpoint period may change)."""
        es = {k: v for k, v in asdict(self.es_cfg).items() if k not in ("generations", "checkpoint_every")}
        cfg = {"task": self.task_name, "model": self.spec.kind.value, "config": self.config_name, "seed": self.seed,
               "num_params": self.spec.num_params, "es": _jsonable(es),
               "task_config": _jsonable(asdict(self.task_cfg))}
        if self.init is not None:
            cfg["init"] = str(self.init)
        return cfg

    def config_defaults(self) -> dict:
        """The default of every nested setting (JSON form), so that a checkpoint written before a task or ES
        setting existed resumes when it is at its default (:func:`plastix.trainer.runner.config_changes`)."""
        return {"es": _jsonable(asdict(ESRunConfig())), "task_config": _jsonable(asdict(type(self.task_cfg)()))}

    def init_genome(self, generator: torch.Generator) -> torch.Tensor:
        """The initial search mean: random (the spec's init), or the genome of ``init``."""
        mean = self.spec.init_genome(generator)
        if self.init is None:
            return mean
        if not isinstance(self.spec, NetworkSpec):
            raise ValueError(f"init: only the T-maze networks start from a model file, not task {self.task_name!r}")
        return genome_from_graph(self.spec, load_graph(self.init))

    def init_state(self) -> ESRunState:
        g = torch.Generator().manual_seed(self.seed)
        mean = self.init_genome(g)
        es = self.strategy.init(mean, self.params, generator=g)
        return ESRunState(es=es, rng=g.get_state())

    def step(self, state: ESRunState, index: int) -> tuple[ESRunState, dict]:
        g = torch.Generator()
        g.set_state(state.rng)
        pop, es = self.strategy.ask(state.es, self.params, generator=g)
        task_seed = int(torch.randint(0, 2**62, (1,), generator=g))
        fit = self.evaluator(self.spec, torch.cat([pop, es.mean[None]]), task_seed)
        es, metrics = self.strategy.tell(pop, fit[:-1], es, self.params)
        metrics["center_fitness"] = float(fit[-1])
        return ESRunState(es=es, rng=g.get_state()), metrics

    def state_dict(self, state: ESRunState) -> dict:
        return {"es": {k: getattr(state.es, k) for k in ESState.__dataclass_fields__}, "rng": state.rng}

    def load_state_dict(self, data: dict) -> ESRunState:
        return ESRunState(es=ESState(**data["es"]), rng=data["rng"])


def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if hasattr(d, "value") and not isinstance(d, (int, float, bool, str)):
        return d.value
    return d


def train_es(task: str, model: str = "enu", config: str = "quick", out_dir: str | Path = "runs/es",
             resume: bool = False, seed: int = 0, *, generations: int | None = None,
             population: int | None = None, num_envs: int | None = None, sigma: float | None = None,
             lr: float | None = None, optimizer: str | None = None, shaping: str | None = None,
             step: str | None = None, checkpoint_every: int | None = None, progress: bool = True, ray: bool = False,
             ray_address: str | None = None, ray_chunks: int | None = None, init: str | Path | None = None) -> dict:
    """Evolve ``model`` (enu | nfenu | gru | lstm | sharedenu) on ``task`` (iaf | stdp | complex_stdp |
    tmaze | double_tmaze) with the ``config`` ("quick" | "paper") settings; keyword overrides replace
    config values. ``ray``: evaluate the population on a local Ray instance, ``ray_address``: on that
    Ray cluster (:mod:`plastix.trainer.algorithms.es_ray`). ``init``: start the search mean from this
    ``model.plx`` (T-maze networks; e.g. a ``fixed_io`` curriculum stage). Tasks with a renderer also get ``episode.gif`` and
    ``episode_reward.png`` of the final mean. Returns the summary also written to ``out_dir/result.json``."""
    es_cfg = es_config(task, config, generations=generations, population=population, sigma=sigma, lr=lr,
                       optimizer=optimizer, shaping=shaping, step=step, checkpoint_every=checkpoint_every)
    overrides = {"num_envs": num_envs} if num_envs is not None else {}
    evaluator = None
    if ray or ray_address:
        from ..algorithms.es_ray import RayEvaluator
        evaluator = RayEvaluator(task, task_config(task, config, **overrides), address=ray_address,
                                 chunks=ray_chunks)
    job = ESJob(task, model, config, seed=seed, es=es_cfg, task_overrides=overrides, evaluator=evaluator, init=init)
    out = Path(out_dir)
    t0 = time.perf_counter()
    try:
        res = run(job, RunOptions(out_dir=out, total_steps=es_cfg.generations, resume=resume,
                                  checkpoint_every=es_cfg.checkpoint_every, progress=progress,
                                  plot_keys=("fitness_mean", "fitness_max", "center_fitness"),
                                  desc=f"es {task}/{model}/{config}"))
    finally:
        if evaluator is not None:
            evaluator.shutdown()
    es_state: ESState = res.state.es
    graph_path = save_graph(job.spec.to_graph(es_state.mean.numpy(), metadata={
        "task": task, "config": config, "seed": seed, "generations": es_state.generation,
        "trainer": "openai_es"}), out / "model.plx")
    last = res.records[-1] if res.records else {}
    summary = {"task": task, "model": job.spec.kind.value, "config": config, "seed": seed,
               "generations": es_state.generation, "num_params": job.spec.num_params,
               "population": es_cfg.population, "es_step": es_cfg.step, "num_envs": job.task_cfg.num_envs,
               "best_fitness": es_state.best_fitness, "last_center_fitness": last.get("center_fitness"),
               "last_fitness_mean": last.get("fitness_mean"), "resumed_from": res.resumed_from,
               "wall_time_s": time.perf_counter() - t0, "model_file": str(graph_path)}
    render = get_entry(task).render
    if render is not None:
        rec = rollout(job.spec, es_state.mean[None], make_task(task, job.task_cfg, population=1), seed=seed,
                      record=True)
        summary["renders"] = [str(p) for p in render(rec["infos"], job.task_cfg, out)]
    atomic_write_bytes(out / "result.json", (json.dumps(summary, indent=1) + "\n").encode())
    return summary


MIMIC_TASKS = ("iaf", "stdp", "complex_stdp")
EVAL_SEED = 12345  # the evaluation episodes of the mimic tables in docs/results.md (benchmarks/es_sweep.py)


def mimic_fitness(task: str, model: str, genome: torch.Tensor, *, episodes: int, seed: int,
                  config: str = "quick") -> float:
    """Fitness (eqs 3 / 5: mean episode return) of one genome on ``episodes`` mimic episodes drawn with ``seed``."""
    spec = model_for_task(task, model)
    env = make_task(task, task_config(task, config, num_envs=episodes), population=1)
    return float(evaluate_population(spec, genome[None].float(), env, seed=seed)[0])


@torch.no_grad()
def trivial_fitness(task: str, *, episodes: int, seed: int, config: str = "quick") -> float:
    """A trivial output on the same episodes: IAF silent (all outputs 0); (complex) STDP copies its input
    (``a_t = x_t``, the reference with no weight change, since ``w0 = 1``)."""
    env = make_task(task, task_config(task, config, num_envs=episodes), population=1)
    obs, _ = env.reset(seed=seed)
    ret = torch.zeros(1, episodes, dtype=torch.float64)
    for _ in range(env.max_episode_steps):
        action = torch.zeros(1, episodes, 1) if task == "iaf" else obs[..., :1]
        obs, reward, *_ = env.step(action)
        ret += reward.to(torch.float64)
    return float(ret.mean())


def evaluate_mimic(graph, *, episodes: int = 64, seed: int = EVAL_SEED, config: str | None = None) -> dict:
    """A trained mimic-task cell (``model.plx`` of an ES run on iaf / stdp / complex_stdp) on ``episodes`` fresh
    episodes of its task (preset ``config``, default the model's own), with the trivial output's fitness on the
    same episodes (IAF: silent; STDP: copy the input). Fitness: closer to 0 is better."""
    meta = graph.metadata or {}
    task = meta.get("task")
    if task not in MIMIC_TASKS:
        raise ValueError(f"not a mimic-task model: the model's task is {task!r} (needs one of {list(MIMIC_TASKS)})")
    model = str(meta.get("model", ""))
    spec = model_for_task(task, model)
    unit = next(p for p in graph.populations if getattr(p, "cell", None) is not None)
    genome = spec.genome_of(unit.cell)
    config = config or meta.get("config") or "quick"
    return {"task": task, "model": model, "config": config, "episodes": episodes, "seed": seed,
            "fitness": mimic_fitness(task, model, genome, episodes=episodes, seed=seed, config=config),
            "trivial": "silent" if task == "iaf" else "copy the input",
            "trivial_fitness": trivial_fitness(task, episodes=episodes, seed=seed, config=config)}


def evaluate_tmaze(graph, *, config: str | None = None, episodes: int | None = None, seed: int = 1,
                   render_dir: str | Path | None = None, by_assignment: bool = False,
                   plot: str | Path | None = None) -> dict:
    """A trained T-maze network (``model.plx`` of an ES run) on ``episodes`` (default 64) fresh episodes (one
    per env) of the task preset ``config`` (default: the one it was trained on): mean and std of the
    episode return (the paper's fitness, eq. 6; at most ~80 per 400-step T-maze episode), foods and
    poisons eaten per episode, and the fraction of episodes that ran to the end (the others starved).
    An agent that never acts scores 0. ``render_dir``: also ``episode.gif`` and ``episode_reward.png``
    of the first episode there. ``by_assignment``: the episodes cover every input order / motor assignment
    of the preset's shuffle equally often (``TMazeConfig.stratify``, as stratified presets always do; ``episodes``
    a multiple of their number, 36 on the paper's task; default the first multiple >= 64), and ``"by_assignment"`` lists the mean return of each, best first: a network
    that learns within an episode does well on all; one that uses a fixed wiring only on some. ``plot``
    (with ``by_assignment``): draw them as a heat map, input order x motor assignment, into this PNG."""
    if plot is not None and not by_assignment:
        raise ValueError("plot: draws the by-assignment returns (by_assignment=True)")
    meta = graph.metadata or {}
    task = meta.get("task")
    if task not in NETWORK_TASKS:
        raise ValueError(f"not a T-maze network: the model's task is {task!r} (needs one of {sorted(NETWORK_TASKS)})")
    spec = model_for_task(task, str(meta.get("model", "")).removesuffix("_network"))
    genome = genome_from_graph(spec, graph)
    config = config or meta.get("config") or "paper"
    preset = task_config(task, config)
    stratify = by_assignment or preset.stratify        # a stratified preset (reduced_s36) stays stratified
    if episodes is None:
        k = preset.num_assignments if stratify else 1
        episodes = -(-64 // k) * k
    cfg = replace(preset, num_envs=episodes, stratify=stratify)
    rec = rollout(spec, genome[None], make_task(task, cfg, population=1), seed=seed, record=True)
    infos = rec["infos"]
    t = infos["t"][:, 0]                                     # (calls, E); falls back to 0 on an autoreset
    restarted = torch.zeros_like(t, dtype=torch.bool)
    restarted[1:] = t[1:] <= t[:-1]
    first = torch.cumsum(restarted.long(), dim=0) == 0      # the calls of each env's first episode
    reward = torch.where(first, infos["reward"][:, 0], torch.zeros_like(infos["reward"][:, 0]))
    starved = ((infos["energy"][:, 0] <= 0) & first).any(dim=0)
    returns = rec["returns"][0]
    out = {"task": task, "config": config, "model": spec.kind.value, "episodes": episodes, "seed": seed,
           "mean_return": float(returns.mean()), "std_return": float(returns.std()) if episodes > 1 else 0.0,
           "min_return": float(returns.min()), "max_return": float(returns.max()),
           "foods_per_episode": float((reward > 0).sum(0).double().mean()),
           "poisons_per_episode": float((reward < 0).sum(0).double().mean()),
           "survived_fraction": float((~starved).double().mean())}
    if by_assignment:
        K = cfg.num_assignments
        per = returns.reshape(-1, K).mean(dim=0)                 # env e has assignment e mod K
        perm_in, perm_out = cfg.assignment(torch.arange(K))
        rows = [{"inputs": "".join(SENSOR_LETTERS[int(i)] for i in perm_in[k]),
                 "outputs": "".join(ACTION_LETTERS[int(j)] for j in perm_out[k]), "mean_return": float(per[k])}
                for k in range(K)]
        out["by_assignment"] = sorted(rows, key=lambda r: -r["mean_return"])
        if plot is not None:
            from plastix.tasks.tmaze_render import render_assignment_map

            title = f"{spec.kind.value} network, {task} ({config}): {episodes // K} episodes per assignment (seed {seed})"
            out["plot"] = str(render_assignment_map(out["by_assignment"], plot, title=title))
    if render_dir is not None:
        out["renders"] = [str(p) for p in get_entry(task).render(infos, cfg, Path(render_dir))]
    return out
