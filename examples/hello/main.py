"""The smallest useful FastMCP server: one tool, one resource, one prompt.

Deploy it with `skyport deploy examples/hello --name hello` (or just `skyport up`) and point any MCP
client at the printed URL, e.g. `http://127.0.0.1:8420/servers/hello/mcp`.
"""

from fastmcp import FastMCP

mcp = FastMCP("hello")


@mcp.tool
def hello(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


@mcp.resource("resource://hello/about")
def about() -> str:
    """What this server is."""
    return "hello: an example FastMCP server hosted by Skyport"


@mcp.prompt
def greet(name: str) -> str:
    """Ask the model to greet someone warmly."""
    return f"Please write a warm, one-line greeting for {name}."
