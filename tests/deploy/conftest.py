"""Small models from each trainer (a few real training steps) for the deploy tests."""
from __future__ import annotations

import numpy as np
import pytest

import plastix.ir as ir


@pytest.fixture(scope="session")
def bptt_model(tmp_path_factory):
    """model.plx of one BPTT meta-training iteration of a small cue-association net (8 hidden, 8 modulatory)."""
    from plastix.trainer.experiments.bptt_run import train_bptt

    out = tmp_path_factory.mktemp("bptt")
    res = train_bptt("one_shot_cue", "quick", out, iterations=1, batch=2, n_hidden=8, n_mod=8, eval_problems=2,
                     progress=False)
    return res["model"]


@pytest.fixture(scope="session")
def es_model(tmp_path_factory):
    """model.plx of one OpenAI-ES generation of an ENU on the IAF mimic task."""
    from plastix.trainer.experiments.es_run import train_es

    out = tmp_path_factory.mktemp("es")
    return train_es("iaf", "enu", "quick", out, generations=1, population=4, num_envs=1, progress=False)["model_file"]


@pytest.fixture(scope="session")
def synq_policy(tmp_path_factory):
    """policy.plx of two synaptic-Q iterations on the decision-boundary task."""
    from plastix.trainer.experiments.synq_run import train_synq

    out = tmp_path_factory.mktemp("synq")
    return train_synq("boundary", "quick", out, seed=0, iterations=2)["policy_out"]


@pytest.fixture(scope="session")
def synq_net(synq_policy, tmp_path_factory):
    """A spiking net whose hidden -> output synapses run the trained Q policy, rewarded by a global modulator."""
    from plastix.trainer.algorithms.synq import load_policy

    q, params = load_policy(synq_policy)
    rng = np.random.default_rng(7)
    b = ir.GraphBuilder(seed=7)
    x, r = b.input("x", 5), b.input("reward", 1)
    h = b.cuba_lif("h", 4, du=0.5, dv=0.5, vth=2.0)
    o = b.cuba_lif("o", 3, du=0.5, dv=0.5, vth=2.0)
    b.modulator("m_glob", r, 1, weight=np.array([[1.0]]))
    b.connect(x, h, weight=rng.normal(0.8, 0.3, (4, 5)))
    rule = ir.SynapticQ(q_table=q.numpy().astype(np.float64), step=0.05, epsilon=params.epsilon, modulator="m_glob")
    b.connect(h, o, weight=rng.normal(0.8, 0.3, (3, 4)), rule=rule, name="h_o")
    path = tmp_path_factory.mktemp("synq_net") / "synq_net.plx"
    return ir.save(b.build(outputs=[o, h]), path)


def static_ff(dt: float = 1e-3):
    """A static feed-forward CUBA net 12 -> 16 -> 3 (bias 0, uniform thresholds: NIR peers can import it)."""
    rng = np.random.default_rng(0)
    b = ir.GraphBuilder(seed=0)
    x = b.input("x", 12)
    h = b.cuba_lif("h", 16, du=0.25, dv=0.125, vth=1.0)
    y = b.cuba_lif("y", 3, du=0.5, dv=0.25, vth=1.0)
    b.connect(x, h, weight=rng.normal(0.4, 0.4, (16, 12)))
    b.connect(h, y, weight=rng.normal(0.5, 0.4, (3, 16)))
    return b.build(outputs=[y, h]).replace(dt=dt)
