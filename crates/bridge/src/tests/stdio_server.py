"""A minimal MCP server over stdio for the bridge's tests: answers initialize, tools/list and
tools/call of `echo`, `crash` (exits mid-request) and `ask` (sends a sampling request first and
answers with what the client replied)."""

import json
import os
import sys

asks = {}


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    message = json.loads(line)
    method, mid = message.get("method"), message.get("id")
    if method is None:
        if mid in asks:
            send({"jsonrpc": "2.0", "id": asks.pop(mid), "result": {"content": [{"type": "text", "text": message["result"]["content"]["text"]}]}})
        continue
    if mid is None:
        continue
    if "io.modelcontextprotocol/protocolVersion" in (message.get("params") or {}).get("_meta", {}):
        # As the official SDK does on a connection that began with initialize.
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32600, "message": "enveloped request on a handshake connection"}})
        continue
    if method == "initialize":
        version = message["params"]["protocolVersion"]
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": {"name": "stdio-test", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}})
    elif method == "tools/call":
        name = message["params"]["name"]
        if name == "pid":
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": str(os.getpid())}]}})
            continue
        if name == "crash":
            print("crashing on purpose", file=sys.stderr)
            sys.exit(3)
        if name == "ask":
            send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "asking"}})
            asks["ask-1"] = mid
            send({"jsonrpc": "2.0", "id": "ask-1", "method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 1}})
            continue
        text = message["params"].get("arguments", {}).get("text", "")
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "unknown method"}})
