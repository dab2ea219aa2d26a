#!/usr/bin/env python3
"""End-to-end smoke run of agent-sidecar against a real agent-gateway, as a developer and Codex would.

Usage: Tests/Smoke/driver.py --bin-dir .build/release [--keep] [--pid-file FILE]
(Tests/Smoke/smoke-mcp-e2e builds the binaries and calls this; it needs nothing but Python 3.11's stdlib.)

It starts `agent-gateway serve` on a free loopback port with a fresh SQLite file, seeds the demo
workspace, creates an agent with grants for project WEB and a pairing code (the admin CLI), runs
`agent-sidecar setup` in a temporary home, launches the sidecar with the command, args and env that
setup wrote into config.toml, and drives it over stdio pipes with MCP JSON-RPC. Every change is read
back from the gateway's database (sqlite3, read-only). Each check prints PASS or FAIL; the last line
is "N passed, N failed"; the exit status is 1 on any failure. Processes are stopped on every exit path.
The gateway also serves Prometheus metrics (`--metrics-port 0`); the last step scrapes them and
checks the counters against the calls made, and that no secret or argument text is in them.
"""
import argparse
import base64
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request

# The gateway's tools by scope (docs/gateway-contract.md).
TOOLS_BY_SCOPE = {
    "project:read": ["list_projects", "get_project_context", "search_issues", "get_issue"],
    "issue:create": ["create_issue"],
    "issue:update": ["update_issue", "update_issue_blocks"],
    "issue:move": ["move_issue"],
    "issue:comment": ["comment_issue"],
    "issue:label": ["set_issue_labels"],
    "issue:assign": ["assign_issue"],
    "project:member:add_existing": ["add_project_member"],
    "report:write": ["start_work_session", "update_work_session", "finish_work_session"],
}
# Everything but adding members: the smoke run also checks that an ungranted scope's tool is not listed.
GRANTED_SCOPES = [scope for scope in TOOLS_BY_SCOPE if scope != "project:member:add_existing"]
READ_TOOLS = set(TOOLS_BY_SCOPE["project:read"])
ALL_TOOLS = {tool for tools in TOOLS_BY_SCOPE.values() for tool in tools}


def audited_tool(name):
    """The audit's `tool` for a call of `name`: the name, or for an unknown tool `unknown:` and 16 hex of its SHA-256."""
    return name if name in ALL_TOOLS else "unknown:" + hashlib.sha256(name.encode()).hexdigest()[:16]
# Writes per minute for the run (burst = rate): room for the 13 writes of steps 3 to 6, and a burst of
# BURST concurrent writes in step 8 then runs past it. One token a second keeps the 429 retries short.
WRITE_RATE = 60
BURST = 64
# The environment Codex passes to an MCP server besides the entry's own `env` table.
CODEX_PASSED_ENV = ["HOME", "LOGNAME", "PATH", "SHELL", "USER", "LANG", "LC_ALL", "TERM", "TMPDIR", "TZ"]
TOKEN_PATTERN = re.compile(rb"ags_[A-Za-z0-9_-]{16,}")
REQUEST_TIMEOUT = 20


class StepFailed(Exception):
    pass


def expect(condition, detail):
    if not condition:
        raise StepFailed(detail)


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, function, *args):
        """Runs one named check; returns its value, or None when it failed."""
        started = time.monotonic()
        try:
            value = function(*args)
        except StepFailed as failure:
            self.fail(name, str(failure))
            return None
        except Exception as error:  # an unexpected crash of a step is that step's failure
            self.fail(name, f"{type(error).__name__}: {error}")
            return None
        note = f" ({value})" if isinstance(value, str) and value else ""
        print(f"PASS {name}{note} [{time.monotonic() - started:.2f} s]", flush=True)
        self.passed += 1
        return value if value is not None else True

    def fail(self, name, detail):
        print(f"FAIL {name} :: {' '.join(detail.split())[:600]}", flush=True)
        self.failed += 1


class Processes:
    """Every process the run starts, stopped on exit (also on SIGTERM/SIGINT, via SystemExit)."""

    def __init__(self, pid_file):
        self.children = []
        self.pid_file = pid_file

    def start(self, argv, **options):
        process = subprocess.Popen(argv, start_new_session=True, **options)
        self.children.append(process)
        if self.pid_file:
            with open(self.pid_file, "a") as handle:
                handle.write(f"{process.pid}\n")
        return process

    def stop_all(self):
        for process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 5
        for process in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


class StdioClient:
    """Speaks MCP over the sidecar's stdin and stdout, as Codex does: one JSON message per line."""

    def __init__(self, process):
        self.process = process
        self.next_id = 0
        self.responses = {}
        self.raw_lines = []
        self.bad_lines = []
        self.arrived = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            with self.arrived:
                self.raw_lines.append(line)
                try:
                    message = json.loads(line)
                except ValueError:
                    self.bad_lines.append(line)
                    continue
                if isinstance(message, dict) and "id" in message and ("result" in message or "error" in message):
                    self.responses[message["id"]] = message
                self.arrived.notify_all()
        with self.arrived:
            self.arrived.notify_all()

    def send(self, message):
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise StepFailed(f"the sidecar is gone (exit status {self.process.poll()}); see its stderr")

    def start_request(self, method, params=None):
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.next_id

    def wait(self, request_ids, timeout=REQUEST_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not all(request_id in self.responses for request_id in request_ids):
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self.reader.is_alive()):
                    missing = [request_id for request_id in request_ids if request_id not in self.responses]
                    raise StepFailed(f"no answer to request(s) {missing[:5]} within {timeout} s (sidecar exit status {self.process.poll()})")
                self.arrived.wait(left)
            return [self.responses.pop(request_id) for request_id in request_ids]

    def request(self, method, params=None, timeout=REQUEST_TIMEOUT):
        return self.wait([self.start_request(method, params)], timeout)[0]


class ToolCallLog:
    """What the driver asked for and what came back, to check the audit against."""

    def __init__(self):
        self.calls = []

    def add(self, name, arguments, response):
        self.calls.append({"name": name, "arguments": arguments, "response": response})


OPEN_MARKER, CLOSE_MARKER = "<untrusted-content>", "</untrusted-content>"


def unmarked(text):
    """A name or text people wrote, as the gateway returns it in structuredContent: marked as
    untrusted content inside the string itself. Fails the step when the marker is missing."""
    expect(isinstance(text, str) and text.startswith(OPEN_MARKER) and text.endswith(CLOSE_MARKER), f"not marked untrusted: {text!r}")
    return text[len(OPEN_MARKER):-len(CLOSE_MARKER)]


def arguments_hash(arguments):
    """The gateway's argumentsSHA256: SHA-256 of the canonical JSON (members sorted, compact, no idempotencyKey)."""
    canonical = {key: value for key, value in arguments.items() if key != "idempotencyKey"}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def error_code(response):
    """The gateway's error code of a tool result, or the JSON-RPC error code, or None for a success."""
    if "error" in response:
        return response["error"].get("code")
    result = response.get("result", {})
    if not result.get("isError"):
        return None
    structured = result.get("structuredContent") or {}
    if isinstance(structured.get("error"), dict) and structured["error"].get("code"):
        return structured["error"]["code"]
    text = result_text(response)
    for code in ("rate_limited", "agent_revoked", "device_revoked", "owner_blocked"):
        if code in text:
            return code
    return "tool_error"


def result_text(response):
    if "error" in response:
        return response["error"].get("message", "")
    return " ".join(item.get("text", "") for item in response.get("result", {}).get("content", []) if isinstance(item, dict))


class Smoke:
    def __init__(self, options):
        self.options = options
        self.bin_dir = os.path.abspath(options.bin_dir)
        self.gateway_bin = os.path.join(self.bin_dir, "agent-gateway")
        self.sidecar_bin = os.path.join(self.bin_dir, "agent-sidecar")
        self.work = tempfile.mkdtemp(prefix="agent-sidecar-smoke-")
        self.db = os.path.join(self.work, "gateway.sqlite")
        self.home = os.path.join(self.work, "home")
        self.project_dir = os.path.join(self.home, "src", "website")
        self.sidecar_stderr_path = os.path.join(self.work, "sidecar.stderr")
        self.gateway_log_path = os.path.join(self.work, "gateway.log")
        self.processes = Processes(options.pid_file)
        self.report = Report()
        self.calls = ToolCallLog()
        self.run_id = str(int(time.time() * 1000))[-8:]
        self.outputs = []  # every text the CLIs printed, scanned for secrets in step 11
        self.gateway = None
        self.client = None

    # ----- plumbing -----

    def admin(self, *args):
        result = subprocess.run([self.gateway_bin, *args, "--db", self.db], capture_output=True, text=True, timeout=30)
        expect(result.returncode == 0, f"agent-gateway {' '.join(args[:2])} exited {result.returncode}: {result.stderr.strip()[:300]}")
        return result.stdout

    def sidecar_environment(self, extra=None):
        """The developer's environment: a home of its own, none of the sidecar's or Codex's variables."""
        env = {name: os.environ[name] for name in CODEX_PASSED_ENV if name in os.environ}
        env["HOME"] = self.home
        env.setdefault("PATH", "/usr/bin:/bin")
        env.update(extra or {})
        return env

    def database(self):
        connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        connection.row_factory = sqlite3.Row
        return connection

    def query(self, sql, *parameters):
        connection = self.database()
        try:
            return [dict(row) for row in connection.execute(sql, parameters)]
        finally:
            connection.close()

    def issue_row(self, key):
        project, number = key.upper().split("-")
        rows = self.query(
            "SELECT issue.* FROM issue JOIN project ON project.id = issue.projectID WHERE project.key = ? AND issue.number = ?",
            project, int(number))
        expect(len(rows) == 1, f"issue {key} is not in the database")
        return rows[0]

    def call(self, name, arguments, timeout=REQUEST_TIMEOUT):
        response = self.client.request("tools/call", {"name": name, "arguments": arguments}, timeout)
        self.calls.add(name, arguments, response)
        return response

    def call_ok(self, name, arguments):
        response = self.call(name, arguments)
        expect("result" in response and not response["result"].get("isError"), f"{name} failed: {json.dumps(response)[:400]}")
        return response["result"]

    def call_refused(self, name, arguments, code):
        response = self.call(name, arguments)
        got = error_code(response)
        expect(got == code, f"{name} {json.dumps(arguments)} should be refused with {code}, got {got}: {result_text(response)[:300]}")
        return response

    # ----- preparation -----

    def start_gateway(self):
        self.admin("seed-demo")
        log = open(self.gateway_log_path, "wb")
        self.gateway = self.processes.start(
            [self.gateway_bin, "serve", "--db", self.db, "--port", "0", "--write-rate", str(WRITE_RATE), "--metrics-port", "0"],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.gateway.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=20)
        except queue.Empty:
            raise StepFailed(f"the gateway printed no URL within 20 s; see {self.gateway_log_path}")
        expect(line, f"the gateway exited ({self.gateway.poll()}) before listening; see {self.gateway_log_path}")
        listening = json.loads(line)
        self.gateway_url = listening["url"]
        self.metrics_url = listening.get("metricsUrl")
        expect(re.fullmatch(r"http://127\.0\.0\.1:\d+", self.gateway_url), f"unexpected URL {self.gateway_url}")
        expect(self.metrics_url and re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", self.metrics_url), f"metrics URL {self.metrics_url!r}")
        projects = [row["key"] for row in self.query("SELECT key FROM project ORDER BY key")]
        expect(projects == ["OPS", "WEB"], f"seeded projects are {projects}")
        return f"{self.gateway_url}, fresh database, demo workspace WEB and OPS"

    def create_agent(self):
        created = json.loads(self.admin(
            "agent", "create", "--owner", "alice", "--name", "codex-smoke", "--project", "WEB", "--scope", *GRANTED_SCOPES, "--json"))
        self.agent_id = created["id"]
        self.pairing_code = json.loads(self.admin("agent", "pair", self.agent_id, "--json"))["code"]
        expect(re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", self.pairing_code), "the pairing code has an unexpected form")
        return f"agent {self.agent_id} with {len(GRANTED_SCOPES)} scopes on WEB; pairing code issued"

    def run_setup(self):
        os.makedirs(self.project_dir)
        # The developer types the code when asked; without a terminal, the documented variable carries it.
        env = self.sidecar_environment({"AGENT_SIDECAR_PAIRING_CODE": self.pairing_code})
        result = subprocess.run(
            [self.sidecar_bin, "setup", "--gateway", self.gateway_url, "--device-name", "smoke-laptop"],
            cwd=self.project_dir, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.outputs += [("setup stdout", result.stdout), ("setup stderr", result.stderr)]
        expect(result.returncode == 0, f"setup exited {result.returncode}: {(result.stderr or result.stdout).strip()[:400]}")
        self.config_path = os.path.join(self.home, ".codex", "config.toml")
        expect(os.path.isfile(self.config_path), f"setup wrote no {self.config_path}; it printed: {result.stdout[:300]}")
        agents_md = os.path.join(self.project_dir, "AGENTS.md")
        expect(os.path.isfile(agents_md), "setup wrote no AGENTS.md in the project")
        devices = self.query("SELECT id, revokedAt FROM device WHERE agentID = ?", self.agent_id)
        expect(len(devices) == 1 and devices[0]["revokedAt"] is None, f"the gateway has devices {devices} for the agent")
        return f"paired device {devices[0]['id']}; wrote ~/.codex/config.toml and AGENTS.md"

    def read_codex_config(self):
        with open(self.config_path, "rb") as handle:
            config = tomllib.load(handle)
        servers = config.get("mcp_servers", {})
        expect("agent-sidecar" in servers, f"config.toml has no [mcp_servers.agent-sidecar] (tables: {list(servers)})")
        entry = servers["agent-sidecar"]
        command, args, env = entry.get("command"), entry.get("args", []), entry.get("env", {})
        expect(isinstance(command, str) and os.path.isabs(command) and os.access(command, os.X_OK),
               f"command {command!r} is not an absolute path to an executable")
        expect(os.path.realpath(command) == os.path.realpath(self.sidecar_bin), f"command {command} is not the binary that ran setup")
        expect(isinstance(args, list) and args[:1] == ["serve"] and "--profile" in args, f"args {args} do not run `serve --profile`")
        expect(isinstance(env, dict), f"env is {env!r}")
        self.server_entry = entry
        return f"command {command}, args {args}" + (f", env {sorted(env)}" if env else "")

    def launch_sidecar(self):
        entry = self.server_entry
        env = self.sidecar_environment({key: str(value) for key, value in entry.get("env", {}).items()})
        # Debug logging makes the secret check of step 11 stricter: more lines, none may carry a secret.
        env["AGENT_SIDECAR_LOG_LEVEL"] = "debug"
        self.sidecar_stderr = open(self.sidecar_stderr_path, "wb")
        process = self.processes.start(
            [entry["command"], *entry.get("args", [])], cwd=self.project_dir, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.sidecar_stderr)
        self.client = StdioClient(process)
        return f"pid {process.pid}"

    # ----- the checks -----

    def step_handshake(self):
        response = self.client.request("initialize", {
            "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "codex-mcp-client", "title": "Codex", "version": "0.63.0"}})
        expect("result" in response, f"initialize failed: {response}")
        result = response["result"]
        expect(result.get("protocolVersion") == "2025-06-18", f"negotiated {result.get('protocolVersion')}")
        expect(result.get("serverInfo", {}).get("name") == "agent-sidecar", f"serverInfo {result.get('serverInfo')}")
        expect("tools" in result.get("capabilities", {}), f"capabilities {result.get('capabilities')}")
        self.client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        listing = self.client.request("tools/list", {})
        expect("result" in listing, f"tools/list failed: {listing}")
        tools = listing["result"]["tools"]
        names = sorted(tool["name"] for tool in tools)
        expected = sorted(name for scope in GRANTED_SCOPES for name in TOOLS_BY_SCOPE[scope])
        expect(names == expected, f"tools/list gave {names}, expected {expected}")
        forbidden = [name for name in names if "delete" in name or "archive" in name]
        expect(not forbidden, f"destructive tools listed: {forbidden}")
        for tool in tools:
            annotations = tool.get("annotations", {})
            expect(annotations.get("readOnlyHint") == (tool["name"] in READ_TOOLS), f"{tool['name']} readOnlyHint {annotations}")
            expect(annotations.get("destructiveHint") is False, f"{tool['name']} destructiveHint {annotations}")
        expect(not self.client.bad_lines, f"stdout carried a non-JSON line: {self.client.bad_lines[:1]}")
        return f"{len(names)} tools, no add_project_member (not granted), no delete or archive"

    def step_projects(self):
        projects = self.call_ok("list_projects", {})["structuredContent"]["projects"]
        expect([project["key"] for project in projects] == ["WEB"], f"list_projects gave {projects}")
        context = self.call_ok("get_project_context", {"project": "WEB"})["structuredContent"]
        states = [unmarked(state["name"]) for state in context["states"]]
        labels = {unmarked(label["name"]) for label in context["labels"]}
        members = {member["id"] for member in context["members"]}
        expect(states == ["Backlog", "Todo", "In Progress", "Done"], f"states {states}")
        expect({"bug", "docs", "feature", "frontend"} <= labels, f"labels {labels}")
        expect({"bob", "carol"} <= members, f"members {members}")
        return f"only WEB; states {', '.join(states)}"

    def step_idempotent_create(self):
        title, first = self.create_and_replay()
        rows = self.query("SELECT id FROM issue WHERE title = ?", title)
        expect(len(rows) == 1 and rows[0]["id"] == first["id"], f"the tracker holds {len(rows)} issues titled {title!r}")
        count = self.query("SELECT count(*) AS n FROM issue JOIN project ON project.id = issue.projectID WHERE project.key = 'WEB'")[0]["n"]
        expect(count == 5, f"WEB holds {count} issues, expected the 4 seeded + 1")
        return f"{first['key']} once, replay marked replayed"

    def create_and_replay(self):
        """create_issue with an idempotency key, then the same call: the same issue, marked replayed."""
        title = f"Smoke run {self.run_id}: checkout button misaligned"
        arguments = {"project": "WEB", "title": title, "description": "Found by the smoke run.", "labels": ["bug"],
                     "idempotencyKey": f"smoke-create-{self.run_id}"}
        first = self.call_ok("create_issue", arguments)["structuredContent"]["issue"]
        # Later steps work on this issue even if the replay check below fails.
        self.issue_key = first["key"]
        self.issue_id = first["id"]
        replay = self.call_ok("create_issue", dict(arguments))
        again = replay["structuredContent"]["issue"]
        expect(again["id"] == first["id"] and again["key"] == first["key"], f"the replay gave {again['key']}, the first call {first['key']}")
        expect(replay.get("_meta", {}).get("io.agent-gateway/replayed") is True, f"the replay is not marked replayed: {replay.get('_meta')}")
        return title, first

    def step_update_blocks(self):
        blocks = [{"name": "Acceptance criteria", "text": "The button lines up at 320 px."}, {"name": "Plan", "text": "Fix the flex gap."}]
        self.call_ok("update_issue_blocks", {"issue": self.issue_key, "blocks": blocks})
        stored = json.loads(self.issue_row(self.issue_key)["blocks"])
        expect(sorted((b["name"], b["text"]) for b in stored) == sorted((b["name"], b["text"]) for b in blocks), f"stored blocks {stored}")
        return "2 blocks stored"

    def step_move(self):
        self.call_ok("move_issue", {"issue": self.issue_key, "state": "in progress"})
        state = self.query("SELECT state.name FROM issue JOIN state ON state.id = issue.stateID WHERE issue.id = ?", self.issue_id)
        expect(state and state[0]["name"] == "In Progress", f"stored state {state}")
        return "state In Progress (given by name, any case)"

    def step_comment(self):
        body = f"Reproduced on mobile Safari ({self.run_id})."
        comment = self.call_ok("comment_issue", {"issue": self.issue_key, "body": body})["structuredContent"]["comment"]
        rows = self.query("SELECT id, body, authorAgentID FROM comment WHERE issueID = ?", self.issue_id)
        expect(len(rows) == 1 and rows[0]["body"] == body and rows[0]["id"] == comment["id"], f"stored comments {rows}")
        expect(rows[0]["authorAgentID"] == self.agent_id, f"comment author {rows[0]['authorAgentID']}")
        return f"comment {comment['id']} by the agent"

    def step_labels(self):
        self.call_ok("set_issue_labels", {"issue": self.issue_key, "labels": ["Frontend", "bug"]})
        ids = json.loads(self.issue_row(self.issue_key)["labelIDs"])
        names = sorted(self.query(f"SELECT name FROM label WHERE id IN ({','.join('?' * len(ids))})", *ids), key=lambda r: r["name"])
        expect([row["name"] for row in names] == ["bug", "frontend"] and len(ids) == 2, f"stored labels {names}")
        return "labels bug, frontend"

    def step_assign(self):
        self.call_ok("assign_issue", {"issue": self.issue_key, "assignees": ["Bob"]})
        assignees = json.loads(self.issue_row(self.issue_key)["assigneeIDs"])
        expect(assignees == ["bob"], f"stored assignees {assignees}")
        return "assignee bob (given by name)"

    def step_work_session(self):
        started = self.call_ok("start_work_session", {"project": "WEB", "summary": "Fix the checkout button", "issue": self.issue_key})
        session = started["structuredContent"]["workSession"]
        expect(session["status"] == "active" and session["issue"] == self.issue_key, f"started {session}")
        self.call_ok("update_work_session", {"workSession": session["id"], "note": "Found the stray margin."})
        self.call_ok("finish_work_session", {"workSession": session["id"], "result": "Fixed; PR opened.", "status": "completed"})
        rows = self.query("SELECT * FROM workSession WHERE id = ?", session["id"])
        expect(len(rows) == 1, f"work session {session['id']} is not in the database")
        row = rows[0]
        notes = self.query("SELECT text FROM workSessionNote WHERE workSessionID = ? ORDER BY position", session["id"])
        expect(row["status"] == "completed" and row["finishedAt"] is not None and row["result"] == "Fixed; PR opened.", f"stored {row}")
        expect([note["text"] for note in notes] == ["Found the stray margin."], f"stored notes {notes}")
        expect(row["agentID"] == self.agent_id, f"work session agent {row['agentID']}")
        self.call_refused("update_work_session", {"workSession": session["id"], "note": "too late"}, "validation_failed")
        return f"{session['id']} active → 1 note → completed; a finished session takes no more notes"

    def step_scope_escape(self):
        before = self.query("SELECT count(*) AS n FROM issue")[0]["n"]
        self.call_refused("get_project_context", {"project": "OPS"}, "project_not_granted")
        self.call_refused("get_issue", {"issue": "OPS-1"}, "project_not_granted")
        self.call_refused("create_issue", {"project": "OPS", "title": "should never exist"}, "project_not_granted")
        self.call_refused("get_project_context", {"project": "NOPE"}, "project_not_granted")
        after = self.query("SELECT count(*) AS n FROM issue")[0]["n"]
        expect(after == before, f"the tracker went from {before} to {after} issues")
        return "OPS, OPS-1, a write to OPS and an unknown project: project_not_granted"

    def step_unknown_tool(self):
        for name in ("delete_issue", "archive_issue"):
            response = self.call(name, {"issue": self.issue_key})
            refused = "error" in response or response.get("result", {}).get("isError")
            expect(refused, f"{name} was not refused: {json.dumps(response)[:300]}")
            if "error" in response:
                expect(response["error"].get("code") == -32602, f"{name}: JSON-RPC error {response['error']}")
        self.issue_row(self.issue_key)
        return "delete_issue and archive_issue refused (-32602); the issue is still there"

    def step_rate_limit(self):
        prefix = f"burst {self.run_id} #"
        arguments = [{"issue": self.issue_key, "body": f"{prefix}{index}", "idempotencyKey": f"smoke-burst-{self.run_id}-{index}"}
                     for index in range(BURST)]
        ids = [self.client.start_request("tools/call", {"name": "comment_issue", "arguments": item}) for item in arguments]
        responses = self.client.wait(ids, timeout=60)
        for item, response in zip(arguments, responses):
            self.calls.add("comment_issue", item, response)
        codes = [error_code(response) for response in responses]
        accepted = [item["body"] for item, code in zip(arguments, codes) if code is None]
        limited = [(item, response) for item, response, code in zip(arguments, responses, codes) if code == "rate_limited"]
        others = [code for code in codes if code not in (None, "rate_limited")]
        expect(not others, f"unexpected answers in the burst: {others}")
        expect(limited, f"all {BURST} writes passed; none was rate limited at {WRITE_RATE}/min")
        expect(accepted, "no write of the burst passed")
        message = result_text(limited[0][1])
        expect("rate limit" in message and re.search(r"retry after \d+ s", message), f"the refusal does not say so clearly: {message}")
        stored = [row["body"] for row in self.query("SELECT body FROM comment WHERE issueID = ? AND body LIKE ?", self.issue_id, prefix + "%")]
        expect(sorted(stored) == sorted(accepted), f"{len(accepted)} writes answered ok, {len(stored)} comments stored")
        # A refused write retried later with the same key lands exactly once.
        item, response = limited[0]
        wait = int(re.search(r"retry after (\d+) s", message).group(1))
        time.sleep(min(wait, 10) + 0.2)
        self.call_ok("comment_issue", item)
        replay = self.call_ok("comment_issue", item)
        expect(replay.get("_meta", {}).get("io.agent-gateway/replayed") is True, "the second retry was not a replay")
        rows = self.query("SELECT count(*) AS n FROM comment WHERE body = ?", item["body"])
        expect(rows[0]["n"] == 1, f"the retried comment is stored {rows[0]['n']} times")
        self.call_ok("get_issue", {"issue": self.issue_key})  # reads have their own budget
        return (f"{len(accepted)} of {BURST} concurrent writes stored, {len(limited)} refused with '{message[:90]}…'; "
                f"a refused one retried after {wait} s is stored once; reads still work")

    def step_audit(self):
        events = json.loads(self.admin("audit", "--agent", self.agent_id, "--json"))["events"]
        found = {}
        for event in events:
            expect(event["agent"] == self.agent_id and event["owner"] == "alice", f"event {event['id']} names {event['agent']}, {event['owner']}")
            expect(event["device"] and event["session"], f"event {event['id']} lacks its device or session")
            found.setdefault((event["tool"], event["argumentsSha256"]), []).append((event["outcome"], event["errorCode"]))
        calls = retries = 0
        limited = ("denied", "rate_limited")
        for (name, digest), group in self.group_calls().items():
            got = found.pop((audited_tool(name), digest), [])
            expected = [expected_audit(call["response"]) for call in group]
            left = list(got)
            for item in expected:
                # Rate-limited refusals are audited once per agent and second, not each one.
                if item == limited and item not in left:
                    continue
                expect(item in left, f"{name}: no audit event {item} (calls answered {expected}; audit has {got})")
                left.remove(item)
            # The sidecar itself retries a 429 (Retry-After of at most 10 s, twice per call): those
            # attempts reached the gateway, so some of them are audited too, as rate limited.
            expect(all(item == limited for item in left) and len(left) <= 2 * len(group),
                   f"{name}: audit events no call explains: {left}")
            calls += len(expected)
            retries += len(left)
        expect(not found, f"audit events for calls never made: {list(found)[:3]}")
        expect(self.calls.calls, "no tool call was made, so there is nothing to check the audit against")
        expect(calls == len(self.calls.calls), f"{calls} of {len(self.calls.calls)} calls matched")
        outcomes = {}
        for event in events:
            outcomes[event["outcome"]] = outcomes.get(event["outcome"], 0) + 1
        summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
        return f"{len(events)} events = {calls} calls + {retries} retries of the sidecar after 429; {summary}"

    def group_calls(self):
        groups = {}
        for call in self.calls.calls:
            groups.setdefault((call["name"], arguments_hash(call["arguments"])), []).append(call)
        return groups

    def step_revoke(self):
        self.admin("agent", "revoke", self.agent_id)
        response = self.client.request("tools/call", {"name": "list_projects", "arguments": {}})
        message = result_text(response)
        refused = "error" in response or response.get("result", {}).get("isError")
        expect(refused, f"the call after revocation succeeded: {json.dumps(response)[:300]}")
        expect("revoked by its owner" in message and "agent-sidecar setup" in message, f"the refusal does not say why: {message}")
        env = self.sidecar_environment({key: str(value) for key, value in self.server_entry.get("env", {}).items()})
        profile = self.server_entry["args"][self.server_entry["args"].index("--profile") + 1]
        status = subprocess.run([self.sidecar_bin, "status", "--profile", profile], cwd=self.project_dir, env=env,
                                capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.outputs += [("status stdout", status.stdout), ("status stderr", status.stderr)]
        expect(status.returncode == 1, f"status exited {status.returncode} after revocation: {status.stdout}{status.stderr}")
        expect("revoked" in status.stdout + status.stderr, f"status does not say revoked: {status.stdout}{status.stderr}")
        as_json = subprocess.run([self.sidecar_bin, "status", "--profile", profile, "--json"], cwd=self.project_dir, env=env,
                                 capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.outputs += [("status --json stdout", as_json.stdout), ("status --json stderr", as_json.stderr)]
        report = json.loads(as_json.stdout)
        expect(report.get("ok") is False and report.get("error", {}).get("code") == "agent_revoked", f"status --json: {as_json.stdout}")
        return f"next call: '{message[:110]}…'; status exits 1 with agent_revoked"

    def step_no_secrets(self):
        # Close the sidecar first, so its stderr is complete: stdin EOF is how Codex stops it.
        self.client.process.stdin.close()
        try:
            exit_status = self.client.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise StepFailed("the sidecar did not exit within 10 s of stdin EOF")
        self.sidecar_stderr.close()
        code = self.pairing_code.encode()
        needles = {"pairing code": [code, code.replace(b"-", b""), code.lower(), code.replace(b"-", b"").lower()]}
        kek_files = [os.path.join(root, name) for root, _, files in os.walk(self.home) for name in files if name.endswith(".kek")]
        expect(kek_files, "setup left no key-encryption key file")
        for path in kek_files:
            with open(path, "rb") as handle:
                kek = handle.read()
            needles[f"key-encryption key {os.path.basename(path)}"] = [kek.hex().encode(), base64.b64encode(kek), base64.urlsafe_b64encode(kek).rstrip(b"=")]
        # Text a person wrote into the tracker must not reach the audit either (it holds hashes only).
        argument_texts = [f"Smoke run {self.run_id}".encode(), f"Reproduced on mobile Safari ({self.run_id})".encode()]
        places = []
        for root, _, files in os.walk(self.home):
            inside = "agent-sidecar" in os.path.relpath(root, self.home).split(os.sep)
            if inside:
                mode = stat.S_IMODE(os.stat(root).st_mode)
                expect(mode == 0o700, f"directory {root} has mode {oct(mode)}, not 0700")
            for name in files:
                path = os.path.join(root, name)
                with open(path, "rb") as handle:
                    places.append((os.path.relpath(path, self.home), handle.read(), name.endswith((".kek", ".key"))))
                if inside:
                    mode = stat.S_IMODE(os.stat(path).st_mode)
                    expect(mode == 0o600, f"{path} has mode {oct(mode)}, not 0600")
        with open(self.sidecar_stderr_path, "rb") as handle:
            stderr = handle.read()
        places.append(("sidecar stderr", stderr, False))
        places.append(("sidecar stdout", b"".join(self.client.raw_lines), False))
        places += [(label, text.encode(), False) for label, text in self.outputs]
        audit = self.admin("audit", "--agent", self.agent_id, "--json") + self.admin("audit", "--agent", self.agent_id)
        places.append(("audit", audit.encode(), False))
        leaks = []
        for label, data, is_key_file in places:
            for what, forms in needles.items():
                if is_key_file and what.startswith("key-encryption"):
                    continue
                if any(form in data for form in forms):
                    leaks.append(f"{what} in {label}")
            if TOKEN_PATTERN.search(data):
                leaks.append(f"a session token in {label}")
            if re.search(rb"(?i)bearer\s+[A-Za-z0-9_-]{8,}", data):
                leaks.append(f"a bearer credential in {label}")
            if label == "audit" and any(text in data for text in argument_texts):
                leaks.append("argument text in the audit")
        expect(not leaks, "; ".join(sorted(set(leaks))))
        expect(exit_status == 0, f"the sidecar exited {exit_status} on stdin EOF")
        expect(len(stderr) > 0, "the sidecar wrote no log at all (the stderr check would be empty)")
        files = sum(1 for place in places if not place[0].startswith(("sidecar", "setup", "status", "audit")))
        return (f"{files} files under the home, {len(stderr)} bytes of debug log, MCP stdout, CLI output and the audit: clean; "
                "profile and keys 0600 in 0700 directories")

    def step_metrics(self):
        with urllib.request.urlopen(self.metrics_url, timeout=REQUEST_TIMEOUT) as response:
            scrape = response.read(4 * 1024 * 1024)
        samples = parse_prometheus(scrape.decode())
        counted = {}
        for (name, labels), value in samples.items():
            if name == "agent_gateway_tool_calls_total":
                counted[(dict(labels)["tool"], dict(labels)["outcome"])] = value
        expect(counted, "the scrape has no agent_gateway_tool_calls_total series")
        made, per_tool = {}, {}
        for call in self.calls.calls:
            outcome, code = expected_audit(call["response"])
            key = (call["name"] if call["name"] in ALL_TOOLS else "unknown", code or outcome)
            made[key] = made.get(key, 0) + 1
            per_tool[key[0]] = per_tool.get(key[0], 0) + 1
        wrong = []
        for key in sorted(set(made) | set(counted)):
            want, got = made.get(key, 0), counted.get(key, 0)
            if key[1] == "rate_limited":
                # The sidecar retries a 429 itself (twice per call at most): those attempts count too.
                if not want <= got <= want + 2 * per_tool.get(key[0], 0):
                    wrong.append(f"{key}: {got:g} counted, {want} seen by the client (+ at most {2 * per_tool.get(key[0], 0)} sidecar retries)")
            elif got != want:
                wrong.append(f"{key}: {got:g} counted, {want} made")
        expect(not wrong, "; ".join(wrong[:8]))
        limited = sum(value for (tool, outcome), value in counted.items() if outcome == "rate_limited")
        refusals = sum(value for (name, _), value in samples.items() if name == "agent_gateway_rate_limited_total")
        expect(limited == refusals, f"{limited:g} calls counted rate_limited, agent_gateway_rate_limited_total says {refusals:g}")
        for tool in {tool for tool, _ in counted}:
            histogram = samples.get(("agent_gateway_tool_call_duration_seconds_count", (("tool", tool),)))
            total = sum(value for (counted_tool, _), value in counted.items() if counted_tool == tool)
            expect(histogram == total, f"the latency histogram of {tool} has {histogram} observations for {total:g} calls")
        # No secret, id or argument text: labels come from fixed sets only.
        needles = [self.pairing_code, self.pairing_code.replace("-", ""), self.agent_id]
        needles += [row["id"] for row in self.query("SELECT id FROM device WHERE agentID = ?", self.agent_id)]
        for call in self.calls.calls:
            needles += [value for value in call["arguments"].values() if isinstance(value, str) and len(value) >= 8]
        leaks = sorted({needle[:24] for needle in needles if needle.encode() in scrape})
        expect(not leaks, f"the scrape holds text it must not: {leaks[:5]}")
        expect(not TOKEN_PATTERN.search(scrape), "the scrape holds a session token")
        return (f"{int(sum(counted.values()))} calls counted in {len(counted)} tool/outcome series = the {len(self.calls.calls)} calls made "
                f"+ {int(sum(counted.values())) - len(self.calls.calls)} sidecar retries after 429; histograms agree; no secret, id or argument text")

    # ----- the run -----

    def run(self):
        report = self.report
        print(f"smoke: binaries in {self.bin_dir}; work dir {self.work}", flush=True)
        ready = (report.run("gateway: serve on a free loopback port, fresh SQLite, seed-demo", self.start_gateway)
                 and report.run("admin CLI: agent with grants for WEB only, pairing code", self.create_agent)
                 and report.run("agent-sidecar setup in a temporary home, as a developer would", self.run_setup)
                 and report.run("config.toml written by setup names the sidecar's command and args", self.read_codex_config)
                 and report.run("launch the sidecar from config.toml's command, args and env", self.launch_sidecar))
        checks = [
            ("1. handshake; tools/list shows the granted tools, no delete or archive", self.step_handshake),
            ("2. list_projects shows only WEB; get_project_context works", self.step_projects),
            ("3. create_issue with an idempotency key, replayed: same issue, stored once", self.step_idempotent_create),
            ("4a. update_issue_blocks, read back from the database", self.step_update_blocks),
            ("4b. move_issue by state name, read back", self.step_move),
            ("4c. comment_issue, read back", self.step_comment),
            ("4d. set_issue_labels, read back", self.step_labels),
            ("4e. assign_issue, read back", self.step_assign),
            ("5. work session start -> update -> finish", self.step_work_session),
            ("6. scope escape: ungranted project and issue key refused", self.step_scope_escape),
            ("7. a tool that does not exist is refused", self.step_unknown_tool),
            ("8. rate limit: a burst past the write limit is refused clearly, nothing lost", self.step_rate_limit),
            ("9. audit: one event per call, each with the right outcome", self.step_audit),
            ("10. revoking the agent: the next call says so, and so does status", self.step_revoke),
            ("11. no secret in setup's files, the sidecar's stderr, the CLI output or the audit", self.step_no_secrets),
        ]
        if getattr(self, "metrics_url", None):
            checks.append(("12. /metrics after the run: counters match the calls made; no secret or argument text", self.step_metrics))
        needs_issue = {self.step_update_blocks, self.step_move, self.step_comment, self.step_labels, self.step_assign,
                       self.step_work_session, self.step_unknown_tool, self.step_rate_limit}
        for name, function in checks:
            if not ready:
                report.fail(name, "not run: the preparation above failed")
            elif function in needs_issue and not hasattr(self, "issue_key"):
                report.fail(name, "not run: step 3 created no issue")
            else:
                report.run(name, function)


def parse_prometheus(text):
    """{(name, ((label, value), ...)): value} of a Prometheus text exposition (comments skipped)."""
    samples = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not match or line.startswith("#"):
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or "")))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def expected_audit(response):
    """The (outcome, errorCode) the audit must hold for a call answered with `response`."""
    code = error_code(response)
    if code is None:
        replayed = (response["result"].get("_meta") or {}).get("io.agent-gateway/replayed") is True
        return ("replayed", None) if replayed else ("ok", None)
    if code == -32602:  # an unknown tool: a JSON-RPC error to the client, `unknown_tool` in the audit
        return ("denied", "unknown_tool")
    if code in ("validation_failed", "not_found"):
        return ("rejected", code)
    if code == "internal_error":
        return ("failed", code)
    return ("denied", code)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", default=".build/release")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (it is kept anyway when a check fails)")
    parser.add_argument("--pid-file", help="append the pid of every process started here (for the calling script's trap)")
    options = parser.parse_args()
    for name in ("agent-gateway", "agent-sidecar"):
        if not os.access(os.path.join(options.bin_dir, name), os.X_OK):
            print(f"smoke: {options.bin_dir}/{name} is missing; build it with `swift build -c release --product {name}`", file=sys.stderr)
            sys.exit(2)

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    run_and_report(Smoke(options), "smoke")


def run_and_report(smoke, label):
    """Runs every step, stops every process, keeps the work directory on a failure, and exits 1 on any."""
    started = time.monotonic()
    try:
        smoke.run()
    finally:
        smoke.processes.stop_all()
    report = smoke.report
    if report.failed or smoke.options.keep:
        print(f"{label}: logs and state kept in {smoke.work} (gateway.log, sidecar.stderr, gateway.sqlite, home/)", flush=True)
    else:
        shutil.rmtree(smoke.work, ignore_errors=True)
    print(f"{label}: {time.monotonic() - started:.1f} s", flush=True)
    print(f"{report.passed} passed, {report.failed} failed", flush=True)
    sys.exit(1 if report.failed or not report.passed else 0)


if __name__ == "__main__":
    main()
