"""Exercise a legacy HTTP+SSE (2024-11-05) endpoint and print one JSON line.

usage: legacy_client.py sdk|fastmcp SSE_URL [KILL_PID]
  sdk      the official `mcp` SDK's `sse_client`
  fastmcp  the FastMCP `Client` with an `SSETransport`
Both list tools and call hello on one legacy session; with KILL_PID they then SIGKILL that process
(the instance serving the session), wait until it is gone, and call hello again on the same session.
usage: legacy_client.py raw SSE_URL
  opens the event stream by hand, reports the endpoint event and the statuses of a malformed POST
  and of a POST to a session id nobody was given.
Prints {"ok": true, ...} or {"ok": false, "error": "..."}; exits 0 only when ok. Bounded by a timeout.
"""

import asyncio
import http.client
import json
import os
import signal
import sys
import urllib.parse

import mcp
from fastmcp import Client
from fastmcp.client.transports import SSETransport
from mcp.client.sse import sse_client

from report import report, text_of


async def gone(pid):
    """Waits until process `pid` no longer runs (a zombie counts as gone)."""
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except (FileNotFoundError, ProcessLookupError):
            return
        await asyncio.sleep(0.05)


async def session(list_tools, call, kill_pid):
    tools = sorted(await list_tools())
    first = await call("e2e")
    out = {"ok": not first.is_error, "tools": tools, "text": text_of(first.content)}
    if kill_pid:
        os.kill(int(kill_pid), signal.SIGKILL)
        await gone(int(kill_pid))
        after = await call("after-kill")
        out["ok"] = out["ok"] and not after.is_error
        out["after"] = text_of(after.content)
    return out


async def sdk(url, kill_pid=None):
    async with mcp.Client(sse_client(url), mode="legacy") as c:

        async def list_tools():
            return [t.name for t in (await c.list_tools()).tools]

        return await session(list_tools, lambda who: c.call_tool("hello", {"name": who}), kill_pid)


async def fastmcp(url, kill_pid=None):
    async with Client(SSETransport(url)) as c:

        async def list_tools():
            return [t.name for t in await c.list_tools()]

        return await session(list_tools, lambda who: c.call_tool("hello", {"name": who}), kill_pid)


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
    cmd, url, *rest = sys.argv[1:]
    runs = {"sdk": sdk, "fastmcp": fastmcp, "raw": raw}
    report(lambda: runs[cmd](url, *rest))


if __name__ == "__main__":
    main()
