#!/usr/bin/env python3
"""Three agent-gateway instances behind nginx (TLS) on one PostgreSQL behave as one gateway.

Usage: Tests/MultiInstance/checks.py --bin-dir DIR [--work-dir DIR] [--keep] [--pid-file FILE] [--only 0,a,c]
(Tests/MultiInstance/multi-instance picks the binaries and a Python with `cryptography`, and calls this.)

The pool (pool.py) is PostgreSQL, three `serve` instances on it and nginx in front, round robin,
TLS with a CA made for the run. The checks, each printing PASS or FAIL with its figures:
  0. an MCP session opened on one instance is answered by the others (no re-initialize);
  a. 50 concurrent duplicates of one idempotency key (create_issue), through nginx and directly to
     each instance: one issue, every reply the same result (replays marked replayed, one not);
  c. a device and an agent revoked through instance A's owner API, and an agent by the admin CLI:
     the next call on instance B (and C) is refused;
  d. kill -9 of one instance under write load through nginx (each write its own idempotency key,
     retried with the same key on a connection error or 5xx): every acknowledged write is stored
     exactly once; writes cut in flight replay or succeed once (when a kill cuts none, the next
     one comes after a 1 s SIGSTOP, so that requests pile up on the instance; at most 3 kills);
  e. PostgreSQL stopped (pg_ctl -m fast) and started under write load: calls fail cleanly within a
     bound while it is down, /readyz fails then passes, the gateways recover without a restart and
     no acknowledged write is lost;
  f. a paired sidecar through nginx over TLS (setup --ca-file with the test CA, then serve over
     stdio): initialize, tools/list, a read and a write, its calls answered by different instances
     (nginx's access log names the upstream of each request);
  b. the write rate limit (--write-rate 30 for this check, after a restart of the instances) holds
     across instances: a burst of 3x the budget spread over them is accepted about once, not 3x;
  g. no secret (the database password, a session token, a pairing code) in any log of the run.
The last line is "N passed, N failed"; the exit status is 1 on any failure. Every process is
stopped on every exit path; the work directory (logs) is kept when a check failed.
"""
import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from pool import Pool, PoolError, install_signal_handlers, readiness  # noqa: E402
from client import MCP, Connection, Device, RequestFailed, TransportError  # noqa: E402

HIGH_RATE = 1_000_000  # per minute: no limit, so that only check b meets one
LOW_WRITE_RATE = 30  # per minute, burst 30: check b's budget
DUPLICATES = 50
KILLED = 1  # the instance check d kills
DOWN_CALL_BOUND = 15.0  # seconds a call may take while PostgreSQL is down
RECOVERY_BOUND = 45.0  # seconds for every instance to be ready again after PostgreSQL is back
WRITE_GIVE_UP = 60.0  # seconds a load writer keeps retrying one write
RUN_BOUND = 420  # seconds for the whole run, set-up and clean-up included
TOKEN = re.compile(rb"ags_[A-Za-z0-9_-]{16,}")


class StepFailed(Exception):
    pass


def expect(condition, detail):
    if not condition:
        raise StepFailed(detail)


def literal(text):
    """A SQL string literal (the tests' own ASCII values)."""
    return "'" + text.replace("'", "''") + "'"


def counted(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return ", ".join(f"{count}x {value}" for value, count in sorted(counts.items(), key=lambda item: -item[1]))


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, function):
        started = time.monotonic()
        try:
            note = function()
        except StepFailed as failure:
            self.fail(name, str(failure), started)
            return
        except Exception as error:  # a crash of one check is that check's failure; the others still run
            self.fail(name, f"{type(error).__name__}: {error}", started)
            return
        print(f"PASS {name} ({note}) [{time.monotonic() - started:.1f} s]", flush=True)
        self.passed += 1

    def fail(self, name, detail, started=None):
        took = f" [{time.monotonic() - started:.1f} s]" if started else ""
        print(f"FAIL {name} :: {' '.join(detail.split())[:1500]}{took}", flush=True)
        self.failed += 1


class Writers:
    """Load writers through nginx: comment_issue with a fresh idempotency key each, every write
    retried with the same key after a connection error, a 5xx, a 404 (unknown MCP session) or a
    retryable tool error, until it is acknowledged or WRITE_GIVE_UP seconds pass."""

    def __init__(self, run, token, prefix, count):
        self.run = run
        self.token = token
        self.prefix = prefix
        self.count = count
        self.stop = threading.Event()
        self.records = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.writer, args=(index,), daemon=True) for index in range(count)]
        self.reinits = 0

    def start(self):
        for thread in self.threads:
            thread.start()

    def finish(self, timeout=WRITE_GIVE_UP + 30):
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        return [thread for thread in self.threads if thread.is_alive()]

    def ambiguous(self):
        with self.lock:
            return sum(1 for record in self.records.values() if record["ambiguous"])

    def writer(self, index):
        connection = self.run.nginx()
        mcp = MCP(connection, self.token, reinit_limit=10)
        number = 0
        while not self.stop.is_set():
            number += 1
            key = f"{self.prefix}-{index}-{number}"
            record = {"ack": False, "attempts": 0, "ambiguous": 0, "replayed": None, "codes": [], "given_up": False}
            with self.lock:
                self.records[key] = record
            deadline = time.monotonic() + WRITE_GIVE_UP
            while True:
                if time.monotonic() >= deadline:
                    record["given_up"] = True
                    break
                record["attempts"] += 1
                try:
                    reply = mcp.call("comment_issue", {"issue": "WEB-2", "body": key, "idempotencyKey": key})
                except TransportError:
                    # Sent or not, nobody knows: the same key makes the retry safe.
                    record["ambiguous"] += 1
                    record["codes"].append("connection")
                    time.sleep(0.2)
                    continue
                except RequestFailed as error:  # initialize failed (the gateway or its database is away)
                    record["codes"].append(f"initialize {error.status} {error.code}")
                    time.sleep(0.2)
                    continue
                if reply.ok:
                    record["ack"] = True
                    record["replayed"] = reply.replayed
                    break
                record["codes"].append(reply.code)
                if reply.status in (502, 504):
                    record["ambiguous"] += 1  # nginx lost the instance after sending it the request
                if not (reply.retryable or reply.status == 404):
                    break  # refused for good: not acknowledged, and must not be stored twice
                time.sleep(0.2)
        self.reinits += mcp.reinits
        connection.close()

    def stored(self):
        """{body: count} of this load's comments in the database."""
        rows = self.run.pool.sql(f"SELECT body, count(*) FROM comment WHERE body LIKE {literal(self.prefix + '-%')} GROUP BY body")
        return {body: int(count) for body, count in rows}

    def verify(self):
        """Every acknowledged write stored once, nothing stored twice; returns the figures."""
        stored = self.stored()
        with self.lock:
            records = dict(self.records)
        acked = [key for key, record in records.items() if record["ack"]]
        missing = [key for key in acked if stored.get(key, 0) == 0]
        doubled = [key for key, count in stored.items() if count > 1]
        unknown = [key for key in stored if key not in records]
        given_up = [key for key, record in records.items() if record["given_up"]]
        refused = [(key, record["codes"][-1:]) for key, record in records.items() if not record["ack"] and not record["given_up"]]
        cut = [record for record in records.values() if record["ambiguous"] and record["ack"]]
        figures = {
            "writes": len(records), "acknowledged": len(acked), "stored": sum(stored.values()),
            "cut in flight": len(cut), "of which replayed": sum(1 for record in cut if record["replayed"]),
            "retries": sum(record["attempts"] - 1 for record in records.values()),
            "re-initialize after 404": self.reinits,
        }
        expect(not missing, f"{len(missing)} acknowledged writes are not in the database, e.g. {missing[:3]}; {figures}")
        expect(not doubled, f"{len(doubled)} writes are stored more than once, e.g. {doubled[:3]}; {figures}")
        expect(not unknown, f"comments no writer made: {unknown[:3]}")
        expect(not given_up, f"{len(given_up)} writes were still not acknowledged after {WRITE_GIVE_UP:.0f} s of retries "
                             f"(last answers {[records[key]['codes'][-3:] for key in given_up[:3]]}); {figures}")
        expect(not refused, f"writes refused for good: {refused[:5]}; {figures}")
        codes = [code for record in records.values() for code in record["codes"]]
        return figures, cut, codes


class Run:
    def __init__(self, options):
        self.options = options
        self.report = Report()
        self.run_id = str(int(time.time() * 1000))[-8:]
        self.pool = Pool(options.bin_dir, instances=3, work_dir=options.work_dir, keep=True, read_rate=HIGH_RATE,
                         write_rate=HIGH_RATE, pid_file=options.pid_file, log=lambda line: print(line, flush=True))
        self.sidecar_bin = os.path.join(os.path.abspath(options.bin_dir), "agent-sidecar")
        self.secrets = []  # pairing codes and tokens made here, looked for in the logs by check g

    # ----- helpers -----

    def nginx(self):
        return Connection(self.pool.origin, ca_file=self.pool.ca_file)

    def direct(self, index):
        return Connection(self.pool.instances[index].url)

    def agent(self, name, scopes, project="WEB"):
        created = json.loads(self.pool.admin("agent", "create", "--owner", "alice", "--name", f"{name}-{self.run_id}",
                                             "--project", project, "--scope", *scopes, "--json"))
        return created["id"]

    def device(self, agent_id):
        code = json.loads(self.pool.admin("agent", "pair", agent_id, "--json"))["code"]
        self.secrets.append(code.encode())
        connection = self.nginx()
        try:
            return Device.pair(connection, code, self.pool.origin)
        finally:
            connection.close()

    def token(self, device):
        connection = self.nginx()
        try:
            token = device.session_token(connection)
        finally:
            connection.close()
        self.secrets.append(token.encode())
        return token

    def agent_token(self, name, scopes):
        agent_id = self.agent(name, scopes)
        device = self.device(agent_id)
        return agent_id, device, self.token(device)

    def mcp(self, connection, token, reinit_limit=0):
        session = MCP(connection, token, reinit_limit=reinit_limit)
        session.initialize()
        return session

    def upstream_split(self, since_line):
        counts, _ = self.pool.upstream_counts(since_line)
        return "/".join(str(counts.get(instance.port, 0)) for instance in self.pool.instances)

    # ----- 0: MCP sessions -----

    def check_sessions(self):
        _, _, token = self.agent_token("sessions", ["project:read"])
        first = self.mcp(self.direct(0), token)
        answered = []
        for index in (1, 2):
            other = MCP(self.direct(index), token)
            other.session_id = first.session_id
            listing = other.request("tools/list", {})
            expect(listing.status == 200, f"tools/list on instance {index} with instance 0's MCP session answered HTTP "
                                          f"{listing.status}: {listing.body[:160]!r}")
            reply = other.call("list_projects", {})
            expect(reply.ok, f"list_projects on instance {index} with instance 0's MCP session: HTTP {reply.status} {reply.code}")
            answered.append(index)
        through = MCP(self.nginx(), token)
        through.session_id = first.session_id
        codes = [through.call("get_issue", {"issue": "WEB-1"}).code for _ in range(6)]
        expect(all(code is None for code in codes), f"6 calls through nginx with instance 0's MCP session: {codes}")
        return "a session from instance 0 answered on instances 1 and 2 and 6 times through nginx, never 404"

    # ----- a: idempotency -----

    def check_idempotency(self):
        _, _, token = self.agent_token("duplicates", ["project:read", "issue:create"])
        title = f"multi-instance {self.run_id}: one issue from {DUPLICATES} duplicates"
        arguments = {"project": "WEB", "title": title, "description": "Sent 50 times at once.", "idempotencyKey": f"dup-{self.run_id}"}
        routes = ["nginx"] * (DUPLICATES - 24) + [f"instance {i % 3}" for i in range(24)]
        clients = []
        for route in routes:
            connection = self.nginx() if route == "nginx" else self.direct(int(route[-1]))
            clients.append((route, self.mcp(connection, token, reinit_limit=5 if route == "nginx" else 0)))
        before = self.pool.access_log_lines()
        barrier = threading.Barrier(len(clients))
        replies = [None] * len(clients)

        def send(index, mcp):
            try:
                barrier.wait(timeout=30)
                replies[index] = mcp.call("create_issue", dict(arguments))
            except (TransportError, threading.BrokenBarrierError) as error:
                replies[index] = error

        threads = [threading.Thread(target=send, args=(index, mcp), daemon=True) for index, (_, mcp) in enumerate(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.1, started + 90 - time.monotonic()))
        elapsed = time.monotonic() - started
        for _, mcp in clients:
            mcp.connection.close()
        rows = self.pool.sql("SELECT issue.id, project.key || '-' || issue.number FROM issue JOIN project ON project.id = issue.projectID "
                             f"WHERE issue.title = {literal(title)}")
        outcomes = []
        for reply in replies:
            if reply is None:
                outcomes.append("no answer within 90 s")
            elif isinstance(reply, Exception):
                outcomes.append(type(reply).__name__)
            elif reply.ok:
                outcomes.append("replayed" if reply.replayed else "first")
            else:
                outcomes.append(reply.code)
        reinits = sum(mcp.reinits for _, mcp in clients)
        figures = (f"{counted(outcomes)} in {elapsed:.1f} s; {routes.count('nginx')} through nginx (instances "
                   f"{self.upstream_split(before)} of its requests), 8 direct to each instance; {reinits} re-initialize after 404")
        expect(len(rows) == 1, f"{len(rows)} issues titled like the duplicates exist ({[row[1] for row in rows]}); {figures}")
        expect(all(outcome in ("first", "replayed") for outcome in outcomes), f"not every reply is the result: {figures}")
        expect(outcomes.count("first") == 1, f"{outcomes.count('first')} replies are not marked replayed; {figures}")
        results = {json.dumps(reply.without_replay_mark(), sort_keys=True) for reply in replies}
        expect(len(results) == 1, f"{len(results)} different results among the replies; {figures}")
        issue = replies[0].result["structuredContent"]["issue"]
        expect(issue["id"] == rows[0][0], f"the replies name {issue['id']}, the database holds {rows[0][0]}")
        return f"one issue {rows[0][1]}; {figures}"

    # ----- c: revocation -----

    def owner_session(self, connection):
        """Alice signed in to the console through `connection` (one instance): (cookie, CSRF token)."""
        link = self.pool.admin("user", "login-link", "alice", "--url", self.pool.origin, "--ttl", "120").strip()
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query).get("token", [""])[0]
        self.secrets.append(token.encode())
        del link
        expect(token, "user login-link printed no link with a token")
        signed_in = connection.request("POST", "/console/sign-in", form={"token": token})
        cookie = signed_in.headers.get("set-cookie", "").split(";")[0]
        expect(signed_in.status == 303 and cookie.startswith("agw_console="), f"sign-in answered HTTP {signed_in.status}")
        self.secrets.append(cookie.split("=", 1)[1].encode())
        me = connection.request("GET", "/api/owner/v1/me", headers={"Cookie": cookie})
        expect(me.status == 200, f"GET /api/owner/v1/me answered HTTP {me.status}")
        return cookie, me.json()["csrfToken"]

    def check_revocation(self):
        a, b, c = 0, 1, 2
        owner = self.direct(a)
        cookie, csrf = self.owner_session(owner)
        changes = {"Cookie": cookie, "X-CSRF-Token": csrf}
        notes = []
        cases = [
            ("device revoked through instance A's owner API", "device_revoked",
             lambda agent_id, device: owner.request("POST", f"/api/owner/v1/agents/{agent_id}/devices/{device.device_id}/revoke", {}, changes)),
            ("agent revoked through instance A's owner API", "agent_revoked",
             lambda agent_id, device: owner.request("POST", f"/api/owner/v1/agents/{agent_id}/revoke", {}, changes)),
            ("agent revoked by the admin CLI", "agent_revoked",
             lambda agent_id, device: self.pool.admin("agent", "revoke", agent_id)),
        ]
        for number, (what, code, revoke) in enumerate(cases):
            agent_id, device, token = self.agent_token(f"revoke{number}", ["project:read"])
            on_b, on_c = self.mcp(self.direct(b), token), self.mcp(self.direct(c), token)
            for name, session in (("B", on_b), ("C", on_c)):
                warm = session.call("get_issue", {"issue": "WEB-1"})
                expect(warm.ok, f"{what}: the call on instance {name} before revoking failed: {warm.code}")
            answer = revoke(agent_id, device)
            if hasattr(answer, "status"):
                expect(answer.status == 200, f"{what}: the owner API answered HTTP {answer.status}: {answer.body[:200]!r}")
            after_b = on_b.call("get_issue", {"issue": "WEB-1"})
            after_c = on_c.call("get_issue", {"issue": "WEB-1"})
            expect(after_b.code == code, f"{what}: the next call on instance B answered HTTP {after_b.status} {after_b.code}, not {code}")
            expect(after_c.code == code, f"{what}: the next call on instance C answered HTTP {after_c.status} {after_c.code}, not {code}")
            notes.append(f"{what}: next call on B and C {after_b.status} {code}")
        return "; ".join(notes)

    # ----- d: kill -9 -----

    def check_kill(self):
        _, _, token = self.agent_token("killed", ["project:read", "issue:comment"])
        writers = Writers(self, token, f"d-{self.run_id}", 6)
        before = self.pool.access_log_lines()
        writers.start()
        rounds, frozen = 0, 0
        try:
            time.sleep(3)
            while rounds < 3:
                rounds += 1
                cut_before = writers.ambiguous()
                if rounds > 1:
                    # The first kill cut no write in flight: freeze the instance for a second, so that
                    # nginx's requests to it pile up unanswered, then kill it.
                    os.kill(self.pool.instances[KILLED].process.pid, signal.SIGSTOP)
                    frozen += 1
                    time.sleep(1)
                self.pool.kill_instance(KILLED)
                time.sleep(2)
                self.pool.restart_instance(KILLED)
                time.sleep(2)
                if writers.ambiguous() > cut_before:
                    break
        finally:
            stuck = writers.finish()
            if not self.pool.instances[KILLED].alive():  # the later checks need all three
                self.pool.restart_instance(KILLED)
        expect(not stuck, f"{len(stuck)} writer threads did not finish within {WRITE_GIVE_UP + 30:.0f} s")
        figures, cut, codes = writers.verify()
        expect(cut, f"{rounds} kill -9 of instance {KILLED} cut no write in flight, so nothing was tested; {figures}")
        fresh = len(cut) - figures["of which replayed"]
        how = f" ({frozen} of them after a 1 s SIGSTOP)" if frozen else ""
        return (f"{rounds} kill -9 of instance {KILLED}{how} under 6 writers; {figures['acknowledged']} writes acknowledged, "
                f"{figures['stored']} stored, each once; {len(cut)} cut in flight: {figures['of which replayed']} replayed, "
                f"{fresh} stored by the retry; answers retried: {counted(codes) or 'none'}; nginx passed "
                f"{self.upstream_split(before)} requests to the instances; {figures['re-initialize after 404']} re-initialize after 404")

    # ----- e: PostgreSQL restart -----

    def check_postgres_restart(self):
        _, _, token = self.agent_token("pgrestart", ["project:read", "issue:comment"])
        probes = [self.mcp(self.direct(index), token) for index in range(3)]
        pids = [instance.process.pid for instance in self.pool.instances]
        writers = Writers(self, token, f"e-{self.run_id}", 4)
        writers.start()
        down_calls, ready_down, ready_up = [], [], []
        postgres_down = False
        try:
            time.sleep(2)
            stop_started = time.monotonic()
            self.pool.stop_postgres()
            postgres_down = True
            stopped_in = time.monotonic() - stop_started
            down_started = time.monotonic()
            for index, probe in enumerate(probes):
                ready_down.append(readiness(self.pool.instances[index].url, timeout=DOWN_CALL_BOUND)[0])
                for name, arguments in (("get_issue", {"issue": "WEB-1"}),
                                        ("comment_issue", {"issue": "WEB-2", "body": f"e-probe-{self.run_id}-{index}",
                                                           "idempotencyKey": f"e-probe-{self.run_id}-{index}"})):
                    started = time.monotonic()
                    try:
                        reply = probe.call(name, arguments)
                        down_calls.append((index, name, time.monotonic() - started, reply.status, reply.code, reply.retryable))
                    except TransportError as error:
                        down_calls.append((index, name, time.monotonic() - started, None, str(error)[:60], False))
                # A new MCP session needs the database too (its token is checked there).
                started = time.monotonic()
                fresh = MCP(self.direct(index), token)
                try:
                    fresh.initialize()
                    down_calls.append((index, "initialize", time.monotonic() - started, 200, None, False))
                except RequestFailed as error:
                    down_calls.append((index, "initialize", time.monotonic() - started, error.status, error.code, error.status >= 500))
                except TransportError as error:
                    down_calls.append((index, "initialize", time.monotonic() - started, None, str(error)[:60], False))
                fresh.connection.close()
            # Keep it down a little longer under the writers' retries.
            time.sleep(max(0.0, 4 - (time.monotonic() - down_started)))
            down_for = time.monotonic() - down_started
            self.pool.start_postgres()
            postgres_down = False
            back = time.monotonic()
            deadline = back + RECOVERY_BOUND
            recovered = [None] * 3
            while time.monotonic() < deadline and None in recovered:
                for index, instance in enumerate(self.pool.instances):
                    if recovered[index] is None and readiness(instance.url, timeout=5)[0] == 200:
                        recovered[index] = time.monotonic() - back
                time.sleep(0.1)
            time.sleep(2)
        finally:
            if postgres_down:  # the later checks need it
                self.pool.start_postgres()
            stuck = writers.finish()
        ready_up = [readiness(instance.url, timeout=5)[0] for instance in self.pool.instances]
        expect(not stuck, f"{len(stuck)} writer threads did not finish within {WRITE_GIVE_UP + 30:.0f} s")
        calls = "; ".join(f"{name} on {index}: {took:.2f} s HTTP {status} {code}" for index, name, took, status, code, _ in down_calls)
        recovery = ", ".join("never" if t is None else f"{t:.1f}" for t in recovered)
        problems = []
        if not all(status is not None and status != 200 for status in ready_down):
            problems.append(f"/readyz passed while PostgreSQL was down: {ready_down}")
        if None in recovered:
            problems.append(f"/readyz not ready within {RECOVERY_BOUND:.0f} s after PostgreSQL came back: {ready_up}")
        if any(call[2] > DOWN_CALL_BOUND or call[3] is None for call in down_calls):
            problems.append(f"calls while PostgreSQL was down hung or got no answer within {DOWN_CALL_BOUND:.0f} s")
        # Clean: 503 with a retryable code that says the store (or tracker) is unavailable.
        if any(call[3] != 503 or not str(call[4]).endswith("_unavailable") or not call[5] for call in down_calls):
            problems.append("calls while PostgreSQL was down did not all answer 503 with a retryable …_unavailable code")
        alive = [instance.process.pid for instance in self.pool.instances if instance.alive()]
        if alive != pids:
            problems.append(f"the instances were restarted or died: pids {pids} before, {alive} after")
        after = [probe.call("get_issue", {"issue": "WEB-1"}).code for probe in probes]
        if any(code is not None for code in after):
            problems.append(f"reads on the same MCP sessions after recovery answered {after}")
        probe_rows = self.pool.sql(f"SELECT body, count(*) FROM comment WHERE body LIKE {literal('e-probe-' + self.run_id + '-%')} GROUP BY body")
        if any(int(count) != 1 for _, count in probe_rows):
            problems.append(f"a probe write is stored twice: {probe_rows}")
        figures, _, codes = writers.verify()
        summary = (f"down {down_for:.1f} s (stop took {stopped_in:.1f} s); /readyz {ready_down} while down, "
                   f"ready again after {recovery} s; calls while down: {calls}; "
                   f"{figures['acknowledged']} writes acknowledged, {figures['stored']} stored, each once; answers retried: "
                   f"{counted(codes) or 'none'}")
        expect(not problems, "; ".join(problems) + " :: " + summary)
        return summary + "; same pids, the same MCP sessions work after"

    # ----- f: the sidecar -----

    def check_sidecar(self):
        agent_id = self.agent("sidecar", ["project:read", "issue:comment"])
        code = json.loads(self.pool.admin("agent", "pair", agent_id, "--json"))["code"]
        self.secrets.append(code.encode())
        home = os.path.join(self.pool.work, "sidecar-home")
        project = os.path.join(home, "src", "website")
        os.makedirs(project)
        env = {"HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGENT_SIDECAR_PAIRING_CODE": code}
        setup = subprocess.run([self.sidecar_bin, "setup", "--gateway", self.pool.origin, "--ca-file", self.pool.ca_file,
                                "--device-name", "multi-instance"], cwd=project, env=env, capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
        with open(os.path.join(self.pool.logs, "sidecar-setup.log"), "w") as log:
            log.write(setup.stdout + setup.stderr)
        expect(setup.returncode == 0, f"agent-sidecar setup --gateway {self.pool.origin} --ca-file CA exited {setup.returncode}: "
                                      f"{(setup.stderr or setup.stdout).strip()[:400]}")
        with open(os.path.join(home, ".codex", "config.toml"), "rb") as handle:
            entry = tomllib.load(handle)["mcp_servers"]["agent-sidecar"]
        args = list(entry.get("args", []))
        # serve runs exactly as Codex would start it: the profile keeps the CA setup was given.
        expect("--ca-file" not in args, f"setup put --ca-file in the client entry: {args}")
        del env["AGENT_SIDECAR_PAIRING_CODE"]
        env.update({key: str(value) for key, value in entry.get("env", {}).items()})
        before = self.pool.access_log_lines()
        stderr_path = os.path.join(self.pool.logs, "sidecar.stderr")
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen([entry["command"], *args], cwd=project, env=env, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
        if self.options.pid_file:
            with open(self.options.pid_file, "a") as handle:
                handle.write(f"{process.pid}\n")
        try:
            answers = self.drive_sidecar(process)
        finally:
            if process.poll() is None:
                process.stdin.close()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        comment = answers["comment"]
        rows = self.pool.sql(f"SELECT count(*) FROM comment WHERE body = {literal(comment)}")
        expect(rows[0][0] == "1", f"the sidecar's comment is stored {rows[0][0]} times")
        counts, _ = self.pool.upstream_counts(before)
        used = [instance.index for instance in self.pool.instances if counts.get(instance.port, 0) > 0]
        expect(len(used) >= 2, f"nginx passed the sidecar's requests to instances {used} only ({counts})")
        with open(stderr_path, "rb") as handle:
            expect(not TOKEN.search(handle.read()), "the sidecar's stderr holds a session token")
        return (f"paired over https with the test CA (setup --ca-file; serve started as the Codex entry says, trusting the CA the profile kept); "
                f"initialize, tools/list ({answers['tools']} tools), {answers['reads']} reads and a write (stored once); "
                f"its requests answered by instances {'/'.join(str(counts.get(i.port, 0)) for i in self.pool.instances)}")

    def drive_sidecar(self, process):
        lines = []
        arrived = threading.Condition()

        def read():
            for line in process.stdout:
                with arrived:
                    lines.append(line)
                    arrived.notify_all()
            with arrived:
                arrived.notify_all()

        threading.Thread(target=read, daemon=True).start()
        state = {"id": 0}

        def request(method, params=None, timeout=30):
            state["id"] += 1
            number = state["id"]
            message = {"jsonrpc": "2.0", "id": number, "method": method}
            if params is not None:
                message["params"] = params
            process.stdin.write(json.dumps(message).encode() + b"\n")
            process.stdin.flush()
            deadline = time.monotonic() + timeout
            with arrived:
                while True:
                    for line in lines:
                        try:
                            answer = json.loads(line)
                        except ValueError:
                            raise StepFailed(f"the sidecar wrote a non-JSON line on stdout: {line[:100]!r}")
                        if answer.get("id") == number:
                            return answer
                    left = deadline - time.monotonic()
                    if left <= 0 or process.poll() is not None:
                        raise StepFailed(f"no answer to {method} within {timeout} s (sidecar exit status {process.poll()})")
                    arrived.wait(left)

        init = request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                      "clientInfo": {"name": "multi-instance", "version": "1"}})
        expect("result" in init, f"initialize: {json.dumps(init)[:300]}")
        process.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        process.stdin.flush()
        listing = request("tools/list", {})
        tools = sorted(tool["name"] for tool in listing.get("result", {}).get("tools", []))
        expect("get_issue" in tools and "comment_issue" in tools, f"tools/list: {json.dumps(listing)[:300]}")

        def call(name, arguments):
            answer = request("tools/call", {"name": name, "arguments": arguments})
            result = answer.get("result") or {}
            expect("result" in answer and not result.get("isError"), f"{name}: {json.dumps(answer)[:400]}")
            return result

        projects = call("list_projects", {})["structuredContent"]["projects"]
        expect([project["key"] for project in projects] == ["WEB"], f"list_projects: {projects}")
        reads = 1
        for _ in range(5):
            call("get_issue", {"issue": "WEB-1"})
            reads += 1
        comment = f"f-{self.run_id}: written by a sidecar through nginx"
        call("comment_issue", {"issue": "WEB-1", "body": comment, "idempotencyKey": f"f-{self.run_id}"})
        return {"tools": len(tools), "reads": reads, "comment": comment}

    # ----- b: rate limit -----

    def check_rate_limit(self):
        self.pool.restart_all(write_rate=LOW_WRITE_RATE)
        _, _, token = self.agent_token("ratelimit", ["project:read", "issue:comment"])
        per_instance, per_client = 6, 5
        clients = [(index, self.mcp(self.direct(index), token)) for index in range(3) for _ in range(per_instance)]
        prefix = f"b-{self.run_id}"
        barrier = threading.Barrier(len(clients))
        outcomes = []
        lock = threading.Lock()

        def burst(number, index, mcp):
            try:
                barrier.wait(timeout=30)
            except threading.BrokenBarrierError:
                return
            for item in range(per_client):
                key = f"{prefix}-{number}-{item}"
                try:
                    reply = mcp.call("comment_issue", {"issue": "WEB-3", "body": key, "idempotencyKey": key})
                    outcome = "accepted" if reply.ok else reply.code
                except TransportError as error:
                    outcome = f"connection: {error}"[:60]
                with lock:
                    outcomes.append((index, outcome, time.monotonic()))

        threads = [threading.Thread(target=burst, args=(number, index, mcp), daemon=True) for number, (index, mcp) in enumerate(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.1, started + 90 - time.monotonic()))
        elapsed = (max(at for _, _, at in outcomes) - started) if outcomes else 0.0
        total = len(clients) * per_client
        accepted = [index for index, outcome, _ in outcomes if outcome == "accepted"]
        limited = [index for index, outcome, _ in outcomes if outcome == "rate_limited"]
        others = [outcome for _, outcome, _ in outcomes if outcome not in ("accepted", "rate_limited")]
        allowance = LOW_WRITE_RATE + math.ceil(elapsed * LOW_WRITE_RATE / 60) + 1
        stored = self.pool.sql(f"SELECT count(*) FROM comment WHERE body LIKE {literal(prefix + '-%')}")[0][0]
        split = "/".join(str(accepted.count(index)) for index in range(3))
        figures = (f"{total} writes ({len(clients)} clients, {per_instance} per instance) in {elapsed:.1f} s: {len(accepted)} accepted "
                   f"(instances {split}), {len(limited)} rate_limited; budget {LOW_WRITE_RATE} + refill allows at most {allowance}")
        expect(len(outcomes) == total, f"{total - len(outcomes)} writes got no answer; {figures}")
        expect(not others, f"other answers: {counted(others)}; {figures}")
        expect(1 <= len(accepted) <= allowance, f"the instances accepted {len(accepted)}, more than one budget: {figures}")
        expect(int(stored) == len(accepted), f"{stored} comments stored for {len(accepted)} accepted writes")
        return f"{figures}; {stored} stored"

    # ----- g: secrets -----

    def check_no_secrets(self):
        password = self.pool._password.encode()
        found = []
        scanned = 0
        for root, _, files in os.walk(self.pool.logs):
            for name in files:
                with open(os.path.join(root, name), "rb") as handle:
                    data = handle.read()
                scanned += len(data)
                if password and password in data:
                    found.append(f"the database password in {name}")
                if TOKEN.search(data):
                    found.append(f"a session token in {name}")
                for secret in self.secrets:
                    if secret and secret in data:
                        found.append(f"a code, token or cookie of this run in {name}")
        expect(not found, "; ".join(sorted(set(found))))
        for instance in self.pool.instances:
            argv = " ".join(self.pool.serve_argv(instance)).encode()
            expect(password not in argv, "the database password is on a gateway's command line")
        return f"{scanned} bytes of gateway, nginx and sidecar logs; no password on any command line"

    # ----- the run -----

    def run(self):
        only = set(self.options.only.split(",")) if self.options.only else None
        checks = [
            ("0", "0. an MCP session opened on one instance is answered by the others", self.check_sessions),
            ("a", f"a. {DUPLICATES} concurrent duplicates of one idempotency key over the instances: one issue, every reply the same",
             self.check_idempotency),
            ("c", "c. revoke through instance A: the next call on instance B is refused", self.check_revocation),
            ("d", "d. kill -9 of an instance under write load: every acknowledged write stored once, cut writes replay",
             self.check_kill),
            ("e", "e. PostgreSQL restarted under load: clean failures while down, /readyz, recovery without a restart, no write lost",
             self.check_postgres_restart),
            ("f", "f. a paired sidecar through nginx over TLS against the pool", self.check_sidecar),
            ("b", f"b. an agent's write rate limit ({LOW_WRITE_RATE}/min) holds across the instances", self.check_rate_limit),
            ("g", "g. no secret in the logs of the run", self.check_no_secrets),
        ]
        started = time.monotonic()
        try:
            self.pool.start()
            print(f"multi-instance: binaries in {self.options.bin_dir}; work dir {self.pool.work}", flush=True)
            ready = True
        except (PoolError, OSError, subprocess.SubprocessError) as error:
            self.report.fail("set-up: PostgreSQL, 3 gateway instances, nginx with TLS", f"{type(error).__name__}: {error}")
            ready = False
        for letter, name, function in checks:
            if only and letter not in only:
                continue
            if not ready:
                self.report.fail(name, "not run: the set-up failed")
                continue
            self.report.run(name, function)
        keep = self.options.keep or self.report.failed > 0
        self.pool.keep = keep
        self.pool.stop()
        if keep:
            print(f"multi-instance: logs kept in {self.pool.work}/logs (gateway-N.log, nginx-*.log, sidecar.stderr)", flush=True)
        print(f"multi-instance: {time.monotonic() - started:.1f} s", flush=True)
        print(f"{self.report.passed} passed, {self.report.failed} failed", flush=True)
        return 1 if self.report.failed or not self.report.passed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--work-dir", help="an empty directory for the run (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (kept anyway when a check fails)")
    parser.add_argument("--pid-file", help="append the pid of every process started here (for the calling script's trap)")
    parser.add_argument("--only", help="comma-separated check letters to run (0,a,b,c,d,e,f,g)")
    options = parser.parse_args()
    for name in ("agent-gateway", "agent-sidecar"):
        if not os.access(os.path.join(options.bin_dir, name), os.X_OK):
            print(f"multi-instance: {options.bin_dir}/{name} is missing; build it first (swift build)", file=sys.stderr)
            sys.exit(2)
    install_signal_handlers()

    def overdue(signum, frame):
        print(f"multi-instance: the run took more than {RUN_BOUND} s; stopping it", flush=True)
        raise SystemExit(1)

    signal.signal(signal.SIGALRM, overdue)
    signal.alarm(RUN_BOUND)
    sys.exit(Run(options).run())


if __name__ == "__main__":
    main()
