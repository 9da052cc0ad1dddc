#!/usr/bin/env bash
# Creates ./.venv (once) and installs Rollbot into it with the given extras; never touches the
# system Python. Re-running is cheap: the install is skipped while pyproject.toml is unchanged.
# Usage: bash scripts/venv.sh [EXTRAS]     e.g. bash scripts/venv.sh test
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
venv=.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv"; then
    rm -rf "$venv"
    echo "error: python3 cannot create a virtualenv; install it with:" \
      "sudo apt-get install python3-venv (Debian/Ubuntu), then run this again" >&2
    exit 2
  fi
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
# what is installed is decided by pyproject.toml and the extras: reinstall only when they change
stamp="$venv/.rollbot-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $spec"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/python" -m pip install -q -e "$spec"
  printf '%s\n' "$want" >"$stamp"
fi
