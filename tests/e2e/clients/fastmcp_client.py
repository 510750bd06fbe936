"""Exercise an MCP endpoint with the FastMCP `Client` and print one JSON line.

usage: fastmcp_client.py URL
Lists tools, calls hello, reads resource://hello/about and gets the greet prompt.
Prints {"ok": true, ...} or {"ok": false, "error": "..."}; exits 0 only when ok. Bounded by a timeout.
"""

import sys

from fastmcp import Client

from report import report


async def run(url):
    async with Client(url) as c:
        tools = sorted(t.name for t in await c.list_tools())
        called = await c.call_tool("hello", {"name": "e2e"})
        resource = await c.read_resource("resource://hello/about")
        prompt = await c.get_prompt("greet", {"name": "e2e"})
        return {
            "ok": not called.is_error,
            "tools": tools,
            "text": "".join(getattr(p, "text", "") for p in called.content),
            "resource": "".join(getattr(x, "text", "") for x in resource),
            "prompt": " ".join(getattr(m.content, "text", "") for m in prompt.messages),
        }


def main():
    report(lambda: run(sys.argv[1]))


if __name__ == "__main__":
    main()
