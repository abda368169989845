"""``plastix train cue_tmaze --method bptt --variant V``: policy-gradient BPTT on the T-maze, export the model."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from plastix.ir import save as save_graph
from plastix.ir.serialize import atomic_write_bytes

from .pg import CONFIGS, STOP_LOSS, PGConfig, PGJob, evaluate, first_reaching, parse_variant
from ..runner import RunOptions, config_preset, run


def pg_config(config: str, **overrides) -> PGConfig:
    """A preset of :data:`plastix.trainer.experiments.pg.CONFIGS` with non-None ``overrides`` applied."""
    return config_preset(CONFIGS, config, "cue_tmaze config", **overrides)


def train_pg(variant: str = "ndp_oja", config: str = "quick", out_dir: str | Path = "runs/pg", *,
             resume: bool = False, seed: int = 0, iterations: int | None = None, batch: int | None = None,
             checkpoint_every: int = 10, progress: bool = True, **overrides) -> dict:
    """Train one T-maze variant; writes ``model.plx`` and ``result.json`` (plus the runner's
    checkpoint, ``metrics.jsonl`` and ``curve.png``) into ``out_dir``. ``result.json`` holds the
    first iteration whose training loss averaged over >= 100 episodes reached the paper's stopping
    loss (-0.97), or null."""
    variant = parse_variant(variant).value
    cfg = pg_config(config, variant=variant, seed=seed, iterations=iterations, batch=batch, **overrides)
    job = PGJob(cfg)
    out = Path(out_dir)
    t0 = time.perf_counter()
    res = run(job, RunOptions(out_dir=out, total_steps=cfg.iterations, resume=resume,
                              checkpoint_every=checkpoint_every, progress=progress,
                              plot_keys=("loss", "eval_accuracy", "eval_greedy_accuracy"), postfix_key="loss",
                              step_name="iteration", desc=f"pg cue_tmaze/{config}/{variant}"))
    model = res.state.model
    ev = evaluate(model, cfg.maze, cfg.eval_episodes, seed=PGJob.EVAL_SEED)
    window = math.ceil(100 / cfg.batch)
    losses = [r.get("loss") for r in res.records]
    reached = first_reaching(losses, window=window, threshold=STOP_LOSS)
    graph = model.to_graph()
    meta = dict(graph.metadata or {})
    meta.update(task="cue_tmaze", config=config, seed=seed, iterations=res.steps_done, trainer="bptt-pg")
    path = save_graph(graph.replace(metadata=meta), out / "model.plx")
    tail = [v for v in losses[-window:] if v is not None]
    summary = {"task": "cue_tmaze", "variant": variant, "config": config, "seed": seed,
               "iterations": res.steps_done, "batch": cfg.batch, "stop_loss": STOP_LOSS,
               "loss_window_iterations": window, "reached_stop_loss_at": reached,
               "final_loss_avg": sum(tail) / len(tail) if tail else None,
               "best_loss_avg": min((sum(losses[i - window + 1:i + 1]) / window for i in range(window - 1, len(losses))
                                     if None not in losses[i - window + 1:i + 1]), default=None),
               "eval_accuracy": ev["accuracy"], "eval_greedy_accuracy": ev["greedy_accuracy"],
               "eval_episodes": cfg.eval_episodes, "wall_time_s": time.perf_counter() - t0, "model": str(path),
               "resumed_from": res.resumed_from}
    atomic_write_bytes(out / "result.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary
