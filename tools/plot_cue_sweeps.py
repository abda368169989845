"""Several M sweeps of trained cue models in one plot next to the paper's (Meta-SpikePropamine Fig. 4), from
the JSON that ``plastix evaluate MODEL --sweep ... --json`` prints (``{"sweep": {"1": acc, ...}}``):

    plastix evaluate RUN/best.plx --problems 500 --sweep 1,3,5,7,9,11,13,15 --json > RUN.sweep.json
    python tools/plot_cue_sweeps.py "per-post, seed 0=RUN0.sweep.json" "seed 1=RUN1.sweep.json" --out docs/x.png

Also prints the table (rows: label, columns: M) as markdown, with the mean and spread over runs that share
a label prefix given by ``--group`` (e.g. ``--group per-post``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from plastix.trainer.experiments.bptt_run import PAPER_SWEEP, plot_sweep


def read_sweep(path: Path) -> dict[int, float]:
    data = json.loads(Path(path).read_text())
    if "sweep" not in data:
        raise SystemExit(f"{path}: no 'sweep' key (the output of plastix evaluate --sweep --json)")
    return {int(m): float(a) for m, a in data["sweep"].items()}


def table(sweeps: dict[str, dict[int, float]], groups: list[str]) -> str:
    ms = sorted({m for s in sweeps.values() for m in s})
    rows = ["| run | " + " | ".join(f"M = {m}" for m in ms) + " |", "|---|" + "---:|" * len(ms)]
    rows.append("| paper | " + " | ".join(f"{100 * PAPER_SWEEP[m]:.1f}" if m in PAPER_SWEEP else "" for m in ms) + " |")
    for label, s in sweeps.items():
        rows.append(f"| {label} | " + " | ".join(f"{100 * s[m]:.1f}" if m in s else "" for m in ms) + " |")
    for g in groups:
        members = [s for label, s in sweeps.items() if label.startswith(g)]
        if len(members) > 1:
            cells = []
            for m in ms:
                v = 100 * np.array([s[m] for s in members if m in s])
                cells.append(f"{v.mean():.1f} +- {v.std(ddof=1):.1f}" if len(v) > 1 else "")
            rows.append(f"| **{g}: mean +- sd over {len(members)}** | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="LABEL=SWEEP.json")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--title", default="")
    ap.add_argument("--group", action="append", default=[], help="label prefix to average over (repeatable)")
    a = ap.parse_args(argv)
    sweeps = {}
    for item in a.runs:
        label, sep, path = item.rpartition("=")
        if not sep:
            raise SystemExit(f"{item!r}: give LABEL=SWEEP.json")
        sweeps[label] = read_sweep(Path(path))
    print(table(sweeps, a.group))
    print(f"wrote {plot_sweep(sweeps, a.out, title=a.title)}")


if __name__ == "__main__":
    main()
