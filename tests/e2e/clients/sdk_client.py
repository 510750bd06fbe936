"""Exercise an MCP endpoint with the official `mcp` SDK (session era) and print one JSON line.

usage: sdk_client.py URL hello|call|concurrent [ARGS...]
  hello URL                   list tools, call hello, read resource://hello/about, get prompt greet
  call URL TOOL JSON_ARGS [MODE]  call one tool; MODE is the SDK's protocol mode (default legacy:
                              sessions; 2026-07-28: stateless; auto: negotiate)
  concurrent URL N            N sessions at once, each calling hello; reports every result
Prints {"ok": true, ...} or {"ok": false, "error": "..."}; exits 0 only when ok. Every await is bounded.
"""

import asyncio
import json
import sys

import mcp

from report import hello_summary, report, text_of


async def hello(url):
    async with mcp.Client(url, mode="legacy") as c:
        tools = [t.name for t in (await c.list_tools()).tools]
        called = await c.call_tool("hello", {"name": "e2e"})
        resource = await c.read_resource("resource://hello/about")
        prompt = await c.get_prompt("greet", {"name": "e2e"})
        return hello_summary(tools, called, resource.contents, prompt.messages)


async def call(url, tool, args, mode="legacy"):
    async with mcp.Client(url, mode=mode) as c:
        res = await c.call_tool(tool, json.loads(args))
        return {"ok": not res.is_error, "text": text_of(res.content)}


async def concurrent(url, n):
    async def one(i):
        try:
            return await call(url, "hello", json.dumps({"name": f"c{i}"}))
        except BaseException as e:  # noqa: BLE001 - report, the caller decides
            return {"ok": False, "error": describe(e)}

    results = await asyncio.gather(*(one(i) for i in range(n)))
    return {"ok": all(r["ok"] for r in results), "results": results}


def main():
    cmd, url, *rest = sys.argv[1:]
    runs = {"hello": lambda: hello(url), "call": lambda: call(url, *rest), "concurrent": lambda: concurrent(url, int(rest[0]))}
    report(runs[cmd])


if __name__ == "__main__":
    main()
