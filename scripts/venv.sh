#!/usr/bin/env bash
# Creates or updates a Python venv from a pinned requirements file, idempotently
# (reinstalls only when the file's hash changed), and prints, on stdout only,
# the venv's python. Everything else goes to stderr.
#
#   PY="$(bash scripts/venv.sh VENV_DIR REQUIREMENTS_FILE)"
#
# Env: PYTHON  interpreter used to create the venv (default: python3)
set -euo pipefail

VENV="${1:?usage: venv.sh VENV_DIR REQUIREMENTS_FILE}"
REQS="${2:?usage: venv.sh VENV_DIR REQUIREMENTS_FILE}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.headroom-requirements.sha256"
name="$(basename "$VENV")"

log() { printf '%s: %s\n' "$name" "$*" >&2; }
die() { printf '%s: error: %s\n' "$name" "$*" >&2; exit 1; }

[[ -f "$REQS" ]] || die "missing $REQS"

# 1. The venv (only when missing or broken).
if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PYTHON" >/dev/null 2>&1 \
    || die "$PYTHON not found. Install Python 3 (Debian/Ubuntu: apt-get install python3 python3-venv)."
  "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || die "$PYTHON cannot create virtual environments (module venv/ensurepip missing). Debian/Ubuntu: apt-get install python3-venv"
  # Never wipe a directory that is not a venv (the path may point anywhere).
  if [[ -d "$VENV" && ! -f "$VENV/pyvenv.cfg" && -n "$(ls -A "$VENV")" ]]; then
    die "$VENV exists and is not a Python venv; remove it or choose another location"
  fi
  log "creating venv at $VENV with $("$PYTHON" --version 2>&1)"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv --clear "$VENV" >&2 \
    || die "'$PYTHON -m venv $VENV' failed (Debian/Ubuntu: apt-get install python3-venv)"
  rm -f "$STAMP"
fi

# 2. Requirements, only when the file changed since the last successful install.
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

printf '%s\n' "$VENV/bin/python"
