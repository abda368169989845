"""The fused open-loop path of ``rollout`` (ENU, NFENU, GRU, LSTM) equals stepping the task through its contract."""
from __future__ import annotations

import pytest
import torch

from plastix.tasks.registry import make_task
from plastix.backends.torch.neurons import FusedENU, FusedGated, enu_step, gru_step, lstm_step
from plastix.trainer.algorithms.es_eval import cell_params, evaluate_population, init_state, rollout
from plastix.trainer.algorithms.models import ModelSpec


@pytest.mark.parametrize("kind", ["enu", "nfenu", "gru", "lstm"])
@pytest.mark.parametrize("task_name", ["iaf", "stdp", "complex_stdp"])
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_fused_open_loop_equals_contract_rollout(kind, task_name, scale):
    spec = ModelSpec(kind)
    g = torch.Generator().manual_seed(7)
    pop = torch.stack([spec.init_genome(g) * scale for _ in range(5)])
    task = make_task(task_name, "quick", population=5, num_envs=3, steps=40)
    fast = evaluate_population(spec, pop, task, seed=21)
    slow = rollout(spec, pop, task, seed=21, record=True)  # record=True steps the task itself
    assert fast.dtype == slow["fitness"].dtype == torch.float64
    assert torch.allclose(fast, slow["fitness"], rtol=1e-4, atol=1e-4), (fast, slow["fitness"])


def test_fused_step_equals_enu_step():
    spec = ModelSpec("enu")
    g = torch.Generator().manual_seed(1)
    pop = torch.stack([spec.init_genome(g) * 3 for _ in range(4)])
    xs = torch.rand(12, 4, 6, 2, generator=g)
    fused = FusedENU(cell_params(spec, pop), 6, 2)
    p, state = cell_params(spec, pop), init_state(spec, 4, 6)
    for x in xs:
        ref, state = enu_step(torch.cat([x, x.new_zeros(4, 6, 14)], dim=-1), state, p)
        assert torch.allclose(fused.step(x), ref, atol=1e-5)


@pytest.mark.parametrize("kind,step", [("gru", gru_step), ("lstm", lstm_step)])
def test_fused_gated_step_equals_the_cell_step(kind, step):
    spec = ModelSpec(kind)
    g = torch.Generator().manual_seed(1)
    pop = torch.stack([spec.init_genome(g) * 3 for _ in range(4)])
    xs = torch.rand(30, 4, 6, 2, generator=g)
    fused = FusedGated(cell_params(spec, pop, column_major=False), 6, 2, lstm=kind == "lstm")
    p, state = cell_params(spec, pop), init_state(spec, 4, 6)
    for x in xs:
        ref, state = step(torch.cat([x, x.new_zeros(4, 6, spec.channels - 2)], dim=-1), state, p)
        assert torch.allclose(fused.step(x), ref, atol=1e-5)
    keep = torch.tensor([2, 0])                                # narrowed to two individuals, state kept
    fused.keep(keep)
    p = type(p)(*(w.index_select(0, keep) for w in p))
    ref, _ = step(torch.cat([xs[0], xs[0].new_zeros(4, 6, spec.channels - 2)], dim=-1)[keep],
                  type(state)(*(t.index_select(0, keep) for t in state)), p)
    assert torch.allclose(fused.step(xs[0][keep]), ref, atol=1e-5)


def test_not_common_inputs_takes_the_contract_path():
    spec = ModelSpec("enu")
    pop = spec.init_genome(torch.Generator().manual_seed(0)).repeat(2, 1)
    task = make_task("stdp", "quick", population=2, num_envs=2, steps=10, common_inputs=False)
    f = evaluate_population(spec, pop, task, seed=3)
    assert torch.allclose(f, rollout(spec, pop, task, seed=3, record=True)["fitness"])


def test_iaf_return_equals_iaf_fitness():
    from plastix.tasks.mimic import iaf_fitness, iaf_reference
    from plastix.tasks.mimic import iaf_return_time_major as _iaf_return
    g = torch.Generator().manual_seed(5)
    target = iaf_reference(0.01 + 0.1 * torch.rand(1, 4, 50, generator=g))
    actions = torch.rand(6, 4, 50, generator=g) * (torch.rand(6, 4, 50, generator=g) > 0.8)
    actions[2, 1, 7] = float("nan")
    ours = _iaf_return(target.permute(2, 0, 1), actions.permute(2, 0, 1), spike_threshold=0.0)
    ref = iaf_fitness(target, actions, 0.0).to(torch.float64)
    assert torch.equal(torch.isnan(ours), torch.isnan(ref)) and torch.isnan(ours[2, 1])
    assert torch.allclose(ours.nan_to_num(), ref.nan_to_num())
