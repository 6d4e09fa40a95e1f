#!/usr/bin/env bash
# The accuracy harness venv (statsforecast), kept apart from the project venv so
# its dependency tree cannot leak in. Prints only the venv's python on stdout:
#   PY="$(bash scripts/accuracy/env.sh)"
# Env: HEADROOM_CACHE (default ~/.cache/headroom); the venv is $HEADROOM_CACHE/venv-accuracy.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$HERE/../venv.sh" "${HEADROOM_CACHE:-$HOME/.cache/headroom}/venv-accuracy" "$HERE/requirements.txt"
