"""The official MCP Python SDK as an agent on MAOS's streamable HTTP endpoint.

Usage: client_http.py URL BEARER

Connects with `Authorization: Bearer BEARER`, initializes, lists tools, calls `echo`
and `danger`, then tries a refused bearer (`bad`) and no bearer at all. Prints one JSON
object on stdout; the Rust test (tests/server/python.rs) checks it. Exits 0 unless the
script itself breaks.
"""

import asyncio
import json
import sys

from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def texts(result):
    return "\n".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def describe(error):
    """The first MCPError in an exception (group), else its type and text."""
    if isinstance(error, MCPError):
        return {"mcp_error": True, "code": error.code, "message": error.message, "data": error.data}
    for inner in getattr(error, "exceptions", ()):
        found = describe(inner)
        if found.get("mcp_error"):
            return found
    return {"mcp_error": False, "type": type(error).__name__, "message": str(error)[:500]}


async def session_run(url, headers, work):
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await asyncio.wait_for(session.initialize(), 20)
                return await work(session, init)


async def main(url, bearer):
    out = {}

    async def happy(session, init):
        out["server_name"] = init.server_info.name
        out["instructions"] = init.instructions
        tools = await session.list_tools()
        out["tools"] = [tool.name for tool in tools.tools]
        echo = await session.call_tool("echo", {"message": "hi from python"})
        out["echo"] = {"is_error": bool(echo.is_error), "text": texts(echo)}
        danger = await session.call_tool("danger", {})
        out["danger"] = {"is_error": bool(danger.is_error), "text": texts(danger)}
        resources = await session.list_resources()
        out["resources"] = [str(r.uri) for r in resources.resources]
        prompts = await session.list_prompts()
        out["prompts"] = [p.name for p in prompts.prompts]

    await session_run(url, {"Authorization": f"Bearer {bearer}"}, happy)

    async def listed(session, init):
        tools = await session.list_tools()
        return [tool.name for tool in tools.tools]

    for name, headers in (("bad_bearer", {"Authorization": "Bearer bad"}), ("no_bearer", {})):
        try:
            out[name] = {"listed": await asyncio.wait_for(session_run(url, headers, listed), 30)}
        except BaseException as error:  # noqa: BLE001 - any failure is the expected outcome
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            out[name] = describe(error)

    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
