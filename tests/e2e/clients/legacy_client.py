"""Exercise a legacy HTTP+SSE (2024-11-05) endpoint and print JSON lines.

usage: legacy_client.py sdk|fastmcp SSE_URL
  sdk      the official `mcp` SDK's `sse_client`
  fastmcp  the FastMCP `Client` with an `SSETransport`
  Lists tools and calls hello on one legacy session; prints one line.
usage: legacy_client.py hold sdk|fastmcp SSE_URL
  Holds ONE legacy session open: prints {"ready": true, "tools": [...]}, then for each stdin line
  `call NAME` calls hello(name=NAME) on that same session and prints one line; EOF ends it. The
  client never reconnects, so a test can break things between calls and see the session live on.
usage: legacy_client.py raw SSE_URL
  Opens the event stream by hand, reports the endpoint event and the statuses of a malformed POST
  and of a POST to a session id nobody was given.
Lines are {"ok": true, ...} or {"ok": false, "error": "..."}; every wait is bounded.
"""

import asyncio
import contextlib
import http.client
import json
import sys
import urllib.parse

import mcp
from fastmcp import Client
from fastmcp.client.transports import SSETransport
from mcp.client.sse import sse_client

from report import answer_calls, describe, emit, report, text_of


@contextlib.asynccontextmanager
async def connect(kind, url):
    """A connected client of `kind` and functions listing tools and calling hello."""
    if kind == "sdk":
        async with mcp.Client(sse_client(url), mode="legacy") as c:

            async def list_tools():
                return [t.name for t in (await c.list_tools()).tools]

            async def call(who):
                return await c.call_tool("hello", {"name": who})

            yield list_tools, call
    else:
        async with Client(SSETransport(url)) as c:

            async def list_tools():
                return [t.name for t in await c.list_tools()]

            async def call(who):
                return await c.call_tool("hello", {"name": who}, raise_on_error=False)

            yield list_tools, call


async def once(kind, url):
    async with connect(kind, url) as (list_tools, call):
        tools = sorted(await list_tools())
        called = await call("e2e")
        return {"ok": not called.is_error, "tools": tools, "text": text_of(called.content)}


async def hold(kind, url):
    async with connect(kind, url) as (list_tools, call):
        emit({"ok": True, "ready": True, "tools": sorted(await list_tools())})
        await answer_calls(call)


def post(parts, path, body):
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    return {"status": response.status, "body": json.loads(text) if text.startswith("{") else text}


def raw_sync(url):
    parts = urllib.parse.urlsplit(url)
    stream = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    stream.request("GET", parts.path, headers={"Accept": "text/event-stream"})
    response = stream.getresponse()
    out = {"status": response.status, "content_type": response.getheader("Content-Type")}
    event = None
    while True:
        line = response.readline().decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "endpoint":
            out["endpoint"] = line.split(":", 1)[1].strip()
            break
    out["malformed"] = post(parts, out["endpoint"], "{this is not json")
    out["unknown"] = post(
        parts,
        parts.path.rsplit("/", 1)[0] + "/messages?sessionId=0123456789abcdef0123456789abcdef",
        '{"jsonrpc":"2.0","id":9,"method":"tools/list"}',
    )
    stream.close()
    out["ok"] = True
    return out


async def raw(url):
    return await asyncio.to_thread(raw_sync, url)


def main():
    cmd, *rest = sys.argv[1:]
    if cmd == "hold":
        try:
            asyncio.run(hold(*rest))
        except BaseException as e:  # noqa: BLE001
            emit({"ok": False, "error": describe(e)})
            sys.exit(1)
        return
    runs = {"sdk": lambda: once("sdk", *rest), "fastmcp": lambda: once("fastmcp", *rest), "raw": lambda: raw(*rest)}
    report(runs[cmd])


if __name__ == "__main__":
    main()
