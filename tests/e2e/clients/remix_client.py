"""A remix as a client sees it, with the official `mcp` SDK (session era) or the FastMCP
`Client`: the tool list with descriptions, prompts, resources, and the answers to some calls.

usage: remix_client.py URL KEY|- LIBRARY CALLS
  KEY      sent as `Authorization: Bearer KEY`; `-` sends no credential
  LIBRARY  sdk or fastmcp
  CALLS    a JSON object {TOOL: ARGUMENTS} of tools to call, in order
Prints {"ok": true, "tools": {NAME: DESCRIPTION}, "prompts": [...], "resources": [...],
"calls": {NAME: answer}}, where an answer is {"text", "is_error"} or, for a JSON-RPC error,
{"code", "message"}.
"""

import json
import sys

import mcp
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from report import report, text_of


async def with_sdk(url, key, calls):
    headers = {} if key == "-" else {"Authorization": f"Bearer {key}"}
    http = create_mcp_http_client(headers=headers)
    async with mcp.Client(streamable_http_client(url, http_client=http), mode="legacy") as c:
        out = {
            "ok": True,
            "tools": {t.name: t.description for t in (await c.list_tools()).tools},
            "prompts": sorted(p.name for p in (await c.list_prompts()).prompts),
            "resources": sorted(str(r.uri) for r in (await c.list_resources()).resources),
            "calls": {},
        }
        for name, args in calls.items():
            try:
                res = await c.call_tool(name, args)
                out["calls"][name] = {"text": text_of(res.content), "is_error": res.is_error}
            except mcp.MCPError as e:
                out["calls"][name] = {"code": e.code, "message": e.message}
        if out["resources"]:
            read = await c.read_resource(out["resources"][0])
            out["read"] = text_of(read.contents)
        return out


async def with_fastmcp(url, key, calls):
    from fastmcp import Client

    async with Client(url, auth=None if key == "-" else key) as c:
        out = {
            "ok": True,
            "tools": {t.name: t.description for t in await c.list_tools()},
            "prompts": sorted(p.name for p in await c.list_prompts()),
            "resources": sorted(str(r.uri) for r in await c.list_resources()),
            "calls": {},
        }
        for name, args in calls.items():
            res = await c.call_tool(name, args, raise_on_error=False)
            out["calls"][name] = {"text": text_of(res.content), "is_error": res.is_error}
        return out


def main():
    url, key, library, calls = sys.argv[1:]
    run = with_sdk if library == "sdk" else with_fastmcp
    report(lambda: run(url, key, json.loads(calls)))


if __name__ == "__main__":
    main()
