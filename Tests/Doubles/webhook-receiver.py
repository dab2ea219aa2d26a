#!/usr/bin/env python3
"""A TEST DOUBLE of a team's webhook endpoint, on loopback, for the gateway's approval webhook.

Usage: webhook-receiver.py --port 0 [--fail N]

Prints `listening on http://127.0.0.1:PORT`. Every POST is recorded (headers that start with
X-Agent-Gateway-, and the body as text); the first N answer 503, the rest 204.
GET /_double/received returns {"received": [{"status", "headers", "body"}, ...]}. Bounded: bodies
of at most 1 MiB, at most 1,000 records. Stops on SIGTERM.
"""
import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
received = []


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail", type=int, default=0)
    options = parser.parse_args()
    failures = {"left": options.fail}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            if length > 1 << 20:
                self.send_response(413)
                self.end_headers()
                return
            body = self.rfile.read(length).decode("utf-8", errors="replace")
            with lock:
                status = 503 if failures["left"] > 0 else 204
                failures["left"] = max(0, failures["left"] - 1)
                if len(received) < 1000:
                    headers = {k: v for k, v in self.headers.items() if k.lower().startswith("x-agent-gateway-")}
                    received.append({"status": status, "path": self.path, "headers": headers, "body": body})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            with lock:
                data = json.dumps({"received": received}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
