"""The Ray population evaluation (local instance, 2 CPUs) equals the single-process one."""
import pytest
import torch

import ray  # a dev dependency: a missing install must fail, not skip

from plastix.tasks.registry import make_task, task_config  # noqa: E402
from plastix.trainer.experiments.enu_net import NetworkSpec  # noqa: E402
from plastix.trainer.algorithms.es_eval import evaluate_population  # noqa: E402
from plastix.trainer.experiments.es_run import ESJob, es_config  # noqa: E402


@pytest.fixture(scope="module")
def evaluator():
    from plastix.trainer.algorithms.es_ray import RayEvaluator

    cfg = task_config("tmaze", "quick", steps=60, num_envs=8)
    ev = RayEvaluator("tmaze", cfg, num_cpus=2, chunks=2)
    yield ev, cfg
    ev.shutdown()
    assert not ray.is_initialized()


def test_ray_fitness_equals_local(evaluator):
    ev, cfg = evaluator
    spec = NetworkSpec("enu")
    g = torch.Generator().manual_seed(0)
    pop = torch.stack([spec.init_genome(g) for _ in range(6)])
    local = evaluate_population(spec, pop, make_task("tmaze", cfg, population=6), seed=5)
    assert (local != 0).any()
    assert torch.equal(ev(spec, pop, 5), local)


def test_es_generation_through_ray_equals_local(evaluator):
    ev, cfg = evaluator
    es = es_config("tmaze", "quick", population=4)
    kw = dict(seed=1, es=es, task_overrides={"steps": 60, "num_envs": 8})
    local, remote = ESJob("tmaze", "sharedenu", "quick", **kw), ESJob("tmaze", "sharedenu", "quick", evaluator=ev, **kw)
    s_local, m_local = local.step(local.init_state(), 0)
    s_remote, m_remote = remote.step(remote.init_state(), 0)
    assert torch.equal(s_local.es.mean, s_remote.es.mean)
    assert m_local == m_remote


def test_bad_chunks_rejected():
    from plastix.trainer.algorithms.es_ray import RayEvaluator

    with pytest.raises(ValueError, match="chunks"):
        RayEvaluator("tmaze", task_config("tmaze", "quick"), chunks=0)
