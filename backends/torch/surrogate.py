"""Spike functions with surrogate gradients.

Forward is the exact Heaviside step ``s = (x > 0)`` (0/1, matching the strict ``v > vth`` of
:class:`plastix.ir.CubaLIF`); backward replaces its derivative by a smooth pseudo-derivative of
``x = v - vth``:

* ``fast_sigmoid`` (SuperSpike, Zenke & Ganguli 2018): ``1 / (1 + k |x|)^2`` with ``k = 10``.
* ``exponential`` (SLAYER, Shrestha & Orchard 2018): ``a exp(-|x| / tau)`` with ``a = 1``,
  ``tau = 0.5`` (``tau`` in threshold units).
"""
from __future__ import annotations

from typing import Callable

import torch

FAST_SIGMOID_SLOPE = 10.0
EXP_SCALE = 1.0
EXP_TAU = 0.5


class _Spike(torch.autograd.Function):
    """Heaviside forward; subclasses give the surrogate derivative ``d(x)`` used backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


# ``backward`` is a staticmethod per subclass (not a classmethod on the base): torch.compile can
# trace only staticmethod backwards of an autograd.Function.


class _FastSigmoidSpike(_Spike):
    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + FAST_SIGMOID_SLOPE * x.abs()) ** 2

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        (x,) = ctx.saved_tensors
        return grad * _FastSigmoidSpike.derivative(x)


class _ExponentialSpike(_Spike):
    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        return EXP_SCALE * torch.exp(-x.abs() / EXP_TAU)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        (x,) = ctx.saved_tensors
        return grad * _ExponentialSpike.derivative(x)


def fast_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Heaviside ``x > 0`` forward, SuperSpike fast-sigmoid derivative backward."""
    return _FastSigmoidSpike.apply(x)


def exponential(x: torch.Tensor) -> torch.Tensor:
    """Heaviside ``x > 0`` forward, SLAYER exponential derivative backward."""
    return _ExponentialSpike.apply(x)


SURROGATES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "fast_sigmoid": fast_sigmoid,
    "exponential": exponential,
}


def get_surrogate(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return SURROGATES[name]
    except KeyError:
        raise ValueError(f"surrogate: unknown {name!r}; known: {', '.join(SURROGATES)}") from None
