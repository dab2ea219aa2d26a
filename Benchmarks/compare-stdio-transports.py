#!/usr/bin/env python3
"""Measures two stdio MCP servers' transports side by side: agent-sidecar's own, and the MCP
swift-sdk 0.12.1 StdioTransport (Benchmarks/SwiftSDKStdio). See docs/architecture.md.

For each server: whether stdin/stdout were switched to O_NONBLOCK (they are shared with the parent);
ping round trips with the server idle between requests (20 ms gaps) and back to back; and frame
integrity under back-pressure: 16 concurrent 1 MB tool results while the client does not read for
2 s, then every stdout line must parse as one JSON message.

Usage: compare-stdio-transports.py SDK_SERVER SIDECAR FIXTURE
"""
import json
import os
import statistics
import subprocess
import sys
import time

INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "compare", "version": "1"}}}


class Server:
    def __init__(self, argv):
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
        self.buffer = b""

    def send(self, message):
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def line(self):
        while b"\n" not in self.buffer:
            chunk = os.read(self.process.stdout.fileno(), 1 << 20)
            if not chunk:
                raise EOFError("server closed stdout")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def call(self, message):
        self.send(message)
        while True:
            response = json.loads(self.line())
            if response.get("id") == message["id"]:
                return response

    def nonblocking(self):
        flags = {}
        for fd in (0, 1):
            with open(f"/proc/{self.process.pid}/fdinfo/{fd}") as handle:
                octal = next(line for line in handle if line.startswith("flags:")).split()[1]
            flags[fd] = bool(int(octal, 8) & os.O_NONBLOCK)
        return flags

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def measure(name, argv, big_arguments):
    server = Server(argv)
    server.call(INIT)
    server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    flags = server.nonblocking()
    idle, busy = [], []
    for number in range(100):
        time.sleep(0.02)
        started = time.perf_counter()
        server.call({"jsonrpc": "2.0", "id": 1000 + number, "method": "ping"})
        idle.append((time.perf_counter() - started) * 1000)
    for number in range(1000):
        started = time.perf_counter()
        server.call({"jsonrpc": "2.0", "id": 5000 + number, "method": "ping"})
        busy.append((time.perf_counter() - started) * 1000)
    # Back-pressure: 16 large results in flight while nobody reads stdout.
    for number in range(16):
        server.send({"jsonrpc": "2.0", "id": 9000 + number, "method": "tools/call", "params": {"name": "big", "arguments": big_arguments}})
    time.sleep(2)
    good, bad = 0, 0
    deadline = time.time() + 60
    while good + bad < 16 and time.time() < deadline:
        try:
            message = json.loads(server.line())
            if isinstance(message, dict) and str(message.get("id", "")).startswith("90"):
                good += 1
        except (ValueError, UnicodeDecodeError):
            bad += 1
        except EOFError:
            break
    flags_after = server.nonblocking() if server.process.poll() is None else flags
    server.close()
    return {
        "server": name,
        "stdin/stdout made non-blocking": f"{flags_after[0]}/{flags_after[1]}",
        "idle ping ms p50 / p90": f"{statistics.median(idle):.2f} / {sorted(idle)[89]:.2f}",
        "back-to-back ping ms p50": f"{statistics.median(busy):.3f}",
        "1 MB results under back-pressure: whole / corrupt": f"{good} / {bad}",
    }


def main():
    sdk_server, sidecar, fixture = sys.argv[1:4]
    fixture_process = subprocess.Popen([fixture, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = json.loads(fixture_process.stdout.readline())["url"]
    try:
        rows = [
            measure("agent-sidecar", [sidecar, "serve", "--upstream", url, "--log-level", "error"], {"bytes": 1_000_000}),
            measure("swift-sdk 0.12.1 StdioTransport", [sdk_server], {"bytes": 1_000_000}),
        ]
    finally:
        fixture_process.terminate()
    keys = list(rows[0].keys())
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in keys) + " |")


if __name__ == "__main__":
    main()
