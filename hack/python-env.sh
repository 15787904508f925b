#!/usr/bin/env bash
# Creates (once) the Python environment the e2e tests use, outside the repository and keyed by the
# pinned requirements, and prints its python's path on stdout. `make test` runs it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="$here/python/requirements.txt"
command -v python3 >/dev/null || { echo "python3 is not on PATH; install Python 3.9 or newer" >&2; exit 1; }
key="$(sha256sum "$requirements" | cut -c1-12)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/incident-operator/python-$key"
if [[ ! -x "$venv/bin/python" || ! -f "$venv/.complete" ]]; then
  rm -rf "$venv.partial"
  python3 -m venv "$venv.partial" >&2
  "$venv.partial/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  touch "$venv.partial/.complete"
  rm -rf "$venv"
  mv "$venv.partial" "$venv"
fi
echo "$venv/bin/python"
