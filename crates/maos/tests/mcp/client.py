"""An MCP agent driven by a JSON plan: the official Python SDK (`mcp` 2.x) as a client.

Usage: client.py PLAN_JSON   (or `-` to read the plan from stdin)

The plan:

    {"transport": {"kind": "http", "url": "http://127.0.0.1:PORT/mcp", "bearer": "maos1..."}
                | {"kind": "stdio", "command": "...", "args": [...], "env": {...}},
     "steps": [{"op": "list_tools"},
               {"op": "call", "name": "echo", "arguments": {...}},
               {"op": "list_resources"}, {"op": "list_prompts"},
               {"op": "read_resource", "uri": "test://static-text"},
               {"op": "get_prompt", "name": "...", "arguments": {...}},
               {"op": "sleep", "seconds": 1.0}]}

`bearer` may be omitted (no Authorization header). Prints one JSON object on stdout:

    {"init": {"server_name", "protocol_version", "instructions"},
     "results": [per step: {"tools": [names]} | {"result": the result as JSON} | {"error": ...}]}

or, when the session itself fails (connection, authentication), {"error": {...}} with the
first MCPError's code and message. The Rust tests (crates/maos/tests/mcp.rs) check it.
Exits 0 unless the script itself breaks.
"""

import asyncio
import json
import sys

from mcp import ClientSession, MCPError
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

STEP_TIMEOUT_S = 60


def describe(error):
    """The first MCPError in an exception (group), else its type and text."""
    if isinstance(error, MCPError):
        return {"mcp_error": True, "code": error.code, "message": error.message, "data": error.data}
    for inner in getattr(error, "exceptions", ()):
        found = describe(inner)
        if found.get("mcp_error"):
            return found
    return {"mcp_error": False, "type": type(error).__name__, "message": str(error)[:2000]}


async def run_steps(session, steps):
    init = await asyncio.wait_for(session.initialize(), 30)
    out = {
        "init": {
            "server_name": init.server_info.name,
            "protocol_version": init.protocol_version,
            "instructions": init.instructions,
        },
        "results": [],
    }
    for step in steps:
        op = step["op"]
        try:
            if op == "list_tools":
                listed = await asyncio.wait_for(session.list_tools(), STEP_TIMEOUT_S)
                out["results"].append({"tools": sorted(tool.name for tool in listed.tools)})
            elif op == "call":
                result = await asyncio.wait_for(
                    session.call_tool(step["name"], step.get("arguments", {})), STEP_TIMEOUT_S
                )
                out["results"].append({"result": result.model_dump(mode="json", by_alias=True, exclude_none=True)})
            elif op == "list_resources":
                listed = await asyncio.wait_for(session.list_resources(), STEP_TIMEOUT_S)
                out["results"].append({"resources": sorted(str(r.uri) for r in listed.resources)})
            elif op == "list_prompts":
                listed = await asyncio.wait_for(session.list_prompts(), STEP_TIMEOUT_S)
                out["results"].append({"prompts": sorted(p.name for p in listed.prompts)})
            elif op == "read_resource":
                result = await asyncio.wait_for(session.read_resource(step["uri"]), STEP_TIMEOUT_S)
                out["results"].append({"result": result.model_dump(mode="json", by_alias=True, exclude_none=True)})
            elif op == "get_prompt":
                result = await asyncio.wait_for(
                    session.get_prompt(step["name"], step.get("arguments")), STEP_TIMEOUT_S
                )
                out["results"].append({"result": result.model_dump(mode="json", by_alias=True, exclude_none=True)})
            elif op == "sleep":
                await asyncio.sleep(step["seconds"])
                out["results"].append({})
            else:
                raise ValueError(f"unknown op {op}")
        except Exception as error:  # noqa: BLE001 - reported to the test
            out["results"].append({"error": describe(error)})
    return out


async def main(plan):
    transport = plan["transport"]
    steps = plan["steps"]
    if transport["kind"] == "http":
        headers = {}
        if transport.get("bearer") is not None:
            headers["Authorization"] = f"Bearer {transport['bearer']}"
        async with create_mcp_http_client(headers=headers) as http:
            async with streamable_http_client(transport["url"], http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    return await run_steps(session, steps)
    params = StdioServerParameters(
        command=transport["command"], args=transport.get("args", []), env=transport.get("env")
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            return await run_steps(session, steps)


if __name__ == "__main__":
    text = sys.stdin.read() if sys.argv[1] == "-" else sys.argv[1]
    plan = json.loads(text)
    try:
        out = asyncio.run(asyncio.wait_for(main(plan), plan.get("timeout_s", 120)))
    except BaseException as error:  # noqa: BLE001 - any failure is reported as JSON
        if isinstance(error, KeyboardInterrupt):
            raise
        out = {"error": describe(error)}
    print(json.dumps(out))
