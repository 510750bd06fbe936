"""What every client script shares: run one bounded coroutine and report it as one JSON line.

Prints {"ok": true, ...} or {"ok": false, "error": "..."} and exits 0 only when ok, so the Rust
tests read a result rather than parse a traceback.
"""

import asyncio
import json
import sys

TIMEOUT = 120


def text_of(parts):
    """The text of MCP content parts (tool results, resource contents), joined."""
    return "".join(getattr(p, "text", "") for p in parts)


def hello_summary(tools, called, resource_parts, prompt_messages):
    """What the hello checks compare, the same whichever client library produced it."""
    return {
        "ok": not called.is_error,
        "tools": sorted(tools),
        "text": text_of(called.content),
        "resource": text_of(resource_parts),
        "prompt": " ".join(text_of([m.content]) for m in prompt_messages),
    }


def describe(e):
    """The innermost cause of an exception group, as one line."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {e}"[:500]


def emit(out):
    """Prints one JSON line, at once (the test reads it while the client runs on)."""
    print(json.dumps(out), flush=True)


async def answer_calls(call):
    """Serves a test holding one session open: for each stdin line `call NAME`, awaits
    `call(NAME)` (a tool result), and for `tool TOOL NAME`, `call(NAME, TOOL)`, bounded by
    TIMEOUT, and emits one line; EOF ends it."""
    loop = asyncio.get_running_loop()
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        cmd, _, rest = line.partition(" ")
        try:
            if cmd == "call":
                calling = call(rest)
            elif cmd == "tool":
                tool, _, name = rest.partition(" ")
                calling = call(name, tool)
            else:
                raise ValueError(f"unknown command {line!r}")
            res = await asyncio.wait_for(calling, TIMEOUT)
            emit({"ok": not res.is_error, "text": text_of(res.content)})
        except BaseException as e:  # noqa: BLE001 - report, the test decides
            emit({"ok": False, "error": describe(e)})


def report(make_coroutine):
    """Runs the coroutine `make_coroutine()` returns, bounded by TIMEOUT, and reports it."""
    try:
        out = asyncio.run(asyncio.wait_for(make_coroutine(), TIMEOUT))
    except BaseException as e:  # noqa: BLE001 - report any failure as data
        out = {"ok": False, "error": describe(e)}
    emit(out)
    sys.exit(0 if out.get("ok") else 1)
