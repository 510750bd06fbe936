"""Call one tool with the official `mcp` SDK (session era), sending an API key and extra headers.

usage: key_client.py URL KEY|- TOOL JSON_ARGS [NAME=VALUE...]
  KEY    sent as `Authorization: Bearer KEY`; `-` sends no credential
  NAME=VALUE  extra request headers (e.g. a forged skyport-user-id)
Prints {"ok": true, "text": "..."} or {"ok": false, "error": "..."}; exits 0 only when ok.
"""

import json
import sys

import mcp
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from report import report, text_of


async def call(url, key, tool, args, extra):
    headers = dict(h.split("=", 1) for h in extra)
    if key != "-":
        headers["Authorization"] = f"Bearer {key}"
    http = create_mcp_http_client(headers=headers)
    async with mcp.Client(streamable_http_client(url, http_client=http), mode="legacy") as c:
        res = await c.call_tool(tool, json.loads(args))
        return {"ok": not res.is_error, "text": text_of(res.content)}


def main():
    url, key, tool, args, *extra = sys.argv[1:]
    report(lambda: call(url, key, tool, args, extra))


if __name__ == "__main__":
    main()
