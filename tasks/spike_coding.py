r"""Spike coding of continuous observations and actions (Schmidgall et al. 2021, "SpikePropamine",
section 3.2 "High-Dimensional Robotic Locomotion Task"; the equations are in its Appendix 5.2 / 5.3,
which our copy of the paper lacks — the choices made in their place are named below).

Observation (sec. 3.2, "a probabilistic population representation based on place coding"): each
input dimension ``i``, clipped to ``[lo_i, hi_i]``, is covered by ``per_input`` neurons (paper: 50)
with Gaussian tuning curves at evenly spaced centres ``c_k = lo + k (hi - lo) / (per_input - 1)``.
Neuron ``k`` fires at a step with probability

.. math:: p_k(x) = p_{min} + (p_{max} - p_{min}) \exp\!\left(-\frac{(x - c_k)^2}{2 w^2}\right),

where ``p_min`` is the paper's minimum firing probability :math:`\vartheta_{min}` ("spike-firing
probability noise"). Our choices (the appendix values are not in the text): ``w`` = one centre
spacing (``width=1.0`` in spacing units), ``p_min = 0.02``, ``p_max = 1.0``.

Action (sec. 3.2): each of the ``n_actions`` joints has ``per_action`` output neurons (paper: 100),
the first half positive, the second half negative. Over an integration interval of ``T`` steps
(paper: 50) the action is

.. math:: a_j = \frac{\sum_t \sum_{k \in +_j} s_{k,t} - \sum_t \sum_{k \in -_j} s_{k,t}}{n_{half} T}
   \in [-1, 1].

Layouts (flat last dim, so the 600-d spike vectors of the paper feed a linear layer directly):
input ``i``'s neurons are ``[i * per_input, (i + 1) * per_input)``; joint ``j``'s positive neurons are
``[j * per_action, j * per_action + n_half)``, its negative ones the next ``n_half``. Every function
takes any leading dims ``(P, E, ...)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

Tensor = torch.Tensor


def _like(t: Tensor, x: Tensor) -> Tensor:
    return t.to(dtype=x.dtype, device=x.device)


@dataclass(frozen=True)
class PlaceCode:
    """Probabilistic place code of continuous inputs (sec. 3.2, Appendix 5.2; module docstring).

    ``lo``/``hi``: clipping range, a scalar for every input or one value per input (a tuple as long
    as the input's last dim). ``width``: the tuning-curve std ``w`` in units of the centre spacing
    ``(hi - lo) / (per_input - 1)``. ``p_min`` (the paper's :math:`\\vartheta_{min}`, spike noise) and
    ``p_max``: firing probabilities far from and at a neuron's centre. Defaults: the paper's
    ``per_input = 50``; the rest is our choice (see the module docstring).
    """

    per_input: int = 50
    lo: float | tuple[float, ...] = -1.0
    hi: float | tuple[float, ...] = 1.0
    width: float = 1.0
    p_min: float = 0.02
    p_max: float = 1.0
    # derived in __post_init__ (float64, never mutated): bounds (n,) or (), centres and 1 / w (n or 1, ...)
    _lo: Tensor = field(init=False, repr=False, compare=False)
    _hi: Tensor = field(init=False, repr=False, compare=False)
    _centres: Tensor = field(init=False, repr=False, compare=False)
    _inv_sigma: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("lo", "hi"):
            v = getattr(self, name)
            object.__setattr__(self, name, tuple(float(x) for x in v) if isinstance(v, (tuple, list)) else float(v))
        if self.per_input < 2:
            raise ValueError(f"PlaceCode.per_input must be >= 2, got {self.per_input}")
        lo, hi = torch.as_tensor(self.lo, dtype=torch.float64), torch.as_tensor(self.hi, dtype=torch.float64)
        if lo.shape != hi.shape and lo.ndim and hi.ndim:
            raise ValueError(f"PlaceCode.lo and hi must have the same length, got {len(self.lo)}, {len(self.hi)}")
        if not bool((hi > lo).all()):
            raise ValueError(f"PlaceCode: need lo < hi for every input, got lo={self.lo}, hi={self.hi}")
        if not self.width > 0:
            raise ValueError(f"PlaceCode.width must be > 0, got {self.width}")
        if not 0.0 <= self.p_min < self.p_max <= 1.0:
            raise ValueError(f"PlaceCode: need 0 <= p_min < p_max <= 1, got {self.p_min}, {self.p_max}")
        spacing = (hi - lo).reshape(-1, 1) / (self.per_input - 1)
        object.__setattr__(self, "_lo", lo)
        object.__setattr__(self, "_hi", hi)
        object.__setattr__(self, "_centres", lo.reshape(-1, 1) + spacing * torch.arange(self.per_input))
        object.__setattr__(self, "_inv_sigma", 1.0 / (self.width * spacing))

    def centres(self, x: Tensor) -> Tensor:
        """Tuning centres ``(n_inputs or 1, per_input)`` in ``x``'s dtype and device."""
        return _like(self._centres, x)

    def resolution(self, x: Tensor) -> Tensor:
        """Centre spacing ``(hi - lo) / (per_input - 1)`` per input, ``(n_inputs,)`` or ``()``."""
        return _like((self._hi - self._lo) / (self.per_input - 1), x)

    def clip(self, x: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(x, _like(self._lo, x)), _like(self._hi, x))

    def rates(self, x: Tensor) -> Tensor:
        """Firing probabilities ``(..., n_inputs * per_input)`` of inputs ``x`` (..., n_inputs)."""
        u = (self.clip(x)[..., None] - self.centres(x)) * _like(self._inv_sigma, x)
        bump = torch.exp(-0.5 * u * u)
        return (self.p_min + (self.p_max - self.p_min) * bump).flatten(-2)

    def encode(self, x: Tensor, generator: torch.Generator | None = None, steps: int | None = None) -> Tensor:
        """Bernoulli spikes (float 0/1) drawn from :meth:`rates` with ``generator`` (on ``x``'s
        device): one step ``(..., n_inputs * per_input)``, or with ``steps`` a window of independent
        steps ``(..., steps, n_inputs * per_input)`` (time at dim -2, as :meth:`ActionCode.decode`)."""
        p = self.rates(x)
        if steps is not None:
            p = p.unsqueeze(-2).expand(*p.shape[:-1], int(steps), p.shape[-1])
        return (torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device) < p).to(p.dtype)

    def decode(self, rates: Tensor, reach: float = 3.0) -> Tensor:
        """Local population-vector estimate ``(..., n_inputs)`` of the inputs from rates or mean
        spike counts ``(..., n_inputs * per_input)``: the centres within ``reach`` tuning widths of
        the most active neuron, weighted by their rate above ``p_min`` (the local window keeps the
        background spikes of far neurons from pulling the estimate to the middle). Within about one
        spacing of a range end the estimate is pulled inwards (the tuning curves are cut there).
        Where no neuron is above ``p_min`` it returns the most active neuron's centre."""
        r = rates.unflatten(-1, (-1, self.per_input))
        c = self.centres(r[..., 0])
        k = torch.arange(self.per_input, device=r.device)
        peak = r.argmax(-1, keepdim=True)
        near = (k - peak).abs() <= reach * self.width
        wgt = torch.where(near, (r - self.p_min).clamp_min(0.0), torch.zeros_like(r))
        total = wgt.sum(-1)
        est = (wgt * c).sum(-1) / total.clamp_min(torch.finfo(r.dtype).tiny)
        return torch.where(total > 0, est, c.expand_as(r).gather(-1, peak)[..., 0])


@dataclass(frozen=True)
class ActionCode:
    """Population decoding of actions (sec. 3.2, Appendix 5.3): ``per_action`` neurons per joint
    (paper: 100; first half positive, second half negative) integrated over ``window`` steps
    (paper: ``T = 50``) give an action in [-1, 1] (module docstring)."""

    per_action: int = 100
    window: int = 50

    def __post_init__(self) -> None:
        if self.per_action < 2 or self.per_action % 2:
            raise ValueError(f"ActionCode.per_action must be even and >= 2, got {self.per_action}")
        if self.window < 1:
            raise ValueError(f"ActionCode.window must be >= 1, got {self.window}")

    @property
    def n_half(self) -> int:
        return self.per_action // 2

    def decode_counts(self, counts: Tensor, steps: int | None = None) -> Tensor:
        """Actions ``(..., n_actions)`` from spike counts ``(..., n_actions * per_action)`` summed
        over ``steps`` (default ``window``) steps."""
        steps = self.window if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"ActionCode.decode_counts: steps must be >= 1, got {steps}")
        c = counts.unflatten(-1, (-1, 2, self.n_half)).sum(-1)
        return (c[..., 0] - c[..., 1]) / (self.n_half * steps)

    def decode(self, spikes: Tensor) -> Tensor:
        """Actions ``(..., n_actions)`` from a window of spikes ``(..., T, n_actions * per_action)``
        (time is dim -2; ``T`` is the window actually given, normally ``window``)."""
        return self.decode_counts(spikes.sum(-2), spikes.shape[-2])

    def ideal_rates(self, action: Tensor) -> Tensor:
        """The inverse of :meth:`decode_counts` on expectations: firing probabilities
        ``(..., n_actions * per_action)`` with positive neurons at ``max(a, 0)`` and negative ones at
        ``max(-a, 0)``, so ``decode_counts(T * ideal_rates(a), T) == clip(a, -1, 1)``."""
        a = action.clamp(-1.0, 1.0)[..., None]
        pos, neg = a.clamp_min(0.0), (-a).clamp_min(0.0)
        shape = (*action.shape, self.n_half)
        return torch.stack([pos.expand(shape), neg.expand(shape)], dim=-2).flatten(-3)

