#!/usr/bin/env python3
"""Validates every message a server wrote to stdout against an MCP revision's schema.json.

Usage: validate-mcp-messages.py --schema-root DIR --revision REV --sent SENT.jsonl --received RECEIVED.jsonl

SENT holds the client's messages (to learn which method each response answers), RECEIVED the
server's stdout lines. Each received line must be one JSON-RPC message (or, for 2025-03-26, a
batch array) and match the schema: responses against the result type of the method they answer,
errors against the error type, notifications against their specific type where the schema has one.

One deliberate allowance: JSON-RPC 2.0 (section 5) requires `"id": null` on an error answering a
request whose id could not be read (a parse error). The schemas before 2025-11-25 type `id` as
string|integer only, so such an error is checked field by field instead.
Prints one line per problem and exits 1 if there is any.
"""
import argparse
import json
import sys

import jsonschema

RESULT_TYPES = {
    "initialize": "InitializeResult",
    "ping": "EmptyResult",
    "tools/list": "ListToolsResult",
    "tools/call": "CallToolResult",
    "server/discover": "DiscoverResult",
    "subscriptions/listen": "SubscriptionsListenResult",
    "logging/setLevel": "EmptyResult",
}
NOTIFICATION_TYPES = {
    "notifications/progress": "ProgressNotification",
    "notifications/message": "LoggingMessageNotification",
    "notifications/tools/list_changed": "ToolListChangedNotification",
    "notifications/subscriptions/acknowledged": "SubscriptionsAcknowledgedNotification",
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--schema-root", required=True)
    parser.add_argument("--revision", required=True)
    parser.add_argument("--sent", required=True)
    parser.add_argument("--received", required=True)
    args = parser.parse_args()

    with open(f"{args.schema_root}/{args.revision}/schema/schema.json") as handle:
        root = json.load(handle)
    defs_key = "$defs" if "$defs" in root else "definitions"
    defs = root[defs_key]
    validator_class = jsonschema.validators.validator_for(root)

    def check(instance, name):
        schema = dict(root)
        schema["$ref"] = f"#/{defs_key}/{name}"
        errors = sorted(validator_class(schema).iter_errors(instance), key=lambda e: e.path)
        return [f"{name}: {e.message} at {list(e.absolute_path)}" for e in errors[:3]]

    methods = {}
    with open(args.sent) as handle:
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
                    methods[json.dumps(item["id"])] = item["method"]

    response_name = "JSONRPCResultResponse" if "JSONRPCResultResponse" in defs else "JSONRPCResponse"
    error_name = "JSONRPCErrorResponse" if "JSONRPCErrorResponse" in defs else "JSONRPCError"

    def validate_message(message):
        problems = []
        if not isinstance(message, dict):
            return ["a message is not a JSON object"]
        if "result" in message:
            problems += check(message, response_name)
            method = methods.get(json.dumps(message.get("id")))
            result_type = RESULT_TYPES.get(method)
            if result_type and result_type in defs:
                problems += check(message["result"], result_type)
        elif "error" in message:
            if message.get("id") is None and error_name == "JSONRPCError":
                if message.get("jsonrpc") != "2.0":
                    problems.append("error without jsonrpc 2.0")
                error = message.get("error")
                if not isinstance(error, dict) or not isinstance(error.get("code"), int) or not isinstance(error.get("message"), str):
                    problems.append("error object lacks an integer code or a string message")
            else:
                problems += check(message, error_name)
        elif "method" in message:
            if "id" in message:
                problems.append("the server sent a request; this server must never do that")
            problems += check(message, "JSONRPCNotification")
            specific = NOTIFICATION_TYPES.get(message["method"])
            if specific and specific in defs:
                problems += check(message, specific)
        else:
            problems.append("neither a response, an error nor a notification")
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
            items = message if isinstance(message, list) and args.revision == "2025-03-26" else [message]
            for item in items:
                count += 1
                for problem in validate_message(item):
                    print(f"line {number}: {problem}: {text[:200]}")
                    failures += 1
    print(f"validated {count} message(s) against {args.revision}: {failures} problem(s)", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
