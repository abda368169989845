"""Overlay one metric of several training runs (their ``metrics.jsonl``) in one PNG, e.g. a plastic
model and its non-plastic baseline:

    python tools/overlay_curves.py RUN_DIR[=LABEL] ... --key test_error --out docs/curve.png [--hline 0.8=chance]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def series(run_dir: Path, key: str) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if key in rec:
            steps.append(int(rec["step"]) + 1)
            values.append(float(rec[key]))
    if not steps:
        raise SystemExit(f"{run_dir}/metrics.jsonl has no {key!r}")
    return steps, values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folder, optionally =label")
    ap.add_argument("--key", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--hline", action="append", default=[], help="value=label: a dashed reference line")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for spec in a.runs:
        path, _, label = spec.partition("=")
        ax.plot(*series(Path(path), a.key), label=label or Path(path).name)
    for spec in a.hline:
        value, _, label = spec.partition("=")
        ax.axhline(float(value), ls="--", c="gray", lw=1)
        ax.annotate(label, (0, float(value)), xycoords=("axes fraction", "data"), va="bottom", fontsize=8)
    ax.set_xlabel("iteration")
    ax.set_ylabel(a.key)
    ax.set_title(a.title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=120)
    print(a.out)


if __name__ == "__main__":
    main()
