r"""Projections (synapses between populations) and neuromodulator bindings.

**Timing.** Every projection and modulator has a latency of ``1 + delay`` steps: the value a
population emits at step ``t`` reaches its targets at step ``t + 1 + delay``. This is Loihi's
(and Lava ``Dense``'s) behaviour and makes every graph, recurrent or not, well defined without an
evaluation order. Synaptic input of a post population:

.. math::
    a_j[t] = \sum_{\text{proj}} \sum_i \tilde W_{ji}[t]\, m_{ji}\, \mathrm{out}_i[t - 1 - \mathrm{delay}]

with the connectivity mask ``m`` and the sign constraint applied as
``W~ = W`` where ``sign = 0`` and ``W~ = sign |W|`` where ``sign = ±1`` (a fixed excitatory /
inhibitory identity per synapse; Dale's law is the case of constant columns). Plastic projections use the current plastic weight ``W[t]`` (see rules).
A rule that learns ``W`` itself (STDP, three-factor, Loihi, synaptic-Q) starts a signed synapse
from the weight in effect, ``sign |W|``, and never moves it across zero: after every update
``W <- max(W, 0)`` where ``sign = +1`` and ``W <- min(W, 0)`` where ``sign = -1`` (as Loihi's
EXCITATORY / INHIBITORY sign modes clip), so ``sign |W| = W`` holds for them.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import IRValidationError
from .limits import MAX_DELAY, MAX_MODULATOR_SIZE
from .neurons import check_name
from .registry import register_kind
from .spec import IRNode, array, child, choice, integer, text

_FROZEN = dict(frozen=True, eq=False)


class Activation(str, enum.Enum):
    IDENTITY = "identity"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    RELU = "relu"


@register_kind("projection", "projection")
@dataclass(**_FROZEN)
class Projection(IRNode):
    r"""Synapses from population ``pre`` to population ``post``.

    Fields: ``weight`` ``(n_post, n_pre)`` (initial weight of plastic projections), optional
    boolean ``mask`` ``(n_post, n_pre)``, optional ``sign`` ``(n_post, n_pre)`` in {-1, 0, +1},
    extra ``delay`` in steps, optional plasticity ``rule``.
    """

    name: str = text()
    pre: str = text()
    post: str = text()
    weight: object = array(shape=("post", "pre"), scalar_ok=False)
    mask: object = array("bool", shape=("post", "pre"), scalar_ok=False, optional=True)
    sign: object = array("int", shape=("post", "pre"), scalar_ok=False, optional=True, ge=-1, le=1)
    delay: int = integer(ge=0, le=MAX_DELAY, default=0)
    rule: object = child("rule", optional=True)

    @property
    def n_post(self) -> int:
        return int(self.weight.shape[0])  # type: ignore[attr-defined]

    @property
    def n_pre(self) -> int:
        return int(self.weight.shape[1])  # type: ignore[attr-defined]

    def _check(self) -> None:
        check_name(self.name, self.label)
        if self.weight.ndim != 2:  # type: ignore[attr-defined]
            raise IRValidationError(self.label, "weight", f"must be 2-D (n_post, n_pre), got shape {self.weight.shape}")  # type: ignore[attr-defined]
        self.check_dims({"post": self.n_post, "pre": self.n_pre}, self.label)  # the rule, recursively


@register_kind("modulator", "modulator")
@dataclass(**_FROZEN)
class Modulator(IRNode):
    r"""A neuromodulatory signal read out from a population: the third factor of a rule.

    .. math::
        M[t] = f(W\,\mathrm{out}_{src}[t-1] + b) \in \mathbb{R}^{\text{channels} \times \text{size}}

    ``size`` is 1 for a global signal, ``n_post`` / ``n_pre`` for per-post / per-pre modulation and
    ``n_post * n_pre`` for per-synapse modulation (the consuming rule's ``mode`` must agree).
    ``channels`` = 2 gives separate LTP and LTD signals (Meta-SpikePropamine); ``weight`` has shape
    ``(channels * size, source.size * source.out_channels)``.
    """

    name: str = text()
    source: str = text()
    size: int = integer(ge=1, le=MAX_MODULATOR_SIZE)
    weight: object = array(shape=("rows", "src"), scalar_ok=False)
    bias: object = array(shape=("rows",), default=0.0)
    channels: int = integer(ge=1, le=2, default=1)
    activation: Activation = choice(Activation, default=Activation.IDENTITY)

    def dims(self) -> dict[str, int]:
        return {**super().dims(), "rows": self.channels * self.size}

    def _check(self) -> None:
        check_name(self.name, self.label)
        if self.weight.ndim != 2:  # type: ignore[attr-defined]
            raise IRValidationError(self.label, "weight", "must be 2-D (channels * size, n_source)")
