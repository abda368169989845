"""``plastix train one_shot_glyphs --method bptt``: meta-train the one-shot character network (or its
non-plastic baseline) through :mod:`plastix.trainer.runner`, export it, and evaluate a trained
``model.plx`` (``plastix evaluate``) on the held-out stand-in classes, on scikit-learn's digits
(zero-shot transfer) and on Lava."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plastix.ir import Graph
from plastix.ir import save as save_graph
from plastix.ir.examples import GLYPH_FEATURES
from plastix.ir.serialize import atomic_write_bytes
from plastix.tasks.glyphs import GlyphSet, load_digit_glyphs, load_glyph_standin
from plastix.tasks.one_shot_glyphs import GlyphProblems, OneShotGlyphConfig, one_shot_glyph_problems

from .glyphs import (CONFIGS, EVAL_BATCH, TASK, GlyphCNN, GlyphConfig, GlyphJob, accuracy, episode_inputs, evaluate,
                     glyph_episode, slot_scores, static_graph, tie_parameters)
from ..runner import RunOptions, config_preset, run

#: what ``plastix evaluate --data`` draws problems from: the stand-in's held-out test classes, its
#: training classes, or scikit-learn's digits (zero-shot transfer)
EVAL_DATA = ("test", "train", "digits")


def glyph_config(config: str, **overrides: Any) -> GlyphConfig:
    """A preset of :data:`plastix.trainer.experiments.glyphs.CONFIGS` with non-None ``overrides``."""
    return config_preset(CONFIGS, config, "config", **overrides)


def train_glyphs(variant: str = "plastic", config: str = "quick", out_dir: str | Path = "runs/glyphs", *,
                 resume: bool = False, seed: int = 0, iterations: int | None = None, batch: int | None = None,
                 checkpoint_every: int = 5, progress: bool = True, jit: bool = False,
                 final_problems: int | None = None, glyphs: GlyphSet | None = None, **overrides: Any) -> dict:
    """Meta-train ``variant`` (plastic | nonplastic) of the one-shot character network; writes the
    runner's checkpoint, metrics log, curve and ``best.plx`` (best test accuracy on the job's
    evaluation problems), then ``model.plx`` (the final model) and ``result.json``: test error on
    ``final_problems`` (default ``eval_problems``) seeded problems of the held-out stand-in classes and
    on scikit-learn's digits (zero-shot), against chance (80 % for 5-way). ``glyphs`` replaces the
    config's data set (tests)."""
    cfg = glyph_config(config, variant=variant, seed=seed, iterations=iterations, batch=batch, **overrides)
    job = GlyphJob(cfg, glyphs, jit=jit, metadata=dict(config=config, seed=seed))
    out = Path(out_dir)
    t0 = time.perf_counter()
    res = run(job, RunOptions(out_dir=out, total_steps=cfg.iterations, resume=resume, checkpoint_every=checkpoint_every,
                              progress=progress, plot_keys=("loss", "train_accuracy", "test_accuracy"),
                              postfix_key="test_accuracy", step_name="iteration",
                              desc=f"bptt {TASK}/{config}/{variant}", best_key="test_accuracy"))
    train_time = time.perf_counter() - t0
    model = res.state.model
    n = final_problems or cfg.eval_problems
    ev = evaluate(model, job.glyphs, split="test", n_problems=n, seed=GlyphJob.EVAL_SEED)
    digits = evaluate(model, load_digit_glyphs(), split="test", n_problems=n, seed=GlyphJob.EVAL_SEED)
    graph = job.model_graph(model)
    path = save_graph(graph.replace(metadata={**graph.metadata, "iterations": res.steps_done}), out / "model.plx")
    summary = {"task": TASK, "variant": variant, "config": config, "seed": seed, "iterations": res.steps_done,
               "batch": cfg.batch, "test_error": ev["error"], "test_loss": ev["loss"], "test_problems": n,
               "digits_error": digits["error"], "chance_error": 1.0 - 1.0 / cfg.n_way, "data": cfg.data,
               "wall_time_s": round(train_time, 1), "model": str(path), "resumed_from": res.resumed_from,
               "frontend": "CNN in metadata['frontend'] (torch; not an IR node): model.plx is the SNN, its input "
                           "'features' the CNN's output"}
    atomic_write_bytes(out / "result.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


# ---------------------------------------------------------------------------------------------
# evaluating an exported model


def is_glyph_model(graph: Graph) -> bool:
    """Whether ``graph`` is a trained one-shot character model (metadata written by :func:`train_glyphs`)."""
    meta = dict(graph.metadata or {})
    return meta.get("task") == TASK and "frontend" in meta


@dataclass
class TrainedGlyphModel:
    """A trained ``model.plx`` ready to run: its CNN (eval mode), the SNN compiled on torch (float64)
    with its static phase-2 form, and the task settings from its metadata."""

    graph: Graph
    cnn: GlyphCNN
    net: Any
    static: Any
    present_steps: int
    n_way: int

    @classmethod
    def of(cls, graph: Graph) -> "TrainedGlyphModel":
        from plastix.backends.torch import compile as compile_torch

        if not is_glyph_model(graph):
            raise ValueError("not a one-shot character model written by `plastix train one_shot_glyphs` "
                             "(metadata has no task 'one_shot_glyphs' with a CNN 'frontend')")
        meta = graph.metadata
        cnn = GlyphCNN.from_metadata(meta).double()
        net = compile_torch(graph, dtype=torch.float64)
        static = compile_torch(static_graph(graph), dtype=torch.float64)
        tie_parameters(static, net)
        return cls(graph, cnn, net, static, int(meta["present_steps"]), int(meta["n_way"]))

    def task(self, split: str) -> OneShotGlyphConfig:
        return OneShotGlyphConfig(present_steps=self.present_steps, n_way=self.n_way, split=split)

    def glyphs(self, data: str) -> tuple[GlyphSet, str]:
        """The data set and split of ``data`` (:data:`EVAL_DATA`): the stand-in the model was trained on
        (from its metadata), or the digits."""
        if data not in EVAL_DATA:
            raise ValueError(f"unknown data {data!r}; known: {', '.join(EVAL_DATA)}")
        if data == "digits":
            return load_digit_glyphs(), "test"
        meta = self.graph.metadata
        return load_glyph_standin(int(meta.get("data_seed", 0)), small=meta.get("data") == "glyph_standin_small"), data

    def scores(self, problems: GlyphProblems, *, split: bool = True) -> torch.Tensor:
        """Slot scores ``(B, n_way)`` on torch (float64); ``split=False`` runs the whole episode on the
        plastic graph (what Lava runs)."""
        plastic = bool(self.graph.plastic_projections)
        with torch.no_grad():
            return glyph_episode(self.cnn, self.net, self.static, problems, self.present_steps,
                                 split_at=self.present_steps + 1 if split and plastic else None)[0]

    def lava_readout(self, problems: GlyphProblems, *, timeout: float = 600.0, progress: bool = False) -> torch.Tensor:
        """The readout ``(T + lag, B)`` of every problem on Lava (floating point, one run per problem)."""
        from plastix.backends.lava import compile as compile_lava

        with torch.no_grad():
            images = problems.images.double()
            feats = self.cnn(images.flatten(0, 1)).view(*images.shape[:2], -1)
        inputs = episode_inputs(feats, problems, self.present_steps, self.graph.inputs)
        T, B = inputs[GLYPH_FEATURES].shape[:2]
        rows = []
        with compile_lava(self.graph, precision="float", timeout=timeout) as net:
            for b in _maybe_tqdm(range(B), progress):
                out = net.run({k: v[:, b].numpy() for k, v in inputs.items()}, T)
                rows.append(torch.as_tensor(np.asarray(out["readout"]), dtype=torch.float64).reshape(T))
        return torch.stack(rows, dim=1)


def _maybe_tqdm(it, progress: bool):
    if not progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc="lava", leave=False)


def evaluate_model(graph: Graph, *, data: str = "test", n_problems: int = 500, seed: int = GlyphJob.EVAL_SEED,
                   backend: str = "torch", progress: bool = False, timeout: float = 600.0) -> dict:
    """Error and accuracy of a trained ``model.plx`` on ``n_problems`` seeded problems (drawn in batches
    of :data:`EVAL_BATCH`, as the trainer's evaluation draws them: the same seed gives the same
    problems) of ``data``, on torch (float64) or Lava (floating point, one run per problem)."""
    if backend not in ("torch", "lava"):
        raise ValueError(f"unknown backend {backend!r}; known: torch, lava")
    m = TrainedGlyphModel.of(graph)
    glyphs, split = m.glyphs(data)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    hits, done = 0.0, 0
    while done < n_problems:
        n = min(EVAL_BATCH, n_problems - done)
        pr = one_shot_glyph_problems(n, glyphs, m.task(split), generator=g)
        scores = m.scores(pr) if backend == "torch" else slot_scores(m.lava_readout(pr, timeout=timeout,
                                                                                    progress=progress), pr)
        hits += float(accuracy(scores, pr.target)) * n
        done += n
    acc = hits / n_problems
    return {"task": TASK, "data": data, "dataset": glyphs.name, "source": glyphs.source, "accuracy": acc,
            "error": 1.0 - acc, "chance_error": 1.0 - 1.0 / m.n_way, "problems": n_problems, "seed": seed,
            "backend": backend, "variant": graph.metadata.get("variant"),
            "wall_time_s": round(time.perf_counter() - t0, 2)}


def compare_lava(graph: Graph, n_problems: int, *, data: str = "test", seed: int = GlyphJob.EVAL_SEED,
                 timeout: float = 600.0, progress: bool = False) -> dict:
    """The first ``n_problems`` seeded problems of ``data`` on torch (float64, the whole episode on the
    plastic graph, and split) and on Lava (floating point; the plastic projection host-emulated, see
    :func:`plastix.backends.lava.support`): the answers' agreement and the largest readout difference."""
    from plastix.backends.lava import support

    m = TrainedGlyphModel.of(graph)
    glyphs, split = m.glyphs(data)
    pr = one_shot_glyph_problems(n_problems, glyphs, m.task(split), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        images = pr.images.double()
        feats = m.cnn(images.flatten(0, 1)).view(*images.shape[:2], -1)
        full = m.net.run(episode_inputs(feats, pr, m.present_steps, m.net.inputs))[0]["readout"][:, 0, :, 0]
    lava = m.lava_readout(pr, timeout=timeout, progress=progress)
    s_torch, s_lava, s_split = slot_scores(full, pr), slot_scores(lava, pr), m.scores(pr)
    same = s_torch.argmax(-1) == s_lava.argmax(-1)
    return {"problems": n_problems, "data": data, "seed": seed,
            "accuracy_torch": float(accuracy(s_torch, pr.target)), "accuracy_lava": float(accuracy(s_lava, pr.target)),
            "same_answers": float(same.float().mean()),
            "same_answers_split": float((s_split.argmax(-1) == s_lava.argmax(-1)).float().mean()),
            "max_abs_readout_difference": float((full - lava).abs().max()),
            "lowering": support(graph, "float")["rules"]}
