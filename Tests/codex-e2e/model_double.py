#!/usr/bin/env python3
"""TEST DOUBLE of the model (the LLM) for the Codex end-to-end test. Not a model, and not a mock of
Codex: the real Codex CLI talks to it as to any OpenAI Responses API provider, and it answers from
a script instead of thinking. The LLM is the only part of the chain that cannot run here; Codex,
agent-sidecar, agent-gateway and SQLite are all real.

Usage: model_double.py --script FILE --log FILE [--port 0]

It serves `POST /v1/responses` on 127.0.0.1 (the port it bound is printed on stdout as one JSON
line, `{"url": "http://127.0.0.1:PORT/v1"}`), streams each answer as server-sent events
(response.created, response.output_item.done, response.completed), and appends every request it
receives, whole, to the log (one JSON object a line: {"n", "path", "body"}).

The script is a JSON array of steps, one taken per answer:

  {"call": "TOOL", "arguments": {...}}  call one of the MCP server's tools. The double finds the
      tool where Codex offered it: in a namespace of the request's `tools` (models whose tools
      Codex sends up front), or, when Codex offered a `tool_search` tool instead (models whose MCP
      tools it defers), it first answers with a `tool_search_call` for the tool's name and calls
      the tool from the namespace Codex returns in the `tool_search_output`. A tool found nowhere
      ends the turn with the text "TOOL NOT OFFERED: TOOL".
  {"wait_for": "PATH", "seconds": N}  before answering the next step, wait (at most N seconds)
      until PATH exists: the test driver uses it to change the world (restart the gateway) between
      two calls of one Codex session.
  {"say": "TEXT"}  a final assistant message: ends the turn.

After the last step every request is answered with "done".
"""
import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Script:
    def __init__(self, steps, log_path):
        self.steps = list(steps)
        self.position = 0
        self.log_path = log_path
        self.count = 0
        self.searched = set()
        self.lock = threading.Lock()

    def log(self, path, body):
        with self.lock:
            self.count += 1
            number = self.count
            with open(self.log_path, "a") as handle:
                handle.write(json.dumps({"n": number, "path": path, "body": body}) + "\n")
        return number

    def next_item(self, body):
        """The output item answering this request."""
        with self.lock:
            while self.position < len(self.steps) and "wait_for" in self.steps[self.position]:
                step = self.steps[self.position]
                self.position += 1
                deadline = time.monotonic() + float(step.get("seconds", 30))
                while not os.path.exists(step["wait_for"]) and time.monotonic() < deadline:
                    time.sleep(0.05)
            if self.position >= len(self.steps):
                return message("done")
            step = self.steps[self.position]
            if "say" in step:
                self.position += 1
                return message(step["say"])
            tool = step["call"]
            namespace = find_namespace(body, tool)
            if namespace is None and tool not in self.searched and offers_tool_search(body):
                self.searched.add(tool)
                return {
                    "type": "tool_search_call", "call_id": f"search_{self.position}", "status": "completed",
                    "execution": "client", "arguments": {"query": tool, "limit": 8},
                }
            self.position += 1
            if namespace is None:
                return message(f"TOOL NOT OFFERED: {tool}")
            return {
                "type": "function_call", "call_id": f"call_{self.position}", "namespace": namespace, "name": tool,
                "arguments": json.dumps(step.get("arguments", {})),
            }


def message(text):
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def offers_tool_search(body):
    return any(tool.get("type") == "tool_search" for tool in body.get("tools", []))


def namespaces(body):
    """Every namespace Codex offered: in `tools`, and in the tool_search_output items of the input."""
    for tool in body.get("tools", []):
        if tool.get("type") == "namespace":
            yield tool
    for item in body.get("input", []):
        if item.get("type") == "tool_search_output":
            for tool in item.get("tools", []):
                if tool.get("type") == "namespace":
                    yield tool


def find_namespace(body, tool):
    for namespace in namespaces(body):
        if namespace.get("name", "").startswith("mcp__") and any(t.get("name") == tool for t in namespace.get("tools", [])):
            return namespace["name"]
    return None


def handler(script):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            script.log(self.path, None)
            self.reply(404, "application/json", b'{"error":{"message":"the model double serves POST /v1/responses only"}}')

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(min(length, 64 << 20))
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"unparsed": raw.decode("utf-8", "replace")[:2000]}
            number = script.log(self.path, body)
            if not self.path.rstrip("/").endswith("/responses"):
                self.reply(404, "application/json", b'{"error":{"message":"not found"}}')
                return
            item = script.next_item(body)
            item.setdefault("id", f"item_{number}")
            response_id = f"resp_{number}"
            events = [
                ("response.created", {"type": "response.created", "response": {"id": response_id}}),
                ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
                ("response.completed", {
                    "type": "response.completed",
                    "response": {"id": response_id, "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}},
                }),
            ]
            stream = b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)
            self.reply(200, "text/event-stream", stream)

        def reply(self, status, content_type, payload):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def main():
    parser = argparse.ArgumentParser(description="TEST DOUBLE of the model: a scripted OpenAI Responses API server")
    parser.add_argument("--script", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args()
    with open(options.script) as handle:
        steps = json.load(handle)
    server = ThreadingHTTPServer(("127.0.0.1", options.port), handler(Script(steps, options.log)))
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}/v1"}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
