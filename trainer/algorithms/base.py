r"""Ask/tell interface shared by the evolution strategies, and fitness shaping.

Conventions (stated once, for every trainer in :mod:`plastix.trainer`):

* **Higher fitness is better.** A NaN (a diverged individual) or ``-inf`` fitness ranks worst.
* **State is passed, not kept.** A strategy object holds only static config (population size,
  number of parameters, antithetic sampling, the shaping); :class:`ESState` (what changes every
  generation) and :class:`ESParams` (hyper-parameters) are frozen dataclasses, updated with
  :func:`dataclasses.replace`. Randomness comes from an explicit ``torch.Generator``.
* ``init(mean, params, *, generator) -> state``;
  ``ask(state, params, *, generator) -> (population, state)`` with ``population`` of shape
  ``(population_size, num_dims)``; ``tell(population, fitness, state, params) -> (state, metrics)``
  with ``fitness`` of shape ``(population_size,)``. Metrics are returned, never logged.

Fitness shaping functions are pure: ``(fitness,) -> utilities`` of the same shape.
"""
from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass, replace
from typing import Callable, Mapping

import torch

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------
# fitness shaping (pure functions)


def _sort_key(fitness: Tensor) -> Tensor:
    """Fitness with NaN mapped to -inf, so NaN and -inf rank worst."""
    f = fitness.detach().to(torch.float64)
    return torch.where(torch.isnan(f), torch.full_like(f, -math.inf), f)


def ranks(fitness: Tensor) -> Tensor:
    """Ascending ranks ``0 .. n-1`` (``n-1`` = best) as float64; NaN and ``-inf`` rank worst.

    Tied fitness values share the mean of their ranks (so a flat landscape gives equal
    utilities and a zero gradient, whatever the order of the individuals).
    """
    if fitness.ndim != 1:
        raise ValueError(f"fitness must be 1-D (population,), got shape {tuple(fitness.shape)}")
    n = fitness.shape[0]
    key = _sort_key(fitness)
    sorted_key, order = torch.sort(key, stable=True)
    _, inverse, counts = torch.unique_consecutive(sorted_key, return_inverse=True, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    mean_rank = starts.to(torch.float64) + (counts.to(torch.float64) - 1) / 2
    r = torch.empty(n, dtype=torch.float64, device=fitness.device)
    r[order] = mean_rank[inverse]
    return r


def centered_rank(fitness: Tensor) -> Tensor:
    r"""OpenAI-ES centred ranks (Salimans et al. 2017): ``rank / (n - 1) - 0.5`` in [-0.5, 0.5].

    Zero-mean; the best individual gets +0.5, the worst (or any NaN) -0.5.
    """
    n = fitness.shape[0]
    if n < 2:
        return torch.zeros(n, dtype=torch.float64, device=fitness.device)
    return ranks(fitness) / (n - 1) - 0.5


def paper_rank(fitness: Tensor, alpha: float = 5.0) -> Tensor:
    r"""Bertens & Lee (2020, Methods, "Fitness ranking") rank weights:

    .. math:: F_r(\theta_i) = \frac{\mathrm{rank}(F(\theta_i))^\alpha}{\sum_j \mathrm{rank}(F(\theta_j))^\alpha}

    where ``rank`` is a linear ranking from 1.0 (best) to 0.0 (worst), i.e. ``r_i / (n - 1)`` with
    ascending ranks ``r_i``. Non-negative weights that sum to 1; the worst individual (and any
    NaN) gets weight 0. With ``alpha = 5`` the top 20 % hold ``1 - 0.8^6 ≈ 74 %`` of the weight
    ("around the top 20 % ... account for 80 %").
    """
    n = fitness.shape[0]
    if n < 2:
        return torch.ones(n, dtype=torch.float64, device=fitness.device)
    w = (ranks(fitness) / (n - 1)) ** alpha
    return w / w.sum()


def _finite_or_worst(fitness: Tensor) -> Tensor:
    """float64 copy with NaN/-inf replaced by the lowest finite value and +inf by the highest
    (all non-finite: zeros)."""
    f = fitness.detach().to(torch.float64)
    finite = torch.isfinite(f)
    if not finite.any():
        return torch.zeros_like(f)
    f = torch.where(finite | (f == math.inf), f, f[finite].min())
    return torch.where(f == math.inf, f[finite].max(), f)


def raw(fitness: Tensor) -> Tensor:
    """No shaping (non-finite values clamped as in :func:`standardize`)."""
    return _finite_or_worst(fitness)


def standardize(fitness: Tensor) -> Tensor:
    r"""``(F - mean) / std`` over the finite entries; NaN and ``-inf`` get the lowest finite value
    first (so they rank worst, tied with the worst). All-equal or all-NaN fitness gives zeros."""
    f = _finite_or_worst(fitness)
    std = f.std(unbiased=False)
    if std == 0:
        return torch.zeros_like(f)
    return (f - f.mean()) / std


class Shaping(str, enum.Enum):
    """Which shaping a strategy uses (strings only at the edges: configs and the CLI)."""

    CENTERED_RANK = "centered_rank"
    PAPER_RANK = "paper_rank"
    STANDARDIZE = "standardize"
    RAW = "raw"


def shape_fitness(shaping: Shaping, fitness: Tensor, *, alpha: float = 5.0) -> Tensor:
    """Apply ``shaping`` (dispatch table; an unknown value lists the known ones)."""
    table: Mapping[Shaping, Callable[[Tensor], Tensor]] = {
        Shaping.CENTERED_RANK: centered_rank,
        Shaping.PAPER_RANK: lambda f: paper_rank(f, alpha),
        Shaping.STANDARDIZE: standardize,
        Shaping.RAW: raw,
    }
    try:
        fn = table[Shaping(shaping)]
    except (KeyError, ValueError):
        raise ValueError(f"unknown shaping {shaping!r}; known: {[s.value for s in table]}") from None
    return fn(fitness)


# ---------------------------------------------------------------------------------------------
# state, params, base class


class Optimizer(str, enum.Enum):
    SGD = "sgd"    # SGD with momentum (OpenAI-ES form: v = m v + (1 - m) g)
    ADAM = "adam"


MOMENTUM_FORMS = ("damped", "classic")  # v = m v + (1 - m) g (OpenAI-ES) | v = m v + g (Sutskever et al.)


@dataclass(frozen=True)
class ESParams:
    """Hyper-parameters of a distribution-based ES (defaults: Bertens & Lee 2020, Methods).

    ``sigma`` mutation std; ``lr`` step size; ``optimizer`` SGD-with-momentum or Adam;
    ``momentum`` (SGD), ``beta1``/``beta2``/``eps`` (Adam); ``weight_decay`` L2 coefficient
    (the ascent direction gets ``- weight_decay * mean``); ``rank_alpha`` the exponent of
    :func:`paper_rank`. ``noise_units`` and ``momentum_form`` choose between two readings of the
    paper's Algorithm 1 (:mod:`plastix.trainer.algorithms.openai_es`): ``False`` / ``"damped"`` (default)
    step to the rank-weighted offspring mean, ``G = sigma sum_i F_i eps_i``, with OpenAI-ES's damped
    momentum; ``True`` / ``"classic"`` the text literally, ``G = sum_i F_i eps_i`` (eps ~ N(0, I)) with
    classic momentum ``v = momentum v + G`` (Sutskever et al. 2013, the paper's ref. 53): a step
    ``1 / sigma`` times larger, and ``1 / (1 - momentum)`` more at steady state.
    """

    sigma: float = 0.01
    lr: float = 1.0
    optimizer: Optimizer = Optimizer.SGD
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    rank_alpha: float = 5.0
    noise_units: bool = False
    momentum_form: str = "damped"

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizer", Optimizer(self.optimizer))
        if self.momentum_form not in MOMENTUM_FORMS:
            raise ValueError(f"ESParams.momentum_form must be one of {MOMENTUM_FORMS}, got {self.momentum_form!r}")
        if not self.sigma > 0:
            raise ValueError(f"ESParams.sigma must be > 0, got {self.sigma}")
        if not self.lr > 0:
            raise ValueError(f"ESParams.lr must be > 0, got {self.lr}")
        for name in ("momentum", "beta1", "beta2"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"ESParams.{name} must be in [0, 1), got {v}")
        if self.weight_decay < 0:
            raise ValueError(f"ESParams.weight_decay must be >= 0, got {self.weight_decay}")
        if not self.rank_alpha > 0:
            raise ValueError(f"ESParams.rank_alpha must be > 0, got {self.rank_alpha}")


@dataclass(frozen=True)
class ESState:
    """Everything that changes from one generation to the next (all tensors on one device).

    ``mean`` (D,) search-distribution centre; ``sigma`` its std; ``opt_m``/``opt_v`` (D,) optimizer
    moments (``opt_v`` unused by SGD); ``opt_t`` optimizer steps taken; ``best_member`` (D,) and
    ``best_fitness`` the best individual evaluated so far (``-inf`` before the first tell);
    ``generation`` the number of completed tells.
    """

    mean: Tensor
    sigma: float
    opt_m: Tensor
    opt_v: Tensor
    opt_t: int
    best_member: Tensor
    best_fitness: float
    generation: int


class Strategy(abc.ABC):
    """Base class: generic checks, shaping, best-so-far and the generation counter.

    Subclasses implement ``_ask(state, params, generator) -> population`` and
    ``_tell(population, utilities, state, params) -> (state, metrics)``.
    """

    def __init__(self, population_size: int, num_dims: int, *, shaping: Shaping | str = Shaping.CENTERED_RANK,
                 dtype: torch.dtype = torch.float32) -> None:
        if population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {population_size}")
        if num_dims < 1:
            raise ValueError(f"num_dims must be >= 1, got {num_dims}")
        self.population_size = int(population_size)
        self.num_dims = int(num_dims)
        self.shaping = Shaping(shaping)
        self.dtype = dtype

    def default_params(self) -> ESParams:
        return ESParams()

    # -- public API --------------------------------------------------------------------------
    def init(self, mean: Tensor, params: ESParams, *, generator: torch.Generator | None = None) -> ESState:
        """Initial state around ``mean`` (D,). ``generator`` is accepted for strategies that
        randomise their initial state; OpenAI-ES does not use it."""
        mean = torch.as_tensor(mean).detach().to(self.dtype).clone()
        if mean.shape != (self.num_dims,):
            raise ValueError(f"mean must have shape ({self.num_dims},), got {tuple(mean.shape)}")
        zeros = torch.zeros_like(mean)
        return ESState(mean=mean, sigma=float(params.sigma), opt_m=zeros, opt_v=zeros.clone(), opt_t=0,
                       best_member=mean.clone(), best_fitness=-math.inf, generation=0)

    def ask(self, state: ESState, params: ESParams, *, generator: torch.Generator) -> tuple[Tensor, ESState]:
        population = self._ask(state, params, generator)
        return population, state

    def tell(self, population: Tensor, fitness: Tensor, state: ESState, params: ESParams) -> tuple[ESState, dict]:
        if population.shape != (self.population_size, self.num_dims):
            raise ValueError(f"population must have shape ({self.population_size}, {self.num_dims}), "
                             f"got {tuple(population.shape)}")
        fitness = torch.as_tensor(fitness).detach()
        if fitness.shape != (self.population_size,):
            raise ValueError(f"fitness must have shape ({self.population_size},), got {tuple(fitness.shape)}")
        utilities = shape_fitness(self.shaping, fitness, alpha=params.rank_alpha)
        state, metrics = self._tell(population, utilities, state, params)

        key = _sort_key(fitness)
        i = int(torch.argmax(key))
        best_now = float(key[i])
        if best_now > state.best_fitness:
            state = replace(state, best_member=population[i].detach().clone(), best_fitness=best_now)
        state = replace(state, generation=state.generation + 1)
        finite = fitness[torch.isfinite(fitness)].to(torch.float64)
        metrics = {
            "generation": state.generation,
            "fitness_mean": float(finite.mean()) if finite.numel() else math.nan,
            "fitness_max": best_now,
            "fitness_min": float(finite.min()) if finite.numel() else math.nan,
            "fitness_std": float(finite.std(unbiased=False)) if finite.numel() else math.nan,
            "fitness_nonfinite": int((~torch.isfinite(fitness)).sum()),
            "best_fitness": state.best_fitness,
            **metrics,
        }
        return state, metrics

    # -- subclass hooks ----------------------------------------------------------------------
    @abc.abstractmethod
    def _ask(self, state: ESState, params: ESParams, generator: torch.Generator) -> Tensor: ...

    @abc.abstractmethod
    def _tell(self, population: Tensor, utilities: Tensor, state: ESState, params: ESParams) -> tuple[ESState, dict]: ...
