#!/usr/bin/env bash
# Create (or update) a virtual environment for DefaceRTLib.
#   scripts/make_env.sh VENV_DIR REQUIREMENTS_FILE PYTHON_VERSION_PREFIX
# Uses pythonX.Y from PATH, then pyenv's copy, then python3 (with a note).
set -euo pipefail
venv=$1
req=$2
want=$3   # e.g. 3.12 or 3.9

find_python() {
  if command -v "python$want" >/dev/null 2>&1 && "python$want" -c 'import sys' >/dev/null 2>&1; then
    command -v "python$want"; return
  fi
  for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python3; do
    [ -x "$p" ] && { echo "$p"; return; }
  done
  echo "note: no Python $want found, using $(python3 --version 2>&1)" >&2
  command -v python3
}

stamp="$venv/.installed-$(sha1sum "$req" pyproject.toml | sha1sum | cut -c1-12)"
if [ -f "$stamp" ]; then
  exit 0
fi
py=$(find_python)
echo "== creating $venv with $("$py" --version 2>&1) from $req" >&2
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/python" -m pip install -q -r "$req"
"$venv/bin/python" -m pip install -q --no-deps -e .
rm -f "$venv"/.installed-*
touch "$stamp"
