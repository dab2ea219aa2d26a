#!/usr/bin/env python3
"""fault-proxy: an HTTP/1.1-aware loopback proxy that injects faults between a client (agent-sidecar)
and its upstream (agent-gateway or mcp-fixture-server), for the reliability tests.

Python standard library only, so it adds nothing to the Swift build and runs wherever the tests
already need python3.

CLI
  fault-proxy.py [--upstream http://127.0.0.1:PORT] [--tls-cert PEM --tls-key PEM] [--verbose]
  Listens on 127.0.0.1 (port 0) and, once listening, prints exactly one line to stdout:
  {"url":"http(s)://127.0.0.1:PORT","control":"http://127.0.0.1:PORT2"}. Logs go to stderr.
  With --tls-cert/--tls-key the listener speaks TLS (the upstream side is always plain HTTP).
  It exits on SIGTERM or SIGINT, and when its stdin is closed (so a test that dies leaves no proxy).

Relaying
  Each client connection gets its own upstream connection, opened at its first request; requests
  and responses are relayed as they are (keep-alive included). When the upstream closes its side,
  the client connection is closed after the response. Framing is parsed (Content-Length, chunked,
  or until close) so that faults can cut a response at an exact place.

Faults (rules; the first rule whose `match` fits a request and whose `count` is not used up applies)
  POST /fault {"fault": NAME, "match": {...}, "count": N, ...}   count omitted or null: every match.
  match keys (all optional): "httpMethod", "path" (exact), "rpc" (JSON-RPC method), "tool" (tools/call name).
  status     {"status": 503, "retryAfter": "1", "body": "…", "contentType": "application/json", "forward": false}:
             answered by the proxy. body defaults to a gateway-style error JSON. With forward true the
             request reaches the upstream first (a write commits) and its answer is thrown away.
  reset      {"afterBytes": 0}: forwarded (so a write commits), then the first afterBytes bytes of the
             response (status line and headers included) are relayed and the client connection is
             reset (TCP RST). The response is lost.
  stall-headers {"forward": false}: nothing is ever answered; the connection is held until the
             client leaves. With forward true the request reaches the upstream first.
  stall-body {"afterBytes": N}: forwarded; the head and the first N body bytes (default half the
             body) are relayed, then nothing more until the client leaves.
  truncate   {"afterEvents": 1}: forwarded; the response head is relayed with the framing replaced by
             `Connection: close`, then the decoded body up to the end of the first afterEvents SSE
             events (for a JSON body: its first half), then the connection is closed cleanly (FIN).
  oversize   {"bytes": N, "sse": false}: answered by the proxy with a valid JSON-RPC result for the
             request's id whose size is N bytes (Content-Length, or an SSE stream when sse is true).
  delay      {"ms": N}: forwarded after N ms.
  POST /clear          drops every rule and reopens the listener if it was closed.
  POST /refuse         closes the listener (connections are refused) and resets every open client
                       connection, as if the upstream process had died. /clear reopens it on the same port.
  POST /upstream {"url": "http://127.0.0.1:PORT"}  sends new connections elsewhere.
  GET  /log            {"requests": [{"n","httpMethod","path","rpc","tool","id","idempotencyKey",
                       "argumentKey","fault"}], "accepted": n, "open": n}. No header value is logged
                       except Idempotency-Key (never Authorization).
  POST /clear-log      empties the log.
"""

import argparse
import asyncio
import json
import signal
import socket
import ssl
import struct
import sys
import urllib.parse

MAX_HEAD = 64 * 1024


def log(verbose, *parts):
    if verbose:
        print("fault-proxy:", *parts, file=sys.stderr, flush=True)


class HTTPMessageHead:
    def __init__(self, start_line, headers, raw):
        self.start_line = start_line
        self.headers = headers  # list of (name, value)
        self.raw = raw

    def header(self, name):
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    @property
    def status(self):
        parts = self.start_line.split(" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


async def read_head(reader):
    """The start line and headers, or None at a clean end of stream."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise
    except asyncio.LimitOverrunError:
        raise ValueError("head too large")
    lines = raw[:-4].decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip(), value.strip()))
    return HTTPMessageHead(lines[0], headers, raw)


async def read_request_body(reader, head):
    length = head.header("content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    if (head.header("transfer-encoding") or "").lower() == "chunked":
        body = b""
        async for raw, data in read_chunked(reader):
            body += data
        return body
    return b""


async def read_chunked(reader):
    """Yields (raw bytes as framed, decoded data) for each chunk, the terminator included."""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            trailer = b""
            while True:
                line = await reader.readuntil(b"\r\n")
                trailer += line
                if line == b"\r\n":
                    break
            yield size_line + trailer, b""
            return
        data = await reader.readexactly(size)
        crlf = await reader.readexactly(2)
        yield size_line + data + crlf, data


async def response_pieces(reader, head, request_method):
    """Yields (raw, decoded) pieces of a response body as they arrive; raw is what goes on the wire."""
    status = head.status
    if request_method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return
    if (head.header("transfer-encoding") or "").lower() == "chunked":
        async for piece in read_chunked(reader):
            yield piece
        return
    length = head.header("content-length")
    if length is not None:
        remaining = int(length)
        while remaining > 0:
            data = await reader.read(min(remaining, 64 * 1024))
            if not data:
                raise ConnectionError("upstream closed mid-body")
            remaining -= len(data)
            yield data, data
        return
    while True:
        data = await reader.read(64 * 1024)
        if not data:
            return
        yield data, data


def describe(head, body):
    method, target = head.start_line.split(" ", 2)[:2]
    entry = {"httpMethod": method, "path": urllib.parse.urlsplit(target).path, "rpc": None, "tool": None, "id": None,
             "idempotencyKey": head.header("idempotency-key"), "argumentKey": None}
    if body:
        try:
            message = json.loads(body)
        except ValueError:
            message = None
        if isinstance(message, dict):
            entry["rpc"] = message.get("method")
            entry["id"] = message.get("id")
            params = message.get("params") if isinstance(message.get("params"), dict) else {}
            if entry["rpc"] == "tools/call":
                entry["tool"] = params.get("name")
                arguments = params.get("arguments") if isinstance(params.get("arguments"), dict) else {}
                entry["argumentKey"] = arguments.get("idempotencyKey")
    return entry


def reset_connection(writer):
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


def gateway_error(status):
    code = {401: "token_invalid", 403: "forbidden", 429: "rate_limited", 500: "internal_error"}.get(status, "unavailable")
    retryable = status in (429, 500, 502, 503, 504)
    return json.dumps({"error": {"code": code, "message": f"injected by fault-proxy (HTTP {status})", "retryable": retryable}})


REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class FaultProxy:
    def __init__(self, upstream, ssl_context, verbose):
        self.upstream = upstream  # (host, port) or None
        self.ssl_context = ssl_context
        self.verbose = verbose
        self.rules = []
        self.requests = []
        self.accepted = 0
        self.clients = set()
        self.server = None
        self.port = 0

    # -- listener

    async def open_listener(self):
        if self.server is not None:
            return
        self.server = await asyncio.start_server(
            self.handle_client, "127.0.0.1", self.port, ssl=self.ssl_context, reuse_address=True, limit=MAX_HEAD)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close_listener(self):
        if self.server is None:
            return
        self.server.close()
        await self.server.wait_closed()
        self.server = None
        for writer in list(self.clients):
            reset_connection(writer)

    # -- rules

    def take_rule(self, entry):
        for rule in self.rules:
            match = rule.get("match") or {}
            if any(entry.get(key) != value for key, value in match.items()):
                continue
            count = rule.get("count")
            if count is not None:
                if count <= 0:
                    continue
                rule["count"] = count - 1
            return rule
        return None

    # -- connections

    async def handle_client(self, reader, writer):
        self.accepted += 1
        self.clients.add(writer)
        upstream = None
        try:
            while True:
                head = await read_head(reader)
                if head is None:
                    break
                body = await read_request_body(reader, head)
                entry = describe(head, body)
                rule = self.take_rule(entry)
                entry["n"] = len(self.requests) + 1
                entry["fault"] = rule["fault"] if rule else None
                self.requests.append(entry)
                log(self.verbose, entry)
                keep, upstream = await self.serve_one(head, body, entry, rule, reader, writer, upstream)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, ssl.SSLError, OSError):
            pass
        finally:
            self.clients.discard(writer)
            if upstream is not None:
                upstream[1].close()
            if not writer.transport.is_closing():
                writer.close()

    async def connect_upstream(self):
        if self.upstream is None:
            raise ConnectionError("no upstream")
        return await asyncio.open_connection(*self.upstream, limit=MAX_HEAD)

    async def serve_one(self, head, body, entry, rule, reader, writer, upstream):
        """Relays or breaks one exchange. Returns (keep the client connection, upstream connection)."""
        fault = rule["fault"] if rule else "pass"
        if fault == "status" and rule.get("forward"):
            # The upstream does the work; its answer is replaced (a balancer's 503 after the commit).
            try:
                upstream = upstream or await self.connect_upstream()
                upstream[1].write(head.raw + body)
                await upstream[1].drain()
                answered = await read_head(upstream[0])
                async for _ in response_pieces(upstream[0], answered, entry["httpMethod"]):
                    pass
                if (answered.header("connection") or "").lower() == "close":
                    upstream[1].close()
                    upstream = None
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                pass
        if fault == "status":
            status = int(rule.get("status", 503))
            payload = rule.get("body")
            payload = (payload if payload is not None else gateway_error(status)).encode()
            lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
                     f"Content-Type: {rule.get('contentType', 'application/json')}", f"Content-Length: {len(payload)}"]
            if rule.get("retryAfter") is not None:
                lines.append(f"Retry-After: {rule['retryAfter']}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            return True, upstream
        if fault == "oversize":
            await self.send_oversize(rule, entry, writer)
            return True, upstream
        if fault == "stall-headers" and not rule.get("forward", False):
            await self.hold(reader)
            return False, upstream
        if fault == "delay":
            await asyncio.sleep(float(rule.get("ms", 0)) / 1000)

        # Forward the request.
        if upstream is None:
            try:
                upstream = await self.connect_upstream()
            except OSError:
                # The upstream is gone: the client sees its connection reset.
                reset_connection(writer)
                return False, None
        up_reader, up_writer = upstream
        outgoing = head.raw + body
        up_writer.write(outgoing)
        await up_writer.drain()
        response = await read_head(up_reader)
        if response is None:
            reset_connection(writer)
            return False, upstream
        method = entry["httpMethod"]
        upstream_closes = (response.header("connection") or "").lower() == "close" or (
            response.header("content-length") is None and (response.header("transfer-encoding") or "").lower() != "chunked"
            and response.status not in (204, 304) and response.status >= 200)

        if fault == "stall-headers":
            await self.hold(reader)
            return False, upstream
        if fault == "reset":
            budget = int(rule.get("afterBytes", 0))
            sent = 0
            wire = response.raw
            pieces = response_pieces(up_reader, response, method)
            while sent < budget:
                if not wire:
                    try:
                        wire = (await pieces.__anext__())[0]
                    except StopAsyncIteration:
                        break
                take = wire[:budget - sent]
                writer.write(take)
                sent += len(take)
                wire = wire[len(take):]
            await writer.drain()
            await asyncio.sleep(0.05)
            reset_connection(writer)
            return False, upstream
        if fault == "stall-body":
            writer.write(response.raw)
            collected = b""
            async for raw, _ in response_pieces(up_reader, response, method):
                collected += raw
            budget = int(rule["afterBytes"]) if rule.get("afterBytes") is not None else len(collected) // 2
            writer.write(collected[:budget])
            await writer.drain()
            await self.hold(reader)
            return False, upstream
        if fault == "truncate":
            kept = [(name, value) for name, value in response.headers
                    if name.lower() not in ("content-length", "transfer-encoding", "connection")]
            kept.append(("Connection", "close"))
            head_bytes = ("\r\n".join([response.start_line] + [f"{n}: {v}" for n, v in kept]) + "\r\n\r\n").encode()
            writer.write(head_bytes)
            events = int(rule.get("afterEvents", 1))
            is_sse = (response.header("content-type") or "").startswith("text/event-stream")
            decoded = b""
            async for _, data in response_pieces(up_reader, response, method):
                decoded += data
                if is_sse and decoded.replace(b"\r\n", b"\n").count(b"\n\n") >= events:
                    break
            if is_sse:
                normalized = decoded.replace(b"\r\n", b"\n")
                cut = 0
                for _ in range(events):
                    index = normalized.find(b"\n\n", cut)
                    if index < 0:
                        break
                    cut = index + 2
                writer.write(normalized[:cut])
            else:
                writer.write(decoded[:len(decoded) // 2])
            await writer.drain()
            writer.close()
            return False, upstream

        # pass (and delay): relay everything.
        writer.write(response.raw)
        async for raw, _ in response_pieces(up_reader, response, method):
            writer.write(raw)
            await writer.drain()
        await writer.drain()
        if upstream_closes:
            return False, upstream
        return True, upstream

    async def send_oversize(self, rule, entry, writer):
        size = int(rule.get("bytes", 1024 * 1024))
        prefix = json.dumps({"jsonrpc": "2.0", "id": entry["id"], "result": {"content": [{"type": "text", "text": ""}]}})
        # Put the filler inside the text: ...,"text":"xxxx"}]}}
        split = prefix.index('"text": ""') + len('"text": "')
        filler = max(0, size - len(prefix))
        document = prefix[:split].encode() + b"x" * filler + prefix[split:].encode()
        if rule.get("sse"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            frame = b"event: message\ndata: " + document + b"\n\n"
            for start in range(0, len(frame), 256 * 1024):
                chunk = frame[start:start + 256 * 1024]
                writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(document))
            for start in range(0, len(document), 256 * 1024):
                writer.write(document[start:start + 256 * 1024])
                await writer.drain()
        await writer.drain()

    async def hold(self, reader):
        """Waits until the client leaves (bounded to 10 minutes)."""
        try:
            await asyncio.wait_for(reader.read(), timeout=600)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass

    # -- control

    async def handle_control(self, reader, writer):
        try:
            head = await read_head(reader)
            if head is None:
                return
            body = await read_request_body(reader, head)
            method, target = head.start_line.split(" ", 2)[:2]
            status, answer = await self.control(method, urllib.parse.urlsplit(target).path, json.loads(body) if body else {})
            payload = json.dumps(answer).encode()
            writer.write(b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % (status, len(payload)) + payload)
            await writer.drain()
        except (ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def control(self, method, path, body):
        if method == "POST" and path == "/fault":
            if body.get("fault") not in ("pass", "status", "reset", "stall-headers", "stall-body", "truncate", "oversize", "delay"):
                return 400, {"error": f"unknown fault {body.get('fault')!r}"}
            self.rules.append(dict(body))
            return 200, {"ok": True}
        if method == "POST" and path == "/clear":
            self.rules = []
            await self.open_listener()
            return 200, {"ok": True}
        if method == "POST" and path == "/refuse":
            await self.close_listener()
            return 200, {"ok": True}
        if method == "POST" and path == "/upstream":
            parsed = urllib.parse.urlsplit(body["url"])
            self.upstream = (parsed.hostname, parsed.port or 80)
            return 200, {"ok": True}
        if method == "GET" and path == "/log":
            return 200, {"requests": self.requests, "accepted": self.accepted, "open": len(self.clients)}
        if method == "POST" and path == "/clear-log":
            self.requests = []
            return 200, {"ok": True}
        return 404, {"error": "no such control endpoint"}


async def main():
    parser = argparse.ArgumentParser(description="HTTP fault-injecting proxy for reliability tests (loopback only).")
    parser.add_argument("--upstream")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--verbose", action="store_true")
    options = parser.parse_args()
    upstream = None
    if options.upstream:
        parsed = urllib.parse.urlsplit(options.upstream)
        upstream = (parsed.hostname, parsed.port or 80)
    context = None
    if options.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(options.tls_cert, options.tls_key)
    proxy = FaultProxy(upstream, context, options.verbose)
    await proxy.open_listener()
    control = await asyncio.start_server(proxy.handle_control, "127.0.0.1", 0)
    scheme = "https" if context else "http"
    print(json.dumps({"url": f"{scheme}://127.0.0.1:{proxy.port}", "control": f"http://127.0.0.1:{control.sockets[0].getsockname()[1]}"}),
          flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    # Exit when the parent closes our stdin, so a crashed test run leaves no proxy behind.
    loop.add_reader(sys.stdin.fileno(), lambda: stop.done() or (sys.stdin.buffer.read1(65536) or stop.set_result(None)))
    await stop


if __name__ == "__main__":
    asyncio.run(main())
