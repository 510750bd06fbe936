"""Everything a tool-level policy governs, seen by the official `mcp` SDK: the four lists, and
a call of each kind to a permitted, a denied and a missing name. Prints one JSON line.

usage: policy_client.py URL KEY|- MODE
  KEY   sent as `Authorization: Bearer KEY`; `-` sends no credential
  MODE  the SDK's protocol mode: legacy (sessions) or 2026-07-28 (stateless)
Prints {"ok": true, "tools": [...], "prompts": [...], "resources": [...], "templates": [...],
"calls": {NAME: answer}}, where an answer is {"text", "is_error"} for a tool, {"text"} for a
prompt or resource, or {"code", "message", "data"} for a JSON-RPC error.
"""

import sys

import mcp
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from report import report, text_of


async def answer(coroutine, shape):
    try:
        return shape(await coroutine)
    except mcp.MCPError as e:
        return {"code": e.code, "message": e.message, "data": e.data}


def tool(res):
    return {"text": text_of(res.content), "is_error": res.is_error}


async def run(url, key, mode):
    headers = {} if key == "-" else {"Authorization": f"Bearer {key}"}
    http = create_mcp_http_client(headers=headers)
    async with mcp.Client(streamable_http_client(url, http_client=http), mode=mode) as c:
        out = {
            "ok": True,
            "tools": sorted(t.name for t in (await c.list_tools()).tools),
            "prompts": sorted(p.name for p in (await c.list_prompts()).prompts),
            "resources": sorted(str(r.uri) for r in (await c.list_resources()).resources),
            "templates": sorted(
                t.uri_template for t in (await c.list_resource_templates()).resource_templates
            ),
        }
        calls = {}
        for name in ["read_note", "delete_note", "no_such_tool"]:
            calls[name] = await answer(c.call_tool(name, {"id": "1"}), tool)
        for name in ["summary", "secret_plan", "no_such_prompt"]:
            prompt = c.get_prompt(name, {"topic": "t"})
            calls[name] = await answer(prompt, lambda r: {"text": text_of([r.messages[0].content])})
        for uri in ["notes://index", "notes://private", "memo://nope"]:
            calls[uri] = await answer(c.read_resource(uri), lambda r: {"text": text_of(r.contents)})
        out["calls"] = calls
        return out


def main():
    url, key, mode = sys.argv[1:]
    report(lambda: run(url, key, mode))


if __name__ == "__main__":
    main()
