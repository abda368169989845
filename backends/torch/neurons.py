r"""Pure step functions of the population kinds (float semantics).

Every function is ``<kind>_step(inputs, state, params) -> (out, new_state)``; states are
NamedTuples of tensors with leading ``(P, B)`` dims (population, batch); ``params`` is a NamedTuple
whose tensors either have their IR shape (shared by all P individuals) or ``(P, 1, *shape)``
(one value per individual; see :func:`plastix.backends.torch.network.TorchNetwork.run`).
Inputs are never written to.

Implements :class:`plastix.ir.CubaLIF`, :class:`plastix.ir.LIReadout`,
:class:`plastix.ir.ENUCell`, :class:`plastix.ir.GRUCell`, :class:`plastix.ir.LSTMCell` (the
equations are in those docstrings, not repeated here).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from ...ir import ENUCell, GRUCell, LSTMCell

Spike = Callable[[torch.Tensor], torch.Tensor]


def linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w^T`` over the last dim of ``x``; ``w`` is ``(rows, cols)`` (shared) or
    ``(P, 1, rows, cols)`` (per individual; ``x`` then has leading dim ``P``)."""
    if w.dim() == 2:
        return torch.nn.functional.linear(x, w)
    if x.dim() == 3:  # (P, B, K): one bmm, no reshapes (the ES evaluator's hot path)
        return torch.bmm(x, w[:, 0].transpose(-1, -2))
    p = x.shape[0]
    flat = x.reshape(p, -1, x.shape[-1])
    out = torch.matmul(flat, w[:, 0].transpose(-1, -2))
    return out.reshape(*x.shape[:-1], w.shape[-2])


# ---------------------------------------------------------------------------------------------
# CUBA LIF and LI readout


class LIFState(NamedTuple):
    u: torch.Tensor  # (P, B, size)
    v: torch.Tensor  # (P, B, size)
    ref: torch.Tensor  # (P, B, size) remaining refractory steps (float counter; zeros if unused)


class LIFParams(NamedTuple):
    """``keep_u = 1 - du`` and ``keep_v = 1 - dv`` (precomputed once per run)."""

    keep_u: torch.Tensor
    keep_v: torch.Tensor
    vth: torch.Tensor
    bias: torch.Tensor
    refractory: int


def lif_step(a: torch.Tensor, state: LIFState, p: LIFParams, spike: Spike) -> tuple[torch.Tensor, LIFState]:
    """One step of :class:`plastix.ir.CubaLIF`: ``a`` ``(P, B, size)`` -> spikes ``(P, B, size)``."""
    u = p.keep_u * state.u + a
    v = p.keep_v * state.v + u + p.bias
    if p.refractory:
        v = torch.where(state.ref > 0, state.v, v)
    s = spike(v - p.vth)
    v = v * (1.0 - s)
    ref = state.ref
    if p.refractory:
        ref = torch.where(s > 0, torch.full_like(ref, float(p.refractory)), (ref - 1.0).clamp_min(0.0))
    return s, LIFState(u, v, ref)


class LIState(NamedTuple):
    u: torch.Tensor
    v: torch.Tensor


class LIParams(NamedTuple):
    keep_u: torch.Tensor  # 1 - du
    keep_v: torch.Tensor  # 1 - dv
    bias: torch.Tensor


def li_step(a: torch.Tensor, state: LIState, p: LIParams) -> tuple[torch.Tensor, LIState]:
    """One step of :class:`plastix.ir.LIReadout`; the output is ``v``."""
    u = p.keep_u * state.u + a
    v = p.keep_v * state.v + u + p.bias
    return v, LIState(u, v)


# ---------------------------------------------------------------------------------------------
# gated cells: x (..., in_channels) -> y (..., out_channels); any leading dims (units, synapses)


class ENUState(NamedTuple):
    h: torch.Tensor  # (..., memory)
    o: torch.Tensor  # (..., out_channels)


class ENUParams(NamedTuple):
    w_z: torch.Tensor
    w_r: torch.Tensor
    w_c: torch.Tensor
    w_o: torch.Tensor
    feedback: bool


def enu_step(x: torch.Tensor, state: ENUState, p: ENUParams) -> tuple[torch.Tensor, ENUState]:
    """One step of :class:`plastix.ir.ENUCell` (Bertens & Lee eq. 1, no biases)."""
    h, o = state
    parts = [h, o, x] if p.feedback else [h, x]
    c = torch.cat(parts, dim=-1)
    z = torch.sigmoid(linear(c, p.w_z))
    r = torch.sigmoid(linear(c, p.w_r))
    parts[0] = r * h
    h_tilde = torch.tanh(linear(torch.cat(parts, dim=-1), p.w_c))
    h = (1.0 - z) * h + z * h_tilde
    o = linear(h, p.w_o).clamp(0.0, 1.0)
    return o, ENUState(h, o)


class GRUState(NamedTuple):
    h: torch.Tensor


class GRUParams(NamedTuple):
    w_ih: torch.Tensor
    w_hh: torch.Tensor
    w_o: torch.Tensor
    b_ih: torch.Tensor
    b_hh: torch.Tensor
    b_o: torch.Tensor


def gru_step(x: torch.Tensor, state: GRUState, p: GRUParams) -> tuple[torch.Tensor, GRUState]:
    """One step of :class:`plastix.ir.GRUCell` (PyTorch gate order r, z, n)."""
    gi = linear(x, p.w_ih) + p.b_ih
    gh = linear(state.h, p.w_hh) + p.b_hh
    ir, iz, in_ = gi.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r = torch.sigmoid(ir + hr)
    z = torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    h = (1.0 - z) * n + z * state.h
    return linear(h, p.w_o) + p.b_o, GRUState(h)


class LSTMState(NamedTuple):
    h: torch.Tensor
    c: torch.Tensor


def lstm_step(x: torch.Tensor, state: LSTMState, p: GRUParams) -> tuple[torch.Tensor, LSTMState]:
    """One step of :class:`plastix.ir.LSTMCell` (PyTorch gate order i, f, g, o)."""
    g = linear(x, p.w_ih) + p.b_ih + linear(state.h, p.w_hh) + p.b_hh
    i, f, gg, o = g.chunk(4, dim=-1)
    c = torch.sigmoid(f) * state.c + torch.sigmoid(i) * torch.tanh(gg)
    h = torch.sigmoid(o) * torch.tanh(c)
    return linear(h, p.w_o) + p.b_o, LSTMState(h, c)


def cell_init(cell, lead: tuple[int, ...], like: torch.Tensor):  # noqa: ANN001
    """Zero state of a gated cell with leading dims ``lead``."""
    z = lambda n: like.new_zeros(*lead, n)  # noqa: E731
    if cell.kind == "enu_cell":
        return ENUState(z(cell.memory), z(cell.out_channels))
    if cell.kind == "gru_cell":
        return GRUState(z(cell.hidden))
    return LSTMState(z(cell.hidden), z(cell.hidden))


def cell_params(cell, get: Callable[[str], torch.Tensor]):  # noqa: ANN001
    """The params tuple of a cell; ``get(field)`` returns the (resolved) tensor of a field."""
    if cell.kind == "enu_cell":
        return ENUParams(get("w_z"), get("w_r"), get("w_c"), get("w_o"), bool(cell.feedback))
    return GRUParams(get("w_ih"), get("w_hh"), get("w_o"), get("b_ih"), get("b_hh"), get("b_o"))


class FusedENU:
    """A population of :class:`plastix.ir.ENUCell` s stepped with preallocated buffers (same equations
    as :func:`enu_step`, other float summation order; the ES evaluator's fast path).

    ``p``: per-individual :class:`ENUParams` (weights ``(P, 1, rows, cols)``); ``batch`` rows per
    individual; the input ``x`` has ``obs_dim`` channels, the rest of the cell's input channels are
    zero (their weight columns are dropped). One persistent buffer per individual and row,
    ``[h, o, x, r*h]`` (``o`` only with feedback), holds the state; the gate inputs are two
    overlapping views of it, ``u = [h, o, x]`` for z and r and ``v = [o, x, r*h]`` for the candidate
    (whose weight rows are permuted to that order), so no concat is built and ``[o, x]`` is written
    once. One step is three ``bmm`` into preallocated outputs, in-place gates (``sigmoid_``, the
    candidate's tanh as ``2 sigmoid(2 a) - 1`` with the 2 folded into its weights -- absolute error
    ~1e-7, 5x faster than ``tanh_`` on the CPU builds here -- and ``h.lerp_(h~, z)``) and two narrow
    copies; it allocates no large tensors.
    ``own_feedback=False``: the step leaves the feedback slot (:attr:`feedback_slot`) to the caller,
    who writes another signal there (a synapse ENU fed back its post neuron's output)."""

    def __init__(self, p: ENUParams, batch: int, obs_dim: int, *, own_feedback: bool = True) -> None:
        w_z, w_r, w_c, w_o = (w[:, 0] for w in (p.w_z, p.w_r, p.w_c, p.w_o))  # (P, rows, cols)
        m, c, d = w_z.shape[1], w_o.shape[1], obs_dim
        x0 = m + (c if p.feedback else 0)                            # first x column
        k = x0 + d                                                   # width of [h, o, x]
        t = lambda a: a.transpose(1, 2).contiguous()  # noqa: E731
        self.w_zr = t(torch.cat([w_z, w_r], dim=1)[..., :k])          # (P, K, 2M), rows [h, o, x]
        # x 2: tanh(a) = 2 sigmoid(2 a) - 1, and this CPU build's sigmoid_ is ~6x faster than its tanh_
        self.w_c = t(2.0 * w_c[..., list(range(m, k)) + list(range(m))])  # (P, K, M), rows [o, x, h]
        self.w_o = t(w_o)                                             # (P, M, C)
        n, dt = w_z.shape[0], w_z.dtype
        z = lambda *s: torch.zeros(n, batch, *s, dtype=dt, device=w_z.device)  # noqa: E731
        self.m, self.x0, self.k, self.own_feedback = m, x0, k, p.feedback and own_feedback
        self.buf = z(k + m)                                           # [h, o, x, r*h]
        self.zr, self.hc, self.o = z(2 * m), z(m), z(c)

    def keep(self, idx: torch.Tensor) -> None:
        """Go on with the individuals ``idx`` (1-d index over P) only: weights and state narrowed."""
        for name in ("w_zr", "w_c", "w_o", "buf", "zr", "hc", "o"):
            setattr(self, name, getattr(self, name).index_select(0, idx))

    @property
    def feedback_slot(self) -> torch.Tensor:
        """The ``o`` part of the state buffer (P, B, C): the cell's feedback input (empty without feedback)."""
        return self.buf[..., self.m:self.x0]

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (P or 1, B, obs_dim) -> output ``o`` (P, B, C) (a buffer overwritten by the next step)."""
        m, x0, k, buf = self.m, self.x0, self.k, self.buf
        h = buf[..., :m]
        buf[..., x0:k].copy_(x)
        zr = torch.bmm(buf[..., :k], self.w_zr, out=self.zr).sigmoid_()
        torch.mul(zr[..., m:], h, out=buf[..., k:])
        hc = torch.bmm(buf[..., m:], self.w_c, out=self.hc).sigmoid_().mul_(2.0).sub_(1.0)  # tanh
        h.lerp_(hc, zr[..., :m])                                     # h + z (h~ - h)
        o = torch.bmm(h, self.w_o, out=self.o).clamp_(0.0, 1.0)
        if self.own_feedback:
            buf[..., m:x0].copy_(o)
        return o


class FusedGated:
    """A population of :class:`plastix.ir.GRUCell` s or :class:`plastix.ir.LSTMCell` s stepped with
    preallocated buffers (same equations as :func:`gru_step` / :func:`lstm_step`, other float summation
    order; the ES evaluator's fast path, like :class:`FusedENU`).

    ``p``: per-individual :class:`GRUParams` (weights ``(P, 1, rows, cols)``, biases ``(P, 1, n)``); ``lstm``:
    LSTM gates; ``batch`` rows per individual; the input has ``obs_dim`` channels, the rest are zero (their
    weight columns are dropped). One persistent buffer ``u = [x, h]`` per individual and row feeds one
    ``baddbmm`` per step with the biases folded in. GRU: the weight's columns are ``[r, z | n_x | n_h]``
    (``n_x`` reads only ``x``, ``n_h`` only ``h``, so ``n = tanh(n_x + r * n_h)`` needs no second product);
    LSTM: ``[i, f, o | g]``. tanh is ``2 sigmoid(2 a) - 1`` with the 2 folded into the weights (as in
    :class:`FusedENU`)."""

    def __init__(self, p: GRUParams, batch: int, obs_dim: int, *, lstm: bool = False) -> None:
        w_ih, w_hh, w_o = (w[:, 0] for w in (p.w_ih, p.w_hh, p.w_o))      # (P, gates * H, in), (P, gates * H, H), (P, C, H)
        b_ih, b_hh, b_o = (b[:, 0] for b in (p.b_ih, p.b_hh, p.b_o))      # (P, n)
        n, hid, d, dt = w_hh.shape[0], w_hh.shape[2], obs_dim, w_hh.dtype
        w_x = w_ih[..., :d]                                                # the used input columns
        if lstm:   # PyTorch order i, f, g, o -> [i, f, o, 2 g]
            i, f, g, o = (torch.cat([w_x, w_hh], dim=2)[:, k * hid:(k + 1) * hid] for k in range(4))
            bi, bf, bg, bo = ((b_ih + b_hh)[:, k * hid:(k + 1) * hid] for k in range(4))
            w = torch.cat([i, f, o, 2.0 * g], dim=1)                      # (P, 4H, d + H)
            b = torch.cat([bi, bf, bo, 2.0 * bg], dim=1)
        else:      # PyTorch order r, z, n -> [r, z, 2 n_x, 2 n_h]
            rz = torch.cat([w_x, w_hh], dim=2)[:, :2 * hid]
            nx = torch.cat([w_x[:, 2 * hid:], torch.zeros_like(w_hh[:, 2 * hid:])], dim=2)
            nh = torch.cat([torch.zeros_like(w_x[:, 2 * hid:]), w_hh[:, 2 * hid:]], dim=2)
            w = torch.cat([rz, 2.0 * nx, 2.0 * nh], dim=1)                # (P, 4H, d + H)
            b = torch.cat([(b_ih + b_hh)[:, :2 * hid], 2.0 * b_ih[:, 2 * hid:], 2.0 * b_hh[:, 2 * hid:]], dim=1)
        self.w = w.transpose(1, 2).contiguous()                           # (P, d + H, 4H)
        self.b = b[:, None].contiguous()                                  # (P, 1, 4H)
        self.w_o, self.b_o = w_o.transpose(1, 2).contiguous(), b_o[:, None].contiguous()
        z = lambda *s: torch.zeros(n, batch, *s, dtype=dt, device=w_hh.device)  # noqa: E731
        self.lstm, self.d, self.hid = lstm, d, hid
        self.u, self.a, self.o = z(d + hid), z(4 * hid), z(w_o.shape[1])
        self.c = z(hid) if lstm else None
        self.tmp = z(hid)

    def keep(self, idx: torch.Tensor) -> None:
        """Go on with the individuals ``idx`` (1-d index over P) only: weights and state narrowed."""
        for name in ("w", "b", "w_o", "b_o", "u", "a", "o", "tmp") + (("c",) if self.lstm else ()):
            setattr(self, name, getattr(self, name).index_select(0, idx))

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (P or 1, B, obs_dim) -> output (P, B, C) (a buffer overwritten by the next step)."""
        d, H, u = self.d, self.hid, self.u
        h = u[..., d:]
        u[..., :d].copy_(x)
        a = torch.baddbmm(self.b, u, self.w, out=self.a)
        if self.lstm:
            a[..., :3 * H].sigmoid_()
            g = a[..., 3 * H:].sigmoid_().mul_(2.0).sub_(1.0)                     # tanh
            self.c.mul_(a[..., H:2 * H]).addcmul_(a[..., :H], g)                 # c = f c + i g
            t = torch.mul(self.c, 2.0, out=self.tmp).sigmoid_().mul_(2.0).sub_(1.0)   # tanh(c)
            torch.mul(a[..., 2 * H:3 * H], t, out=h)                             # h = o tanh(c)
        else:
            a[..., :2 * H].sigmoid_()
            nn_ = torch.addcmul(a[..., 2 * H:3 * H], a[..., :H], a[..., 3 * H:], out=self.tmp)  # 2 (n_x + r n_h)
            nn_.sigmoid_().mul_(2.0).sub_(1.0)                                   # n = tanh(n_x + r n_h)
            h.sub_(nn_).mul_(a[..., H:2 * H]).add_(nn_)                          # h = n + z (h - n)
        return torch.baddbmm(self.b_o, h, self.w_o, out=self.o)


# kind -> step function of a cell
CELL_STEPS: dict[type, Callable] = {ENUCell: enu_step, GRUCell: gru_step, LSTMCell: lstm_step}  # IR cell class -> step
