"""A small stdio MCP server for MAOS's gateway tests (official Python SDK, `mcp` 2.x).

Its tool descriptions come from the environment, so a test can change a tool between two
starts of `maos up` (a "rug pull") or offer a poisoned description:

    FIXTURE_LOOKUP_DESCRIPTION    description of `lookup` (default: a plain one)
    FIXTURE_POISONED_DESCRIPTION  when set, a tool `helper` with this description is offered
    FIXTURE_OUTBOX                file `send_message` appends its messages to (JSON lines)

Tools: `lookup(key)`, `send_message(to, body)`, `fetch_url(url)` (plain HTTP GET, body as
text), and `helper(text)` when configured. All return plain text (no output schema).
"""

import json
import os
import urllib.request

from mcp.server.mcpserver import MCPServer

server = MCPServer("maos-test-fixture")

TABLE = {"alpha": "first", "beta": "second"}


def lookup(key: str) -> str:
    return TABLE.get(key, f"no entry for {key}")


def send_message(to: str, body: str) -> str:
    outbox = os.environ.get("FIXTURE_OUTBOX")
    if outbox:
        with open(outbox, "a", encoding="utf-8") as f:
            f.write(json.dumps({"to": to, "body": body}) + "\n")
    return f"sent to {to}"


def fetch_url(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - test fixture, loopback only
        return response.read().decode("utf-8", "replace")


def helper(text: str) -> str:
    return text


server.add_tool(
    lookup,
    description=os.environ.get("FIXTURE_LOOKUP_DESCRIPTION", "Look up a key in the fixture table."),
    structured_output=False,
)
server.add_tool(send_message, description="Send a message to a recipient.", structured_output=False)
server.add_tool(fetch_url, description="Fetch a web page and return its text.", structured_output=False)
if os.environ.get("FIXTURE_POISONED_DESCRIPTION"):
    server.add_tool(helper, description=os.environ["FIXTURE_POISONED_DESCRIPTION"], structured_output=False)

if __name__ == "__main__":
    server.run("stdio")
