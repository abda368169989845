"""Drawing a recorded T-maze episode: the agent over the maze per step as an animated GIF, and the
reward of the episode (per step and cumulative) as a PNG; and a network's return per input order x
motor assignment (``plastix evaluate --by-assignment --plot``) as a heat map.

Input: the info tensors a :class:`plastix.tasks.tmaze.TMaze` reports at every step, stacked over
time, ``(T, P, E)`` (``plastix.trainer.algorithms.es_eval.rollout(..., record=True)["infos"]``). Pillow and
matplotlib are imported when drawing, not at import time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from plastix.ir.atomic import new_file

from .tmaze import ACTION_LETTERS, SENSOR_LETTERS, TMazeConfig

_COLOURS = {"wall": (90, 90, 90), "free": (245, 245, 245), "food": (40, 170, 60), "poison": (210, 40, 40),
            "empty_site": (215, 215, 190), "agent": (30, 80, 220), "trail": (150, 180, 240)}
_HEAD = ((0, -1), (1, 0), (0, 1), (-1, 0))  # heading -> (dx, dy) in image coordinates


def _episode(infos: dict[str, torch.Tensor], individual: int, env: int) -> dict[str, np.ndarray]:
    keys = ("y", "x", "heading", "food_site", "poison_site", "reward", "energy", "action")
    missing = [k for k in keys if k not in infos]
    if missing:
        raise ValueError(f"render: infos lack {missing} (record a TMaze episode with rollout(record=True))")
    keep = slice(None)
    if "decision" in infos:  # decision="substeps": one frame per environment step, not per network step
        keep = infos["decision"][:, individual, env].cpu().numpy().astype(bool)
    out = {k: infos[k][:, individual, env].cpu().numpy()[keep] for k in keys}
    t = infos["t"][:, individual, env].cpu().numpy()[keep]
    # stop at the end of the first episode (t falls back to 0 on an autoreset)
    stop = int(np.argmax(t[1:] <= t[:-1]) + 1) if len(t) > 1 and np.any(t[1:] <= t[:-1]) else len(t)
    return {k: v[:stop] for k, v in out.items()}


def render_gif(infos: dict[str, torch.Tensor], config: TMazeConfig, path: str | Path, *, individual: int = 0,
               env: int = 0, cell: int = 28, trail: int = 6, frame_ms: int = 120) -> Path:
    """Animated GIF of one env's episode: maze, food (green), poison (red), agent (blue, with a
    heading mark) and its last ``trail`` positions; one frame per step."""
    from PIL import Image, ImageDraw

    ep = _episode(infos, individual, env)
    rows = config.layout
    sites = [(y, x) for y, r in enumerate(rows) for x, c in enumerate(r) if c == "E"]
    H, W = len(rows), len(rows[0])
    base = np.zeros((H, W, 3), dtype=np.uint8)
    for y, r in enumerate(rows):
        for x, c in enumerate(r):
            base[y, x] = _COLOURS["wall" if c == "#" else "free"]
    frames, total = [], 0.0
    for i in range(len(ep["x"])):
        img = base.copy()
        for k, (y, x) in enumerate(sites):
            kind = "food" if k == ep["food_site"][i] else "poison" if k == ep["poison_site"][i] else "empty_site"
            img[y, x] = _COLOURS[kind]
        for j in range(max(0, i - trail), i):
            img[ep["y"][j], ep["x"][j]] = _COLOURS["trail"]
        y, x = int(ep["y"][i]), int(ep["x"][i])
        img[y, x] = _COLOURS["agent"]
        total += float(ep["reward"][i])
        big = Image.fromarray(np.kron(img, np.ones((cell, cell, 1), dtype=np.uint8)))
        canvas = Image.new("RGB", (big.width, big.height + 16), (255, 255, 255))
        canvas.paste(big, (0, 16))
        draw = ImageDraw.Draw(canvas)
        cx, cy = x * cell + cell // 2, 16 + y * cell + cell // 2
        dx, dy = _HEAD[int(ep["heading"][i]) % 4]
        draw.line([(cx, cy), (cx + dx * cell // 2, cy + dy * cell // 2)], fill=(255, 255, 255), width=3)
        draw.text((2, 2), f"t={i + 1} R={total:+.0f} energy={int(ep['energy'][i])}", fill=(0, 0, 0))
        frames.append(canvas)
    path = Path(path)
    with new_file(path) as tmp:  # atomic: a killed run leaves the old GIF or the new one
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return path


def render_reward_plot(infos: dict[str, torch.Tensor], path: str | Path, *, individual: int = 0) -> Path:
    """PNG: cumulative reward over the episode for every env of one individual (food +1, poison -1)."""
    from matplotlib.figure import Figure

    reward = infos["reward"][:, individual].cpu().numpy()              # (T, E)
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot()
    for e in range(reward.shape[1]):
        ep = _episode(infos, individual, e)
        ax.plot(np.arange(1, len(ep["reward"]) + 1), np.cumsum(ep["reward"]), lw=1, label=f"env {e}")
    ax.set_xlabel("step")
    ax.set_ylabel("cumulative reward")
    ax.set_title("episode reward per env")
    if reward.shape[1] <= 8:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path = Path(path)
    with new_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def render_tmaze_episode(infos: dict[str, torch.Tensor], config: TMazeConfig, out_dir: str | Path) -> list[Path]:
    """``out_dir/episode.gif`` (env 0) and ``out_dir/episode_reward.png`` (all envs)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [render_gif(infos, config, out / "episode.gif"), render_reward_plot(infos, out / "episode_reward.png")]


def render_assignment_map(rows: list[dict], path: str | Path, *, title: str = "") -> Path:
    """PNG: the mean return of each input order (rows; the sensor each input shows, W / G / R) x motor
    assignment (columns; the action of each motor, F / L / R), from the ``by_assignment`` rows of
    ``plastix.trainer.experiments.es_run.evaluate_tmaze``. A network that learns within episodes is
    uniform; one that relies on its wiring shows the assignments its wiring fits."""
    from matplotlib.figure import Figure

    def order(key: str, letters: str) -> list[str]:  # the order of tmaze.PERMUTATIONS
        return sorted({r[key] for r in rows}, key=lambda name: [letters.index(c) for c in name])

    ins, outs = order("inputs", SENSOR_LETTERS), order("outputs", ACTION_LETTERS)
    grid = np.full((len(ins), len(outs)), np.nan)
    for r in rows:
        grid[ins.index(r["inputs"]), outs.index(r["outputs"])] = r["mean_return"]
    fig = Figure(figsize=(1.2 + 0.75 * len(outs), 1.0 + 0.55 * len(ins)))
    ax = fig.add_subplot()
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7, color="white" if v < np.nanmean(grid) else "black")
    ax.set_xticks(range(len(outs)), outs, fontsize=7)
    ax.set_yticks(range(len(ins)), ins, fontsize=7)
    ax.set_xlabel("motor assignment (action of motor 0, 1, 2)", fontsize=8)
    ax.set_ylabel("input order (sensor of input 0, 1, 2)", fontsize=8)
    ax.set_title(title or "mean return per assignment", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    path = Path(path)
    with new_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
