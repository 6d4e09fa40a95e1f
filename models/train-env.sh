#!/usr/bin/env bash
# The model-training venv (JAX, onnx), kept apart from the project venv so JAX
# cannot leak in. Prints only the venv's python on stdout:
#   PY="$(bash models/train-env.sh)"
# Env: HEADROOM_CACHE (default ~/.cache/headroom); the venv is $HEADROOM_CACHE/venv-train.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$HERE/../scripts/venv.sh" "${HEADROOM_CACHE:-$HOME/.cache/headroom}/venv-train" "$HERE/requirements-train.txt"
