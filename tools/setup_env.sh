#!/usr/bin/env bash
# Create the project's virtual environment and install everything plastix needs.
# Idempotent: `make setup` only re-runs this when pyproject.toml or this file change.
#
# Order matters:
#   1. torch: on machines without an NVIDIA GPU take the pinned CPU build first, so that the
#      range in pyproject.toml is already satisfied and pip never pulls the multi-GB CUDA wheels.
#   2. lava-nc 0.10.0 declares Python <3.11; it is pure Python and runs on 3.11 through the import
#      shim in backends/lava/compat.py, so it is installed with --no-deps --ignore-requires-python
#      after its real dependencies (numpy<2, scipy, scikit-learn, networkx<=2.8.7, asteval).
#   3. plastix itself, editable, with the dev extras, under a pip constraint file that pins the torch
#      installed in step 1: the peers (snnTorch, Norse and Norse's torchvision) then install next to it
#      instead of replacing it with another (CUDA) build. (torchvision's compiled ops do not load against
#      the CPU torch; norse.torch, all that plastix uses, never imports torchvision.)
set -euo pipefail
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_CPU_PIN="${TORCH_CPU_PIN:-torch==2.13.0}"

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"plastix needs Python >= 3.10, found {sys.version.split()[0]}")
PY

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "[setup] NVIDIA GPU found: installing torch from the index (CUDA build)"
    "${PIP[@]}" "torch>=2.2"
  else
    echo "[setup] no NVIDIA GPU: installing the CPU build $TORCH_CPU_PIN"
    "${PIP[@]}" "$TORCH_CPU_PIN"
  fi
fi

echo "[setup] installing lava-nc 0.10.0 and its dependencies"
"${PIP[@]}" "numpy>=1.24,<2" scipy scikit-learn "networkx>=2.8,<=2.8.7" asteval
"${PIP[@]}" --no-deps --ignore-requires-python "lava-nc==0.10.0"

echo "[setup] installing plastix (editable) with dev extras (torch pinned to the installed build)"
CONSTRAINTS="$VENV/plastix-torch-constraint.txt"
"$VENV/bin/python" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$CONSTRAINTS"
"${PIP[@]}" -c "$CONSTRAINTS" -e ".[dev]"
echo "[setup] done"
