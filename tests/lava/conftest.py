"""Shared helpers for the Lava backend tests: small graphs and inputs."""
from __future__ import annotations

import numpy as np
import pytest

from plastix.ir import GraphBuilder


def spikes(steps: int, n: int, p: float = 0.2, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, n)) < p).astype(np.float64)


def static_graph(precision: str, *, seed: int = 0, recurrent: bool = True, readout: bool = True,
                 delays: bool = False):
    """20 -> 48 CubaLIF (recurrent) -> 2 CubaLIF (+ an LI readout), values exact for ``precision``."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(seed=seed)
    x = b.input("x", 20)
    if precision == "fixed":
        # du, dv multiples of 1/4096, integer vth, bias multiple of 1/64, odd mixed-sign integer weights
        h = b.cuba_lif("h", 48, du=819 / 4096, dv=410 / 4096, vth=30, bias=0.5)
        y = b.cuba_lif("y", 2, du=1024 / 4096, dv=205 / 4096, vth=20)
        w_in = rng.integers(-9, 24, (48, 20)).astype(float)
        w_rec = rng.integers(-7, 6, (48, 48)).astype(float)
        w_out = rng.integers(-5, 12, (2, 48)).astype(float)
        w_li = rng.integers(-3, 4, (3, 48)).astype(float)
    else:
        h = b.cuba_lif("h", 48, du=0.2, dv=0.1, vth=1.0, bias=0.013)
        y = b.cuba_lif("y", 2, du=0.25, dv=0.05, vth=0.8)
        w_in = rng.normal(0.15, 0.3, (48, 20))
        w_rec = rng.normal(0.0, 0.1, (48, 48))
        w_out = rng.normal(0.08, 0.1, (2, 48))
        w_li = rng.normal(0.0, 0.1, (3, 48))
    b.connect(x, h, weight=w_in)
    if recurrent:
        b.connect(h, h, weight=w_rec, name="rec")
    b.connect(h, y, weight=w_out)
    if delays:  # a delayed skip connection and a delayed recurrent one
        b.connect(x, y, weight=np.abs(w_in[:2]), delay=3, name="skip")
        b.connect(y, h, weight=w_rec[:, :2], delay=1, name="feedback")
    outputs = [y, h]
    if readout:
        r = b.li("r", 3, du=(512 / 4096 if precision == "fixed" else 0.1), dv=(256 / 4096 if precision == "fixed" else 0.07))
        b.connect(h, r, weight=w_li)
        outputs.append(r)
    return b.build(outputs=outputs)


@pytest.fixture(scope="session")
def lava():
    import plastix.backends.lava as lava_backend

    return lava_backend
