#!/usr/bin/env bash
# Makes a Rust toolchain that can build for wasm32-unknown-unknown available
# (idempotent) and prints, on stdout only, shell assignments for the caller:
#
#   WASM_CARGO=<cargo command>        e.g. cargo
#   WASM_CARGO_ARGS=<extra flags>     e.g. -Zbuild-std=std,panic_abort (empty with rustup)
#   export VAR=...                    only with HEADROOM_WASM_ENV=export (see below)
#
# Usage (both expand $WASM_CARGO / $WASM_CARGO_ARGS unquoted, they may hold several words):
#   eval "$(bash scripts/wasm-toolchain.sh)"      # or: source scripts/wasm-toolchain.sh
#   CARGO_TARGET_DIR=target/wasm $WASM_CARGO build $WASM_CARGO_ARGS -p headroom-frontend \
#     --lib --profile wasm-release --target wasm32-unknown-unknown --no-default-features --features hydrate
# Everything else (progress, warnings, errors) goes to stderr.
#
# Routes:
#   rustup  `rustup target add wasm32-unknown-unknown` (nothing at all when already installed).
#   debian  when rustup is missing or cannot download: Debian's rustc-web, cargo-web,
#           rust-web-src (std source) and lld-19 (wasm-ld), building std from source with
#           -Zbuild-std on a stable compiler (RUSTC_BOOTSTRAP=1). The first build compiles
#           std too (a few minutes more).
#
# Env:
#   HEADROOM_WASM_ROUTE  auto (default) | rustup (never fall back) | debian (force the fallback)
#   HEADROOM_WASM_ENV    wrap (default) | export. On the Debian route the build needs RUSTC,
#                        RUSTC_BOOTSTRAP and the wasm32 linker in cargo's environment.
#                        wrap:   WASM_CARGO="env RUSTC=... RUSTC_BOOTSTRAP=1 ... /usr/bin/cargo",
#                                nothing is exported, so later native cargo/rustc commands in the
#                                calling shell keep using the default (rustup) compiler.
#                        export: WASM_CARGO=/usr/bin/cargo plus `export` lines; these then apply
#                                to every later cargo command of the caller, so eval them only in
#                                a subshell that runs just the wasm build.

# Sourced: run as a child (so `set -e` and `exit` stay out of the caller) and eval its output.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  __headroom_wasm_out="$(bash "${BASH_SOURCE[0]}" "$@")" || { unset __headroom_wasm_out; return 1; }
  eval "$__headroom_wasm_out"
  unset __headroom_wasm_out
  return 0
fi

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=wasm32-unknown-unknown
ROUTE="${HEADROOM_WASM_ROUTE:-auto}"
ENV_MODE="${HEADROOM_WASM_ENV:-wrap}"
RUSTUP_TIMEOUT="${HEADROOM_WASM_RUSTUP_TIMEOUT:-120}"
DEB_PACKAGES=(rustc-web cargo-web rust-web-src lld-19)

log() { printf 'wasm-toolchain: %s\n' "$*" >&2; }
warn() { printf 'wasm-toolchain: warning: %s\n' "$*" >&2; }
die() { printf 'wasm-toolchain: error: %s\n' "$*" >&2; exit 1; }

case "$ROUTE" in auto | rustup | debian) ;; *) die "HEADROOM_WASM_ROUTE must be auto, rustup or debian (got '$ROUTE')" ;; esac
case "$ENV_MODE" in wrap | export) ;; *) die "HEADROOM_WASM_ENV must be wrap or export (got '$ENV_MODE')" ;; esac

# rustup resolves the toolchain per directory (rust-toolchain.toml), so ask from the workspace.
cd "$REPO"

# Prints NAME=value with shell quoting.
assign() { printf '%s=%q\n' "$1" "$2"; }

# ---------------------------------------------------------------- rustup route
# Returns 0 when the active rustup toolchain has the wasm32 target (adding it if needed).
try_rustup() {
  if ! command -v rustup >/dev/null 2>&1; then
    log "rustup not found"
    return 1
  fi
  local installed
  # Normally instant and offline; the timeout only matters if rustup decides to install a
  # toolchain named by a rust-toolchain file.
  if ! installed="$(timeout "$RUSTUP_TIMEOUT" rustup target list --installed 2>/dev/null)"; then
    warn "'rustup target list --installed' failed (is a default toolchain set? try: rustup default stable)"
    return 1
  fi
  if grep -qx "$TARGET" <<<"$installed"; then
    log "rustup: $TARGET already installed"
  else
    log "rustup: adding target $TARGET (timeout ${RUSTUP_TIMEOUT}s)"
    local rc=0
    timeout "$RUSTUP_TIMEOUT" rustup target add "$TARGET" >&2 || rc=$?
    if [[ $rc -ne 0 ]]; then
      if [[ $rc -eq 124 ]]; then
        warn "'rustup target add $TARGET' timed out after ${RUSTUP_TIMEOUT}s (no network to static.rust-lang.org?)"
      else
        warn "'rustup target add $TARGET' failed (exit $rc; no network to static.rust-lang.org?)"
      fi
      return 1
    fi
  fi
  # `cargo` must be rustup's proxy, or the target just added is not the one cargo will use.
  local proxy_dir cargo_path
  proxy_dir="$(dirname "$(command -v rustup)")"
  cargo_path="$(command -v cargo 2>/dev/null || true)"
  if [[ -z "$cargo_path" ]]; then
    warn "rustup is installed but 'cargo' is not on PATH (add $proxy_dir to PATH)"
    return 1
  fi
  if [[ "$(dirname "$cargo_path")" != "$proxy_dir" ]]; then
    warn "'cargo' on PATH is $cargo_path, not rustup's ($proxy_dir/cargo); put $proxy_dir first in PATH"
  fi
  if [[ -n "${RUSTC:-}" ]]; then
    warn "RUSTC=$RUSTC is set in the environment; cargo will use it instead of rustup's rustc"
  fi
  assign WASM_CARGO cargo
  assign WASM_CARGO_ARGS ""
  return 0
}

# ---------------------------------------------------------------- Debian route
SUDO=()
check_root() {
  if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    die "installing Debian packages needs root: run as root or install sudo (packages: ${DEB_PACKAGES[*]})"
  fi
}
as_root() { "${SUDO[@]}" "$@"; }

deb_installed() { # all of "$@" installed?
  local p status
  for p in "$@"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
    [[ "$status" == installed ]] || return 1
  done
}

# Simulates the install first: installing must never remove a package (cargo-web and
# rustc-web conflict with Debian's cargo, rustc and rustup packages).
deb_install() {
  command -v apt-get >/dev/null 2>&1 \
    || die "apt-get not found: the fallback needs Debian/Ubuntu packages (${DEB_PACKAGES[*]}); or install rustup from https://rustup.rs"
  check_root
  local sim
  if ! sim="$(apt-get install -s --no-install-recommends "${DEB_PACKAGES[@]}" 2>&1)"; then
    log "package lists do not know ${DEB_PACKAGES[*]}; running apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update >&2 \
      || die "apt-get update failed"
    sim="$(apt-get install -s --no-install-recommends "${DEB_PACKAGES[@]}" 2>&1)" \
      || die "cannot install ${DEB_PACKAGES[*]} (they exist in Debian 12 bookworm-security and later):
$sim"
  fi
  if grep -q '^Remv ' <<<"$sim"; then
    die "installing ${DEB_PACKAGES[*]} would remove packages; not doing it:
$(grep '^Remv ' <<<"$sim")"
  fi
  log "installing Debian packages: ${DEB_PACKAGES[*]} (about 60 MB download, 400 MB on disk)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${DEB_PACKAGES[@]}" >&2 \
    || die "apt-get install ${DEB_PACKAGES[*]} failed"
}

# The minimal rustc version from the workspace manifest (rust-version), if any.
required_rust_version() {
  sed -n 's/^rust-version[[:space:]]*=[[:space:]]*"\([0-9.]*\)".*/\1/p' "$REPO/Cargo.toml" | head -n 1
}

version_ge() { # $1 >= $2 (dotted numbers)
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

setup_debian() {
  local cargo_before
  cargo_before="$(command -v cargo 2>/dev/null || true)"

  if deb_installed "${DEB_PACKAGES[@]}"; then
    log "Debian packages already installed: ${DEB_PACKAGES[*]}"
  else
    deb_install
  fi

  # Paths as the packages install them (dpkg -L): rustc-web -> /usr/bin/rustc (sysroot /usr,
  # host std in /usr/lib/rustlib/x86_64-unknown-linux-gnu), cargo-web -> /usr/bin/cargo,
  # rust-web-src -> /usr/src/rustc-<ver> linked from /usr/lib/rustlib/src/rust (where
  # -Zbuild-std looks, so no extra variable is needed), lld-19 -> /usr/lib/llvm-19/bin/wasm-ld
  # (also /usr/bin/wasm-ld-19). Neither rustc-web nor the std source ships a wasm32 std.
  local rustc=/usr/bin/rustc cargo=/usr/bin/cargo linker=""
  [[ -x "$rustc" ]] || die "$rustc missing although rustc-web is installed"
  [[ -x "$cargo" ]] || die "$cargo missing although cargo-web is installed"
  local cand
  for cand in /usr/lib/llvm-19/bin/wasm-ld /usr/bin/wasm-ld-19 "$(command -v wasm-ld 2>/dev/null || true)"; do
    if [[ -n "$cand" && -x "$cand" ]]; then linker="$cand"; break; fi
  done
  [[ -n "$linker" ]] || die "wasm-ld not found although lld-19 is installed"

  local version sysroot
  version="$("$rustc" --version 2>/dev/null | awk '{print $2}')" || true
  [[ -n "$version" ]] || die "$rustc does not run"
  local need
  need="$(required_rust_version)"
  if [[ -n "$need" ]] && ! version_ge "$version" "$need"; then
    die "Debian's rustc is $version but the workspace needs >= $need (apt-get update && apt-get install --only-upgrade ${DEB_PACKAGES[*]})"
  fi
  sysroot="$("$rustc" --print sysroot)"
  [[ -f "$sysroot/lib/rustlib/src/rust/library/std/Cargo.toml" ]] \
    || die "std source not found in $sysroot/lib/rustlib/src/rust/library (package rust-web-src)"
  "$rustc" --print target-list | grep -qx "$TARGET" \
    || die "$rustc does not know the target $TARGET"

  # The rustup proxies must stay first: the Debian packages put cargo/rustc into /usr/bin.
  local cargo_after
  cargo_after="$(command -v cargo 2>/dev/null || true)"
  if [[ -n "$cargo_before" && "$cargo_after" != "$cargo_before" ]]; then
    warn "'cargo' on PATH changed from $cargo_before to $cargo_after; put $(dirname "$cargo_before") before /usr/bin in PATH"
  fi

  local p
  for p in "$rustc" "$cargo" "$linker"; do
    [[ "$p" != *[[:space:]]* ]] || die "path with whitespace not supported: $p"
  done

  log "Debian route: rustc $version ($rustc), $cargo, linker $linker, std built from $sysroot/lib/rustlib/src/rust"
  log "the first build compiles std for $TARGET as well"
  local linker_var=CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER
  if [[ "$ENV_MODE" == export ]]; then
    assign WASM_CARGO "$cargo"
    assign WASM_CARGO_ARGS "-Zbuild-std=std,panic_abort"
    printf 'export %s\n' "$(assign RUSTC "$rustc")" "$(assign RUSTC_BOOTSTRAP 1)" "$(assign "$linker_var" "$linker")"
  else
    assign WASM_CARGO "env RUSTC=$rustc RUSTC_BOOTSTRAP=1 $linker_var=$linker $cargo"
    assign WASM_CARGO_ARGS "-Zbuild-std=std,panic_abort"
  fi
}

# ---------------------------------------------------------------- main
case "$ROUTE" in
  rustup)
    try_rustup || die "rustup route failed and HEADROOM_WASM_ROUTE=rustup forbids the Debian fallback"
    ;;
  debian)
    log "HEADROOM_WASM_ROUTE=debian: using Debian's toolchain"
    setup_debian
    ;;
  auto)
    if ! try_rustup; then
      log "falling back to Debian's rustc-web toolchain with -Zbuild-std"
      setup_debian
    fi
    ;;
esac
