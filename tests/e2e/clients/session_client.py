"""Hold ONE MCP client session open and call `hello` on it whenever asked, so a test can break
things between calls (kill the instance, redeploy, restart Skyport) and see the session live on.

usage: session_client.py sdk|fastmcp URL
Reads lines from stdin: `call NAME` calls hello(name=NAME) on the same session and prints one JSON
line ({"ok": true, "text": ..., "session": ...} or {"ok": false, "error": ...}); EOF ends the session.
Every call is bounded; the client never reconnects or re-initializes by itself.
"""

import asyncio
import json
import sys

from report import describe, text_of

CALL_TIMEOUT = 120


def emit(out):
    print(json.dumps(out), flush=True)


async def lines():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        yield line.strip()


async def serve_calls(call, session_id):
    async for line in lines():
        cmd, _, name = line.partition(" ")
        if cmd != "call":
            emit({"ok": False, "error": f"unknown command {line!r}"})
            continue
        try:
            text, is_error = await asyncio.wait_for(call(name), CALL_TIMEOUT)
            emit({"ok": not is_error, "text": text, "session": session_id()})
        except BaseException as e:  # noqa: BLE001 - report, the test decides
            emit({"ok": False, "error": describe(e)})


async def with_sdk(url):
    import mcp

    async with mcp.Client(url, mode="legacy") as c:
        async def call(name):
            res = await c.call_tool("hello", {"name": name})
            return text_of(res.content), res.is_error

        def session_id():
            transport = getattr(c, "_transport", None)
            return str(getattr(transport, "session_id", "") or "")

        emit({"ok": True, "ready": True})
        await serve_calls(call, session_id)


async def with_fastmcp(url):
    from fastmcp import Client

    async with Client(url) as c:
        async def call(name):
            res = await c.call_tool("hello", {"name": name}, raise_on_error=False)
            return text_of(res.content), res.is_error

        emit({"ok": True, "ready": True})
        await serve_calls(call, lambda: "")


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
