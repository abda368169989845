"""Data sets of the synaptic-RL reproductions, including the notMNIST stand-in."""
import pytest
import torch

from plastix.tasks import datasets
from plastix.tasks.synq_configs import CONFIGS, PAPER, QUICK, get


def test_decision_boundary_matches_the_paper_setup():
    d = datasets.decision_boundary(seed=0)
    assert d.x_train.shape == (2000, 2) and d.kind == "sign" and d.n_outputs == 1
    assert d.x_train.abs().max() <= 10.0
    assert set(d.y_train.unique().tolist()) <= {-1.0, 1.0}
    d2 = datasets.decision_boundary(seed=0)
    assert torch.equal(d.x_train, d2.x_train) and torch.equal(d.y_valid, d2.y_valid)
    assert not torch.equal(d.y_train, datasets.decision_boundary(seed=1).y_train)


def test_digits_split():
    d = datasets.digits(seed=0)
    assert d.n_inputs == 64 and d.n_classes == 10
    assert d.x_train.shape[0] + d.x_valid.shape[0] == 1797
    assert d.x_valid.shape[0] == round(0.25 * 1797)
    assert 0.0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1.0


def test_notmnist_standin_is_named_deterministic_and_shaped():
    img, labels, fonts = datasets.render_notmnist_standin(seed=4, n=300)
    img2, labels2, _ = datasets.render_notmnist_standin(seed=4, n=300)
    assert img.shape == (300, 28, 28) and img.dtype == torch.float32
    assert torch.equal(img, img2) and torch.equal(labels, labels2)
    assert not torch.equal(img, datasets.render_notmnist_standin(seed=5, n=300)[0])
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    assert set(labels.tolist()) == set(range(10))
    assert len(fonts) >= 10
    d = datasets.notmnist_standin(seed=0, n=400)
    assert d.name == "notmnist_standin" and "STAND-IN" in d.note and "not the real notMNIST" in d.note
    assert d.n_inputs == 784 and d.x_train.shape[0] == 300
    assert "not notMNIST" in datasets.__doc__ or "not notMNIST" in datasets.notmnist_standin.__doc__ \
        or "not the real" in datasets.notmnist_standin.__doc__


def test_standin_letters_are_distinguishable():
    # a nearest-class-mean classifier well above chance: the images carry the letter
    img, labels, _ = datasets.render_notmnist_standin(seed=0, n=2000)
    x = img.reshape(2000, -1)
    means = torch.stack([x[:1500][labels[:1500] == k].mean(0) for k in range(10)])
    pred = torch.cdist(x[1500:], means).argmin(1)
    assert float((pred == labels[1500:]).float().mean()) > 0.4


def test_build_dispatch():
    assert datasets.build("digits", seed=0).name == "digits"
    with pytest.raises(KeyError, match="known"):
        datasets.build("mnist", seed=0)


def test_configs_quick_and_paper():
    assert set(CONFIGS) == {"quick", "paper", "authors", "authors_final"}
    assert set(PAPER) == set(QUICK) == set(CONFIGS["authors"]) == set(CONFIGS["authors_final"])
    au = get("digits_32hu", "authors")  # the authors' SynRLv6.jl settings
    assert (au.epsilon, au.batch_size, au.batch_interval, au.gamma, au.q_lr, au.bias_step_scale) == \
        (0.2, 1000, 500, 0.9, 0.01, 2.0)
    p = get("notmnist_standin_32hu", "paper")
    assert (p.batch_size, p.batch_interval, p.epsilon, p.step) == (5000, 5000, 0.1, 1e-4)
    assert p.sizes == (784, 32, 10) and p.iterations == 500_000 and p.step_switch_iteration == 60_000
    assert get("notmnist_standin_0hu", "paper").iterations == 200_000
    assert get("boundary", "paper").sizes == (2, 100, 1)
    with pytest.raises(KeyError, match="known"):
        get("boundary", "full")
