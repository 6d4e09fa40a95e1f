#!/usr/bin/env bash
# Sets up the project's Python venv (idempotent) and prints, on stdout only,
#   export ORT_DYLIB_PATH=<absolute path to libonnxruntime.so.*>
# so callers can do:  eval "$(bash scripts/python-env.sh)"
# Everything else goes to stderr.
#
# Env:
#   HEADROOM_VENV  venv location (default: <repo>/.venv)
#   PYTHON         interpreter used to create the venv (default: python3)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HEADROOM_VENV:-$REPO/.venv}"
REQS="$REPO/scripts/requirements.txt"

log() { printf 'python-env: %s\n' "$*" >&2; }
die() { printf 'python-env: error: %s\n' "$*" >&2; exit 1; }

[[ -f "$REQS" ]] || die "missing $REQS"

# 1-2. The venv and its requirements (idempotent).
PY="$(bash "$REPO/scripts/venv.sh" "$VENV" "$REQS")"

# 3. The ONNX Runtime shared library shipped inside the onnxruntime wheel.
capi="$("$PY" - <<'PY'
import sysconfig, pathlib
print(pathlib.Path(sysconfig.get_paths()["purelib"]) / "onnxruntime" / "capi")
PY
)"
lib=""
for f in "$capi"/libonnxruntime.so*; do
  # Prefer the fully versioned file (libonnxruntime.so.1.31.1); any match is usable.
  [[ -f "$f" ]] || continue
  lib="$f"
done
[[ -n "$lib" ]] || die "no libonnxruntime.so* in $capi (is onnxruntime in $REQS? delete $VENV to force a reinstall)"
lib="$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")"
log "ORT_DYLIB_PATH=$lib"
printf 'export ORT_DYLIB_PATH=%q\n' "$lib"
