"""Hold ONE MCP client session open and call `hello` on it whenever asked, so a test can break
things between calls (kill the instance, redeploy, restart Skyport) and see the session live on.

usage: session_client.py sdk|fastmcp URL
Prints {"ok": true, "ready": true} once connected, then reads lines from stdin: `call NAME` calls
hello(name=NAME) on the same session (`tool TOOL NAME` calls TOOL(name=NAME)) and prints one JSON line ({"ok": true, "text": ...} or
{"ok": false, "error": ...}); EOF ends the session. Every call is bounded; the client never
reconnects or re-initializes by itself.
"""

import asyncio
import sys

from report import answer_calls, describe, emit


async def with_sdk(url):
    import mcp

    async with mcp.Client(url, mode="legacy") as c:
        emit({"ok": True, "ready": True})
        await answer_calls(lambda name, tool="hello": c.call_tool(tool, {"name": name}))


async def with_fastmcp(url):
    from fastmcp import Client

    async with Client(url) as c:
        emit({"ok": True, "ready": True})
        await answer_calls(
            lambda name, tool="hello": c.call_tool(tool, {"name": name}, raise_on_error=False)
        )


def main():
    kind, url = sys.argv[1], sys.argv[2]
    run = {"sdk": with_sdk, "fastmcp": with_fastmcp}[kind]
    try:
        asyncio.run(run(url))
    except BaseException as e:  # noqa: BLE001
        emit({"ok": False, "error": describe(e)})
        sys.exit(1)


if __name__ == "__main__":
    main()
