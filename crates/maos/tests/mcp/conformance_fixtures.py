"""The fixtures the MCP conformance suite's server scenarios call by name, as an MCP server
(official Python SDK, `mcp` 2.x).

Usage: conformance_fixtures.py                 (stdio: an upstream behind `maos up`)
       conformance_fixtures.py --http PORT     (streamable HTTP on 127.0.0.1:PORT/mcp)

server-everything has other names for its tools, resources and prompts, so most of the
suite's scenarios fail against it whether MAOS is in front or not. This server implements
the names the suite uses (`test_simple_text`, `test://static-text`, `test_simple_prompt`, ...,
after the suite's own scenario descriptions), so that `scripts/conformance.sh` can compare
content types, resources and prompts directly and through MAOS. Sampling and elicitation
fixtures are left out: MAOS does not relay server-to-client requests.
"""

import asyncio
import base64
import struct
import sys

from mcp.server.mcpserver import Context, MCPServer, UserMessage
from mcp_types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    Completion,
    EmbeddedResource,
    ImageContent,
    EmptyResult,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)

# A 1x1 red PNG.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
# A WAV file with a few silent 8 kHz mono 8-bit samples.
_samples = b"\x80" * 8
WAV = base64.b64encode(
    b"RIFF"
    + struct.pack("<I", 36 + len(_samples))
    + b"WAVEfmt "
    + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    + b"data"
    + struct.pack("<I", len(_samples))
    + _samples
).decode()

server = MCPServer("maos-conformance-fixtures")


@server.tool(description="Returns a simple text response.", structured_output=False)
def test_simple_text() -> list:
    return [TextContent(type="text", text="This is a simple text response for testing.")]


@server.tool(description="Returns an image.", structured_output=False)
def test_image_content() -> list:
    return [ImageContent(type="image", data=PNG, mime_type="image/png")]


@server.tool(description="Returns audio.", structured_output=False)
def test_audio_content() -> list:
    return [AudioContent(type="audio", data=WAV, mime_type="audio/wav")]


@server.tool(description="Returns an embedded resource.", structured_output=False)
def test_embedded_resource() -> list:
    return [
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
            ),
        )
    ]


@server.tool(description="Returns text, an image and a resource.", structured_output=False)
def test_multiple_content_types() -> list:
    return [
        TextContent(type="text", text="Multiple content types test:"),
        ImageContent(type="image", data=PNG, mime_type="image/png"),
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}'
            ),
        ),
    ]


@server.tool(description="Always fails.", structured_output=False)
def test_error_handling() -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text="This tool intentionally returns an error for testing")], is_error=True
    )


@server.tool(description="Logs three messages while it runs.", structured_output=False)
async def test_tool_with_logging(ctx: Context) -> str:
    await ctx.info("Tool execution started")
    await asyncio.sleep(0.05)
    await ctx.info("Tool processing data")
    await asyncio.sleep(0.05)
    await ctx.info("Tool execution completed")
    return "Tool with logging executed successfully"


@server.tool(description="Reports progress while it runs.", structured_output=False)
async def test_tool_with_progress(ctx: Context) -> str:
    for done in (0, 50, 100):
        await ctx.report_progress(done, 100)
        await asyncio.sleep(0.05)
    return "Tool with progress executed successfully"


@server.resource("test://static-text", name="static-text", mime_type="text/plain")
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource("test://static-binary", name="static-binary", mime_type="image/png")
def static_binary() -> bytes:
    return base64.b64decode(PNG)


@server.resource("test://template/{id}/data", name="template", mime_type="application/json")
def template(id: str) -> str:  # noqa: A002 - the template's parameter name
    return f'{{"id":"{id}","templateTest":true,"data":"Data for ID: {id}"}}'


@server.resource("test://watched-resource", name="watched-resource", mime_type="text/plain")
def watched() -> str:
    return "Watched resource content"


@server.prompt(description="A simple prompt.")
def test_simple_prompt() -> list:
    return [UserMessage("This is a simple prompt for testing.")]


@server.prompt(description="A prompt with arguments.")
def test_prompt_with_arguments(arg1: str, arg2: str) -> list:
    text = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
    return [UserMessage(text)]


@server.prompt(description="A prompt with an embedded resource.")
def test_prompt_with_embedded_resource(resourceUri: str) -> list:  # noqa: N803 - the suite's argument name
    return [
        UserMessage(
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
                ),
            )
        ),
        UserMessage("Please process the embedded resource above."),
    ]


@server.prompt(description="A prompt with an image.")
def test_prompt_with_image() -> list:
    return [
        UserMessage(ImageContent(type="image", data=PNG, mime_type="image/png")),
        UserMessage("Please analyze the image above."),
    ]


@server.completion()
async def complete(ref, argument, context):
    return Completion(values=[], total=0, has_more=False)


async def accept(ctx, params):
    return EmptyResult()


# MCPServer has no decorators for these; the low-level server takes the handlers (and then
# announces the `logging` capability and resource subscriptions).
for method, params_type in (
    ("logging/setLevel", SetLevelRequestParams),
    ("resources/subscribe", SubscribeRequestParams),
    ("resources/unsubscribe", UnsubscribeRequestParams),
):
    server._lowlevel_server.add_request_handler(method, params_type, accept)

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
