"""Exercise an MCP endpoint with the FastMCP `Client` and print one JSON line.

usage: fastmcp_client.py URL
Lists tools, calls hello, reads resource://hello/about and gets the greet prompt.
Prints {"ok": true, ...} or {"ok": false, "error": "..."}; exits 0 only when ok. Bounded by a timeout.
"""

import asyncio
import json
import sys

from fastmcp import Client

TIMEOUT = 120


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


def describe(e):
    """The innermost cause of an exception group, as one line."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {e}"[:500]


def main():
    try:
        out = asyncio.run(asyncio.wait_for(run(sys.argv[1]), TIMEOUT))
    except BaseException as e:  # noqa: BLE001 - report any failure as data
        out = {"ok": False, "error": describe(e)}
    print(json.dumps(out), flush=True)
    sys.exit(0 if out.get("ok") else 1)


if __name__ == "__main__":
    main()
