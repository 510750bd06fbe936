"""The FastMCP backend of benches/gateway-overhead: a single tool that hands its input back.

The bench deploys this folder with Skyport and also runs the same file directly, in the
environment Skyport built for it, so both paths reach the same server code.
"""

from fastmcp import FastMCP

mcp = FastMCP("echo")


@mcp.tool
def echo(text: str) -> str:
    """Send back the given text as it came."""
    return text
