"""Exercise an MCP endpoint with the FastMCP `Client` and print one JSON line.

usage: fastmcp_client.py URL
Lists tools, calls hello, reads resource://hello/about and gets the greet prompt.
Prints {"ok": true, ...} or {"ok": false, "error": "..."}; exits 0 only when ok. Bounded by a timeout.
"""

import sys

from fastmcp import Client

from report import hello_summary, report


async def run(url):
    async with Client(url) as c:
        tools = [t.name for t in await c.list_tools()]
        called = await c.call_tool("hello", {"name": "e2e"})
        resource = await c.read_resource("resource://hello/about")
        prompt = await c.get_prompt("greet", {"name": "e2e"})
        return hello_summary(tools, called, resource, prompt.messages)


def main():
    report(lambda: run(sys.argv[1]))


if __name__ == "__main__":
    main()
