#!/usr/bin/env bash
# Installs Owl and what it needs into the current Python environment.
#   bash install.sh          the package (generation, training, data tools, the web app), at the versions it was tested with
#   bash install.sh dev      the same plus the test tools (pytest; Playwright for the browser tests)
#   OWL_LATEST=1 bash install.sh dev
#                            the newest releases pyproject.toml's ranges admit instead (runs/check_latest.sh)
#
# Tested versions: constraints.txt pins every package Owl pulls in (torch excepted), so an install today gets
# what the tests passed with, not whatever was released this morning. pyproject.toml keeps ranges, so `pip install
# owl` into an environment of your own still works; those ranges are capped below releases nobody has tested.
#
# torch: one that is already installed (a CUDA build, say) is kept and never replaced. Without one, torch 2.13.0
# is installed: through your own pip configuration when it names an index, a mirror or a wheel folder
# (pip.conf, PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS); otherwise from PyTorch's CPU index, because a
# plain `pip install torch` on Linux pulls several GB of CUDA libraries. OWL_TORCH_INDEX_URL=URL picks the index
# (an empty value: your pip's default).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0

if ! "$PY" -c "import torch" 2>/dev/null; then
  if [ -n "${OWL_TORCH_INDEX_URL+set}" ]; then
    index=$OWL_TORCH_INDEX_URL
  elif [ -n "${PIP_INDEX_URL:-}${PIP_EXTRA_INDEX_URL:-}${PIP_FIND_LINKS:-}" ] \
      || "$PY" -m pip config list 2>/dev/null | grep -Eq '\.(index-url|extra-index-url|find-links)='; then
    index=""  # the user's own pip configuration decides where torch comes from
  else
    index=https://download.pytorch.org/whl/cpu
  fi
  echo "install.sh: installing torch==$TORCH_VERSION${index:+ from $index}"
  "$PY" -m pip install --quiet ${index:+--index-url "$index"} "torch==$TORCH_VERSION"
fi

extra="[app]"  # the web app (owl app) comes with every install
[ "${1:-}" = "dev" ] && extra="[app,dev]"
constraints=(--constraint "${OWL_CONSTRAINTS:-constraints.txt}")  # another pin file: runs/check_latest.sh OLDEST=1
[ -n "${OWL_LATEST:-}" ] && constraints=()
"$PY" -m pip install --quiet "${constraints[@]}" --editable ".${extra}"
