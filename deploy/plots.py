"""Report plots (PNG, matplotlib's object API, no global state): per-core resource bars, weight
quantisation error histogram, spike raster, weight-change heatmap."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def save_plots(report: dict, folder: str | Path) -> list[Path]:
    """Write the plots of ``report`` (:func:`plastix.deploy.report.build_report`) into ``folder``."""
    from matplotlib.figure import Figure

    folder = Path(folder)
    paths = []
    pops = {n: v for n, v in report["resources"]["populations"].items() if v["on_neurocores"]}
    lim = report["resources"]["limits"]
    fig = Figure(figsize=(8, 3.5))
    axes = fig.subplots(1, 2)
    names = list(pops)
    x = np.arange(len(names))
    for ax, key, limit, title in ((axes[0], "neurons_per_core", lim["NEURONS_PER_CORE"], "neurons per core"),
                                  (axes[1], "synapses_per_core", lim["SYNAPSES_PER_CORE"], "synapses per core")):
        ax.bar(x, [pops[n][key] / limit * 100 for n in names], color="tab:blue")
        ax.set_xticks(x, [f"{n}\n({pops[n]['cores']} core{'s' if pops[n]['cores'] != 1 else ''})" for n in names],
                      fontsize=7)
        ax.set_ylabel("% of the Loihi 2 per-core limit (model)")
        ax.set_title(title)
    fig.suptitle(f"resources: {report['resources']['cores']} neurocores (host-emulated nodes not shown)")
    fig.tight_layout()
    paths.append(_save(fig, folder / "resources.png"))

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    errs = np.asarray(report["quantisation"]["weight_rel_errors"])
    if errs.size:
        ax.hist(errs, bins=40, color="tab:orange")
    ax.set_xlabel("|W_quantised - W| / max|W| per synapse")
    ax.set_ylabel("synapses")
    ax.set_title("weight quantisation error (8-bit mantissa + exponent)" + ("" if errs.size else ": no LIF/LI weights"))
    fig.tight_layout()
    paths.append(_save(fig, folder / "quantisation_error.png"))

    raster = report.get("_raster", {})
    if raster:
        fig = Figure(figsize=(9, 1.2 + 1.3 * len(raster)))
        axes = np.atleast_1d(fig.subplots(len(raster), 1, sharex=True))
        for ax, (name, data) in zip(axes, raster.items()):
            t, n = np.nonzero(np.asarray(data))
            ax.scatter(t, n, s=1.5, c="k")
            ax.set_ylabel(name)
        axes[-1].set_xlabel("step")
        fig.suptitle("spike raster on the report's input set (torch float64)")
        fig.tight_layout()
        paths.append(_save(fig, folder / "raster.png"))

    changes = report.get("_weight_change", {})
    if changes:
        fig = Figure(figsize=(5 * len(changes), 4))
        axes = np.atleast_1d(fig.subplots(1, len(changes)))
        for ax, (name, dw) in zip(axes, changes.items()):
            dw = np.asarray(dw)
            m = float(np.abs(dw).max()) or 1.0
            im = ax.imshow(dw, aspect="auto", cmap="coolwarm", vmin=-m, vmax=m)
            ax.set_xlabel("pre")
            ax.set_ylabel("post")
            ax.set_title(f"weight change: {name}")
            fig.colorbar(im, ax=ax)
        fig.tight_layout()
        paths.append(_save(fig, folder / "weight_change.png"))
    return paths


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    fig.savefig(path, dpi=100)
    return path
