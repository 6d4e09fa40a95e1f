#!/usr/bin/env bash
# Sets up the accuracy harness venv (idempotent) and prints, on stdout only, the
# path of its python, so callers can do:  PY="$(bash scripts/accuracy/env.sh)"
# Everything else goes to stderr. Same shape as scripts/python-env.sh, but a
# separate venv: statsforecast's dependency tree must not leak into the project venv.
#
# Env:
#   HEADROOM_CACHE  cache root (default: $HOME/.cache/headroom); venv at $HEADROOM_CACHE/venv-accuracy
#   PYTHON          interpreter used to create the venv (default: python3; pins are checked on 3.11)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${HEADROOM_CACHE:-$HOME/.cache/headroom}"
VENV="$CACHE/venv-accuracy"
PYTHON="${PYTHON:-python3}"
REQS="$HERE/requirements.txt"
STAMP="$VENV/.headroom-accuracy-requirements.sha256"

log() { printf 'accuracy-env: %s\n' "$*" >&2; }
die() { printf 'accuracy-env: error: %s\n' "$*" >&2; exit 1; }

[[ -f "$REQS" ]] || die "missing $REQS"

# 1. The venv (only when missing or broken).
if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PYTHON" >/dev/null 2>&1 \
    || die "$PYTHON not found. Install Python 3.11 (Debian/Ubuntu: apt-get install python3 python3-venv)."
  "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || die "$PYTHON cannot create virtual environments (module venv/ensurepip missing). Debian/Ubuntu: apt-get install python3-venv"
  # Never wipe a directory that is not a venv.
  if [[ -d "$VENV" && ! -f "$VENV/pyvenv.cfg" && -n "$(ls -A "$VENV")" ]]; then
    die "$VENV exists and is not a Python venv; remove it or set HEADROOM_CACHE elsewhere"
  fi
  log "creating venv at $VENV with $("$PYTHON" --version 2>&1)"
  mkdir -p "$CACHE"
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

printf '%s\n' "$VENV/bin/python"
