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
PYTHON="${PYTHON:-python3}"
REQS="$REPO/scripts/requirements.txt"
STAMP="$VENV/.headroom-requirements.sha256"

log() { printf 'python-env: %s\n' "$*" >&2; }
die() { printf 'python-env: error: %s\n' "$*" >&2; exit 1; }

[[ -f "$REQS" ]] || die "missing $REQS"

# 1. The venv (only when missing or broken).
if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PYTHON" >/dev/null 2>&1 \
    || die "$PYTHON not found. Install Python 3 (Debian/Ubuntu: apt-get install python3 python3-venv)."
  "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || die "$PYTHON cannot create virtual environments (module venv/ensurepip missing). Debian/Ubuntu: apt-get install python3-venv"
  # Never wipe a directory that is not a venv (HEADROOM_VENV may point anywhere).
  if [[ -d "$VENV" && ! -f "$VENV/pyvenv.cfg" && -n "$(ls -A "$VENV")" ]]; then
    die "$VENV exists and is not a Python venv; remove it or set HEADROOM_VENV elsewhere"
  fi
  log "creating venv at $VENV"
  "$PYTHON" -m venv --clear "$VENV" >&2 \
    || die "'$PYTHON -m venv $VENV' failed (Debian/Ubuntu: apt-get install python3-venv)"
  rm -f "$STAMP"
fi

# 2. Requirements, only when requirements.txt changed since the last successful install.
want="$(sha256sum "$REQS" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
  log "installing $REQS into $VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQS" >&2 \
    || die "pip install -r $REQS failed (see output above)"
  printf '%s\n' "$want" > "$STAMP"
else
  log "requirements up to date ($VENV)"
fi

# 3. The ONNX Runtime shared library shipped inside the onnxruntime wheel.
capi="$("$VENV/bin/python" - <<'PY'
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
[[ -n "$lib" ]] || die "no libonnxruntime.so* in $capi (is onnxruntime in $REQS? delete $STAMP to force a reinstall)"
lib="$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")"
log "ORT_DYLIB_PATH=$lib"
printf 'export ORT_DYLIB_PATH=%q\n' "$lib"
