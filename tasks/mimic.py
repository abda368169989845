r"""Spiking-dynamics and plasticity mimic tasks of Bertens & Lee (2020, Methods, Extended Data Fig. 7).

A model (one ENU / GRU / LSTM) sees one observation per step and emits one action per step
(its output channel 0); the task compares it with a reference model driven by the same input.
An episode is ``steps`` = 100 steps; the episode return (sum of rewards) is the paper's fitness.

* :class:`IAFTask` (``iaf``) — integrate-and-fire mimic. Input ``x_t ~ U[0.01, 0.11]`` (obs channel 0).
  Reference (eq. 2): ``u_t = u_{t-1} + x_t``; spike ``y_t = 1`` and ``u_t <- 0`` when
  ``u_t >= 0.5``. Fitness (eq. 3), given once at the episode's last step (all other rewards 0):
  :func:`iaf_fitness`.
* :class:`STDPTask` (``stdp`` and ``complex_stdp``) — neuromodulated STDP mimic. Four input channels
  (Extended Data Fig. 7, in this order): graded potential ``x_t ~ U[0.45, 0.55]``, the presynaptic
  input spike (one, at ``t_pre``), the neuromodulator NT (constant over the episode, present with
  probability ``nt_prob``) and the backpropagating postsynaptic spike (one, at ``t_post``).
  Reference output ``y_t = w_t x_t`` with ``w_t = w0`` until both spikes have occurred and
  ``w0 + dw`` from step ``max(t_pre, t_post)`` on, where (``dt = t_post - t_pre``, eq. 4,
  ``A = 0.5``, ``tau = 10``):

  - standard: ``dw = omega(dt)`` if NT is present, else 0 (neuromodulated STDP);
  - complex (Methods, "complex STDP"): ``dw = |omega| - 0.1 (cos(20 omega) - 1)`` with NT,
    ``dw = 0.5 cos(10 omega)`` without.

  Reward per step ``-(y_t - a_t)^2``, so the return is eq. 5.

Choices the paper leaves open (ours, stated here once): ``omega(0) = 0``; the initial weight
``w0 = 1`` (keeps ``y`` in [0, 1], the ENU's output range); spike times uniform in
``[spike_start, spike_end)`` = [5, 45) so every pairing has at least 55 steps of consequences; the
NT flag is constant over an episode; by default every individual of a population sees the same
``E`` input episodes (common random numbers, ``common_inputs=True``), which makes ES rankings
compare like with like. The observation returned with ``terminated`` is all zeros.
"""
from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import torch

from .base import BatchedTask, TensorSpec

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------
# configs


@dataclass(frozen=True)
class IAFConfig:
    """Integrate-and-fire mimic (paper defaults). ``spike_threshold``: a model output above it counts
    as a spike of that intensity in :func:`iaf_fitness`. Our choice is 0: every non-zero output is
    a spike whose intensity is scored ("optimize the timing and intensity of each spike"), which
    keeps the fitness graded from the start; the ENU's clipped output can emit exact zeros."""

    steps: int = 100
    num_envs: int = 32
    input_low: float = 0.01
    input_high: float = 0.11
    threshold: float = 0.5
    spike_threshold: float = 0.0
    common_inputs: bool = True

    def __post_init__(self) -> None:
        _check_common(self)
        if not 0 <= self.input_low <= self.input_high:
            raise ValueError(f"IAFConfig: need 0 <= input_low <= input_high, got {self.input_low}, {self.input_high}")
        if not self.threshold > 0:
            raise ValueError(f"IAFConfig.threshold must be > 0, got {self.threshold}")


class STDPRule(str, enum.Enum):
    STANDARD = "standard"
    COMPLEX = "complex"


@dataclass(frozen=True)
class STDPConfig:
    """(Complex) neuromodulated STDP mimic (paper defaults where the paper gives them)."""

    steps: int = 100
    num_envs: int = 32
    rule: STDPRule = STDPRule.STANDARD
    input_low: float = 0.45
    input_high: float = 0.55
    a: float = 0.5
    tau: float = 10.0
    w0: float = 1.0
    spike_start: int = 5
    spike_end: int = 45
    nt_prob: float = 0.5
    common_inputs: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", STDPRule(self.rule))
        _check_common(self)
        if not 0 <= self.spike_start < self.spike_end:
            raise ValueError(f"STDPConfig: need 0 <= spike_start < spike_end, got {self.spike_start}, {self.spike_end}"
                             " (spike times at or after `steps` fall outside the episode: no spike, no update)")
        if not 0.0 <= self.nt_prob <= 1.0:
            raise ValueError(f"STDPConfig.nt_prob must be in [0, 1], got {self.nt_prob}")
        if not self.tau > 0:
            raise ValueError(f"STDPConfig.tau must be > 0, got {self.tau}")


def _check_common(cfg) -> None:
    if cfg.steps < 1 or cfg.num_envs < 1:
        raise ValueError(f"{type(cfg).__name__}: steps and num_envs must be >= 1, got {cfg.steps}, {cfg.num_envs}")


# ---------------------------------------------------------------------------------------------
# reference models and fitness functions (pure, batched over any leading dims)


def iaf_reference(x: Tensor, threshold: float = 0.5) -> Tensor:
    """Eq. 2: spikes (float 0/1, same shape as ``x`` (..., T)) of a non-leaky IAF neuron that
    sums ``x`` and resets to 0 when the sum reaches ``threshold``."""
    u = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
    out = torch.zeros_like(x)
    for t in range(x.shape[-1]):
        u = u + x[..., t]
        s = u >= threshold
        out[..., t] = s.to(x.dtype)
        u = torch.where(s, torch.zeros_like(u), u)
    return out


def spike_events(values: Tensor, spikes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The k-th spike's value and inter-spike interval, left-aligned and zero-padded.

    ``values`` (..., T) float, ``spikes`` (..., T) bool. Returns ``(vals, isis, count)`` with
    ``vals``/``isis`` of shape (..., T): entry k holds the k-th spike's value and its interval
    "time since the last spike" (for the first spike: ``t + 1``, the time since the episode
    started one step before ``t = 0``); ``count`` (...) the number of spikes.
    """
    T = values.shape[-1]
    t = torch.arange(T, device=values.device).expand(values.shape)
    last_incl = torch.where(spikes, t, torch.full_like(t, -1)).cummax(dim=-1).values
    last_excl = torch.cat([torch.full_like(last_incl[..., :1], -1), last_incl[..., :-1]], dim=-1)
    isi = (t - last_excl).to(values.dtype)
    k = spikes.long().cumsum(-1) - 1
    slot = torch.where(spikes, k, torch.full_like(k, T))  # non-spikes go to a dropped slot T
    pad = values.new_zeros(values.shape[:-1] + (T + 1,))
    vals = pad.clone().scatter_(-1, slot, torch.where(spikes, values, torch.zeros_like(values)))[..., :T]
    isis = pad.clone().scatter_(-1, slot, torch.where(spikes, isi, torch.zeros_like(isi)))[..., :T]
    return vals, isis, spikes.sum(-1)


def iaf_fitness(target: Tensor, output: Tensor, spike_threshold: float = 0.0) -> Tensor:
    r"""Eq. 3: :math:`-\left(\sum_i (y_i - \hat y_i)^2 + \sum_i (t_i - \hat t_i)^2\right)`.

    ``target`` (..., T) reference spikes (0/1), ``output`` (..., T) model outputs. The model's
    i-th spike is its i-th step with ``output > spike_threshold``; ``y_i`` / ``\hat y_i`` are the
    values at the i-th reference / model spike and ``t_i`` / ``\hat t_i`` their inter-spike
    intervals (:func:`spike_events`). Spikes are paired in order; when the counts differ the
    shorter list is padded with value 0 and interval 0 (a missed spike costs ``1 + t_i^2``, an
    extra one ``\hat y_i^2 + \hat t_i^2``). NaN outputs give NaN fitness.
    """
    target, output = torch.broadcast_tensors(target, output)
    yv, yt, _ = spike_events(target, target > 0.5)
    ov, ot, _ = spike_events(output, output > spike_threshold)
    f = -(((yv - ov) ** 2).sum(-1) + ((yt - ot) ** 2).sum(-1))
    return torch.where(torch.isnan(output).any(-1), torch.full_like(f, float("nan")), f)


def iaf_return_time_major(target: Tensor, actions: Tensor, *, spike_threshold: float) -> Tensor:
    """:func:`iaf_fitness` (eq. 3) of time-major ``actions`` (T, P, E) against
    the common reference spikes ``target`` (T, 1, E), in float64, without (P, E, T) index tensors.

    The reference's k-th spike value / interval are tabulated once per env (``spike_events``);
    one pass over time pairs the model's k-th spike with them (a missing reference spike is
    (0, 0)), and the reference spikes the model never answers add the tail sum
    ``sum_{j >= n_model} (y_j^2 + t_j^2)``."""
    T, P, E = actions.shape
    f64 = torch.float64
    ref = target[:, 0].t()                                                  # (E, T)
    yv, yt, _ = spike_events(ref.to(f64), ref > 0.5)
    pad = torch.zeros(E, 1, dtype=f64, device=actions.device)
    tab_v, tab_t = torch.cat([yv, pad], 1).t().contiguous(), torch.cat([yt, pad], 1).t().contiguous()  # (T+1, E)
    tail = (tab_v ** 2 + tab_t ** 2).flip(0).cumsum(0).flip(0)             # tail[k] = sum_{j >= k}
    col = torch.arange(E, device=actions.device)
    count = torch.zeros(P, E, dtype=torch.long, device=actions.device)
    last = torch.full((P, E), -1.0, dtype=f64, device=actions.device)
    acc = torch.zeros(P, E, dtype=f64, device=actions.device)
    for t in range(T):
        a = actions[t].to(f64)
        s = a > spike_threshold
        k = count * E + col
        term = (tab_v.take(k) - a) ** 2 + (tab_t.take(k) - (t - last)) ** 2
        acc += torch.where(s, term, torch.zeros_like(term))
        last = torch.where(s, torch.full_like(last, float(t)), last)
        count += s
    acc += tail.take(count * E + col)
    nan = torch.isnan(actions).any(0)
    return torch.where(nan, torch.full_like(acc, float("nan")), -acc)


def _stdp_return_time_major(target: Tensor, actions: Tensor) -> Tensor:
    """Eq. 5 summed over time: ``target`` (T, 1, E), ``actions`` (T, P, E) -> (P, E) float64."""
    return (-(target - actions) ** 2).to(torch.float64).sum(0)


def stdp_window(dt: Tensor, a: float = 0.5, tau: float = 10.0) -> Tensor:
    r"""Eq. 4, ``dt = t_post - t_pre``: :math:`A e^{-dt/\tau}` for dt > 0,
    :math:`-A e^{dt/\tau}` for dt < 0, and 0 at dt = 0."""
    dt = dt.to(torch.get_default_dtype()) if not dt.is_floating_point() else dt
    return torch.where(dt > 0, a * torch.exp(-dt / tau), torch.where(dt < 0, -a * torch.exp(dt / tau), torch.zeros_like(dt)))


def stdp_weight_change(dt: Tensor, nt: Tensor, rule: STDPRule | str = STDPRule.STANDARD, a: float = 0.5,
                       tau: float = 10.0) -> Tensor:
    r"""Weight change of one pre/post pairing. Standard: ``omega(dt)`` with NT, 0 without.
    Complex: :math:`|\omega| - 0.1(\cos 20\omega - 1)` with NT, :math:`0.5\cos 10\omega` without."""
    w = stdp_window(dt, a, tau)
    nt = nt.to(torch.bool)
    if STDPRule(rule) is STDPRule.STANDARD:
        return torch.where(nt, w, torch.zeros_like(w))
    return torch.where(nt, w.abs() - 0.1 * (torch.cos(20.0 * w) - 1.0), 0.5 * torch.cos(10.0 * w))


def stdp_reference(x: Tensor, t_pre: Tensor, t_post: Tensor, nt: Tensor, cfg: STDPConfig) -> Tensor:
    """Reference output ``y_t = w_t x_t`` (..., T) for spike times ``t_pre``/``t_post`` (...) and
    the NT flag ``nt`` (...)."""
    T = x.shape[-1]
    dw = stdp_weight_change(t_post - t_pre, nt, cfg.rule, cfg.a, cfg.tau).to(x.dtype)
    after = torch.arange(T, device=x.device) >= torch.maximum(t_pre, t_post)[..., None]
    w = cfg.w0 + after.to(x.dtype) * dw[..., None]
    return w * x


def stdp_fitness(target: Tensor, output: Tensor) -> Tensor:
    r"""Eq. 5: :math:`-\sum_t (y_t - \hat y_t)^2` over the last dim."""
    return -((target - output) ** 2).sum(-1)


# ---------------------------------------------------------------------------------------------
# batched tasks


class _EpisodeTask(BatchedTask):
    """Tasks whose whole episode input is drawn at reset and whose timing ignores the actions.
    Buffers have shape (P, E, T) (inputs shared across P when ``common_inputs``)."""

    def __init__(self, cfg, population: int, *, device="cpu") -> None:
        super().__init__(population, cfg.num_envs, device=device)
        self.config = cfg
        self.max_episode_steps = cfg.steps
        P, E, T = population, cfg.num_envs, cfg.steps
        self._t = torch.zeros(P, E, dtype=torch.long, device=self.device)
        self._actions = torch.zeros(P, E, T, device=self.device)
        self._data: dict[str, Tensor] | None = None

    def _draw(self, shape: tuple[int, ...]) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reset_envs(self, mask: Tensor, options: dict) -> Tensor:
        P, E = self.batch_shape
        lead = (1, E) if self.config.common_inputs else (P, E)
        fresh = {k: v.to(self.device).expand(P, E, *v.shape[2:]) for k, v in self._draw(lead).items()}
        if self._data is None:
            self._data = {k: v.clone() for k, v in fresh.items()}
        else:
            for k, v in fresh.items():
                m = mask.reshape(mask.shape + (1,) * (v.ndim - 2))
                self._data[k] = torch.where(m, v, self._data[k])
        self._t = torch.where(mask, torch.zeros_like(self._t), self._t)
        self._actions = torch.where(mask[..., None], torch.zeros_like(self._actions), self._actions)
        return self._obs()

    def _obs(self) -> Tensor:
        T = self.max_episode_steps
        idx = self._t.clamp(max=T - 1)
        obs = self._obs_at(idx)
        return torch.where((self._t >= T)[..., None], torch.zeros_like(obs), obs)

    def _gather(self, x: Tensor, idx: Tensor) -> Tensor:
        return x.gather(-1, idx[..., None])[..., 0]

    def _step(self, action: Tensor, active: Tensor | None):
        T = self.max_episode_steps
        act = torch.ones_like(self._t, dtype=torch.bool) if active is None else active
        a = action[..., 0].to(self._actions.dtype)
        idx = self._t.clamp(max=T - 1)
        reward = torch.where(act, self._reward(a, idx), torch.zeros_like(a))
        written = self._actions.scatter(-1, idx[..., None], a[..., None])
        self._actions = torch.where(act[..., None], written, self._actions)
        self._t = torch.where(act, self._t + 1, self._t)
        done = act & (self._t >= T)
        final = self._final_reward(done)
        reward = reward + final
        info = {"t": self._t.clone(), "target": self._gather(self._data["target"], idx)}
        return self._obs(), reward.to(torch.float32), done, torch.zeros_like(done), info

    def _info(self) -> dict[str, Tensor]:
        return {"t": self._t.clone()}

    def _reward(self, a: Tensor, idx: Tensor) -> Tensor:
        return torch.zeros_like(a)

    def _final_reward(self, done: Tensor) -> Tensor:
        return torch.zeros(done.shape, device=self.device)

    def _obs_at(self, idx: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class IAFTask(_EpisodeTask):
    """Integrate-and-fire mimic; obs (P, E, 1) = input, action (P, E, 1) = model output."""

    single_observation_spec = TensorSpec((1,), torch.float32, 0.0, None)
    single_action_spec = TensorSpec((1,), torch.float32)

    def __init__(self, cfg: IAFConfig = IAFConfig(), population: int = 1, *, device="cpu") -> None:
        super().__init__(cfg, population, device=device)

    def _draw(self, lead):
        c = self.config
        x = c.input_low + (c.input_high - c.input_low) * torch.rand(*lead, c.steps, generator=self.generator)
        return {"x": x, "target": iaf_reference(x, c.threshold)}

    def _obs_at(self, idx):
        return self._gather(self._data["x"], idx)[..., None]

    def open_loop_return(self):
        """The ES fast path's time-major episode return (``plastix.trainer.algorithms.es_eval``), or None
        unless the inputs are common to the population."""
        if not self.config.common_inputs:
            return None
        return functools.partial(iaf_return_time_major, spike_threshold=self.config.spike_threshold)

    def _final_reward(self, done):
        if not bool(done.any()):
            return torch.zeros(done.shape, device=self.device)
        f = iaf_fitness(self._data["target"], self._actions, self.config.spike_threshold)
        return torch.where(done, f, torch.zeros_like(f))


class STDPTask(_EpisodeTask):
    """(Complex) neuromodulated STDP mimic; obs (P, E, 4) = [x, pre spike, NT, post spike],
    action (P, E, 1) = model output; reward ``-(y_t - a_t)^2`` per step."""

    single_observation_spec = TensorSpec((4,), torch.float32, 0.0, None)
    single_action_spec = TensorSpec((1,), torch.float32)

    def __init__(self, cfg: STDPConfig = STDPConfig(), population: int = 1, *, device="cpu") -> None:
        super().__init__(cfg, population, device=device)

    def _draw(self, lead):
        c, g = self.config, self.generator
        x = c.input_low + (c.input_high - c.input_low) * torch.rand(*lead, c.steps, generator=g)
        t_pre = torch.randint(c.spike_start, c.spike_end, lead, generator=g)
        t_post = torch.randint(c.spike_start, c.spike_end, lead, generator=g)
        nt = torch.rand(*lead, generator=g) < c.nt_prob
        steps = torch.arange(c.steps)
        pre = (steps == t_pre[..., None]).float()
        post = (steps == t_post[..., None]).float()
        ntc = nt[..., None].float().expand(*lead, c.steps)
        return {"x": x, "pre": pre, "nt": ntc, "post": post, "target": stdp_reference(x, t_pre, t_post, nt, c),
                "t_pre": t_pre[..., None], "t_post": t_post[..., None], "nt_flag": nt[..., None].float()}

    def _obs_at(self, idx):
        d = self._data
        return torch.stack([self._gather(d[k], idx) for k in ("x", "pre", "nt", "post")], dim=-1)

    def _reward(self, a, idx):
        return -(self._gather(self._data["target"], idx) - a) ** 2

    def open_loop_return(self):
        """The ES fast path's time-major episode return: ``sum_t -(y_t - a_t)^2`` in float64."""
        if not self.config.common_inputs:
            return None
        return _stdp_return_time_major
