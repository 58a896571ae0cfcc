#!/usr/bin/env bash
# Runs the MCP conformance suite's server scenarios against two MCP servers, each
# once directly (streamable HTTP) and once behind MAOS (`maos up` with the server as a
# stdio upstream, a token for `mcp.<server>.*`), and writes the comparison to
# docs/mcp-conformance.md.
#
#   scripts/conformance.sh            # writes docs/mcp-conformance.md
#   scripts/conformance.sh --print    # prints the document instead
#
# Servers: @modelcontextprotocol/server-everything (the reference server), and
# crates/maos/tests/mcp/conformance_fixtures.py (the tools, resources and prompts the
# suite calls by name, in the Python SDK). Suites: @modelcontextprotocol/conformance
# (MAOS_MCP_CONFORMANCE, the release) and its 0.2.0 alpha (MAOS_MCP_CONFORMANCE_NEXT),
# default ("active") scenarios of each.
#
# The conformance CLI cannot send headers, and MAOS's /mcp needs a capability token
# as the bearer, so the MAOS runs go through crates/maos/tests/mcp/bearer_proxy.py, a
# loopback proxy that adds `Authorization: Bearer $MAOS_TOKEN` and forwards everything
# else (Host and Origin included) unchanged. Nothing in MAOS is relaxed for the suite.
#
# Needs scripts/setup-mcp.sh (Node 22, the npm packages, the Python venv) and python3.
# Builds the maos binary with cargo unless MAOS_BIN names one. The same comparison, as
# assertions, is the test `conformance_*` in crates/maos/tests/mcp.rs.

set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/mcp-env.sh
source "$root/scripts/mcp-env.sh"
print_only=0
[[ "${1:-}" == "--print" ]] && print_only=1

for f in "$MAOS_NODE22" "$MAOS_MCP_EVERYTHING" "$MAOS_MCP_CONFORMANCE" "$MAOS_MCP_CONFORMANCE_NEXT" "$MAOS_MCP_PYTHON"; do
  [[ -e "$f" ]] || { echo "conformance.sh: missing $f (run scripts/setup-mcp.sh)" >&2; exit 1; }
done
if [[ -z "${MAOS_BIN:-}" ]]; then
  (cd "$root" && cargo build -p maos --quiet)
  MAOS_BIN="$root/target/debug/maos"
fi
scripts="$root/crates/maos/tests/mcp"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_port() { # PORT
  for _ in $(seq 1 200); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "conformance.sh: nothing listens on port $1" >&2
  return 1
}

run_suite() { # release|next URL OUT-SUBDIR
  local cli="$MAOS_MCP_CONFORMANCE"
  [[ "$1" == next ]] && cli="$MAOS_MCP_CONFORMANCE_NEXT"
  "$MAOS_NODE22" "$cli" server --url "$2" -o "$work/$1/$3" >"$work/$1-$3.log" 2>&1 || true
}

run_suites() { # URL OUT-SUBDIR
  run_suite release "$1" "$2"
  run_suite next "$1" "$2"
}

# ---- direct --------------------------------------------------------------------

port="$(free_port)"
PORT="$port" "$MAOS_NODE22" "$MAOS_MCP_EVERYTHING" streamableHttp >"$work/everything-http.log" 2>&1 &
pid=$!; pids+=("$pid")
wait_port "$port"
run_suites "http://127.0.0.1:$port/mcp" everything-direct
kill "$pid"

port="$(free_port)"
"$MAOS_MCP_PYTHON" "$scripts/conformance_fixtures.py" --http "$port" >"$work/fixtures-http.log" 2>&1 &
pid=$!; pids+=("$pid")
wait_port "$port"
run_suites "http://127.0.0.1:$port/mcp" fixtures-direct
kill "$pid"

# ---- through MAOS --------------------------------------------------------------

through_maos() { # NAME COMMAND ARGS-TOML
  local name="$1" data="$work/data-$1"
  mkdir -p "$data"
  printf '[[upstream]]\nname = "%s"\ncommand = "%s"\nargs = %s\n' "$name" "$2" "$3" >"$data/maos.toml"
  MAOS_DATA_DIR="$data" NO_COLOR=1 "$MAOS_BIN" --json up --listen 127.0.0.1:0 >"$work/up-$name.log" 2>&1 &
  local up=$!; pids+=("$up")
  for _ in $(seq 1 600); do
    [[ -s "$data/run/daemon.json" ]] && python3 -c "import json,sys; sys.exit(json.load(open('$data/run/daemon.json'))['pid'] != $up)" 2>/dev/null && break
    sleep 0.05
  done
  local base
  base="http://$(python3 -c "import json; print(json.load(open('$data/run/daemon.json'))['listen'])")"
  # One agent per suite run: the kernel's taint and provenance state is per agent.
  local suite token proxy
  for suite in release next; do
    token="$(MAOS_DATA_DIR="$data" "$MAOS_BIN" token issue --agent "conformance-$suite-$name" --allow "mcp.$name.*" --rate 100000/h 2>/dev/null)"
    MAOS_TOKEN="$token" python3 "$scripts/bearer_proxy.py" "$base" >"$work/proxy-$suite-$name.out" 2>/dev/null &
    proxy=$!; pids+=("$proxy")
    for _ in $(seq 1 100); do [[ -s "$work/proxy-$suite-$name.out" ]] && break; sleep 0.05; done
    run_suite "$suite" "$(head -1 "$work/proxy-$suite-$name.out")/mcp" "$name-maos"
    kill "$proxy"
  done
  kill -TERM "$up"
  wait "$up" || { echo "conformance.sh: maos up ($name) did not stop cleanly" >&2; exit 1; }
  MAOS_DATA_DIR="$data" "$MAOS_BIN" audit verify >/dev/null
  MAOS_DATA_DIR="$data" "$MAOS_BIN" audit replay >/dev/null
}

through_maos everything "$MAOS_NODE22" "[\"$MAOS_MCP_EVERYTHING\"]"
through_maos fixtures "$MAOS_MCP_PYTHON" "[\"$scripts/conformance_fixtures.py\"]"

# ---- the document --------------------------------------------------------------

versions="$(
  printf 'conformance %s and %s, server-everything %s, Python mcp %s, Node %s, maos %s' \
    "$("$MAOS_NODE22" -p "require('$(dirname "$(dirname "$MAOS_MCP_CONFORMANCE")")/package.json').version")" \
    "$("$MAOS_NODE22" -p "require('$(dirname "$(dirname "$MAOS_MCP_CONFORMANCE_NEXT")")/package.json').version")" \
    "$("$MAOS_NODE22" -p "require('$(dirname "$(dirname "$MAOS_MCP_EVERYTHING")")/package.json').version")" \
    "$("$MAOS_MCP_PYTHON" -c 'import importlib.metadata as m; print(m.version("mcp"))')" \
    "$("$MAOS_NODE22" --version)" \
    "$("$MAOS_BIN" --version | awk '{print $2}')"
)"

out="$root/docs/mcp-conformance.md"
[[ $print_only == 1 ]] && out=/dev/stdout
python3 - "$work" "$versions" >"$out" <<'PY'
import json, pathlib, re, sys

work, versions = pathlib.Path(sys.argv[1]), sys.argv[2]

def results(d):
    """scenario -> (passed, checks passed, checks failed) from a CLI output directory."""
    out = {}
    if not d.is_dir():
        return out
    for sub in sorted(d.iterdir()):
        name = re.sub(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$", "", sub.name.removeprefix("server-"))
        checks = json.loads((sub / "checks.json").read_text())
        bad = sum(c["status"] in ("FAILURE", "WARNING") for c in checks)
        good = sum(c["status"] == "SUCCESS" for c in checks)
        out[name] = (bad == 0 and good > 0, good, bad)
    return out

def cell(r):
    if r is None:
        return "—"
    return f"pass ({r[1]})" if r[0] else f"**fail** ({r[1]}/{r[1] + r[2]})"

NOTES = {
    "server-initialize": "MAOS answers `initialize` itself (server `maos`, its own instructions), after checking the bearer.",
    "server-session-lifecycle": "server-everything direct fails one check; MAOS (rmcp session mode) passes all.",
    "logging-set-level": "**By design:** MAOS does not announce `logging` and does not relay upstream log messages: `logging/setLevel` is method-not-found (-32601).",
    "ping": "",
    "completion-complete": "MAOS answers `completion/complete` itself with an empty completion. server-everything has no `test_prompt_with_arguments`, so its direct run fails.",
    "tools-list": "Only the tools the token permits (here `mcp.<server>.*`: all of them).",
    "tools-call-simple-text": "server-everything has no `test_simple_text`: both answers are an `isError` result for an unknown tool (direct `-32602 … not found`, MAOS `MCP-TOOL-UNKNOWN`), which the scenario accepts. With the fixtures: the upstream's result, unchanged.",
    "tools-call-error": "As above for server-everything. With the fixtures: the upstream's `isError` result, unchanged.",
    "tools-call-image": "Fixtures: image content passes through unchanged. server-everything lacks the fixture.",
    "tools-call-audio": "Fixtures: audio content passes through unchanged. server-everything lacks the fixture.",
    "tools-call-embedded-resource": "Fixtures: the embedded resource passes through unchanged. server-everything lacks the fixture.",
    "tools-call-mixed-content": "Fixtures: text + image + resource pass through unchanged. server-everything lacks the fixture.",
    "tools-call-with-logging": "**By design:** the upstream's log notifications are not relayed (and `logging/setLevel` is refused).",
    "tools-call-with-progress": "**Not relayed:** the upstream's progress notifications do not reach the agent; the call itself succeeds.",
    "tools-call-sampling": "Neither server has the fixture. MAOS relays no server-to-client requests (sampling, elicitation).",
    "tools-call-elicitation": "As for sampling.",
    "elicitation-sep1034-defaults": "As for sampling.",
    "elicitation-sep1330-enums": "As for sampling.",
    "json-schema-2020-12": "Neither server has the fixture tool.",
    "server-sse-multiple-streams": "",
    "server-sse-polling": "",
    "resources-list": "Only from upstreams whose `mcp.<server>.resources/read` the token permits.",
    "resources-read-text": "Fixtures: a read is an observation intent through the kernel (decided, logged); contents unchanged. Each suite runs as its own agent: see *Known problems* on reading a resource twice.",
    "resources-read-binary": "As for text.",
    "resources-templates-read": "**Gap:** MAOS offers no resource templates and reads only URIs an upstream lists in `resources/list` (`MCP-RESOURCE-UNKNOWN`).",
    "resources-subscribe": "**By design:** MAOS offers no resource subscriptions (method-not-found).",
    "resources-unsubscribe": "As for subscribe.",
    "prompts-list": "Only from upstreams whose `mcp.<server>.prompts/get` the token permits.",
    "prompts-get-simple": "An observation intent `mcp.<server>.prompts/get` through the kernel.",
    "dns-rebinding-protection": "MAOS refuses a foreign `Host`/`Origin` (403) and accepts loopback. server-everything does no Host check, so its direct run fails.",
}

def table(suite):
    base = work / suite
    cols = [results(base / f"{s}-{m}") for s in ("everything", "fixtures") for m in ("direct", "maos")]
    names = []
    for c in cols:
        names += [n for n in c if n not in names]
    lines = [
        "| scenario | server-everything direct | everything through MAOS | fixtures direct | fixtures through MAOS | note |",
        "|---|---|---|---|---|---|",
    ]
    lost = []
    for n in names:
        r = [c.get(n) for c in cols]
        lines.append(f"| `{n}` | " + " | ".join(cell(x) for x in r) + f" | {NOTES.get(n, '')} |")
        for direct, via, server in ((r[0], r[1], "everything"), (r[2], r[3], "fixtures")):
            if direct and direct[0] and not (via and via[0]):
                lost.append(f"`{n}` ({server})")
    totals = " · ".join(
        f"{label}: {sum(1 for v in c.values() if v[0])}/{len(c)}"
        for label, c in zip(("everything direct", "everything via MAOS", "fixtures direct", "fixtures via MAOS"), cols)
    )
    return "\n".join(lines), totals, lost

release, release_totals, release_lost = table("release")
nxt, next_totals, next_lost = table("next")

print(f"""# MCP conformance: direct and through MAOS

Generated by `scripts/conformance.sh` ({versions}). Do not edit by hand: rerun the script.

The [MCP conformance suite](https://github.com/modelcontextprotocol/conformance)'s
server scenarios, run against two MCP servers, each **directly** (streamable HTTP) and
**through MAOS** (`maos up` with the server as a stdio upstream, the suite as the agent with
a capability token for `mcp.<server>.*`). The question is what MAOS changes for a client:
whatever passes directly should pass through MAOS, except where MAOS decides otherwise
by design.

- **server-everything** (`@modelcontextprotocol/server-everything`, `streamableHttp` mode
  directly) is the reference server, but it does not have the tools, resources and prompts
  the suite calls by name (`test_simple_text`, `test://static-text`, `test_simple_prompt`, …),
  so most scenarios fail against it either way.
- **fixtures** (`crates/maos/tests/mcp/conformance_fixtures.py`, the official Python SDK)
  implements those names after the suite's scenario descriptions (not sampling or
  elicitation), so content types, resources and prompts are compared for real.

A scenario passes when none of its checks fails or warns; the number is the checks that
passed. **How the suite reaches MAOS:** the conformance CLI has no option to send headers,
and MAOS's `/mcp` refuses requests without a capability token (HTTP 401), so the MAOS runs
go through `crates/maos/tests/mcp/bearer_proxy.py`, a loopback proxy that adds
`Authorization: Bearer <token>` and forwards everything else unchanged (`Host` and `Origin`
included, so `dns-rebinding-protection` tests MAOS's own Host check). MAOS has no
test-only switch and none was added.

The Rust test `conformance_*` in `crates/maos/tests/mcp.rs` asserts the same comparison
for the release suite: every scenario that passes directly passes through MAOS, except the
ones listed there (the **by design**, **gap** and **bug** rows below).

## Release suite (default scenarios)

{release_totals}

{release}

Passing directly but not through MAOS: {", ".join(release_lost) or "none"}.

## 0.2.0 alpha suite (default scenarios)

Each scenario has an extra check here (the server's answers validate against the
2026-07-28 schema), so the check counts are higher.

{next_totals}

{nxt}

Passing directly but not through MAOS: {", ".join(next_lost) or "none"}.

## Known problems these runs found

- (Fixed) `prompts/get` failed through MAOS until the `mcp` effector learned
  `mcp.<server>.prompts/get`; the `prompts-get-*` rows now pass through MAOS too.
- **Reading the same resource twice escalates.** A resource's contents echo its `uri`, the
  output of a resource read is always labelled untrusted, so after the first read the URI
  "appears in untrusted content" and the second read of it is a read target from untrusted
  content: HACF L2, the client waits `[mcp] approval_wait_s` and gets `HACF-PENDING`. With
  one agent for both suites the 0.2.0 alpha's `resources-read-*` timed out after 30 s; the
  script therefore runs each suite as its own agent. The same happens to tools whose
  untrusted output echoes an argument that has a role (a second `send_message` to the same
  `to` is refused `DSC-4-PROVENANCE`).

## Reproduce

```sh
scripts/setup-mcp.sh          # Node 22, the npm servers, the conformance CLIs, the Python SDK
scripts/conformance.sh        # rewrites this file; --print prints it instead
source scripts/mcp-env.sh && cargo test -p maos --test mcp conformance
```

One scenario by hand, through MAOS:

```sh
source scripts/mcp-env.sh
maos up &                                                     # with [[upstream]] name = "everything" in maos.toml
export MAOS_TOKEN=$(maos token issue --agent conformance --allow 'mcp.everything.*')
python3 crates/maos/tests/mcp/bearer_proxy.py http://127.0.0.1:7700 &   # prints http://127.0.0.1:PORT
"$MAOS_NODE22" "$MAOS_MCP_CONFORMANCE" server --url http://127.0.0.1:PORT/mcp --scenario tools-list
```
""")
PY
[[ $print_only == 1 ]] || echo "wrote $out" >&2
