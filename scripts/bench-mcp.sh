#!/usr/bin/env bash
# MCP tool-call round trip through MAOS against the same calls made directly to the
# same upstream, in one run (docs/benchmarks.md, "MCP gateway").
#
#   scripts/bench-mcp.sh [--duration S] [--rates "1000 3000 max"] [--upstreams "rust everything"]
#                        [--sessions N] [--agents N] [--concurrency N] [--no-fsync] [--out FILE]
#
# Starts two upstreams over streamable HTTP on free loopback ports: `rust`, the rmcp echo
# server of crates/maos-mcp/examples/echo_server.rs, and `everything`, the reference
# server-everything (Node 22 from .tools/, scripts/setup-mcp.sh). Then `maos up` (release
# build) on a fresh data directory whose maos.toml points at those same servers; for each
# upstream and rate, `maos bench --mode mcp` calls its `echo` tool directly and through
# MAOS (`/mcp`), and the comparison is printed as a table.
# `max` is closed loop (as fast as it goes). The last run also opens --sessions MAOS
# sessions and reports the daemon's memory per open session. Everything it starts is
# stopped on exit; the JSON results go to --out (default: stdout only).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
duration=10
rates="1000 3000 max"
upstreams="rust everything"
sessions=1000
agents=8
concurrency=4
fsync_flag=()
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --rates) rates="$2"; shift 2 ;;
    --upstreams) upstreams="$2"; shift 2 ;;
    --sessions) sessions="$2"; shift 2 ;;
    --agents) agents="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --no-fsync) fsync_flag=(--bench-no-fsync); shift ;;
    --out) out="$2"; shift 2 ;;
    *) echo "bench-mcp: unknown option $1" >&2; exit 2 ;;
  esac
done

bash "$root/scripts/setup-mcp.sh" >/dev/null
# shellcheck source=scripts/mcp-env.sh
source "$root/scripts/mcp-env.sh"
maos="${MAOS_BIN:-$root/target/release/maos}"
echo_bin="${MAOS_ECHO_BIN:-$root/target/release/examples/echo_server}"
if [ -z "${MAOS_BIN:-}" ]; then
  (cd "$root" && cargo build --release -q -p maos && cargo build --release -q -p maos-mcp --example echo_server)
fi

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { "$MAOS_MCP_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 100); do
    if "$MAOS_MCP_PYTHON" -c "import urllib.request,sys
try: urllib.request.urlopen('$1', timeout=1)
except urllib.error.HTTPError: sys.exit(0)
except Exception: sys.exit(1)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench-mcp: nothing answers at $1" >&2
  return 1
}

declare -A url
config=""
for u in $upstreams; do
  port="$(free_port)"
  case "$u" in
    rust) "$echo_bin" "127.0.0.1:$port" >"$tmp/rust.log" 2>&1 & ;;
    everything) PORT="$port" "$MAOS_NODE22" "$MAOS_MCP_EVERYTHING" streamableHttp >"$tmp/everything.log" 2>&1 & ;;
    *) echo "bench-mcp: unknown upstream $u (rust, everything)" >&2; exit 2 ;;
  esac
  pids+=($!)
  url[$u]="http://127.0.0.1:$port/mcp"
  wait_http "${url[$u]}"
  config+="[[upstream]]
name = \"$u\"
url = \"${url[$u]}\"

[upstream.tools.echo]
effect = \"observe\"
output = { level = \"public\", untrusted = false }

"
done

data="$tmp/data"
mkdir -p "$data"
printf '%s' "$config" >"$data/maos.toml"
MAOS_DATA_DIR="$data" NO_COLOR=1 "$maos" up --listen 127.0.0.1:0 "${fsync_flag[@]}" >"$tmp/maos.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  [ -s "$data/run/daemon.json" ] && break
  sleep 0.1
done
[ -s "$data/run/daemon.json" ] || { cat "$tmp/maos.log" >&2; echo "bench-mcp: maos up did not start" >&2; exit 1; }

echo "maos: $(cat "$data/run/daemon.json")${fsync_flag[*]:+ (no fsync)}" >&2
results="$tmp/results.json"
set -- $rates
last="${!#}"
for u in $upstreams; do
  for rate in "$@"; do
    args=(--mode mcp --server "$u" --upstream-url "${url[$u]}" --agents "$agents" --concurrency "$concurrency" --duration "$duration")
    [ "$rate" = max ] || args+=(--rate "$rate")
    [ "$rate" = "$last" ] && [ "$u" = "${upstreams%% *}" ] && [ "$sessions" -gt 0 ] && args+=(--sessions "$sessions")
    echo "bench-mcp: $u at rate $rate ..." >&2
    MAOS_DATA_DIR="$data" NO_COLOR=1 "$maos" --json bench "${args[@]}" >>"$results"
  done
done
[ -z "$out" ] || cp "$results" "$out"
"$MAOS_MCP_PYTHON" - "$results" <<'PY'
import json, sys
text, rows, dec, i = open(sys.argv[1]).read(), [], json.JSONDecoder(), 0
while text[i:].strip():
    i += len(text[i:]) - len(text[i:].lstrip())
    row, i = dec.raw_decode(text, i)
    rows.append(row)
print("| upstream | offered | direct ok/s | direct p50 / p99 µs | MAOS ok/s | MAOS p50 / p99 µs | overhead p50 / p99 µs | MAOS refused |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    d, m = r["direct"], r["maos"]
    refused = ", ".join(f"{n} x {c}" for c, n in m["outcomes"].items() if c != "ok") or "none"
    print(f"| {r['server']} | {r['rate'] or 'max'} | {d['throughput_per_s']:.0f} | {d['latency_us']['p50']} / {d['latency_us']['p99']} "
          f"| {m['throughput_per_s']:.0f} | {m['latency_us']['p50']} / {m['latency_us']['p99']} "
          f"| {r['overhead_us']['p50']} / {r['overhead_us']['p99']} | {refused} |")
for r in rows:
    if r.get("memory"):
        mem = r["memory"]
        print(f"\nmemory: {mem['bytes_per_session']:.0f} bytes per open MAOS MCP session "
              f"({mem['sessions']} sessions, RSS {mem['rss_before_kib']} -> {mem['rss_after_kib']} KiB)")
PY
