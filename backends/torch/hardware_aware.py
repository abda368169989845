r"""Straight-through projections for hardware-aware training (torch twins of
:mod:`plastix.backends.hardware_aware`).

Each function returns a tensor whose *value* is the nearest Loihi / learning-engine representable
value, exactly, and whose *gradient* is the identity (straight-through estimator, Bengio et al. 2013). Use them on the parameters inside the training step, e.g.
``eta = literal(params["proj/rule/base/base/eta_plus"])`` before handing the values to the network
with ``run(..., params=...)``; after training, :func:`plastix.backends.hardware_aware.project_to_engine`
on the exported graph gives exactly the values the forward pass used.

>>> import torch
>>> x = torch.tensor([0.1, 3.3], requires_grad=True)
>>> y = literal(x)
>>> y.tolist()
[0.1015625, 3.3125]
>>> y.sum().backward(); x.grad.tolist()
[1.0, 1.0]
"""
from __future__ import annotations

import torch

from ..hardware_aware import IMPULSE_RANGE, LITERAL_MAX, project_dense_weight, project_trace_decay
from ..learning_engine import EXCITATORY, INHIBITORY, MIXED

__all__ = ["straight_through", "literal", "trace_decay", "impulse", "plastic_weight", "dense_weight", "decay12",
           "multiple"]


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return projected.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple:  # noqa: ANN001
        return grad, None


def straight_through(x: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
    """Value exactly ``projected`` (``x + (p - x).detach()`` would round), gradient of ``x`` (identity)."""
    return _StraightThrough.apply(x, projected.detach())


def _literal(c: torch.Tensor) -> torch.Tensor:
    a = c.abs().clamp(max=LITERAL_MAX)
    e = (torch.floor(torch.log2(torch.where(a > 0, a, torch.ones_like(a)))) - 6).clamp(min=-7)
    e = torch.where(torch.round(a / 2.0 ** e) >= 128, e + 1, e)
    return torch.sign(c) * (torch.round(a / 2.0 ** e) * 2.0 ** e).clamp(max=LITERAL_MAX)


def literal(x: torch.Tensor) -> torch.Tensor:
    """Rule constants (eta+-, 1 - gamma): nearest ``M 2^E``, ``|M| <= 127``, ``E >= -7``."""
    return straight_through(x, _literal(x.detach()))


def _numpy(fn, x: torch.Tensor, *args) -> torch.Tensor:  # noqa: ANN001
    """``fn`` of :mod:`plastix.backends.hardware_aware` on ``x`` (the values Lava itself computes)."""
    return torch.as_tensor(fn(x.detach().cpu().double().numpy(), *args), dtype=x.dtype, device=x.device)


def trace_decay(alpha: torch.Tensor) -> torch.Tensor:
    """Trace decays: nearest ``exp(-1/tau)``, integer ``tau`` in 1..255 (numpy's exp, as Lava's)."""
    return straight_through(alpha, _numpy(project_trace_decay, alpha))


def impulse(beta: torch.Tensor) -> torch.Tensor:
    """Trace impulses: nearest integer in 1..127."""
    return straight_through(beta, torch.round(beta.detach()).clamp(*IMPULSE_RANGE))


def plastic_weight(w: torch.Tensor, sign_mode: int = MIXED) -> torch.Tensor:
    """Learning-engine weights: integers in the sign mode's 8-bit range (MIXED: even, -256..254)."""
    v = w.detach()
    if sign_mode == EXCITATORY:
        p = torch.round(v).clamp(0, 255)
    elif sign_mode == INHIBITORY:
        p = torch.round(v).clamp(-255, 0)
    else:
        p = (2 * torch.round(v / 2)).clamp(-256, 254)
    return straight_through(w, p)


def dense_weight(w: torch.Tensor) -> torch.Tensor:
    """A static weight matrix: ``m 2^e`` with one exponent ``e >= -8`` and 8-bit mantissas."""
    return straight_through(w, _numpy(project_dense_weight, w))


def decay12(d: torch.Tensor, lo: int = 0, hi: int = 4096) -> torch.Tensor:
    """``du`` (``lo = 1``) / ``dv`` (``hi = 4095``): multiples of 1/4096."""
    return straight_through(d, torch.round(d.detach() * 4096).clamp(lo, hi) / 4096)


def multiple(x: torch.Tensor, q: float) -> torch.Tensor:
    """Nearest multiple of ``q`` (bias, initial u / v: 1/64; thresholds: 1)."""
    return straight_through(x, torch.round(x.detach() / q) * q)
