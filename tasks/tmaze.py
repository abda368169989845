r"""T-maze and double T-maze (Bertens & Lee 2020, Methods "Evolving reinforcement learning in a
network of ENUs"; Fig. 2, Fig. 5, Extended Data Fig. 4), batched over population x environments.

The maze is a grid given as rows of characters (top row first): ``#`` wall, ``.`` free, ``S`` the
start (the agent starts there facing north), ``E`` a reward site. The T-maze is 5 wide and 4 high
(paper); the paper gives no size for the double T-maze, ours is 7 x 5 with four sites (our choice).

One step (the paper: "each action by the agent can move it at most one grid cell"):

* ``action`` ``(P, E, 3)``: the activity of the three motor neurons at this network step. The paper:
  "the neuron that has the highest output activity over four time steps determines the action".
  ``decision="substeps"`` (default, our reading): the network runs ``action_window`` (4) steps per
  environment step; :meth:`step` is called once per *network* step with the observation held, and
  every ``action_window``-th call the motor activities of the group are summed, the arg-max motor
  wins and the agent moves (the other calls return reward 0 and change nothing but the group's sum).
  An episode of ``steps`` environment steps is then ``steps * action_window`` calls.
  ``decision="window"``: one network step per environment step, and the action is the arg-max of the
  last ``action_window`` actions summed (a sliding window: it lags a command by up to 3 steps, so an
  agent sending one-hot commands can never turn). Either way, if no motor is active (all sums <= 0,
  or NaN) the agent does nothing.
* The winning motor is mapped to forward / left / right through the env's shuffled output
  assignment. Left and right turn the agent by 90 degrees and step into the cell now in front;
  forward steps ahead. Walls (and the outside) block the step (a turn still happens).
* Stepping onto the food site gives ``food_reward`` (+1), refills the energy and puts the agent
  back at the start; the poison site gives ``poison_reward`` (-1) and also resets the position
  (not the energy). Other sites are empty cells. Fitness is the summed reward (paper eq. 6).
* After a food, once ``swap_after`` foods were eaten since the last change, the sites change with
  probability ``swap_prob`` (50 %): in the T-maze food and poison swap; in the double T-maze food
  and poison move to a random pair of distinct sites ("randomly changed ... each time the agent
  ate food").
* The energy drops by one per step; ``energy`` (40) steps without food and the agent dies:
  ``terminated``. ``truncated`` after ``steps`` (400).

Observation ``(P, E, 5)``: three sensors for the cell the agent faces (wall, green = food,
red = poison), in the env's shuffled input order, then the reward of this step split into a
positive (food) and a negative (poison) channel, each 0 or 1.

Randomness: the per-episode draws (site placement, input/output shuffles) come from
``(E,)``-shaped draws shared by every individual (common random numbers, as the paper evaluates
all offspring on the same environments), and the swap coins from a second generator drawn once
per step. So an individual's episode does not depend on the rest of the population, and a
population split into chunks (``trainer/algorithms/es_ray.py``) gives the same returns.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch

from .base import BatchedTask, TensorSpec

Tensor = torch.Tensor

T_MAZE: tuple[str, ...] = (
    "E...E",
    "##.##",
    "##.##",
    "##S##",
)
DOUBLE_T_MAZE: tuple[str, ...] = (
    "E.E#E.E",
    "#.###.#",
    "#.....#",
    "###.###",
    "###S###",
)

FORWARD, LEFT, RIGHT, NOOP = 0, 1, 2, 3
#: the six orders of three items, identity first (input orders and motor assignments, see TMazeConfig.assignment)
PERMUTATIONS = torch.tensor(list(itertools.permutations(range(3))), dtype=torch.long)
SHUFFLES = (True, False, "inputs", "outputs")  # which of the per-env assignments are shuffled
DECISIONS = ("substeps", "window")  # how motor activity over action_window network steps picks an action
# heading 0 north, 1 east, 2 south, 3 west; (dy, dx) with y growing downwards (row index)
_DIRS = ((-1, 0), (0, 1), (1, 0), (0, -1))
WALL, GREEN, RED = 0, 1, 2
SENSOR_LETTERS, ACTION_LETTERS = "WGR", "FLR"  # one letter per sensor / per action, in index order (reports, plots)


@dataclass(frozen=True)
class TMazeConfig:
    """T-maze settings (defaults: the paper's). ``layout``: rows of ``# . S E``; ``swap_after``:
    foods eaten since the last change before a change may happen ("after the agent has eaten the
    non-poisonous food several times", our value 2 for the T-maze); ``shuffle``: per-env random
    input (sensor) order and output (motor -> action) assignment (the paper's), or ``"inputs"`` /
    ``"outputs"`` only one of them (curriculum stages), or ``False`` neither. ``stratify``: instead of
    drawing each env's assignment at random, env ``e`` takes assignment ``e mod K`` of the ``K``
    (:attr:`num_assignments`: 36, 6 or 1) the shuffle allows, so every assignment is met equally often
    (stratified sampling: the same expected return as random draws, without their variance; ``num_envs``
    must be a multiple of ``K``). ``visit_bonus`` (a curriculum shaping, not the paper's; default 0): each
    decision that moves the agent onto a cell it has not stood on since its last start earns this much
    on top of the food / poison reward; it counts in the returned reward (the fitness) only, the
    network observes the food / poison reward alone. ``motor_maps`` (a curriculum, not the paper's; default
    ``None``: all six): the output assignments the shuffle may draw, as indices into :data:`PERMUTATIONS`
    (e.g. ``(0, 2)``: motor 0 or motor 1 moves forward), so motor identification can be learnt over fewer maps
    first; needs a shuffle of the outputs. ``input_maps`` (likewise; default ``None``: all six): the input orders
    the shuffle may draw (e.g. ``(0, 1)``: green and red keep or swap their inputs, the wall stays), so the colours'
    meaning can be learnt from the reward on fewer orders first; needs a shuffle of the inputs."""

    num_envs: int = 8
    steps: int = 400
    energy: int = 40
    swap_prob: float = 0.5
    swap_after: int = 2
    food_reward: float = 1.0
    poison_reward: float = -1.0
    action_window: int = 4
    shuffle: bool | str = True
    layout: tuple[str, ...] = T_MAZE
    decision: str = "substeps"
    stratify: bool = False
    visit_bonus: float = 0.0
    motor_maps: tuple[int, ...] | None = None
    input_maps: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", tuple(str(r) for r in self.layout))
        for name, side in (("motor_maps", "outputs"), ("input_maps", "inputs")):
            if getattr(self, name) is None:
                continue
            maps = tuple(int(m) for m in getattr(self, name))
            if not maps or len(set(maps)) != len(maps) or not all(0 <= m < len(PERMUTATIONS) for m in maps):
                raise ValueError(f"TMazeConfig.{name} must be distinct indices in [0, {len(PERMUTATIONS)}), "
                                 f"got {getattr(self, name)}")
            object.__setattr__(self, name, maps)
            if self.shuffle not in (True, side):
                raise ValueError(f"TMazeConfig.{name} needs the {side} shuffled (shuffle=True or {side!r}), "
                                 f"got shuffle={self.shuffle!r}")
        for name in ("num_envs", "steps", "energy", "action_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"TMazeConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.shuffle not in SHUFFLES:
            raise ValueError(f"TMazeConfig.shuffle must be one of {SHUFFLES}, got {self.shuffle!r}")
        if self.stratify and self.num_envs % self.num_assignments:
            raise ValueError(f"TMazeConfig.stratify needs num_envs to be a multiple of the {self.num_assignments} "
                             f"input/output assignments of shuffle={self.shuffle!r}, got num_envs={self.num_envs}")
        if self.decision not in DECISIONS:
            raise ValueError(f"TMazeConfig.decision must be one of {DECISIONS}, got {self.decision!r}")
        if self.swap_after < 0:
            raise ValueError(f"TMazeConfig.swap_after must be >= 0, got {self.swap_after}")
        if not self.visit_bonus >= 0.0:
            raise ValueError(f"TMazeConfig.visit_bonus must be >= 0, got {self.visit_bonus}")
        if not 0.0 <= self.swap_prob <= 1.0:
            raise ValueError(f"TMazeConfig.swap_prob must be in [0, 1], got {self.swap_prob}")
        rows = self.layout
        if not rows or any(len(r) != len(rows[0]) for r in rows):
            raise ValueError(f"TMazeConfig.layout must be equal-length rows, got {rows}")
        bad = set("".join(rows)) - set("#.SE")
        if bad:
            raise ValueError(f"TMazeConfig.layout: unknown cells {sorted(bad)}; use '#', '.', 'S', 'E'")
        if "".join(rows).count("S") != 1:
            raise ValueError("TMazeConfig.layout needs exactly one start 'S'")
        if "".join(rows).count("E") < 2:
            raise ValueError("TMazeConfig.layout needs at least two reward sites 'E'")

    @property
    def num_assignments(self) -> int:
        """How many (input order, output assignment) pairs the shuffle draws from: 3! per shuffled side (the
        sides: as many as ``input_maps`` / ``motor_maps`` when given)."""
        inputs, outputs = self._num_maps(self.input_maps), self._num_maps(self.motor_maps)
        return {True: inputs * outputs, False: 1, "inputs": inputs}.get(self.shuffle, outputs)

    @staticmethod
    def _num_maps(maps: tuple[int, ...] | None) -> int:
        """How many permutations one side's shuffle draws from: the given ones, or all six."""
        return len(PERMUTATIONS) if maps is None else len(maps)

    def assignment(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """Assignment number(s) ``k`` in ``[0, num_assignments)`` -> (input order, output assignment), each
        ``(..., 3)``: input ``i`` shows sensor ``perm_in[i]``, motor ``j`` does action ``perm_out[j]``
        (the order of :data:`PERMUTATIONS`; the input order varies slowest)."""
        ident = torch.zeros_like(k)
        n_out = self._num_maps(self.motor_maps) if self.shuffle is True else self.num_assignments
        i_in = {True: k // n_out, "inputs": k}.get(self.shuffle, ident)
        i_out = {True: k % n_out, "outputs": k}.get(self.shuffle, ident)
        if self.motor_maps is not None:
            i_out = torch.tensor(self.motor_maps, dtype=torch.long, device=k.device)[i_out]
        if self.input_maps is not None:
            i_in = torch.tensor(self.input_maps, dtype=torch.long, device=k.device)[i_in]
        perms = PERMUTATIONS.to(k.device)
        return perms[i_in], perms[i_out]


def double_tmaze_config(**kw: Any) -> TMazeConfig:
    """The double T-maze: four sites, a change may follow every food."""
    return TMazeConfig(**{"layout": DOUBLE_T_MAZE, "swap_after": 1, **kw})


@dataclass(frozen=True)
class MazeGeometry:
    """A maze's layout as flat indices into the grid padded by one wall cell (index ``y * (W + 2) + x`` of the
    padded grid): what an agent that knows the map but not its env's assignment may use (e.g.
    :class:`plastix.tasks.tmaze_scripted.HypothesisAgent`). ``free`` (cells,) bool; ``sites`` (n,) the reward
    sites; ``start``; ``step`` (4,) the index offset one cell ahead per heading (north, east, south, west);
    ``turn`` (4,) the heading change of FORWARD, LEFT, RIGHT, NOOP."""

    free: Tensor
    sites: Tensor
    start: int
    step: Tensor
    turn: Tensor


class TMaze(BatchedTask):
    """The T-maze of Bertens & Lee 2020 (see the module docstring), ``(P, E)`` batched."""

    single_observation_spec = TensorSpec((5,), torch.float32, 0.0, 1.0)
    single_action_spec = TensorSpec((3,), torch.float32)

    def __init__(self, config: TMazeConfig | None = None, population: int = 1, *,
                 device: torch.device | str = "cpu") -> None:
        config = config if config is not None else self.default_config()
        super().__init__(population, config.num_envs, device=device)
        self.config = config
        self.substeps = config.action_window if config.decision == "substeps" else 1  # network steps per env step
        self.max_episode_steps = config.steps * self.substeps
        rows = config.layout
        self.height, self.width = len(rows), len(rows[0])
        free = torch.tensor([[c != "#" for c in r] for r in rows], dtype=torch.bool)
        # padded by one wall cell on every side, flat index y * (W + 2) + x
        pad = torch.zeros(self.height + 2, self.width + 2, dtype=torch.bool)
        pad[1:-1, 1:-1] = free
        self._free = pad.flatten().to(self.device)
        if config.visit_bonus > 0 and pad.numel() > 63:
            raise ValueError(f"TMazeConfig.visit_bonus tracks visited cells in one int64: the padded layout has "
                             f"{pad.numel()} cells, at most 63 are supported")
        cells = [(y, x) for y, r in enumerate(rows) for x, c in enumerate(r)]
        self.sites = [(y, x) for (y, x) in cells if rows[y][x] == "E"]
        self.start = next((y, x) for (y, x) in cells if rows[y][x] == "S")
        w2 = self.width + 2
        self._site_flat = torch.tensor([(y + 1) * w2 + x + 1 for y, x in self.sites], device=self.device)
        self._start_flat = (self.start[0] + 1) * w2 + self.start[1] + 1
        self._step_flat = torch.tensor([dy * w2 + dx for dy, dx in _DIRS], device=self.device)
        self._turn = torch.tensor([0, 3, 1, 0], device=self.device)  # FORWARD, LEFT, RIGHT, NOOP -> heading change
        self._swap_gen: torch.Generator | None = None
        self._allocate_individuals()

    def _allocate_individuals(self) -> None:
        P, E, dev, config = self.population, self.config.num_envs, self.device, self.config
        z = lambda dt: torch.zeros(P, E, dtype=dt, device=dev)  # noqa: E731
        self.pos, self.heading, self.energy, self.t = z(torch.long), z(torch.long), z(torch.long), z(torch.long)
        self.food, self.poison, self.since_swap = z(torch.long), z(torch.long), z(torch.long)
        self.visited = z(torch.long)  # bit c: flat cell c stood on since the last start (visit_bonus)
        self.perm_in = torch.zeros(P, E, 3, dtype=torch.long, device=dev)
        self.perm_out = torch.zeros(P, E, 3, dtype=torch.long, device=dev)
        self.window = torch.zeros(P, E, config.action_window, 3, device=dev)
        self.sub = z(torch.long)  # substeps mode: network steps of the current group done so far
        self.last_reward = torch.zeros(P, E, device=dev)
        self.step_reward = torch.zeros(P, E, device=dev)  # this call's reward (info); last_reward is observed
        self.last_action = torch.full((P, E), NOOP, dtype=torch.long, device=dev)

    @staticmethod
    def default_config() -> TMazeConfig:
        return TMazeConfig()

    @property
    def num_sites(self) -> int:
        return len(self.sites)

    @property
    def geometry(self) -> MazeGeometry:
        """The layout (no env state): see :class:`MazeGeometry`."""
        return MazeGeometry(self._free, self._site_flat, self._start_flat, self._step_flat, self._turn)

    # -- helpers -----------------------------------------------------------------------------
    def _draw_pair(self, g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
        """``n`` random (food, poison) pairs of distinct sites, on the CPU generator."""
        k = self.num_sites
        food = torch.randint(0, k, (n,), generator=g)
        poison = (food + torch.randint(1, k, (n,), generator=g)) % k
        return food.to(self.device), poison.to(self.device)

    def _perms(self, g: torch.Generator, n: int, side: str) -> Tensor:
        """(n, 3) per-env permutations of the ``side`` ("inputs" / "outputs"), identity if not shuffled."""
        if self.config.shuffle not in (True, side):
            return torch.arange(3, device=self.device).expand(n, 3)
        maps = self.config.motor_maps if side == "outputs" else self.config.input_maps
        if maps is not None:
            maps = torch.tensor(maps, dtype=torch.long)
            return PERMUTATIONS[maps[torch.randint(0, len(maps), (n,), generator=g)]].to(self.device)
        return torch.rand(n, 3, generator=g).argsort(dim=-1).to(self.device)

    def _sensors(self) -> Tensor:
        """(P, E, 3): wall / green / red in the faced cell, not yet shuffled."""
        ahead = self.pos + self._step_flat[self.heading]
        site_food = self._site_flat[self.food]
        site_poison = self._site_flat[self.poison]
        return torch.stack([~self._free[ahead], ahead == site_food, ahead == site_poison], dim=-1).float()

    def _obs(self) -> Tensor:
        s = self._sensors().gather(-1, self.perm_in)  # input k shows sensor perm_in[k]
        r = self.last_reward
        return torch.cat([s, (r > 0).float()[..., None], (r < 0).float()[..., None]], dim=-1)

    # -- contract hooks ----------------------------------------------------------------------
    def _reset_envs(self, mask: Tensor, options: dict) -> Tensor:
        g = self.generator
        if self._swap_gen is None or bool(mask.all()):
            seed = int(torch.randint(0, 2**62, (1,), generator=g))
            self._swap_gen = torch.Generator(device="cpu").manual_seed(seed)
        E = self.num_envs
        food, poison = self._draw_pair(g, E)
        if self.config.stratify:
            perm_in, perm_out = self.config.assignment(torch.arange(E, device=self.device) % self.config.num_assignments)
        else:
            perm_in, perm_out = self._perms(g, E, "inputs"), self._perms(g, E, "outputs")
        sel = lambda new, old: torch.where(mask, new.expand_as(old), old)  # noqa: E731
        self.food, self.poison = sel(food, self.food), sel(poison, self.poison)
        m3 = mask[..., None]
        self.perm_in = torch.where(m3, perm_in.expand_as(self.perm_in), self.perm_in)
        self.perm_out = torch.where(m3, perm_out.expand_as(self.perm_out), self.perm_out)
        self.pos = torch.where(mask, torch.full_like(self.pos, self._start_flat), self.pos)
        self.heading = torch.where(mask, torch.zeros_like(self.heading), self.heading)
        self.visited = torch.where(mask, torch.full_like(self.visited, 1 << self._start_flat), self.visited)
        self.energy = torch.where(mask, torch.full_like(self.energy, self.config.energy), self.energy)
        self.t = torch.where(mask, torch.zeros_like(self.t), self.t)
        self.since_swap = torch.where(mask, torch.zeros_like(self.since_swap), self.since_swap)
        self.window = torch.where(mask[..., None, None], torch.zeros_like(self.window), self.window)
        self.sub = torch.where(mask, torch.zeros_like(self.sub), self.sub)
        self.last_reward = torch.where(mask, torch.zeros_like(self.last_reward), self.last_reward)
        self.step_reward = torch.where(mask, torch.zeros_like(self.step_reward), self.step_reward)
        self.last_action = torch.where(mask, torch.full_like(self.last_action, NOOP), self.last_action)
        return self._obs()

    def _decode(self, action: Tensor) -> tuple[Tensor, Tensor]:
        """Motor activity (P, E, 3) of one network step -> (action index (P, E) in {FORWARD, LEFT,
        RIGHT, NOOP}, ``tick`` (P, E): whether the agent acts at this call (see ``decision``))."""
        k = self.config.action_window
        if self.substeps == 1:  # sliding window, one decision per call
            self.window = torch.cat([self.window[..., 1:, :], action[..., None, :]], dim=-2)
            tick = torch.ones_like(self.sub, dtype=torch.bool)
        else:  # this group's slot ``sub``; the group decides at its last network step
            slot = self.sub[..., None, None].expand(*self.sub.shape, 1, 3)
            self.window = self.window.scatter(-2, slot, action[..., None, :].to(self.window.dtype))
            tick = self.sub == k - 1
        score = self.window.sum(dim=-2).nan_to_num(nan=-torch.inf)
        best, motor = score.max(dim=-1)
        act = self.perm_out.gather(-1, motor[..., None])[..., 0]
        act = torch.where((best > 0) & tick, act, torch.full_like(act, NOOP))
        if self.substeps > 1:
            self.window = torch.where(tick[..., None, None], torch.zeros_like(self.window), self.window)
            self.sub = torch.where(tick, torch.zeros_like(self.sub), self.sub + 1)
        return act, tick

    def _change_sites(self, ate_food: Tensor) -> None:
        E, cfg = self.num_envs, self.config
        coin = torch.rand(E, generator=self._swap_gen).to(self.device) < cfg.swap_prob
        if self.num_sites == 2:
            new_food, new_poison = self.poison, self.food
        else:
            f, p = self._draw_pair(self._swap_gen, E)
            new_food, new_poison = f.expand_as(self.food), p.expand_as(self.poison)
        change = ate_food & (self.since_swap >= cfg.swap_after) & coin
        self.food = torch.where(change, new_food, self.food)
        self.poison = torch.where(change, new_poison, self.poison)
        self.since_swap = torch.where(change, torch.zeros_like(self.since_swap), self.since_swap)

    _STATE = ("pos", "heading", "visited", "energy", "t", "food", "poison", "since_swap", "window", "sub", "last_reward",
              "step_reward", "last_action")
    individual_state = _STATE + ("perm_in", "perm_out")

    def _step(self, action: Tensor, active: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        before = {k: getattr(self, k) for k in self._STATE} if active is not None else None
        out = self._advance(action)
        if before is not None:  # envs just reset by the base class keep their new state
            for k, old in before.items():
                new = getattr(self, k)
                setattr(self, k, torch.where(active.reshape(active.shape + (1,) * (new.ndim - 2)), new, old))
        return out

    def _advance(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        cfg = self.config
        act, tick = self._decode(action)
        heading = (self.heading + self._turn[act]) % 4
        target = self.pos + self._step_flat[heading]
        move = (act != NOOP) & self._free[target]
        pos = torch.where(move, target, self.pos)
        ate_food = move & (pos == self._site_flat[self.food])
        ate_poison = move & (pos == self._site_flat[self.poison])
        reward = ate_food.float() * cfg.food_reward + ate_poison.float() * cfg.poison_reward
        eaten = ate_food | ate_poison
        bonus = None
        if cfg.visit_bonus > 0:
            cell = torch.ones_like(pos) << pos
            fresh = move & ~eaten & ((self.visited & cell) == 0)
            bonus = fresh.float() * cfg.visit_bonus
            self.visited = torch.where(eaten, torch.full_like(pos, 1 << self._start_flat), self.visited | cell)
        self.pos = torch.where(eaten, torch.full_like(pos, self._start_flat), pos)
        self.heading = torch.where(eaten, torch.zeros_like(heading), heading)
        energy = torch.where(ate_food, torch.full_like(self.energy, cfg.energy), self.energy - 1)
        self.energy = torch.where(tick, energy, self.energy)  # time passes at the agent's decisions only
        self.since_swap = self.since_swap + ate_food.long()
        self._change_sites(ate_food)
        self.t = self.t + tick.long()
        self.last_reward = torch.where(tick, reward, self.last_reward)  # observed until the next decision
        self.last_action = torch.where(tick, act, self.last_action)
        terminated = self.energy <= 0
        truncated = (self.t >= cfg.steps) & ~terminated
        self.step_reward = reward
        fitness = reward if bonus is None else reward + bonus
        return self._obs(), fitness, terminated, truncated, self._info()

    def _info(self) -> dict[str, Any]:
        w2 = self.width + 2
        return {"t": self.t * self.substeps + self.sub, "env_t": self.t.clone(),  # calls (contract), env steps
                "y": self.pos // w2 - 1, "x": self.pos % w2 - 1,
                "heading": self.heading.clone(), "energy": self.energy.clone(),
                "food_site": self.food.clone(), "poison_site": self.poison.clone(),
                "action": self.last_action.clone(), "reward": self.step_reward.clone(),
                "decision": self.sub == 0}  # the agent acted at this call (always, with decision="window")


class DoubleTMaze(TMaze):
    """The double T-maze (Extended Data Fig. 4): four sites, food and poison at two of them."""

    @staticmethod
    def default_config() -> TMazeConfig:
        return double_tmaze_config()
