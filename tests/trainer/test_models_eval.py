"""Model genomes, IR export, and the batched gated-cell evaluator (vs torch.nn cells, eq. 1 by hand,
per-individual evaluation, and the torch backend's step functions when present)."""
import importlib.util

import pytest
import torch

from plastix.ir import dumps, loads
from plastix.tasks import make_task
from plastix.trainer.algorithms.es_eval import BatchedModel, evaluate_population, rollout
from plastix.trainer.algorithms.models import ModelKind, ModelSpec

KINDS = [k.value for k in ModelKind]


def test_param_counts_match_the_paper():
    assert ModelSpec("enu").num_params == 3 * (16 + 16 + 32) * 32 + 32 * 16 == 6656
    assert ModelSpec("sharedenu").num_params == 6656
    assert ModelSpec("nfenu").num_params == 3 * (16 + 32) * 32 + 512
    assert ModelSpec("gru").num_params == 3 * 32 * (16 + 32) + 2 * 96 + 512 + 16
    assert ModelSpec("lstm").num_params == 4 * 32 * (16 + 32) + 2 * 128 + 512 + 16
    with pytest.raises(ValueError, match="known"):
        ModelSpec("transformer")


@pytest.mark.parametrize("kind", KINDS)
def test_genome_roundtrip_and_ir_export(kind):
    spec = ModelSpec(kind)
    g = spec.init_genome(torch.Generator().manual_seed(0))
    assert g.shape == (spec.num_params,) and torch.equal(spec.flatten(spec.unflatten(g)), g)
    graph = loads(dumps(spec.to_graph(g, metadata={"task": "iaf"})))
    cell = graph.population("unit").cell
    assert cell.kind == spec.cell_kind and graph.metadata["model"] == kind
    back = spec.flatten({name: torch.tensor(getattr(cell, name).copy()) for name, _ in spec.param_shapes()})
    assert torch.equal(back, g)
    rule = graph.projection("x_to_unit").rule
    assert (rule is not None) == (kind == "sharedenu")


def _enu_reference(x_seq, p, feedback=True):
    """Eq. 1 written out for one unit, one step at a time (no batching)."""
    h, o, outs = torch.zeros(32), torch.zeros(16), []
    for x in x_seq:
        c = torch.cat([h, o, x]) if feedback else torch.cat([h, x])
        z = torch.sigmoid(p["w_z"] @ c)
        r = torch.sigmoid(p["w_r"] @ c)
        c2 = torch.cat([r * h, o, x]) if feedback else torch.cat([r * h, x])
        ht = torch.tanh(p["w_c"] @ c2)
        h = (1 - z) * h + z * ht
        o = torch.clamp(p["w_o"] @ h, 0, 1)
        outs.append(o)
    return torch.stack(outs)


def _run_batched(spec, pop, xs):
    m = BatchedModel.from_population(spec, pop)
    s = m.init_state(xs.shape[2])
    outs = []
    for x in xs:
        y, s = m.step(x, s)
        outs.append(y)
    return torch.stack(outs)  # (T, P, E, C)


@pytest.mark.parametrize("kind", ["enu", "nfenu"])
def test_enu_matches_equation_1(kind):
    spec = ModelSpec(kind)
    g = torch.Generator().manual_seed(1)
    pop = torch.stack([spec.init_genome(g) * 3 for _ in range(2)])
    xs = torch.rand(7, 2, 3, 16, generator=g)
    out = _run_batched(spec, pop, xs)
    for p in range(2):
        for e in range(3):
            ref = _enu_reference(xs[:, p, e], spec.unflatten(pop[p]), spec.feedback)
            assert torch.allclose(out[:, p, e], ref, atol=1e-5)
    assert 0 < (out > 0).float().mean() < 1 and out.max() <= 1 and out.min() >= 0


@pytest.mark.parametrize("kind,cls", [("gru", torch.nn.GRUCell), ("lstm", torch.nn.LSTMCell)])
def test_gru_lstm_match_torch_cells(kind, cls):
    spec = ModelSpec(kind)
    g = torch.Generator().manual_seed(2)
    pop = torch.stack([spec.init_genome(g) for _ in range(3)])
    xs = torch.rand(5, 3, 2, 16, generator=g)
    out = _run_batched(spec, pop, xs)
    for p in range(3):
        prm = spec.unflatten(pop[p])
        cell = cls(16, 32)
        with torch.no_grad():
            cell.weight_ih.copy_(prm["w_ih"]), cell.weight_hh.copy_(prm["w_hh"])
            cell.bias_ih.copy_(prm["b_ih"]), cell.bias_hh.copy_(prm["b_hh"])
            state = None
            for t in range(5):
                state = cell(xs[t, p], state)
                h = state if kind == "gru" else state[0]
                assert torch.allclose(out[t, p], h @ prm["w_o"].T + prm["b_o"], atol=1e-5)


def test_sharedenu_is_synapse_then_neuron_with_one_parameter_set():
    spec, enu = ModelSpec("sharedenu"), ModelSpec("enu")
    pop = torch.stack([spec.init_genome(torch.Generator().manual_seed(s)) * 3 for s in range(2)])
    xs = torch.rand(6, 2, 2, 16, generator=torch.Generator().manual_seed(0))
    z = _run_batched(enu, pop, xs)
    assert torch.allclose(_run_batched(spec, pop, xs), _run_batched(enu, pop, z), atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("task_name", ["iaf", "stdp"])
def test_population_evaluation_equals_one_by_one(kind, task_name):
    spec = ModelSpec(kind)
    g = torch.Generator().manual_seed(3)
    pop = torch.stack([spec.init_genome(g) * 4 for _ in range(3)])
    task = make_task(task_name, "quick", population=3, num_envs=2, steps=30)
    f = evaluate_population(spec, pop, task, seed=11)
    assert f.shape == (3,) and torch.isfinite(f).all()
    for p in range(3):
        one = evaluate_population(spec, pop[p:p + 1], make_task(task_name, "quick", population=1, num_envs=2, steps=30),
                                  seed=11)
        assert torch.allclose(one, f[p:p + 1], atol=1e-4)
    r = rollout(spec, pop, task, seed=11, record=True)
    assert r["actions"].shape == (30, 3, 2, 1) and r["targets"].shape == (30, 3, 2)


def test_nan_genome_gives_nan_fitness_not_an_error():
    spec = ModelSpec("enu")
    pop = spec.init_genome(torch.Generator().manual_seed(0)).repeat(2, 1)
    pop[1, 0] = float("nan")
    f = evaluate_population(spec, pop, make_task("stdp", "quick", population=2, num_envs=2, steps=10), seed=0)
    assert torch.isfinite(f[0]) and torch.isnan(f[1])


@pytest.mark.skipif(importlib.util.find_spec("plastix.backends.torch.neurons") is None,
                    reason="torch backend gated cells not present")
@pytest.mark.parametrize("kind", ["enu", "nfenu", "gru", "lstm"])
def test_matches_torch_backend_step_functions(kind):
    """Conformance with backends/torch/neurons.py (per-individual params shaped (P, 1, *shape))."""
    from plastix.backends.torch import neurons as bt
    spec = ModelSpec(kind)
    g = torch.Generator().manual_seed(4)
    pop = torch.stack([spec.init_genome(g) * 3 for _ in range(2)])
    xs = torch.rand(5, 2, 3, 16, generator=g)
    ours = _run_batched(spec, pop, xs)
    cell = spec.cell(pop[0].numpy())
    prm = {k: v[:, None] for k, v in spec.unflatten(pop).items()}
    params = bt.cell_params(cell, lambda name: prm[name])
    state = bt.cell_init(cell, (2, 3), xs)
    for t in range(5):
        y, state = bt.CELL_STEPS[type(cell)](xs[t], state, params)
        assert torch.allclose(y, ours[t], atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("plastix.backends.torch.network") is None,
                    reason="torch backend compile() not present")
@pytest.mark.parametrize("kind", KINDS)
def test_exported_graph_on_torch_backend_equals_evaluator_one_step_later(kind):
    """The IR export is right: compile(spec.to_graph(.)) run with per-individual parameters gives
    the evaluator's outputs one step later (the input projection's latency, models.py): the
    backend's unit sees a zero input at step 0, then x[0], x[1], ..."""
    from plastix.backends.torch import compile as compile_graph
    spec = ModelSpec(kind)
    g = torch.Generator().manual_seed(5)
    pop = torch.stack([spec.init_genome(g) * 3 for _ in range(2)])
    xs = torch.rand(6, 2, 3, 16, generator=g)
    ours = _run_batched(spec, pop, torch.cat([torch.zeros_like(xs[:1]), xs[:-1]]))
    net = compile_graph(spec.to_graph(pop[0]))
    per_individual = spec.unflatten(pop)
    params = {f"unit/cell/{k}": v for k, v in per_individual.items()}
    if kind == "sharedenu":
        params.update({f"x_to_unit/rule/cell/{k}": v for k, v in per_individual.items()})
    with torch.no_grad():
        out, _ = net.run({"x": xs[:, :, :, None, :]}, params=params)
    assert out["unit"].shape == (6, 2, 3, 1, 16)
    assert torch.allclose(out["unit"][:, :, :, 0], ours, atol=1e-5)
