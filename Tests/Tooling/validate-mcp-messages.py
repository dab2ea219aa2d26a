#!/usr/bin/env python3
"""Validates every message a server wrote to stdout against one MCP revision.

Usage: validate-mcp-messages.py --revision REV --sent SENT.jsonl --received RECEIVED.jsonl

SENT holds the client's messages (to learn which method each response answers), RECEIVED the
server's stdout lines. Each received line must be one JSON-RPC message (or, in 2025-03-26 only, a
batch array of them) and be well formed for REV.

Two independent oracles, neither of them this project's code:

* the wire types of the official MCP Python SDK, `mcp_types` (PyPI `mcp-types`, pinned by
  scripts/install-deps): per-revision surface maps keyed by (method, revision), whose models are
  generated from the specification's schema.json for 2025-11-25 (shapes of every handshake
  revision) and 2026-07-28. Every result is checked against the result type of the method it
  answers, every notification against its type;
* the envelope rules below, written from the specification's text (basic/index.mdx of each
  revision and JSON-RPC 2.0), which the pydantic models leave loose:
  - `jsonrpc` is exactly "2.0"; a response carries exactly one of `result` and `error`;
  - an id is a string or an integer (3.0 counts: JSON has one number type), never a fraction, a
    boolean or null, with one exception:
    JSON-RPC 2.0 (section 5) requires `"id": null` on an error answering a request whose id could
    not be read (a parse error). Up to 2025-06-18 MCP's schema types `id` as string|integer
    only; 2025-11-25 and later make `id` optional on an error response instead, so such an error
    omits it there and must not carry null;
  - `error.code` is an integer and `error.message` a string;
  - batches (JSON arrays) exist in 2025-03-26 only;
  - this server never sends a request (a message with both `method` and `id`);
  - `initialize` answers with a handshake revision, and not at all in 2026-07-28.

The checks no longer read the specification's schema files: they are not in this repository
(a clone must pass its tests with nothing beside it).
Prints one line per problem and exits 1 if there is any.
"""
import argparse
import json
import sys

try:
    import pydantic
    from mcp_types import methods
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, KNOWN_PROTOCOL_VERSIONS
except ImportError as error:  # pragma: no cover - the message is the point
    print(
        f"validate-mcp-messages: {error}; run scripts/install-deps --python and use .venv/mcp2/bin/python",
        file=sys.stderr,
    )
    sys.exit(2)


def is_request_id(value):
    # JSON has one number type: 3.0 is the integer 3 (JSON Schema's "integer" accepts it too).
    if isinstance(value, bool):
        return False
    return isinstance(value, (str, int)) or (isinstance(value, float) and value.is_integer())


def first_errors(error, limit=3):
    if isinstance(error, pydantic.ValidationError):
        return [f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()[:limit]]
    return [str(error)]


class RevisionOracle:
    def __init__(self, revision):
        if revision not in KNOWN_PROTOCOL_VERSIONS:
            raise SystemExit(f"validate-mcp-messages: unknown revision {revision}; known: {', '.join(KNOWN_PROTOCOL_VERSIONS)}")
        self.revision = revision
        self.handshake = revision in HANDSHAKE_PROTOCOL_VERSIONS
        self.null_error_id_allowed = KNOWN_PROTOCOL_VERSIONS.index(revision) <= KNOWN_PROTOCOL_VERSIONS.index("2025-06-18")

    def envelope(self, message):
        problems = []
        if message.get("jsonrpc") != "2.0":
            problems.append('`jsonrpc` is not "2.0"')
        has_result, has_error = "result" in message, "error" in message
        if has_result and has_error:
            problems.append("a response carries both `result` and `error`")
        if has_result:
            if not is_request_id(message.get("id")):
                problems.append(f"a result's id must be a string or an integer, not {json.dumps(message.get('id'))}")
            if not isinstance(message["result"], dict):
                problems.append("`result` is not an object")
        elif has_error:
            if "id" not in message:
                if self.null_error_id_allowed:
                    problems.append('an error without `id` (JSON-RPC needs `"id": null` when the id is unknown)')
            elif message["id"] is None:
                if not self.null_error_id_allowed:
                    problems.append(f"`\"id\": null` on an error: {self.revision} omits the id instead")
            elif not is_request_id(message["id"]):
                problems.append(f"an error's id must be a string or an integer, not {json.dumps(message['id'])}")
            error = message["error"]
            if not isinstance(error, dict):
                problems.append("`error` is not an object")
            else:
                if not isinstance(error.get("code"), int) or isinstance(error.get("code"), bool):
                    problems.append("`error.code` is not an integer")
                if not isinstance(error.get("message"), str):
                    problems.append("`error.message` is not a string")
        elif "method" in message:
            if not isinstance(message["method"], str):
                problems.append("`method` is not a string")
            if "id" in message:
                problems.append("the server sent a request; this server must never do that")
            if "params" in message and not isinstance(message["params"], dict):
                problems.append("notification `params` is not an object")
        else:
            problems.append("neither a response, an error nor a notification")
        return problems

    def result(self, method, result):
        if method == "initialize":
            if not self.handshake:
                return [f"an initialize result in {self.revision}, which has no initialize handshake"]
            if result.get("protocolVersion") not in HANDSHAKE_PROTOCOL_VERSIONS:
                return [f"initialize answered with protocolVersion {json.dumps(result.get('protocolVersion'))}"]
        if (method, self.revision) not in methods.SERVER_RESULTS:
            return []  # not a method of this revision (the old schema check passed these too)
        try:
            methods.validate_server_result(method, self.revision, result)
        except (pydantic.ValidationError, ValueError, TypeError) as error:
            return [f"{method} result: {problem}" for problem in first_errors(error)]
        return []

    def notification(self, message):
        model = methods.SERVER_NOTIFICATIONS.get((message.get("method"), self.revision))
        if model is None:
            return []
        try:
            model.model_validate(message)
        except pydantic.ValidationError as error:
            return [f"{message['method']}: {problem}" for problem in first_errors(error)]
        return []


def read_methods(path):
    """Maps each request id the client sent (as JSON text) to its method."""
    found = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            for item in message if isinstance(message, list) else [message]:
                if isinstance(item, dict) and "id" in item and isinstance(item.get("method"), str):
                    found[json.dumps(item["id"])] = item["method"]
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--revision", required=True)
    parser.add_argument("--sent", required=True)
    parser.add_argument("--received", required=True)
    args = parser.parse_args()

    oracle = RevisionOracle(args.revision)
    sent_methods = read_methods(args.sent)

    def validate_message(message):
        if not isinstance(message, dict):
            return ["a message is not a JSON object"]
        problems = oracle.envelope(message)
        if problems:
            return problems
        if "result" in message:
            method = sent_methods.get(json.dumps(message.get("id")))
            if method:
                problems += oracle.result(method, message["result"])
        elif "method" in message:
            problems += oracle.notification(message)
        return problems

    failures = 0
    count = 0
    with open(args.received) as handle:
        for number, line in enumerate(handle, 1):
            text = line.rstrip("\n")
            if not text:
                print(f"line {number}: empty line on stdout")
                failures += 1
                continue
            try:
                message = json.loads(text)
            except ValueError as error:
                print(f"line {number}: not JSON ({error}): {text[:120]}")
                failures += 1
                continue
            if isinstance(message, list):
                if args.revision != "2025-03-26":
                    print(f"line {number}: a batch array, which only 2025-03-26 allows: {text[:120]}")
                    failures += 1
                    continue
                if not message:
                    print(f"line {number}: an empty batch")
                    failures += 1
                    continue
            for item in message if isinstance(message, list) else [message]:
                count += 1
                for problem in validate_message(item):
                    print(f"line {number}: {problem}: {text[:200]}")
                    failures += 1
    print(f"validated {count} message(s) against {args.revision}: {failures} problem(s)", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
