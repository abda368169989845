"""Deploy bundles: one folder per deployed model, created atomically (issue 10, docs/deploy.md).

Layout::

    <bundle>/
      manifest.json     format tag, bundle version, package versions, sha256 of every file, metrics
      model.plx         the IR (plastix.ir.save)
      model.nir         NIR: static part + plasticity extension (absent, with the reason in the
                        manifest, when the graph has nodes NIR cannot express, e.g. gated units)
      model.onnx        optional: ONNX export of one simulation step (plastix.deploy.onnx_export)
      inputs.npz        the input set the report and checks ran on
      report.json, report.md, *.png    the Loihi report (plastix.deploy.report)

The bundle is built in a temporary sibling folder and swapped into place in one atomic step
(:func:`plastix.ir.atomic.new_dir`); on any error the temporary folder is removed, and a run killed
at any point (SIGKILL included) leaves the old bundle or the complete new one, never a mix or
nothing; its temporary folder is removed by the next write to the same path. Every file's bytes
depend only on the model, the inputs and the seed, so identical runs give the same
``bundle_sha256``.
:func:`load_bundle` re-checks every hash and names the file that is missing or changed.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from plastix.ir import Graph, UnsupportedKindError
from plastix.ir import load as load_graph
from plastix.ir import save as save_graph
from plastix.ir.atomic import new_dir
from plastix.ir.errors import BundleError
from plastix.ir.serialize import npy_bytes, zip_bytes

FORMAT_TAG = "plastix-bundle"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
MODEL = "model.plx"
INPUTS = "inputs.npz"
PACKAGES = ("plastix", "torch", "lava-nc", "nir", "numpy", "onnx", "onnxruntime")


def versions() -> dict[str, Optional[str]]:
    """Installed versions of the packages a bundle depends on (``None`` if absent)."""
    out: dict[str, Optional[str]] = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def create_bundle(graph: Graph, out: str | Path, *, inputs: Optional[dict] = None, steps: int = 100, seed: int = 0,
                  lava: bool = False, onnx: bool = False, plots: bool = True, overwrite: bool = False,
                  source: Optional[str | Path] = None, timeout: float = 300.0,
                  progress: Optional[Callable[[str], None]] = None,
                  task_eval: Optional[Callable[[bool], dict]] = None) -> Path:
    """Write the bundle of ``graph`` to the folder ``out`` (module doc) and return it.

    ``inputs`` (name -> ``(T, size[, ch])``, default :func:`~plastix.deploy.report.probe_inputs`
    with ``steps``/``seed``) drive the report and checks. ``lava`` runs
    :func:`~plastix.deploy.targets.lava_check` and raises :class:`BundleError` if Lava does not
    reproduce torch; ``onnx`` adds the one-step ONNX model and its onnxruntime check. An existing
    ``out`` is an error unless ``overwrite``, and even then only a bundle folder is replaced. ``progress(stage)`` is called after each stage. ``task_eval(lava)``, if given, measures the
    model on its own task (e.g. :func:`plastix.trainer.experiments.cue_eval.task_accuracy`); its result is the
    report's ``task`` section (accuracy per backend and precision on the same problems)."""
    from .report import build_report, check_inputs, probe_inputs, write_report

    out = Path(out)
    check_bundle_target(out, overwrite)
    tick = progress or (lambda stage: None)
    given = inputs is not None
    inputs = probe_inputs(graph, steps, seed) if inputs is None else inputs
    check_inputs(graph, inputs)
    with new_dir(out) as tmp:
        files, skipped, metrics = [MODEL, INPUTS], {}, {}
        save_graph(graph, tmp / MODEL)
        (tmp / INPUTS).write_bytes(npz_bytes(inputs))
        tick("ir")
        try:
            from plastix.ir.nir_interop import write_nir

            write_nir(graph, tmp / "model.nir")
            files.append("model.nir")
        except UnsupportedKindError as exc:
            skipped["model.nir"] = str(exc)
        tick("nir")
        report = build_report(graph, inputs, seed=seed)
        if task_eval is not None:
            metrics["task"] = task_eval(lava)  # wall times stay in the manifest: the files' hashes stay seeded
            report["task"] = {k: v for k, v in metrics["task"].items() if k != "wall_time_s"}
        files += [p.name for p in write_report(report, tmp, plots=plots)]
        metrics["report"] = _report_metrics(report)
        tick("report")
        if onnx:
            from .onnx_export import check_step, export_step

            export_step(graph, tmp / "model.onnx")
            metrics["onnx"] = check_step(graph, tmp / "model.onnx", inputs)
            files.append("model.onnx")
            tick("onnx")
        if lava:
            from .targets import lava_check

            res = lava_check(graph, inputs, timeout=timeout)
            metrics["lava_check"] = res
            if not res["passed"]:
                raise BundleError(f"Lava does not reproduce the torch backend ({res['criterion']}): max abs error "
                                  f"{res['max_abs_error']:.3g}, spikes identical: {res['spikes_identical']}")
            tick("lava")
        hashes = {f: sha256(tmp / f) for f in sorted(set(files))}
        manifest = {"format": FORMAT_TAG, "bundle_version": BUNDLE_VERSION,
                    "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "source": None if source is None else {"path": str(source), "sha256": sha256(Path(source))},
                    "versions": versions(), "files": hashes, "bundle_sha256": bundle_hash(hashes),
                    "skipped": skipped, "inputs": {"given": given, "steps": int(check_inputs(graph, inputs)),
                                                   "seed": seed},
                    "metrics": metrics}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_json) + "\n")
    return out


def check_bundle_target(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``out`` unless ``overwrite``, and never replace anything but a bundle."""
    if not os.path.lexists(out):
        return
    if not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    if not out.is_dir() or out.is_symlink():
        raise FileExistsError(f"{out} exists and is not a bundle folder; not replacing it")
    try:
        ok = json.loads((out / MANIFEST).read_text()).get("format") == FORMAT_TAG
    except (OSError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise FileExistsError(f"{out} exists and is not a plastix bundle (no {MANIFEST} of format {FORMAT_TAG!r}); "
                              "not replacing it")


def bundle_hash(hashes: dict[str, str]) -> str:
    """The bundle's identity: sha256 over its files' names and sha256s (the manifest's creation
    time and package versions are not part of it). Identical seeded runs give identical hashes."""
    text = "".join(f"{name}\0{digest}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def npz_bytes(arrays: dict) -> bytes:
    """An ``.npz`` archive (``np.load`` reads it) whose bytes depend only on the arrays."""
    return zip_bytes({f"{k}.npy": npy_bytes(np.asarray(v)) for k, v in arrays.items()})


def _json(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _report_metrics(report: dict) -> dict:
    """The report's headline numbers for the manifest."""
    st = report["status"]["float"]
    counts: dict[str, int] = {}
    for sect in ("populations", "projections", "rules", "modulators"):
        for v in st[sect].values():
            counts[v["how"]] = counts.get(v["how"], 0) + 1
    q = report["quantisation"]
    return {"status_counts": counts, "fixed_point": "unsupported" not in report["status"].get("fixed", {}),
            "max_rel_weight_error": max((v["max_rel"] for v in q["weights"].values()), default=0.0),
            "spike_change": {n: v["changed_fraction"] for n, v in q["outputs"].items() if "changed_fraction" in v},
            "cores": report["resources"]["cores"], "activity": {k: v for k, v in report["activity"].items()
                                                              if k != "spike_rate"},
            "energy_pJ_per_step_model": report["energy"]["total_pJ"]}


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a bundle, checked: format, version, and the sha256 of every listed file."""
    folder = Path(folder)
    if not folder.exists():
        raise BundleError(f"bundle {folder}: no such folder")
    if not folder.is_dir():
        raise BundleError(f"bundle {folder}: not a folder")
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"bundle {folder}: {MANIFEST} is missing (not a plastix bundle, or incomplete)")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle {folder}: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_TAG:
        raise BundleError(f"bundle {folder}: {MANIFEST} is not a {FORMAT_TAG} manifest")
    if manifest.get("bundle_version") != BUNDLE_VERSION:
        raise BundleError(f"bundle {folder}: bundle version {manifest.get('bundle_version')!r}, this plastix reads "
                          f"{BUNDLE_VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or MODEL not in files:
        raise BundleError(f"bundle {folder}: {MANIFEST} lists no {MODEL}")
    for name, digest in files.items():
        f = folder / name
        if Path(name).name != name:
            raise BundleError(f"bundle {folder}: manifest lists a path outside the bundle: {name!r}")
        if not f.is_file():
            raise BundleError(f"bundle {folder}: {name} is missing")
        if sha256(f) != digest:
            raise BundleError(f"bundle {folder}: {name} is corrupted (sha256 differs from the manifest)")
    return manifest


def load_bundle(folder: str | Path, *, max_bytes: Optional[int] = None) -> tuple[Graph, dict]:
    """``(graph, manifest)`` of a checked bundle (:func:`read_manifest`); ``max_bytes`` as in
    :func:`plastix.ir.load`."""
    manifest = read_manifest(folder)
    return load_graph(Path(folder) / MODEL, max_bytes=max_bytes), manifest


def bundle_inputs(folder: str | Path) -> Optional[dict[str, np.ndarray]]:
    """The input set stored in a bundle (``None`` if it has none)."""
    from .report import load_inputs

    path = Path(folder) / INPUTS
    return load_inputs(path) if path.is_file() else None
