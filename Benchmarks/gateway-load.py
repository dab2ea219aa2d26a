#!/usr/bin/env python3
"""Throughput check for agent-gateway over loopback: N clients with keep-alive connections send
tools/call requests (reads or writes) for a fixed time and report calls per second.

Usage: Benchmarks/gateway-load.py --binary .build/release/agent-gateway [--clients 16] [--seconds 10]
It makes a fresh database in a temp dir, seeds it, pairs one agent per client (Ed25519 via the
`cryptography` package), starts `serve --port 0` and measures reads, then writes.
"""
import argparse, asyncio, base64, json, os, subprocess, tempfile, time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization


def run(binary, *args):
    return subprocess.run([binary, *args], check=True, capture_output=True, text=True).stdout.strip()


class Connection:
    def __init__(self, host, port):
        self.host, self.port = host, port

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Content-Type: application/json",
                 "Accept: application/json, text/event-stream", f"Content-Length: {len(data)}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        response_headers = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            k, v = line.decode().split(":", 1)
            response_headers[k.strip().lower()] = v.strip()
        length = int(response_headers.get("content-length", "0"))
        payload = await self.reader.readexactly(length) if length else b""
        return status, response_headers, payload


async def client_session(url_host, port, binary, db):
    agent = run(binary, "agent", "create", "--db", db, "--owner", "alice", "--name", "load", "--project", "WEB",
                "--scope", "project:read", "issue:create", "issue:comment")
    code = json.loads(run(binary, "agent", "pair", "--db", db, agent, "--json"))["code"]
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    connection = Connection(url_host, port)
    await connection.open()
    status, _, body = await connection.request("POST", "/api/v1/pairing/claim",
                                               {"code": code, "publicKey": base64.b64encode(public).decode(), "deviceName": "load"})
    assert status == 201, body
    device = json.loads(body)["deviceId"]
    timestamp, nonce = int(time.time()), base64.b64encode(os.urandom(16)).decode()
    origin = f"http://{url_host}:{port}"
    message = f"agent-sidecar-session-v1\n{origin}\n{device}\n{timestamp}\n{nonce}".encode()
    status, _, body = await connection.request("POST", "/api/v1/sessions", {
        "deviceId": device, "timestamp": timestamp, "nonce": nonce, "signature": base64.b64encode(key.sign(message)).decode()})
    assert status == 201, body
    headers = {"Authorization": "Bearer " + json.loads(body)["token"]}
    status, response_headers, body = await connection.request("POST", "/mcp", {
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "load", "version": "1"}}}, headers)
    assert status == 200, body
    headers["Mcp-Session-Id"] = response_headers["mcp-session-id"]
    headers["MCP-Protocol-Version"] = "2025-11-25"
    return connection, headers


async def drive(sessions, seconds, make_call):
    deadline = time.monotonic() + seconds
    counts, errors, latencies = [0] * len(sessions), [0] * len(sessions), []

    async def worker(index, connection, headers):
        sequence = 0
        while time.monotonic() < deadline:
            sequence += 1
            name, arguments, extra = make_call(index, sequence)
            started = time.monotonic()
            status, _, body = await connection.request("POST", "/mcp", {
                "jsonrpc": "2.0", "id": sequence, "method": "tools/call", "params": {"name": name, "arguments": arguments}},
                {**headers, **extra})
            latencies.append(time.monotonic() - started)
            if status == 200 and b'"isError":false' in body:
                counts[index] += 1
            else:
                errors[index] += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(i, c, h) for i, (c, h) in enumerate(sessions)))
    elapsed = time.monotonic() - started
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0
    return sum(counts) / elapsed, sum(errors), p(0.5), p(0.99)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build/release/agent-gateway")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--durability", default="normal")
    options = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="gateway-load-")
    db = os.path.join(directory, "gateway.sqlite")
    run(options.binary, "seed-demo", "--db", db)
    server = subprocess.Popen([options.binary, "serve", "--db", db, "--port", "0", "--read-rate", "10000000", "--write-rate", "10000000",
                               "--durability", options.durability], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = json.loads(server.stdout.readline())["url"]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        sessions = [await client_session(host, int(port), options.binary, db) for _ in range(options.clients)]
        reads = [("get_issue", {"issue": "WEB-1"}), ("search_issues", {"project": "WEB", "limit": 5}), ("list_projects", {})]
        rate, errors, p50, p99 = await drive(sessions, options.seconds, lambda i, n: (*reads[n % len(reads)], {}))
        print(json.dumps({"kind": "read", "clients": options.clients, "callsPerSecond": round(rate), "errors": errors,
                          "p50ms": round(p50, 2), "p99ms": round(p99, 2)}))
        def write(i, n):
            key = f"load-{i}-{n}-{os.getpid()}"
            if n % 2:
                return ("create_issue", {"project": "WEB", "title": f"load {i} {n}"}, {"Idempotency-Key": key})
            return ("comment_issue", {"issue": "WEB-1", "body": f"load {i} {n}"}, {"Idempotency-Key": key})
        rate, errors, p50, p99 = await drive(sessions, options.seconds, write)
        print(json.dumps({"kind": "write", "clients": options.clients, "callsPerSecond": round(rate), "errors": errors,
                          "p50ms": round(p50, 2), "p99ms": round(p99, 2), "durability": options.durability}))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
