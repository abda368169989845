r"""Population kinds: inputs, Loihi CUBA LIF neurons, leaky-integrator readouts and gated units.

Time is discrete. Every population updates once per step ``t`` from the synaptic input ``a[t]``
delivered by its incoming projections (see :mod:`plastix.ir.synapses` for the one-step latency).
Each population emits ``out_channels`` values per neuron per step (1 for spiking/LI neurons).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .errors import IRValidationError
from .limits import MAX_CELL_WIDTH, MAX_CHANNELS, MAX_SIZE, MAX_STEPS_PARAM
from .registry import register_kind
from .spec import IRNode, array, child, flag, initial, integer, real, text

_FROZEN = dict(frozen=True, eq=False)


class Population(IRNode):
    """Common interface of population kinds."""

    __slots__ = ()
    name: str
    size: int

    @property
    def in_channels(self) -> int:
        return 1

    @property
    def out_channels(self) -> int:
        return 1

    @property
    def spiking(self) -> bool:
        return False

    def _check(self) -> None:
        check_name(self.name, self.label)


@register_kind("input", "population")
@dataclass(**_FROZEN)
class Input(Population):
    r"""External input: ``out[t] = x[t]`` (spikes or real values) supplied by the caller.

    Shape of the supplied tensor per step: ``(size,)`` or ``(size, channels)``.
    """

    name: str = text()
    size: int = integer(ge=1, le=MAX_SIZE)
    channels: int = integer(ge=1, le=MAX_CHANNELS, default=1)

    @property
    def out_channels(self) -> int:
        return self.channels


@register_kind("cuba_lif", "population")
@dataclass(**_FROZEN)
class CubaLIF(Population):
    r"""Current-based leaky integrate-and-fire neuron as Loihi / Lava ``LIF`` define it.

    Per step, in this order (float semantics; Meta-SpikePropamine eqs 6-7 with ``alpha_u = du``,
    ``alpha_v = dv``, rest potentials 0, R = 1):

    .. math::
        u[t] = (1 - du)\,u[t-1] + a[t] \\
        v[t] = (1 - dv)\,v[t-1] + u[t] + \mathrm{bias} \\
        s[t] = v[t] > v_{th};\quad v[t] \leftarrow 0 \text{ where } s[t]

    With ``refractory = R > 0`` (Lava ``LIFRefractory``): after a spike at step t, v is held at 0 for
    steps t+1..t+R while u keeps integrating. Units are arbitrary (Loihi's are mantissas); the
    Loihi fixed-point mapping (12-bit decays, ``u`` and ``v`` scaled by 2^6, 24-bit state) is done
    by the backends from these float values. State: ``u``, ``v`` (and the refractory counter),
    starting every run from ``u_init``, ``v_init`` (``u[-1]``, ``v[-1]``; default 0).
    """

    name: str = text()
    size: int = integer(ge=1, le=MAX_SIZE)
    du: object = array(shape=("size",), ge=0.0, le=1.0, doc="current decay per step")
    dv: object = array(shape=("size",), ge=0.0, le=1.0, doc="voltage decay per step")
    vth: object = array(shape=("size",), gt=0.0, doc="firing threshold (strict >)")
    bias: object = array(shape=("size",), default=0.0, doc="constant input added to v every step")
    refractory: int = integer(ge=0, le=MAX_STEPS_PARAM, default=0, doc="steps v is held at 0 after a spike")
    u_init: object = initial(("size",), doc="u before the first step")
    v_init: object = initial(("size",), doc="v before the first step")

    @property
    def spiking(self) -> bool:
        return True


@register_kind("li", "population")
@dataclass(**_FROZEN)
class LIReadout(Population):
    r"""Leaky integrator readout (a CubaLIF that never spikes); its output is ``v``.

    .. math::
        u[t] = (1 - du)\,u[t-1] + a[t], \qquad v[t] = (1 - dv)\,v[t-1] + u[t] + \mathrm{bias}

    State ``u``, ``v``, starting from ``u_init``, ``v_init`` (default 0).
    """

    name: str = text()
    size: int = integer(ge=1, le=MAX_SIZE)
    du: object = array(shape=("size",), ge=0.0, le=1.0)
    dv: object = array(shape=("size",), ge=0.0, le=1.0)
    bias: object = array(shape=("size",), default=0.0)
    u_init: object = initial(("size",), doc="u before the first step")
    v_init: object = initial(("size",), doc="v before the first step")


# ---------------------------------------------------------------------------------------------
# gated cells (shared by gated populations and gated synapses)


class Cell(IRNode):
    __slots__ = ()
    in_channels: int
    out_channels: int


@register_kind("enu_cell", "cell")
@dataclass(**_FROZEN)
class ENUCell(Cell):
    r"""Evolvable Neural Unit (Bertens & Lee 2020, eq. 1): a GRU with an output gate fed back.

    With ``c = [h_{t-1}, o_{t-1}, x_t]`` (``o_{t-1}`` omitted when ``feedback`` is false, NFENU):

    .. math::
        z_t = \sigma(W_z c),\quad r_t = \sigma(W_r c),\quad
        \tilde h_t = \tanh(W_c [r_t \odot h_{t-1}, o_{t-1}, x_t]) \\
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t, \qquad
        o_t = \mathrm{clip}(W_o h_t, 0, 1)

    No biases (paper). ``memory`` = 32 and 16 channels give 3·(16+16+32)·32 + 32·16 = 6,656 params.
    State: ``h`` (memory), ``o`` (out_channels).
    """

    memory: int = integer(ge=1, le=MAX_CELL_WIDTH)
    in_channels: int = integer(ge=1, le=MAX_CHANNELS)
    out_channels: int = integer(ge=1, le=MAX_CHANNELS)
    w_z: object = array(shape=("memory", "concat"), scalar_ok=False)
    w_r: object = array(shape=("memory", "concat"), scalar_ok=False)
    w_c: object = array(shape=("memory", "concat"), scalar_ok=False)
    w_o: object = array(shape=("out_channels", "memory"), scalar_ok=False)
    feedback: bool = flag(default=True)

    def dims(self) -> dict[str, int]:
        d = super().dims()
        d["concat"] = self.memory + (self.out_channels if self.feedback else 0) + self.in_channels
        return d


@dataclass(**_FROZEN)
class _RecurrentCell(Cell):
    """Fields shared by the GRU and LSTM cells: PyTorch-layout gate weights plus a linear output
    ``y = W_o h + b_o`` mapping ``hidden`` to ``out_channels``."""

    GATES: ClassVar[int] = 0
    hidden: int = integer(ge=1, le=MAX_CELL_WIDTH)
    in_channels: int = integer(ge=1, le=MAX_CHANNELS)
    out_channels: int = integer(ge=1, le=MAX_CHANNELS)
    w_ih: object = array(shape=("gates", "in_channels"), scalar_ok=False)
    w_hh: object = array(shape=("gates", "hidden"), scalar_ok=False)
    w_o: object = array(shape=("out_channels", "hidden"), scalar_ok=False)
    b_ih: object = array(shape=("gates",), default=0.0)
    b_hh: object = array(shape=("gates",), default=0.0)
    b_o: object = array(shape=("out_channels",), default=0.0)

    def dims(self) -> dict[str, int]:
        return {**super().dims(), "gates": self.GATES * self.hidden}


@register_kind("gru_cell", "cell")
@dataclass(**_FROZEN)
class GRUCell(_RecurrentCell):
    r"""Standard GRU (PyTorch gate order r, z, n) with a linear output ``y = W_o h + b_o``.

    .. math::
        r = \sigma(W_{ir}x + b_{ir} + W_{hr}h + b_{hr}),\ z = \sigma(\cdot),\
        n = \tanh(W_{in}x + b_{in} + r\odot(W_{hn}h + b_{hn})),\ h' = (1-z)\odot n + z\odot h
    """

    GATES: ClassVar[int] = 3


@register_kind("lstm_cell", "cell")
@dataclass(**_FROZEN)
class LSTMCell(_RecurrentCell):
    r"""Standard LSTM (PyTorch gate order i, f, g, o) with a linear output ``y = W_o h + b_o``.

    .. math::
        c' = f\odot c + i\odot g,\qquad h' = o \odot \tanh(c')
    """

    GATES: ClassVar[int] = 4


@register_kind("gated", "population")
@dataclass(**_FROZEN)
class GatedPopulation(Population):
    r"""``size`` gated units (ENU / GRU / LSTM neurons) sharing one cell's parameters.

    Each unit receives the sum of its incoming synapse outputs, ``x_t`` of width
    ``cell.in_channels``, and emits ``cell.out_channels`` values. ``init_noise`` is the std of
    Gaussian noise added to the initial output gate of every unit (ENU paper: "we also add noise to
    the output gate ... so each neuron behaves slightly differently on initialization").
    """

    name: str = text()
    size: int = integer(ge=1, le=MAX_SIZE)
    cell: object = child("cell")
    init_noise: float = real(ge=0.0, default=0.0)

    @property
    def in_channels(self) -> int:
        return self.cell.in_channels  # type: ignore[attr-defined]

    @property
    def out_channels(self) -> int:
        return self.cell.out_channels  # type: ignore[attr-defined]


def check_name(name: str, node: str) -> None:
    """Names are identifiers usable as file keys and NIR node ids."""
    if not name.replace("_", "a").replace("-", "a").isalnum() or name[0].isdigit():
        raise IRValidationError(node, "name", f"{name!r} must be letters, digits, '_' or '-', not starting with a digit")
