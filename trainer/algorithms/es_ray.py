"""ES population evaluation spread over processes or machines with Ray.

:class:`RayEvaluator` splits a population (P, D) into ``chunks`` contiguous slices, evaluates each
in a Ray remote task with the same batched torch rollout as the single-process path
(:func:`plastix.trainer.algorithms.es_eval.evaluate_population` on a task built with the chunk's size, the
same task config and the same seed) and concatenates the fitness. Tasks whose episodes do not
depend on the rest of the population (common random numbers, e.g. :mod:`plastix.tasks.tmaze`)
therefore give the same fitness as one process (``tests/trainer/test_es_ray.py``).

``address=None`` starts a local Ray instance (``num_cpus`` CPUs); ``address="host:port"`` or
``"auto"`` joins a running cluster (its workers need plastix importable, e.g. the same venv or a
``runtime_env``). Ray 2.5x clusters use token authentication by default: run the client with
``RAY_AUTH_MODE=token`` and the cluster's token (``~/.ray/auth_token`` or ``RAY_AUTH_TOKEN``),
else the connection is refused ("InvalidAuthToken"). Ray is imported lazily: the rest of plastix
works without it.
"""
from __future__ import annotations

from typing import Any

import torch

from plastix.tasks.registry import make_task

from .es_eval import evaluate_population

Tensor = torch.Tensor


def _evaluate_chunk(task: str, task_config: Any, spec: Any, population: Tensor, seed: int) -> Tensor:
    """One remote task: the single-process evaluation of a slice of the population."""
    env = make_task(task, task_config, population=population.shape[0])
    return evaluate_population(spec, population, env, seed=seed)


class RayEvaluator:
    """``evaluator(spec, population, seed) -> fitness (P,)`` through Ray remote tasks.

    ``chunks``: slices per generation (default: the cluster's CPU count). ``shutdown()`` stops a
    Ray instance this evaluator started, or disconnects from a cluster it joined (the cluster
    keeps running); a Ray session opened by the caller before is left alone."""

    def __init__(self, task: str, task_config: Any, *, address: str | None = None, num_cpus: int | None = None,
                 chunks: int | None = None) -> None:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is a dev extra
            raise RuntimeError("Ray is not installed: pip install 'plastix[dev]' (or ray>=2.9)") from exc
        if chunks is not None and chunks < 1:
            raise ValueError(f"RayEvaluator: chunks must be >= 1, got {chunks}")
        self._ray = ray
        self._owned = not ray.is_initialized()
        if self._owned:
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kw["num_cpus"] = num_cpus
            ray.init(address=address, **kw)
        self.task, self.task_config = task, task_config
        self.chunks = int(chunks or max(1, int(ray.cluster_resources().get("CPU", 1))))
        self._remote = ray.remote(num_cpus=1)(_evaluate_chunk)

    def __call__(self, spec: Any, population: Tensor, seed: int) -> Tensor:
        parts = [p for p in torch.tensor_split(population, self.chunks) if p.shape[0]]
        refs = [self._remote.remote(self.task, self.task_config, spec, p, int(seed)) for p in parts]
        return torch.cat(self._ray.get(refs)).to(population.device)

    def shutdown(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        self._owned = False
