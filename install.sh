#!/usr/bin/env bash
# Installs Owl and what it needs into the current Python environment.
#   bash install.sh          the package (generation, training, data tools)
#   bash install.sh dev      the package plus the test tools
# A torch that is already installed (a CUDA build, say) is kept. Without one, the CPU build is installed from
# PyTorch's CPU index: a plain `pip install torch` on Linux would pull several GB of CUDA libraries.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install --quiet "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
fi
extra=""
[ "${1:-}" = "dev" ] && extra="[dev]"
"$PY" -m pip install --quiet --editable ".${extra}"
