"""Fitness shaping vs hand-computed values; NaN ranks worst; ties share ranks."""
import math

import pytest
import torch

from plastix.trainer.algorithms.base import Shaping, centered_rank, paper_rank, ranks, shape_fitness, standardize

NAN = float("nan")


def test_ranks_nan_worst_and_ties_averaged():
    f = torch.tensor([3.0, 1.0, NAN, 3.0, 2.0, -math.inf])
    # ascending: NaN/-inf tie at the bottom (ranks 0, 1 -> 0.5), 1 -> 2, 2 -> 3, 3s tie (4, 5 -> 4.5)
    assert ranks(f).tolist() == [4.5, 2.0, 0.5, 4.5, 3.0, 0.5]


def test_centered_rank_hand_values():
    f = torch.tensor([10.0, -3.0, 7.0, NAN, 0.0])
    # ascending ranks: NaN 0, -3 1, 0 2, 7 3, 10 4 ; /4 - 0.5
    assert centered_rank(f).tolist() == [0.5, -0.25, 0.25, -0.5, 0.0]
    assert centered_rank(torch.ones(6)).abs().max() == 0  # flat fitness: zero utilities


def test_paper_rank_hand_values():
    f = torch.tensor([2.0, 5.0, 1.0])
    # linear rank 1.0 (best) .. 0 (worst): [0.5, 1.0, 0.0]; ^5 -> [1/32, 1, 0]; normalised
    w = paper_rank(f, alpha=5.0)
    assert torch.allclose(w, torch.tensor([1 / 33, 32 / 33, 0.0], dtype=torch.float64))
    assert paper_rank(torch.tensor([1.0, NAN, 0.0])).tolist()[1] == 0.0


def test_paper_rank_top_20_percent_share():
    w = paper_rank(torch.arange(1024.0))
    top = w[-int(0.2 * 1024):].sum().item()
    assert top == pytest.approx(1 - 0.8 ** 6, abs=0.01)  # "around the top 20 % ... 80 %"
    assert w.sum().item() == pytest.approx(1.0)


def test_standardize_hand_values_and_nan():
    z = standardize(torch.tensor([1.0, 2.0, 3.0]))
    s = math.sqrt(2 / 3)
    assert torch.allclose(z, torch.tensor([-1 / s, 0.0, 1 / s], dtype=torch.float64))
    z = standardize(torch.tensor([1.0, NAN, 3.0]))
    assert z[1] == z[0] == z.min()  # NaN takes the worst finite value
    assert standardize(torch.tensor([NAN, NAN])).abs().sum() == 0


def test_dispatch_lists_known_names():
    with pytest.raises(ValueError, match="centered_rank"):
        shape_fitness("bogus", torch.zeros(3))
    assert torch.equal(shape_fitness(Shaping.CENTERED_RANK, torch.tensor([1.0, 2.0])), torch.tensor([-0.5, 0.5], dtype=torch.float64))
