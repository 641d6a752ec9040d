#!/usr/bin/env bash
# Does Owl still work with the newest releases its ranges admit? Installs them into a throwaway virtual
# environment (torch stays at the tested 2.13.0), prints the versions that differ from constraints.txt, and runs
# the test suite there. Run it before a release, or whenever a dependency ships, to see a break before users do:
#   bash runs/check_latest.sh                  the whole suite
#   bash runs/check_latest.sh tests/test_cli.py -x
#   OLDEST=1 bash runs/check_latest.sh         the floors instead: the oldest transformers, diffusers, peft and
#                                              accelerate pyproject.toml admits (the libraries whose APIs Owl follows)
# VENV=DIR keeps the environment (default: a temporary folder, removed afterwards). Exit status: the tests'.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -n "${VENV:-}" ]; then
  venv=$VENV
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  venv=$tmp/venv
fi
[ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
if [ -n "${OLDEST:-}" ]; then
  floors=$(dirname "$venv")/floors.txt
  "$PY" - > "$floors" <<'PY'
import pathlib, re
text = pathlib.Path("pyproject.toml").read_text()
for name in ("transformers", "diffusers", "peft", "accelerate"):
    floor = re.search('"' + name + r'>=([0-9.]+)', text).group(1)
    print(f"{name}=={floor}")
PY
  OWL_CONSTRAINTS=$floors PYTHON="$venv/bin/python" bash install.sh dev
else
  OWL_LATEST=1 PYTHON="$venv/bin/python" bash install.sh dev
fi
echo "check_latest${OLDEST:+ (oldest)}: $(date -u +%Y-%m-%d), versions that differ from constraints.txt:"
lower() { tr '[:upper:]' '[:lower:]' | LC_ALL=C sort; }
"$venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -vi '^owl=' | lower \
  | LC_ALL=C comm -13 <(grep -v '^#' constraints.txt | lower) - | sed 's/^/  /' || true
"$venv/bin/python" -m pytest "$@"
