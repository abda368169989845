"""Shared helpers of the torch-backend tests: a harness graph whose post spikes are dictated."""
from __future__ import annotations

import numpy as np
import torch

from plastix.ir import CubaLIF, Graph, Input, Modulator, Projection

N_PRE, N_POST = 4, 3


def harness(rule, *, n_pre=N_PRE, n_post=N_POST, w0=None, mod_size=None, mod_channels=1, seed=0):
    """pre (Input) --rule--> post (CubaLIF du=dv=1, vth=0.5) <--identity-- drive (Input).

    With small plastic weights the post spikes are y[t] = drive[t-1]. A modulator ``m`` (identity
    activation, identity weight) reads the Input ``msrc`` so that M[t] = msrc[t-1].
    """
    rng = np.random.default_rng(seed)
    if w0 is None:
        w0 = rng.uniform(-0.05, 0.05, (n_post, n_pre))
    pops = [Input(name="pre", size=n_pre), Input(name="drive", size=n_post),
            CubaLIF(name="post", size=n_post, du=1.0, dv=1.0, vth=5.0)]
    projs = [Projection(name="plastic", pre="pre", post="post", weight=w0, rule=rule),
             Projection(name="drv", pre="drive", post="post", weight=10 * np.eye(n_post))]
    mods = []
    if mod_size is not None:
        rows = mod_size * mod_channels
        pops.append(Input(name="msrc", size=rows))
        mods.append(Modulator(name="m", source="msrc", size=mod_size, channels=mod_channels, weight=np.eye(rows)))
    return Graph(populations=tuple(pops), projections=tuple(projs), modulators=tuple(mods), outputs=("post",))


def harness_inputs(T, *, n_pre=N_PRE, n_post=N_POST, mod_rows=None, seed=1, p=0.3, B=1):
    rng = np.random.default_rng(seed)
    x = (rng.random((T, B, n_pre)) < p).astype(np.float64)
    d = (rng.random((T, B, n_post)) < p).astype(np.float64)
    xs = {"pre": x, "drive": d}
    if mod_rows:
        xs["msrc"] = rng.uniform(-1, 1, (T, B, mod_rows))
    return xs


def post_spikes(drive):
    """y[t] = drive[t-1] (y[0] = 0)."""
    y = np.zeros_like(drive)
    y[1:] = drive[:-1]
    return y


def mod_values(msrc):
    m = np.zeros_like(msrc)
    m[1:] = msrc[:-1]
    return m


def to_torch(xs, dtype=torch.float64):
    return {k: torch.as_tensor(v, dtype=dtype) for k, v in xs.items()}
