r"""A scripted T-maze agent that learns its env's assignment within the episode (a reference, not a model).

On the paper's task every episode hides one of 36 assignments (which input carries the wall, the
green and the red sensor; which motor moves forward, left, right; :meth:`TMazeConfig.assignment`).
:class:`HypothesisAgent` knows the maze's layout and nothing else: it keeps the 36 hypotheses per env,
simulates its own pose under each from the motors it pressed, and drops every hypothesis that the
observation contradicts (a wall or a site where the hypothesis predicts none, a reward after a step
that does not reach a site, the colour it saw before a food or a poison). It then acts for the first
hypothesis left: up the stem and to the site it believes holds the food (the site it last saw green
or ate food at, else the other one), by a shortest-path table. Its return on the paper's task is what
learning the assignment within the episode is worth, the ceiling a network that "has to relearn which
sensory neuron has what meaning and which output neuron performs what motor command" works towards
(Bertens & Lee 2020, Methods).

Only the two-site T-maze; one-hot motor commands held for the ``action_window`` network steps of a
decision (``decision="substeps"``, the default) or sent once per step (``"window"`` with ``action_window=1``).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch

from .tmaze import FORWARD, GREEN, LEFT, NOOP, PERMUTATIONS, RED, RIGHT, WALL, TMaze

Tensor = torch.Tensor
_ACTIONS = (FORWARD, LEFT, RIGHT)


def shortest_paths(task: TMaze) -> tuple[Tensor, Tensor]:
    """``(optimal, table)``: ``optimal`` ``(cells, 4, sites, 3)`` bool, whether action FORWARD / LEFT / RIGHT from
    (flat padded cell, heading) reaches site ``s`` soonest without stepping onto another site (all of them where
    ``s`` cannot be reached); ``table`` ``(cells, 4, sites)`` the first such action (FORWARD before LEFT before
    RIGHT: the tie-break)."""
    geo = task.geometry
    free = geo.free.cpu()
    sites = geo.sites.cpu().tolist()
    steps, turn = geo.step.cpu(), geo.turn.cpu()
    n = free.numel()
    inf = 10**9

    def successor(c: int, h: int, a: int) -> tuple[int, int]:
        h2 = (h + int(turn[a])) % 4
        t = c + int(steps[h2])
        return (t if free[t] else c), h2

    optimal = torch.ones(n, 4, len(sites), 3, dtype=torch.bool)
    for s, site in enumerate(sites):
        dist = torch.full((n, 4), inf, dtype=torch.long)
        for _ in range(4 * n):  # Bellman sweeps until nothing changes (tiny state space, set-up only)
            changed = False
            for c in range(n):
                if not free[c] or c in sites:
                    continue
                for h in range(4):
                    for a in _ACTIONS:
                        c2, h2 = successor(c, h, a)
                        d = 1 if c2 == site else inf if c2 in sites or dist[c2, h2] >= inf else dist[c2, h2] + 1
                        if d < dist[c, h]:
                            dist[c, h], changed = d, True
            if not changed:
                break
        for c in range(n):
            if not free[c] or c in sites:
                continue
            for h in range(4):
                if dist[c, h] >= inf:
                    continue
                for a in _ACTIONS:
                    c2, h2 = successor(c, h, a)
                    d = 1 if c2 == site else inf if c2 in sites else dist[c2, h2] + 1
                    optimal[c, h, s, a] = d == dist[c, h]
    table = optimal.long().argmax(-1)       # the first optimal action in FORWARD, LEFT, RIGHT order
    return optimal.to(task.device), table.to(task.device)


def shortest_path_actions(task: TMaze) -> Tensor:
    """``(cells, 4, sites)``: the action (FORWARD / LEFT / RIGHT) that reaches site ``s`` soonest from
    (flat padded cell, heading) without stepping onto another site; FORWARD where ``s`` cannot be reached."""
    return shortest_paths(task)[1]


def hypothesis_rotations() -> Tensor:
    """``(3, 36)``: entry ``[r, k]`` is the number of hypothesis ``k`` (input order ``PERMUTATIONS[k // 6]``, motor map
    ``PERMUTATIONS[k % 6]``, the order of :meth:`TMazeConfig.assignment`) seen in the world rotated by ``-r``: input
    ``i`` there shows what input ``i + r`` shows here, motor ``j`` there does what motor ``j + r`` does here."""
    number = {tuple(p.tolist()): n for n, p in enumerate(PERMUTATIONS)}
    table = torch.empty(3, 36, dtype=torch.long)
    for r in range(3):
        shift = [(i + r) % 3 for i in range(3)]
        for k in range(36):
            p_in, p_out = PERMUTATIONS[k // 6][shift], PERMUTATIONS[k % 6][shift]
            table[r, k] = number[tuple(p_in.tolist())] * 6 + number[tuple(p_out.tolist())]
    return table


class HypothesisAgent:
    """Eliminates the assignments the observations rule out and heads for the food (module docstring).

    ``agent.reset(obs)`` with the first observation ``(P, E, 5)``, then per call of ``task.step``:
    ``action = agent.act()``, and ``agent.observe(obs)`` with what the step returned.

    Which surviving hypothesis it acts for is a fixed order over the 36 numbers, i.e. over absolute input and motor
    indices. :meth:`set_frame` makes that choice rotation-equivariant instead: with frame ``r`` an env ranks the
    hypotheses as it would in the world rotated by ``-r``. A network whose wiring is invariant under rotating sensor and
    motor indices together (``trainer.experiments.enu_net``) cannot tell absolute indices apart, so only such a teacher
    is one it can imitate exactly (frame ``r`` = the first motor it pressed)."""

    def __init__(self, task: TMaze) -> None:
        if task.num_sites != 2:
            raise ValueError(f"HypothesisAgent plays the two-site T-maze, this maze has {task.num_sites} sites")
        self.dev, self.substeps = task.device, task.substeps
        # the 36 (input order, motor map) pairs, whatever subset the env draws from (the teacher does not know it)
        every = replace(task.config, shuffle=True, stratify=False, motor_maps=None, input_maps=None)
        self.perm_in, self.perm_out = every.assignment(torch.arange(every.num_assignments, device=self.dev))  # (36, 3)
        self.inv_in = self.perm_in.argsort(dim=-1)                   # sensor -> input channel, per hypothesis
        self.rotations = hypothesis_rotations().to(self.dev)        # (3, 36), for set_frame
        self.optimal, self.table = shortest_paths(task)
        self.geo = task.geometry

    def reset(self, obs: Tensor) -> None:
        shape = obs.shape[:-1]
        H = self.perm_in.shape[0]
        z = lambda: torch.zeros(*shape, H, dtype=torch.long, device=self.dev)  # noqa: E731
        self.pos = z() + self.geo.start
        self.heading = z()
        self.food = z()                                   # believed food site, per hypothesis
        self.seen = z() - 1                               # site faced at the last decision (-1: none)
        self.seen_green = torch.zeros(*shape, H, dtype=torch.bool, device=self.dev)
        self.alive = torch.ones(*shape, H, dtype=torch.bool, device=self.dev)
        self.rank = torch.arange(H, device=self.dev).expand(*shape, H).clone()   # choice order (set_frame)
        self.motor = torch.zeros(*shape, dtype=torch.long, device=self.dev)
        self.calls = 0
        self._check_sensors(obs)
        self._choose()

    def set_frame(self, envs: Tensor, rotation: Tensor) -> None:
        """From now on the envs ``envs`` (bool, ``(P, E)``) choose among the surviving hypotheses as in the world rotated
        by ``-rotation`` (``(P, E)``, 0-2; :func:`hypothesis_rotations`); the others keep their order. Call it before the
        :meth:`observe` whose choice it should change."""
        # (the clamp only keeps the index valid in the envs not set, e.g. a frame of -1 still unknown)
        self.rank = torch.where(envs[..., None], self.rotations[rotation.clamp(0, 2)], self.rank)

    def act(self) -> Tensor:
        """One-hot motor command ``(P, E, 3)`` for this network step."""
        return torch.nn.functional.one_hot(self.motor, 3).float()

    def observe(self, obs: Tensor, pressed: Tensor | None = None) -> None:
        """Update on the observation a ``task.step`` returned. ``pressed`` ``(P, E)``: the motor the env
        acted on at this decision when it was not this agent's command (-1: none active, no action), e.g.
        when the agent only labels another policy's steps."""
        self.calls += 1
        if self.calls % self.substeps:
            return                                       # the env acts at the last call of a decision
        motor = self.motor if pressed is None else pressed
        idle = (motor < 0)[..., None].expand_as(self.alive)
        hyp = torch.arange(self.perm_out.shape[0], device=self.dev)
        action = self.perm_out[hyp, motor.clamp(min=0)[..., None].expand_as(self.alive)]
        action = torch.where(idle, torch.full_like(action, NOOP), action)
        heading = (self.heading + self.geo.turn[action]) % 4
        target = self.pos + self.geo.step[heading]
        pos = torch.where(self.geo.free[target] & ~idle, target, self.pos)
        sites = self.geo.sites
        at_site = (pos[..., None] == sites).any(-1)
        site = (pos[..., None] == sites).long().argmax(-1)
        r = (obs[..., 3] - obs[..., 4])[..., None].expand_as(pos)
        ok = at_site == (r != 0)
        # the colour seen in front of this site just before (no change can happen in between) must fit the reward
        ate_seen = at_site & (self.seen == site)
        ok &= ~ate_seen | (self.seen_green == (r > 0))
        self.food = torch.where(at_site, torch.where(r > 0, site, 1 - site), self.food)
        self.pos = torch.where(at_site, torch.full_like(pos, self.geo.start), pos)
        self.heading = torch.where(at_site, torch.zeros_like(heading), heading)
        self.alive &= ok
        self._check_sensors(obs)
        self._choose()

    def sure_motors(self) -> Tensor:
        """``(P, E, 3)`` bool: the motors whose action is a shortest way to the believed food under *every* hypothesis
        still alive -- what the agent knows to be right whatever its tie-break (e.g. either turn to go back from a red
        site); all False where the hypotheses disagree on every motor."""
        H = self.alive.shape[-1]
        opt = self.optimal[self.pos, self.heading, self.food]                     # (..., H, 3 actions)
        by_motor = opt.gather(-1, self.perm_out.expand(*self.alive.shape[:-1], H, 3))   # (..., H, 3 motors)
        return (by_motor | ~self.alive[..., None]).all(-2)

    def _check_sensors(self, obs: Tensor) -> None:
        """Drop hypotheses whose predicted wall / site ahead contradicts ``obs``; read the colour of a site."""
        ahead = self.pos + self.geo.step[self.heading]
        wall = ~self.geo.free[ahead]
        sites = self.geo.sites
        site_ahead = (ahead[..., None] == sites).any(-1)
        site = (ahead[..., None] == sites).long().argmax(-1)
        inputs = obs[..., None, :3].expand(*self.alive.shape, 3)
        sensor = lambda s: inputs.gather(-1, self.inv_in[:, s].expand_as(self.alive)[..., None])[..., 0] > 0.5  # noqa: E731
        w, g, red = sensor(WALL), sensor(GREEN), sensor(RED)
        self.alive &= (w == wall) & ((g | red) == site_ahead) & ~(g & red)
        self.seen = torch.where(site_ahead, site, torch.full_like(site, -1))
        self.seen_green = g
        self.food = torch.where(site_ahead, torch.where(g, site, 1 - site), self.food)

    def _choose(self) -> None:
        """Act for the first hypothesis still alive in the env's order (all 36 again if none is: cannot happen in a
        correct maze)."""
        dead = ~self.alive.any(-1, keepdim=True)
        self.alive |= dead
        h = torch.where(self.alive, self.rank, self.rank.shape[-1]).argmin(-1, keepdim=True)   # first alive
        pos, heading, food = (x.gather(-1, h)[..., 0] for x in (self.pos, self.heading, self.food))
        action = self.table[pos, heading, food]
        perm_out = self.perm_out[h[..., 0]]                             # (..., 3) motor -> action
        self.motor = (perm_out == action[..., None]).long().argmax(-1)


def play(task: TMaze, seed: int, on_step: Callable[[int, HypothesisAgent, dict], None] | None = None
         ) -> tuple[Tensor, HypothesisAgent]:
    """One episode of :class:`HypothesisAgent` on ``task``: its returns ``(P, E)`` (rewards after an env's end not
    counted) and the agent as it ended. ``on_step(call, agent, info)`` runs after every call of ``task.step``."""
    obs, _ = task.reset(seed=seed)
    agent = HypothesisAgent(task)
    agent.reset(obs)
    total = torch.zeros(task.batch_shape, device=task.device)
    alive = torch.ones(task.batch_shape, dtype=torch.bool, device=task.device)
    for call in range(task.max_episode_steps):
        obs, rew, term, trunc, info = task.step(agent.act())
        total += torch.where(alive, rew, torch.zeros_like(rew))
        alive &= ~(term | trunc)
        agent.observe(obs)
        if on_step is not None:
            on_step(call, agent, info)
        if not bool(alive.any()):
            break
    return total, agent
