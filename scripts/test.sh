#!/usr/bin/env bash
# The one command that runs every test, on a fresh machine or in CI.
# It first installs what the tests need (idempotent, and tolerant of being
# offline when everything is already there), then runs the whole suite:
# unit, integration, property, crash and CLI tests, and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# MCP reference servers from npm, Node 22, the conformance suite and the Python `mcp`
# SDK, into .tools/ (gitignored). A second run is a no-op and needs no network.
scripts/setup-mcp.sh
# shellcheck source=scripts/mcp-env.sh
source scripts/mcp-env.sh
# With the tools installed, tests that need them fail instead of skipping.
export MAOS_REQUIRE_MCP_TOOLS=1

cargo test --workspace --locked "$@"
