"""Steady MCP load through the gateway while the live deployment switches back and forth.

usage: deploy-switch-load.py SKYPORT_BIN MCP_URL SERVER DEPLOYMENT_A DEPLOYMENT_B [SWITCHES] [RATE]

WORKERS sessions (each its own `initialize`) call the `version` tool at RATE requests per second
in total, paced on a fixed schedule. After a steady phase, `skyport rollback SERVER ID` runs
SWITCHES times, alternating A and B, one every SPACING seconds; then a tail phase. Every request
is bounded (30 s). Prints one JSON object: failures, p99 latency in the steady phase and around
switches (from a switch's start to one second after it ended), their ratio, rollback times, and
which versions answered. Used by benches/deploy-switch; it reports, it never fails on a figure.
"""

import asyncio
import json
import statistics
import sys
import time

import aiohttp

WORKERS = 4
STEADY = 5.0
SPACING = 1.5
TAIL = 2.0
SETTLE = 1.0
VERSION = "2025-06-18"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def message_of(content_type, text):
    """The JSON-RPC message of a response body (plain JSON or an event stream)."""
    if "text/event-stream" in content_type:
        for line in text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                return json.loads(line[5:])
        raise ValueError("an event stream without a message")
    return json.loads(text)


async def rpc(http, url, body, session=None):
    headers = dict(HEADERS)
    if session:
        headers["Mcp-Session-Id"] = session
        headers["MCP-Protocol-Version"] = VERSION
    async with http.post(url, json=body, headers=headers) as response:
        text = await response.text()
        if response.status >= 300:
            raise RuntimeError(f"HTTP {response.status}: {text[:200]}")
        if not text.strip():
            return response.headers.get("Mcp-Session-Id"), None
        return response.headers.get("Mcp-Session-Id"), message_of(response.headers.get("Content-Type", ""), text)


async def open_session(http, url):
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
    }
    session, _ = await rpc(http, url, init)
    await rpc(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    return session


async def worker(http, url, session, period, offset, stop_at, samples):
    next_at = time.monotonic() + offset
    n = 0
    while next_at < stop_at:
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        n += 1
        body = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "version", "arguments": {}}}
        start = time.monotonic()
        try:
            _, message = await rpc(http, url, body, session)
            result = message.get("result") if message else None
            ok = bool(result) and not result.get("isError")
            answer = result["content"][0]["text"] if ok else json.dumps(message)[:200]
        except Exception as e:  # noqa: BLE001 - a failed request is a figure, not a crash
            ok, answer = False, f"{type(e).__name__}: {e}"
        samples.append((start, time.monotonic() - start, ok, answer))
        next_at += period


def p99(latencies):
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def switch(sky, server, targets, switches, windows, durations, errors):
    await asyncio.sleep(STEADY)
    for i in range(switches):
        target = targets[i % 2]
        start = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sky, "rollback", server, target, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        end = time.monotonic()
        if proc.returncode != 0:
            errors.append(err.decode(errors="replace").strip())
        windows.append((start, end + SETTLE))
        durations.append(end - start)
        await asyncio.sleep(max(0.0, SPACING - (end - start)))


async def main():
    sky, url, server, a, b = sys.argv[1:6]
    switches = int(sys.argv[6]) if len(sys.argv) > 6 else 10
    rate = float(sys.argv[7]) if len(sys.argv) > 7 else 100.0
    period = WORKERS / rate
    samples, windows, durations, errors = [], [], [], []
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=WORKERS * 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        # Sessions open (and the live deployment warms up) before the clock starts.
        sessions = await asyncio.gather(*(open_session(http, url) for _ in range(WORKERS)))
        began = time.monotonic()
        stop_at = began + STEADY + switches * SPACING + TAIL
        # b is live when the run starts; the first switch goes to a.
        load = [worker(http, url, s, period, i * period / WORKERS, stop_at, samples) for i, s in enumerate(sessions)]
        await asyncio.gather(switch(sky, server, (a, b), switches, windows, durations, errors), *load)
    first_switch = windows[0][0] if windows else stop_at
    steady = [lat for (t, lat, ok, _) in samples if ok and t < first_switch]
    during = [lat for (t, lat, ok, _) in samples if ok and any(s <= t <= e for (s, e) in windows)]
    failed = [answer for (_, _, ok, answer) in samples if not ok]
    steady_p99, switch_p99 = p99(steady), p99(during)
    answers = {}
    for (_, _, ok, answer) in samples:
        if ok:
            answers[answer] = answers.get(answer, 0) + 1
    print(
        json.dumps(
            {
                "requests": len(samples),
                "achieved_rate": round(len(samples) / max(1e-9, stop_at - began), 1),
                "failed": len(failed),
                "failures": failed[:5],
                "steady_p99_ms": round(steady_p99 * 1000, 2) if steady_p99 else None,
                "switch_p99_ms": round(switch_p99 * 1000, 2) if switch_p99 else None,
                "p99_ratio": round(switch_p99 / steady_p99, 2) if steady_p99 and switch_p99 else None,
                "rollbacks": len(durations),
                "rollback_errors": errors,
                "rollback_median_ms": round(statistics.median(durations) * 1000, 1) if durations else None,
                "rollback_max_ms": round(max(durations) * 1000, 1) if durations else None,
                "answers": answers,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
