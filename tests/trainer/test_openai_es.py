"""OpenAI-ES: antithetic sampling, the gradient and optimizer steps by hand, convergence, determinism."""
import math

import pytest
import torch

from plastix.trainer.algorithms.base import ESParams, Optimizer, Shaping, shape_fitness
from plastix.trainer.algorithms.openai_es import OpenAIES


def test_antithetic_pairs_and_same_stream_as_randn():
    es = OpenAIES(6, 4)
    p = ESParams(sigma=0.5)
    s = es.init(torch.arange(4.0), p)
    pop, s2 = es.ask(s, p, generator=torch.Generator().manual_seed(3))
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(pop[:3], torch.arange(4.0) + 0.5 * z)
    assert torch.allclose(pop[3:], torch.arange(4.0) - 0.5 * z)
    assert s2 is s  # ask does not change the OpenAI-ES state
    with pytest.raises(ValueError, match="even"):
        OpenAIES(5, 2)
    assert OpenAIES(5, 2, antithetic=False).population_size == 5


def test_gradient_and_sgd_momentum_step_by_hand():
    es = OpenAIES(4, 2, shaping=Shaping.CENTERED_RANK)
    p = ESParams(sigma=0.5, lr=0.1, momentum=0.9)
    s = es.init(torch.zeros(2), p)
    z = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, -2.0]])
    pop = 0.5 * z
    fit = torch.tensor([4.0, 1.0, 3.0, 2.0])  # centred ranks [.5, -.5, 1/6, -1/6]
    u = [0.5, -0.5, 1 / 6, -1 / 6]
    g = [sum(u[i] * z[i, j].item() for i in range(4)) / (4 * 0.5) for j in range(2)]
    assert g == pytest.approx([(0.5 - 1 / 6) / 2, (-1.0 + 1 / 3) / 2])
    s1, m = es.tell(pop, fit, s, p)
    want_v = [0.1 * gj for gj in g]  # v = 0.9 * 0 + 0.1 * g ; mean += lr * v
    assert s1.opt_m.tolist() == pytest.approx(want_v)
    assert s1.mean.tolist() == pytest.approx([0.1 * v for v in want_v])
    assert s1.generation == 1 and s1.best_fitness == 4.0 and torch.equal(s1.best_member, pop[0])
    assert m["fitness_max"] == 4.0 and m["fitness_mean"] == 2.5


def test_paper_rank_step_lands_on_weighted_offspring_mean():
    es = OpenAIES(4, 3, shaping=Shaping.PAPER_RANK)
    p = ESParams(sigma=0.1, lr=1.0, momentum=0.0)
    s = es.init(torch.ones(3), p)
    pop, _ = es.ask(s, p, generator=torch.Generator().manual_seed(0))
    fit = torch.tensor([0.0, 3.0, 1.0, 2.0])
    w = torch.tensor([0.0, 1.0, (1 / 3) ** 5, (2 / 3) ** 5], dtype=torch.float64)
    w = w / w.sum()
    s1, _ = es.tell(pop, fit, s, p)
    assert torch.allclose(s1.mean.double(), w @ pop.double(), atol=1e-6)


def test_paper_literal_step_uses_the_noise_and_classic_momentum():
    """ESParams(noise_units=True, momentum_form="classic"): G = sum_i F_i eps_i, v = m v + G (Algorithm 1
    read literally), against the default step to the offspring mean with damped momentum."""
    es = OpenAIES(4, 3, shaping=Shaping.PAPER_RANK)
    lit = ESParams(sigma=0.1, lr=1.0, momentum=0.9, noise_units=True, momentum_form="classic")
    dflt = ESParams(sigma=0.1, lr=1.0, momentum=0.9)
    s = es.init(torch.ones(3), lit)
    pop, _ = es.ask(s, lit, generator=torch.Generator().manual_seed(0))
    fit = torch.tensor([0.0, 3.0, 1.0, 2.0])
    w = torch.tensor([0.0, 1.0, (1 / 3) ** 5, (2 / 3) ** 5], dtype=torch.float64)
    G = (w / w.sum()) @ ((pop.double() - 1.0) / 0.1)                      # eps_i = (theta_i - theta) / sigma
    s1, _ = es.tell(pop, fit, s, lit)
    assert torch.allclose(s1.mean.double(), 1.0 + G, atol=1e-5)           # v = 0.9 * 0 + G
    s2, _ = es.tell(pop, fit, s1, lit)                                     # same offspring around the old mean
    assert torch.allclose(s2.opt_m.double(), 0.9 * G + es.gradient(pop, shape_fitness(Shaping.PAPER_RANK, fit), s1, noise_units=True).double(), atol=1e-5)
    d1, _ = es.tell(pop, fit, s, dflt)
    assert torch.allclose(d1.mean.double() - 1.0, 0.1 * (1 - 0.9) * G, atol=1e-6)  # sigma smaller, damped
    with pytest.raises(ValueError, match="momentum_form"):
        ESParams(momentum_form="nesterov")


def test_adam_first_step_and_weight_decay():
    es = OpenAIES(2, 2, antithetic=True, shaping=Shaping.CENTERED_RANK)
    p = ESParams(sigma=1.0, lr=0.01, optimizer=Optimizer.ADAM, weight_decay=0.25)
    s = es.init(torch.tensor([1.0, -1.0]), p)
    pop = s.mean + torch.tensor([[1.0, 2.0], [-1.0, -2.0]])
    s1, _ = es.tell(pop, torch.tensor([1.0, 0.0]), s, p)
    g = torch.tensor([0.5, 1.0]) - 0.25 * torch.tensor([1.0, -1.0])  # (u @ z)/(P sigma) - wd * mean
    # first Adam step is lr * g / |g| elementwise (bias corrections cancel)
    assert torch.allclose(s1.mean - s.mean, 0.01 * g / g.abs(), atol=1e-6)


def test_nan_fitness_ranks_worst_and_does_not_poison_mean():
    es = OpenAIES(4, 2)
    p = ESParams(sigma=0.1, lr=0.1)
    s = es.init(torch.zeros(2), p)
    pop, _ = es.ask(s, p, generator=torch.Generator().manual_seed(0))
    s1, m = es.tell(pop, torch.tensor([1.0, float("nan"), 0.0, 2.0]), s, p)
    assert torch.isfinite(s1.mean).all() and m["fitness_nonfinite"] == 1 and s1.best_fitness == 2.0


@pytest.mark.parametrize("shaping,opt,lr,gens", [(Shaping.CENTERED_RANK, Optimizer.ADAM, 0.05, 300),
                                                (Shaping.PAPER_RANK, Optimizer.SGD, 1.0, 300)])
def test_converges_on_quadratic(shaping, opt, lr, gens):
    target = torch.linspace(-1, 1, 10)
    es = OpenAIES(40, 10, shaping=shaping)
    p = ESParams(sigma=0.05, lr=lr, optimizer=opt, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    s = es.init(torch.zeros(10), p)
    start = (s.mean - target).norm().item()
    for _ in range(gens):
        pop, s = es.ask(s, p, generator=g)
        s, _ = es.tell(pop, -((pop - target) ** 2).sum(1), s, p)
    assert (s.mean - target).norm().item() < 0.1 * start


def test_determinism_for_a_seed():
    def go(seed):
        es = OpenAIES(8, 5)
        p = es.default_params()
        g = torch.Generator().manual_seed(seed)
        s = es.init(torch.zeros(5), p)
        for _ in range(5):
            pop, s = es.ask(s, p, generator=g)
            s, _ = es.tell(pop, -(pop ** 2).sum(1), s, p)
        return s.mean
    assert torch.equal(go(1), go(1)) and not torch.equal(go(1), go(2))


def test_shape_errors_and_param_validation():
    es = OpenAIES(4, 2)
    p = es.default_params()
    s = es.init(torch.zeros(2), p)
    with pytest.raises(ValueError, match="fitness must have shape"):
        es.tell(torch.zeros(4, 2), torch.zeros(3), s, p)
    with pytest.raises(ValueError, match="population must have shape"):
        es.tell(torch.zeros(3, 2), torch.zeros(3), s, p)
    with pytest.raises(ValueError, match="sigma"):
        ESParams(sigma=0.0)
    with pytest.raises(ValueError, match="momentum"):
        ESParams(momentum=1.0)
    assert ESParams().lr == 1.0 and ESParams().momentum == 0.9 and ESParams().rank_alpha == 5.0
    assert not math.isfinite(s.best_fitness)


def test_doctests():
    import doctest

    import plastix.trainer.algorithms.openai_es as mod
    assert doctest.testmod(mod).failed == 0
