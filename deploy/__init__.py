"""plastix.deploy — from a trained model to a Lava run, a Loihi report, NIR and ONNX artefacts (issue 10).

* :mod:`.bundle` — atomic bundle folders (IR, NIR, manifest with versions / hashes / metrics, report);
* :mod:`.report` — per node/rule lowering status, quantisation error, resources, activity, energy model;
* :mod:`.loihi2` — Loihi 2 limits (named, sourced constants) and the resource / energy model;
* :mod:`.plots` — report figures; :mod:`.onnx_export` — one simulation step as ONNX;
* :mod:`.targets` — run on torch / Lava and the Lava-vs-torch reproduction check.

Lava is only imported (through :mod:`plastix.backends.lava`) by the functions that need it.
"""
from .bundle import BundleError as BundleError
from .bundle import create_bundle as create_bundle
from .bundle import load_bundle as load_bundle
from .bundle import read_manifest as read_manifest
from .onnx_export import check_step as check_step
from .onnx_export import export_step as export_step
from .report import build_report as build_report
from .report import probe_inputs as probe_inputs
from .report import write_report as write_report
from .targets import lava_check as lava_check
from .targets import simulate as simulate
