"""What the console's browser test shares: failures, bounded waits, and an MCP client over the
sidecar's stdin and stdout."""

import json
import queue
import threading
import time

STEP_TIMEOUT = 30


class StepFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise StepFailed(message)


def wait_for(predicate, message, timeout=STEP_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise StepFailed(message)


class StdioClient:
    """MCP over the sidecar's stdin and stdout, one JSON message a line, every wait bounded."""

    def __init__(self, process):
        self.process = process
        self.lines = queue.Queue()
        self.next_id = 1
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, message):
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def start_request(self, method, params):
        """Sends a request without waiting; returns its id (read the answer with `answer`)."""
        request_id = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return request_id

    def answer(self, request_id, notifications, timeout=STEP_TIMEOUT, what=None):
        """The response to `request_id`; notifications read on the way are appended to the list."""
        what = what or f"request {request_id}"
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            expect(remaining > 0, f"no answer to {what} within {timeout} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                raise StepFailed(f"no answer to {what} within {timeout} s")
            expect(line is not None, f"the sidecar closed stdout before answering {what}")
            message = json.loads(line)
            if message.get("id") == request_id:
                return message
            if "method" in message and "id" not in message:
                notifications.append(message)

    def request(self, method, params, timeout=STEP_TIMEOUT):
        """Sends a request and returns its response (notifications on the way are dropped)."""
        return self.answer(self.start_request(method, params), [], timeout, what=method)
