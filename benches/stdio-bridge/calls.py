"""Times CALLS sequential `tools/call`s directly over stdio and through the gateway; prints the figures."""

import http.client
import json
import statistics
import subprocess
import sys
import time

CALL = {"name": "get_current_time", "arguments": {"timezone": "Europe/Paris"}}
INIT = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}


def direct(program, calls):
    proc = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def ask(i, method, params):
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n")
        proc.stdin.flush()
        while True:
            answer = json.loads(proc.stdout.readline())
            if answer.get("id") == i:
                return answer

    ask(0, "initialize", INIT)
    proc.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    times = timed(calls, lambda i: ask(i, "tools/call", CALL))
    proc.kill()
    return times


def gateway(addr, calls):
    conn = http.client.HTTPConnection(addr)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

    def post(body, session=None):
        h = dict(headers, **({"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"} if session else {}))
        conn.request("POST", "/servers/time/mcp", json.dumps(body), h)
        response = conn.getresponse()
        data = response.read()
        assert response.status in (200, 202), (response.status, data)
        return response

    session = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}).getheader("mcp-session-id")
    post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    return timed(calls, lambda i: post({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": CALL}, session))


def timed(calls, call):
    for i in range(1, 21):  # warm-up
        call(i)
    times = []
    for i in range(100, 100 + calls):
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main():
    calls, program, addr = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    d, g = direct(program, calls), gateway(addr, calls)
    p90 = lambda t: statistics.quantiles(t, n=10)[-1]  # noqa: E731
    dm, gm = statistics.median(d), statistics.median(g)
    print(f"{calls} sequential tools/call of mcp-server-time")
    print(f"  direct over stdio:          median {dm:.2f} ms, p90 {p90(d):.2f} ms")
    print(f"  gateway + stdio bridge:     median {gm:.2f} ms, p90 {p90(g):.2f} ms")
    print(f"  added by Skyport:           {gm - dm:.2f} ms per call (ratio {gm / dm:.2f})")


if __name__ == "__main__":
    main()
