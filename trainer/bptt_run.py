"""``plastix train one_shot_cue --method bptt``: run the BPTT meta-learning loop and export the model."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from plastix.ir import save as save_graph
from plastix.ir.serialize import atomic_write_bytes

from .bptt import CONFIGS, BPTTConfig, BPTTJob, evaluate
from .runner import RunOptions, run


def bptt_config(config: str, **overrides) -> BPTTConfig:
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; known: {', '.join(CONFIGS)}")
    return dataclasses.replace(CONFIGS[config], **{k: v for k, v in overrides.items() if v is not None})


def train_bptt(task: str = "one_shot_cue", config: str = "quick", out_dir: str | Path = "runs/bptt", *,
               resume: bool = False, seed: int = 0, iterations: int | None = None, batch: int | None = None,
               checkpoint_every: int = 5, progress: bool = True, **overrides) -> dict:
    """Meta-train the plastic cue-association network; writes ``model.plx`` and ``result.json``
    (plus the runner's checkpoint, metrics log and learning curve) into ``out_dir``. ``overrides``
    replace further :class:`BPTTConfig` fields (e.g. ``n_hidden`` for tests)."""
    cfg = bptt_config(config, task=task, seed=seed, iterations=iterations, batch=batch, **overrides)
    job = BPTTJob(cfg)
    out = Path(out_dir)
    t0 = time.perf_counter()
    res = run(job, RunOptions(out_dir=out, total_steps=cfg.iterations, resume=resume,
                              checkpoint_every=checkpoint_every, progress=progress,
                              plot_keys=("loss", "train_accuracy", "test_accuracy"), postfix_key="loss",
                              step_name="iteration", desc=f"bptt {task}/{config}"))
    model = res.state.model
    ev = evaluate(model, cfg.eval_problems, n_cues=cfg.n_cues, seed=BPTTJob.EVAL_SEED)
    graph = model.to_graph()
    meta = dict(graph.metadata or {})
    meta.update(task=task, config=config, seed=seed, iterations=res.steps_done, trainer="bptt", n_cues=cfg.n_cues,
                readout=cfg.readout, timing=",".join(map(str, cfg.timing)), permute=cfg.permute)
    path = save_graph(graph.replace(metadata=meta), out / "model.plx")
    summary = {"task": task, "config": config, "seed": seed, "iterations": res.steps_done,
               "test_accuracy": ev["accuracy"], "test_loss": ev["loss"], "test_problems": cfg.eval_problems,
               "n_cues": cfg.n_cues, "wall_time_s": time.perf_counter() - t0, "model": str(path),
               "resumed_from": res.resumed_from}
    atomic_write_bytes(out / "result.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary
