#!/usr/bin/env bash
# The one command that runs every test, on a fresh machine or in CI.
# It first installs what the tests need (idempotent, and tolerant of being
# offline when everything is already there), then runs the whole suite:
# unit, integration, property, crash and CLI tests, and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Nothing beyond the Rust toolchain is needed yet; later suites (MCP servers from
# npm, the Python MCP client) install themselves here.

cargo test --workspace --locked "$@"
