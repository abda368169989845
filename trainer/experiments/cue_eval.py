"""Evaluate a trained one-shot cue-association model (``plastix evaluate``) on either backend.

The task settings (cue timing, readout window, permutation) come from the model's metadata, as
:func:`plastix.trainer.experiments.bptt_run.train_bptt` writes them; the cue count ``M`` can be changed (the
paper's M sweep, Meta-SpikePropamine Fig. 4). Problems are drawn in seeded batches of
:data:`EVAL_BATCH`, exactly as the trainer's own evaluation draws them, so the
same seed gives the same problems on every backend. Accuracy counts ties as wrong.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from plastix.ir import Graph
from plastix.tasks.cue_association import CueProblems, OneShotCueConfig, one_shot_cue_problems

#: problems per evaluation batch (the trainer's evaluation draws its problems in batches of this size)
EVAL_BATCH = 128


def accuracy(activity: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of problems whose most active output is the label (ties count as wrong)."""
    top = activity.max(-1, keepdim=True).values
    unique = (activity == top).sum(-1) == 1
    return ((activity.argmax(-1) == labels) & unique).float().mean()


BACKENDS = ("torch", "lava")
PRECISIONS = ("float", "fixed")


@dataclass(frozen=True)
class CueSetting:
    """The task a model was trained on (from its metadata) and its readout window."""

    task: OneShotCueConfig
    readout: str  # "trial" | "decision"

    @classmethod
    def of(cls, graph: Graph, n_cues: int | None = None) -> "CueSetting":
        meta = dict(graph.metadata or {})
        if meta.get("trainer") not in (None, "bptt") or ("n_cues" not in meta and n_cues is None):
            raise ValueError("not a one-shot cue model written by `plastix train one_shot_cue` "
                             "(metadata has no 'n_cues'); pass the cue count explicitly")
        cue, rest, delay, decision = (int(t) for t in str(meta.get("timing", "25,30,50,25")).split(","))
        task = OneShotCueConfig(n_cues=int(n_cues or meta["n_cues"]), cue_steps=cue, rest_steps=rest,
                                delay_steps=delay, decision_steps=decision, permute=bool(meta.get("permute", True)))
        return cls(task, str(meta.get("readout", "decision")))

    def window(self, pr: CueProblems) -> torch.Tensor:
        return pr.test if self.readout == "trial" else pr.decision


def problem_batches(setting: CueSetting, n_problems: int, seed: int,
                    batch: int = EVAL_BATCH) -> Iterator[tuple[CueProblems, int]]:
    """``(problems, n_used)`` batches: the seeded problems :func:`plastix.trainer.experiments.bptt.evaluate` uses."""
    if n_problems < 1:
        raise ValueError(f"n_problems must be >= 1, got {n_problems}")
    g = torch.Generator().manual_seed(seed)
    batch = min(batch, n_problems)
    done = 0
    while done < n_problems:
        n = min(batch, n_problems - done)
        yield one_shot_cue_problems(batch, setting.task, generator=g), n
        done += n


def run_torch(graph: Graph, pr: CueProblems, *, precision: str = "float",
              freeze_test: bool = False) -> tuple[dict[str, torch.Tensor], object]:
    """Every output of ``graph`` for a batch of problems on the torch backend (float64 in float,
    Lava's integers in fixed point): name -> ``(T, B, size)``, and the final network state.
    ``freeze_test``: every modulator silenced (M = 0) from the test trial's first step, so the test
    trial runs on the synapses the training trials wrote (float only)."""
    from plastix.backends.torch import compile as compile_torch

    dtype = torch.float64
    net = compile_torch(graph, dtype=dtype, precision=precision)
    x = {"cues": pr.cues.to(dtype), "learning_signal": pr.signal.to(dtype)}
    if freeze_test and precision != "float":
        raise ValueError("freeze_test runs in float precision only")
    with torch.no_grad():
        outs, state = run_frozen_test(net, x, int(pr.test.nonzero()[0])) if freeze_test else net.run(x)
    return {k: v[:, 0] for k, v in outs.items()}, state


def silent_modulators(net: Any) -> dict[str, torch.Tensor]:
    """Parameter overrides (``(1, *shape)`` zeros for every modulator's weight and bias) that make
    every modulator of ``net`` output M = f(0) = 0."""
    return {f"{m.name}/{field}": torch.zeros((1, *v.shape), dtype=v.dtype, device=v.device)
            for m in net.graph.modulators for field in ("weight", "bias") for v in (net.params[f"{m.name}/{field}"],)}


def run_frozen_test(net: Any, inputs: dict[str, torch.Tensor], t0: int,
                    params: dict[str, torch.Tensor] | None = None) -> tuple[dict[str, torch.Tensor], object]:
    """``net.run(inputs, params=params)`` with every modulator of the network silenced (M = 0) from
    step ``t0`` on: the steps before write the synapses, the steps after only read them. Returns the
    outputs of all steps and the final state, as ``run`` does."""
    params = dict(params or {})
    silent = silent_modulators(net)
    before, state = net.run({k: v[:t0] for k, v in inputs.items()}, params=params or None)
    after, state = net.run({k: v[t0:] for k, v in inputs.items()}, state, params={**params, **silent})
    return {k: torch.cat([before[k], after[k]]) for k in after}, state


def run_lava(graph: Graph, pr: CueProblems, *, precision: str = "float", timeout: float = 600.0,
             progress: bool = False, final_weights: bool = False) -> dict[str, torch.Tensor]:
    """The same on Lava: one Lava run per problem (``timeout`` seconds each). With ``final_weights``
    the result also holds ``"weights"``: projection name -> ``(B, n_post, n_pre)`` final plastic weights."""
    from plastix.backends.lava import compile as compile_lava

    T, B = pr.cues.shape[:2]
    outs: dict[str, list] = {n: [] for n in graph.outputs}
    weights: dict[str, list] = {}
    with compile_lava(graph, precision=precision, timeout=timeout) as net:
        for b in _maybe_tqdm(range(B), progress, "lava"):
            o = net.run({"cues": pr.cues[:, b].double().numpy(), "learning_signal": pr.signal[:, b].double().numpy()}, T)
            for n in graph.outputs:
                outs[n].append(torch.as_tensor(np.asarray(o[n]), dtype=torch.float64))
            if final_weights:
                for n, w in net.weights().items():
                    weights.setdefault(n, []).append(torch.as_tensor(np.asarray(w), dtype=torch.float64))
    res: dict = {n: torch.stack(v, dim=1) for n, v in outs.items()}
    if final_weights:
        res["weights"] = {n: torch.stack(v) for n, v in weights.items()}
    return res


def _maybe_tqdm(it, progress: bool, desc: str):
    if not progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False)


def evaluate_model(graph: Graph, *, n_problems: int = 500, n_cues: int | None = None, seed: int = 12345,
                   backend: str = "torch", precision: str = "float", progress: bool = False,
                   timeout: float = 600.0, freeze_test: bool = False) -> dict:
    """Accuracy of a trained cue model on ``n_problems`` seeded problems with ``n_cues`` cues (default:
    the trained M), on ``backend`` in ``precision``. Returns a JSON-able dict with ``accuracy``,
    ``ties`` (fraction of tied outputs), the settings, and ``counts`` (the output spike counts per
    problem over the readout window) for backend comparisons. ``timeout``: seconds per Lava run.
    ``freeze_test`` (torch, float): plasticity silenced in the test trial (see :func:`run_torch`): the
    accuracy of what the training trials stored in the synapses."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if freeze_test and (backend, precision) != ("torch", "float"):
        raise ValueError("freeze_test runs on the torch backend in float precision only")
    setting = CueSetting.of(graph, n_cues)
    if precision == "fixed":  # a hardware-aware model in IR units runs in its Loihi units
        from ..algorithms.hardware_aware import for_fixed_point

        graph = for_fixed_point(graph)
    g = graph.replace(outputs=("action",))
    t0 = time.perf_counter()
    counts, labels = [], []
    for pr, n in problem_batches(setting, n_problems, seed):
        if backend == "torch":
            act = run_torch(g, pr, precision=precision, freeze_test=freeze_test)[0]["action"]
        else:
            sub = _take(pr, n)
            act = run_lava(g, sub, precision=precision, progress=progress, timeout=timeout)["action"]
        counts.append(act[setting.window(pr)][:, :n].sum(0))
        labels.append(pr.test_labels[:n])
    c, lab = torch.cat(counts), torch.cat(labels)
    return {"accuracy": float(accuracy(c, lab)), "ties": float((c[:, 0] == c[:, 1]).float().mean()),
            "problems": n_problems, "cues": setting.task.n_cues, "seed": seed, "backend": backend,
            "precision": precision, "readout": setting.readout, "freeze_test": freeze_test, "wall_time_s": round(time.perf_counter() - t0, 2),
            "counts": c.tolist(), "labels": lab.tolist()}


def _take(pr: CueProblems, n: int) -> CueProblems:
    """The first ``n`` problems of a batch (Lava runs one problem at a time; no need to run the surplus)."""
    return CueProblems(cues=pr.cues[:, :n], signal=pr.signal[:, :n], labels=pr.labels[:n], decision=pr.decision,
                       test=pr.test, permutation=pr.permutation[:n], rates=pr.rates[:, :n])


def is_cue_model(graph: Graph) -> bool:
    """Whether ``graph`` is a trained one-shot cue model (metadata written by ``train_bptt``)."""
    meta = dict(graph.metadata or {})
    return meta.get("trainer") == "bptt" and meta.get("task") == "one_shot_cue" and "n_cues" in meta


def task_accuracy(graph: Graph, *, n_problems: int = 64, seed: int = 12345, lava: bool = False,
                  timeout_per_problem: float = 600.0) -> dict:
    """The deploy report's task section: the cue model's accuracy on the same ``n_problems`` seeded
    problems in torch float, torch fixed point and (``lava``) Lava fixed point, where a plastic
    projection on the learning engine runs there. Fixed point is skipped (with the reason) when the
    model is not Loihi-representable. ``identical_counts_fixed`` is the fraction of problems whose
    output spike counts agree between torch fixed and Lava fixed (1.0 when bit-exact)."""
    runs = {"torch float": evaluate_model(graph, n_problems=n_problems, seed=seed)}
    out: dict = {"problems": n_problems, "seed": seed, "cues": runs["torch float"]["cues"]}
    try:
        runs["torch fixed"] = evaluate_model(graph, n_problems=n_problems, seed=seed, precision="fixed")
    except (ValueError, KeyError, NotImplementedError) as exc:
        out["fixed_unsupported"] = str(exc)
    if lava and "torch fixed" in runs:
        runs["lava fixed"] = evaluate_model(graph, n_problems=n_problems, seed=seed, backend="lava", precision="fixed",
                                             timeout=timeout_per_problem)
        out["identical_counts_fixed"] = float(np.mean([a == b for a, b in zip(runs["torch fixed"]["counts"],
                                                                              runs["lava fixed"]["counts"])]))
    out["accuracy"] = {k: r["accuracy"] for k, r in runs.items()}
    out["wall_time_s"] = {k: r["wall_time_s"] for k, r in runs.items()}
    return out


def compare_backends(graph, problems: int, *, seed: int, n_cues: int | None = None, lava: bool = True,
                     precision: str = "float") -> dict:
    """Run ``problems`` seeded test problems of the model's own task settings (graph metadata written
    by ``train_bptt``: cue count, timing, permutation, readout window) on the torch backend (batched,
    float64) and, with ``lava``, on Lava (one problem per run), both in ``precision``; in fixed point
    the torch float accuracy is reported too (``accuracy_torch_float``). Accuracy counts ties as wrong."""
    from plastix.backends.lava import support

    setting = CueSetting.of(graph, n_cues)
    if precision == "fixed":  # a hardware-aware model in IR units runs in its Loihi units
        from ..algorithms.hardware_aware import for_fixed_point

        graph = for_fixed_point(graph)
    pr = one_shot_cue_problems(problems, setting.task, generator=torch.Generator().manual_seed(seed))
    window = setting.window(pr)
    g2 = graph.replace(outputs=("action", "hidden"))
    outs, state = run_torch(g2, pr, precision=precision)
    torch_act = outs["action"]
    counts_torch = torch_act[window].sum(0)
    res = {"problems": problems, "n_cues": setting.task.n_cues, "readout": setting.readout, "precision": precision,
           "accuracy_torch": float(accuracy(counts_torch, pr.test_labels)),
           "_problems": pr, "_torch": (torch_act, outs["hidden"], state.projs["cues_to_hidden"].rule.w[0]),
           "_window": window}
    if precision == "fixed":
        f_act = run_torch(g2, pr)[0]["action"]
        res["accuracy_torch_float"] = float(accuracy(f_act[window].sum(0), pr.test_labels))
    if lava:
        lv = run_lava(g2, pr, precision=precision, timeout=600.0, final_weights=True)
        lava_act = lv["action"]
        counts_lava = lava_act[window].sum(0)
        same_w = torch.ones(problems, dtype=torch.bool)
        for name, w in lv["weights"].items():  # final plastic weights, problem by problem
            w_t = state.projs[name].rule.w[0].to(w.dtype)
            same_w &= (w == w_t).flatten(1).all(1) if precision == "fixed" else torch.isclose(w, w_t).flatten(1).all(1)
        res.update(accuracy_lava=float(accuracy(counts_lava, pr.test_labels)),
                   agreement_decision=float((counts_lava.argmax(-1) == counts_torch.argmax(-1)).float().mean()),
                   identical_spike_trains=float((lava_act == torch_act).all(dim=(0, 2)).float().mean()),
                   identical_hidden_spike_trains=float((lv["hidden"] == outs["hidden"]).all(dim=(0, 2)).float().mean()),
                   identical_final_weights=float(same_w.float().mean()),
                   lowering=support(g2, precision)["rules"])
    return res
