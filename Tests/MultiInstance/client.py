"""The client side of the multi-instance tests: an HTTP/1.1 keep-alive connection (plain, or TLS
trusting a CA file), a paired device that mints sessions as the sidecar does, and an MCP session
over the Streamable HTTP transport.

Standard library plus the `cryptography` package (Ed25519), which .venv/mcp1 and .venv/mcp2 have
(scripts/install-deps --python). Every request has a timeout; nothing here retries on its own
except the MCP transport's rule: an unknown Mcp-Session-Id (HTTP 404) is answered by initializing
again, at most `reinit_limit` times per call, and counted.
"""
import base64
import http.client
import json
import os
import socket
import ssl
import time
import urllib.parse

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
except ImportError:  # pragma: no cover - a set-up problem, said in one line
    raise SystemExit("multi-instance: the `cryptography` package is missing; run scripts/install-deps --python "
                     "and use .venv/mcp2/bin/python")

PROTOCOL = "2025-11-25"
REQUEST_TIMEOUT = 30  # seconds for one HTTP exchange


class TransportError(Exception):
    """No HTTP answer: refused, reset, cut or timed out. Whether the request took effect is unknown."""


class RequestFailed(RuntimeError):
    """A set-up request (pairing, session, initialize) answered with an error: its status and code."""

    def __init__(self, what, response):
        self.status = response.status
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        self.code = (error.get("code") if isinstance(error, dict) else None) or f"http_{response.status}"
        super().__init__(f"{what} answered HTTP {response.status} {self.code}")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


class Connection:
    """One keep-alive HTTP/1.1 connection to `base` (http://… or https://…), reopened after a failure."""

    def __init__(self, base, ca_file=None, timeout=REQUEST_TIMEOUT):
        parts = urllib.parse.urlsplit(base)
        self.base = base
        self.host = parts.hostname
        self.port = parts.port
        self.https = parts.scheme == "https"
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if self.https else None
        self.connection = None

    def _open(self):
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.context)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method, path, body=None, headers=None, form=None):
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            content_type = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode() if body is not None else None
            content_type = "application/json"
        all_headers = {"Content-Type": content_type, "Accept": "application/json, text/event-stream"}
        all_headers.update(headers or {})
        if self.connection is None:
            self.connection = self._open()
        try:
            self.connection.request(method, path, body=data, headers=all_headers)
            answer = self.connection.getresponse()
            payload = answer.read()
        except (OSError, http.client.HTTPException, socket.timeout) as error:
            self.close()
            raise TransportError(f"{type(error).__name__}: {error}") from None
        response = Response(answer.status, {name.lower(): value for name, value in answer.getheaders()}, payload)
        if response.headers.get("connection", "").lower() == "close":
            self.close()
        return response

    def close(self):
        if self.connection is not None:
            try:
                self.connection.close()
            except OSError:
                pass
            self.connection = None


class Device:
    """A device paired with an agent: its Ed25519 key and id. Sessions are signed for `origin`."""

    def __init__(self, device_id, key, origin):
        self.device_id = device_id
        self.key = key
        self.origin = origin

    @staticmethod
    def pair(connection, code, origin, name="multi-instance"):
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        response = connection.request("POST", "/api/v1/pairing/claim",
                                      {"code": code, "publicKey": base64.b64encode(public).decode(), "deviceName": name})
        if response.status != 201:
            raise RequestFailed("pairing claim", response)
        return Device(response.json()["deviceId"], key, origin)

    def session_token(self, connection):
        timestamp, nonce = int(time.time()), base64.b64encode(os.urandom(16)).decode()
        message = f"agent-sidecar-session-v1\n{self.origin}\n{self.device_id}\n{timestamp}\n{nonce}".encode()
        response = connection.request("POST", "/api/v1/sessions", {
            "deviceId": self.device_id, "timestamp": timestamp, "nonce": nonce,
            "signature": base64.b64encode(self.key.sign(message)).decode()})
        if response.status != 201:
            raise RequestFailed("POST /api/v1/sessions", response)
        return response.json()["token"]


class Reply:
    """A tools/call answer: HTTP status, the JSON body, and what it means."""

    def __init__(self, response):
        self.status = response.status
        self.headers = response.headers
        self.message = response.json()

    @property
    def result(self):
        return (self.message or {}).get("result") if isinstance(self.message, dict) else None

    @property
    def code(self):
        """None for a success; else the gateway's error code (tool error, REST error or JSON-RPC code)."""
        message = self.message if isinstance(self.message, dict) else {}
        if self.status != 200 and not message:
            return f"http_{self.status}"
        error = message.get("error")
        if isinstance(error, dict):
            return error.get("code") if error.get("code") is not None else f"http_{self.status}"
        result = message.get("result")
        if not isinstance(result, dict):
            return f"http_{self.status}"
        if not result.get("isError"):
            return None if self.status == 200 else f"http_{self.status}"
        structured = result.get("structuredContent") or {}
        if isinstance(structured.get("error"), dict) and structured["error"].get("code"):
            return structured["error"]["code"]
        return "tool_error"

    @property
    def ok(self):
        return self.code is None

    @property
    def retryable(self):
        """Worth sending again with the same idempotency key."""
        if self.status >= 500 or self.status == 429:
            return True
        message = self.message if isinstance(self.message, dict) else {}
        error = message.get("error")
        if isinstance(error, dict) and error.get("retryable"):
            return True
        structured = ((message.get("result") or {}).get("structuredContent") or {}) if isinstance(message.get("result"), dict) else {}
        return bool(isinstance(structured.get("error"), dict) and structured["error"].get("retryable"))

    @property
    def replayed(self):
        return bool(((self.result or {}).get("_meta") or {}).get("io.agent-gateway/replayed"))

    def without_replay_mark(self):
        """The result with the replay mark taken out of _meta, for comparing replies."""
        result = json.loads(json.dumps(self.result))
        meta = result.get("_meta") or {}
        meta.pop("io.agent-gateway/replayed", None)
        if not meta:
            result.pop("_meta", None)
        return result


class MCP:
    """An MCP session over one connection, authenticated by a session token."""

    def __init__(self, connection, token, reinit_limit=0):
        self.connection = connection
        self.token = token
        self.session_id = None
        self.reinit_limit = reinit_limit
        self.reinits = 0
        self.next_id = 0

    def headers(self):
        headers = {"Authorization": "Bearer " + self.token, "MCP-Protocol-Version": PROTOCOL}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        return headers

    def post(self, method, params=None):
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        return self.connection.request("POST", "/mcp", message, self.headers())

    def initialize(self):
        self.session_id = None
        response = self.post("initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                                            "clientInfo": {"name": "multi-instance", "version": "1"}})
        if response.status != 200 or "mcp-session-id" not in response.headers:
            raise RequestFailed("initialize", response)
        self.session_id = response.headers["mcp-session-id"]
        self.connection.request("POST", "/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"}, self.headers())
        return self.session_id

    def request(self, method, params=None):
        """One request; an unknown session (404) is initialized again and the request resent, at most
        reinit_limit times."""
        if self.session_id is None:
            self.initialize()
        renewed = 0
        while True:
            response = self.post(method, params)
            if response.status != 404 or renewed >= self.reinit_limit:
                return response
            renewed += 1
            self.reinits += 1
            self.initialize()

    def call(self, name, arguments):
        return Reply(self.request("tools/call", {"name": name, "arguments": arguments}))
