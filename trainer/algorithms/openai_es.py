r"""OpenAI-ES (Salimans et al. 2017) as used by Bertens & Lee (2020, Methods, Algorithm 1).

Sampling: ``population = mean + sigma * z`` with ``z ~ N(0, I)``; with antithetic sampling the
first half is ``+z``, the second half ``-z`` (pairs ``i`` and ``i + P/2``).

Ascent direction ``g`` from the shaped utilities ``u`` (see :mod:`plastix.trainer.algorithms.base`):

* zero-mean shapings (``centered_rank``, ``standardize``, ``raw``): the OpenAI-ES estimate of
  :math:`\nabla_\theta E[F]`, :math:`g = \frac{1}{P\sigma}\sum_i u_i z_i`;
* ``paper_rank`` (weights ``w`` >= 0 that sum to 1): :math:`g = \sum_i w_i(\theta_i - \theta)
  = \sigma\sum_i w_i z_i`, the step to the rank-weighted mean of the offspring. This is the
  paper's Algorithm 1 (``G = sum_i F_i eps_i``) with the perturbation measured in parameter
  units (``sigma * eps``); it is the reading under which the paper's ``lr = 1.0`` makes sense
  (one SGD step without momentum lands on the weighted offspring mean). The paper's code is not
  available here; this interpretation is ours. ``ESParams(noise_units=True)`` takes the text
  literally instead: :math:`g = \sum_i w_i z_i` (the noise ``eps = z`` in its own units, a step
  ``1 / sigma`` times larger).

Then ``g <- g - weight_decay * mean`` and an optimizer step:

* SGD with momentum, OpenAI-ES form (``es-distributed/optimizers.py``):
  ``v = momentum * v + (1 - momentum) * g``; ``mean += lr * v``; or, with
  ``ESParams(momentum_form="classic")``, ``v = momentum * v + g`` (Sutskever et al. 2013);
* Adam: ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
  ``mean += lr * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)``.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from .base import ESParams, ESState, Optimizer, Shaping, Strategy

Tensor = torch.Tensor


class OpenAIES(Strategy):
    """OpenAI-ES with antithetic sampling, fitness shaping, SGD-momentum / Adam, weight decay.

    >>> import torch
    >>> es = OpenAIES(population_size=8, num_dims=3)
    >>> p = es.default_params()
    >>> g = torch.Generator().manual_seed(0)
    >>> s = es.init(torch.zeros(3), p, generator=g)
    >>> pop, s = es.ask(s, p, generator=g)
    >>> s, m = es.tell(pop, -(pop ** 2).sum(1), s, p)
    >>> s.generation, tuple(pop.shape)
    (1, (8, 3))
    """

    def __init__(self, population_size: int, num_dims: int, *, antithetic: bool = True,
                 shaping: Shaping | str = Shaping.CENTERED_RANK, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(population_size, num_dims, shaping=shaping, dtype=dtype)
        if antithetic and population_size % 2:
            raise ValueError(f"antithetic sampling needs an even population_size, got {population_size}")
        self.antithetic = bool(antithetic)

    def sample_noise(self, generator: torch.Generator, device: torch.device | str | None = None) -> Tensor:
        """``z`` of shape (P, D); antithetic pairs are rows ``i`` and ``i + P/2``."""
        n = self.population_size // 2 if self.antithetic else self.population_size
        z = torch.randn(n, self.num_dims, generator=generator, dtype=self.dtype, device=generator.device)
        if self.antithetic:
            z = torch.cat([z, -z], dim=0)
        return z if device is None else z.to(device)

    def _ask(self, state: ESState, params: ESParams, generator: torch.Generator) -> Tensor:
        z = self.sample_noise(generator, state.mean.device)
        return state.mean[None, :] + state.sigma * z

    def gradient(self, population: Tensor, utilities: Tensor, state: ESState, *, noise_units: bool = False) -> Tensor:
        """The ascent direction ``g`` (D,) before weight decay (see the module docstring)."""
        diff = (population - state.mean[None, :]).to(torch.float64)
        u = utilities.to(device=diff.device, dtype=torch.float64)
        if self.shaping is Shaping.PAPER_RANK:
            g = u @ diff / (state.sigma if noise_units else 1.0)
        else:
            g = (u @ diff) / (self.population_size * state.sigma ** 2)
        return g.to(state.mean.dtype)

    def _tell(self, population: Tensor, utilities: Tensor, state: ESState, params: ESParams) -> tuple[ESState, dict]:
        g = self.gradient(population, utilities, state, noise_units=params.noise_units)
        if params.weight_decay:
            g = g - params.weight_decay * state.mean
        t = state.opt_t + 1
        if params.optimizer is Optimizer.SGD:
            damp = 1.0 if params.momentum_form == "classic" else 1.0 - params.momentum
            m = params.momentum * state.opt_m + damp * g
            v = state.opt_v
            step = params.lr * m
        elif params.optimizer is Optimizer.ADAM:
            m = params.beta1 * state.opt_m + (1.0 - params.beta1) * g
            v = params.beta2 * state.opt_v + (1.0 - params.beta2) * g * g
            a = params.lr * math.sqrt(1.0 - params.beta2 ** t) / (1.0 - params.beta1 ** t)
            step = a * m / (torch.sqrt(v) + params.eps)
        else:  # pragma: no cover - ESParams validates the enum
            raise ValueError(f"unknown optimizer {params.optimizer!r}; known: {[o.value for o in Optimizer]}")
        new = replace(state, mean=state.mean + step, opt_m=m, opt_v=v, opt_t=t)
        metrics = {"grad_norm": float(g.norm()), "step_norm": float(step.norm()), "mean_norm": float(new.mean.norm())}
        return new, metrics
