"""Exercise a packaged (stdio) server through the gateway with the official `mcp` SDK; print one JSON line.

usage: packaged_client.py tools URL MODE TOOL JSON_ARGS   list the tools and call TOOL, in the SDK's
                                                          protocol MODE (legacy, 2026-07-28, auto)
       packaged_client.py crash URL MARKER               in one session: call echo, create the file
                                                          MARKER and start a long call (the test kills
                                                          the server's process meanwhile), then call
                                                          echo again
Prints {"ok": true, ...} or {"ok": false, "error": "..."}; exits 0 only when ok. Every await is bounded.
"""

import json
import sys

import mcp

from report import describe, report, text_of


async def tools(url, mode, tool, args):
    async with mcp.Client(url, mode=mode) as c:
        names = sorted(t.name for t in (await c.list_tools()).tools)
        res = await c.call_tool(tool, json.loads(args))
        return {"ok": not res.is_error, "tools": names, "text": text_of(res.content)}


async def crash(url, marker):
    async with mcp.Client(url, mode="legacy") as c:
        before = await c.call_tool("echo", {"message": "before"})
        open(marker, "w").close()
        try:
            await c.call_tool("trigger-long-running-operation", {"duration": 60, "steps": 2})
            return {"ok": False, "error": "the long call was answered although its server process was killed"}
        except Exception as e:  # noqa: BLE001 - the error is what the test checks
            error = describe(e)
        after = await c.call_tool("echo", {"message": "after"})
        return {"ok": True, "before": text_of(before.content), "error": error, "after": text_of(after.content)}


def main():
    cmd, url, *rest = sys.argv[1:]
    runs = {"tools": lambda: tools(url, *rest), "crash": lambda: crash(url, *rest)}
    report(runs[cmd])


if __name__ == "__main__":
    main()
