"""SpikePropamine Fig. 4B-D for our Half-Cheetah policies: mean return vs the standard deviation of joint-friction,
action and observation noise, one curve per trained variant (issue 20, docs/results.md).

    .venv/bin/python tools/noise_curves.py non_plastic=RUN/best.plx dp_oja=RUN/best.plx ... \\
        --episodes 20 --out docs/halfcheetah_noise.jsonl --plot docs/halfcheetah_noise.png

Every point is :func:`~plastix.trainer.experiments.locomotion_run.evaluate_locomotion` (the same seeded
episodes at every std, mean action, 1,000 steps); one JSON object per point is appended to ``--out`` as soon
as it is measured, and points already there are skipped, so a killed sweep continues where it stopped.
``--plot-only`` redraws the PNG from ``--out``; ``--table`` prints the points as a markdown table: mean return,
and in brackets the fraction of the variant's noise-free return kept (the robustness the paper's Fig. 4 compares).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: the stds of each noise kind (friction: a fraction of the damping constants; action: multiplicative;
#: observation: additive, in the units of the joint angles and velocities, before spike coding)
STDS = {"friction": (0.0, 0.25, 0.5, 1.0, 2.0), "action": (0.0, 0.1, 0.25, 0.5, 1.0),
        "observation": (0.0, 0.1, 0.25, 0.5, 1.0)}


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def measure(models: dict[str, Path], *, episodes: int, seed: int, out: Path, steps: int = 1000) -> None:
    """Append every missing (variant, noise, std) point to ``out`` (episodes of ``steps`` steps)."""
    from tqdm import tqdm

    import plastix.ir as ir
    from plastix.trainer.experiments.locomotion_run import evaluate_locomotion

    done = {(r["variant"], r["noise"], r["std"]) for r in load(out) if r["episodes"] == episodes and r["seed"] == seed}
    points = dict.fromkeys((v, "none" if s == 0 else k, s) for v in models for k, stds in STDS.items() for s in stds)
    todo = [p for p in points if p not in done]  # std 0 is one noise-free point per variant
    graphs = {}
    for variant, kind, std in tqdm(todo, desc="noise points", unit="point"):
        g = graphs.setdefault(variant, ir.load(models[variant]))
        (row,) = evaluate_locomotion(g, noise=kind, stds=(std,), episodes=episodes, seed=seed, steps=steps)
        row = {"variant": variant, "model": str(models[variant]), **{k: v for k, v in row.items() if k != "returns"}}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")


def plot(rows: list[dict], png: Path) -> None:
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, kind in zip(axes, STDS):
        for v in variants:
            pts = sorted((r["std"], r["mean_return"], r["std_return"] / r["episodes"] ** 0.5) for r in rows
                         if r["variant"] == v and (r["noise"] == kind or r["noise"] == "none"))
            if pts:
                x, y, e = zip(*pts)
                ax.errorbar(x, y, yerr=e, marker="o", ms=3, capsize=2, label=v)
        ax.set_title(f"{kind} noise")
        ax.set_xlabel("noise std" + (" (fraction of joint damping)" if kind == "friction" else ""))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"mean return ({rows[0]['steps']:,} steps; bars: s.e.m.)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def table(rows: list[dict]) -> str:
    """Markdown: one row per variant, one column per noise kind; each cell the mean returns at that kind's
    stds (ascending, std 0 left out) with the fraction of the noise-free mean return kept in brackets."""
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    mean = {(r["variant"], r["noise"], r["std"]): r["mean_return"] for r in rows}
    head = ["variant", "none"] + [f"{k} " + " / ".join(f"{s:g}" for s in stds if s) for k, stds in STDS.items()]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|" + "---|" * len(STDS)]
    for v in variants:
        base = mean.get((v, "none", 0.0))
        cells = ["n/a" if base is None else f"{base:.1f}"]
        for kind, stds in STDS.items():
            parts = []
            for s in (s for s in stds if s):
                m = mean.get((v, kind, s))
                kept = "" if m is None or not base or base <= 0 else f" ({m / base:.2f})"
                parts.append("-" if m is None else f"{m:.1f}{kept}")
            cells.append(" / ".join(parts))
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="variant=MODEL.plx")
    ap.add_argument("--episodes", type=int, default=20, help="episodes per point (the paper: 100)")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--out", type=Path, required=True, help="JSON lines, appended to")
    ap.add_argument("--plot", type=Path, help="PNG of the three panels")
    ap.add_argument("--plot-only", action="store_true", help="measure nothing; only draw / tabulate --out")
    ap.add_argument("--table", action="store_true", help="print a markdown table of --out's points")
    a = ap.parse_args()
    if not a.plot_only:
        models = {}
        for spec in a.models:
            variant, sep, path = spec.partition("=")
            if not sep or not Path(path).is_file():
                ap.error(f"expected variant=MODEL.plx with an existing file, got {spec!r}")
            models[variant] = Path(path)
        measure(models, episodes=a.episodes, seed=a.seed, out=a.out)
    if a.plot:
        plot(load(a.out), a.plot)
    if a.table:
        print(table(load(a.out)))


if __name__ == "__main__":
    main()
