#!/usr/bin/env python3
"""The gateway's request path under wrk (a load generator in C), on loopback, on each backend.

Usage: Benchmarks/gateway-wrk.py --bin-dir .build/release [--backends sqlite,postgres,postgres-nginx]
           [--connections 16] [--seconds 10] [--agents 16] [--rounds 1]
       Benchmarks/gateway-wrk.py --binary OLD/agent-gateway --binary NEW/agent-gateway [--backends sqlite]

Set-ups, measured side by side in one run (alternating, --rounds times):
  sqlite          SQLite, 1 instance (a fresh database file), wrk straight to it over HTTP;
  postgres        PostgreSQL, 1 instance, wrk straight to it over HTTP;
  postgres-nginx  PostgreSQL, 3 instances behind nginx, wrk to nginx over TLS (round robin,
                  upstream keep-alive; Tests/MultiInstance/pool.py starts the cluster, the
                  instances and nginx with a CA made for the run).
For each: the demo workspace, --agents agents paired with an MCP session each (this set-up is
Python; the load is not), rate limits raised so that only the request path is measured, then three
wrk runs of --seconds each with --connections keep-alive connections on 2 threads:
  healthz  GET /healthz: the framework's ceiling on this machine, in the same run (through nginx
           for postgres-nginx: then it is nginx's and TLS's ceiling too);
  read     tools/call get_issue WEB-1, agents taken in turn;
  write    tools/call comment_issue WEB-2, agents taken in turn.
Every call's outcome is counted from the gateway's audit afterwards: reads and writes per second
are the calls the audit records as ok, so an error (even one answered with HTTP 200) is not
counted as throughput; "calls not ok" adds the audit's other outcomes and wrk's non-2xx answers. wrk runs on the same 2 cores as the servers: its CPU time
(user + system, in cores) and the servers' (gateways, nginx, PostgreSQL) are printed beside each
figure. Prints one JSON line per run and a Markdown table.
Needs wrk (apt), the `cryptography` package (as Benchmarks/gateway-load.py does), and for the
PostgreSQL set-ups PostgreSQL and nginx (scripts/install-deps --postgres --nginx).
"""
import argparse, asyncio, importlib.util, json, os, resource, shutil, sqlite3, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("gateway_load", os.path.join(HERE, "gateway-load.py"))
gateway_load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gateway_load)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "Tests", "MultiInstance"))

RATE = "100000000"  # per minute: no limit
LABELS = {"sqlite": "SQLite, 1 instance", "postgres": "PostgreSQL, 1 instance",
          "postgres-nginx": "PostgreSQL, 3 instances behind nginx (TLS)"}

LUA = r"""
local sessions = {SESSIONS}
local kind = "{KIND}"
local counter = 0
local next_thread = 0
function setup(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
end
function init(args)
  counter = (thread_number or 0) * 1000000000
end
function request()
  counter = counter + 1
  if kind == "healthz" then
    return wrk.format("GET", "/healthz")
  end
  local s = sessions[(counter % #sessions) + 1]
  local body
  if kind == "read" then
    body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_issue","arguments":{"issue":"WEB-1"}}}'
  else
    body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"comment_issue","arguments":{"issue":"WEB-2","body":"wrk ' .. counter .. '"}}}'
  end
  return wrk.format("POST", "/mcp", {
    ["Authorization"] = s[1], ["Mcp-Session-Id"] = s[2], ["MCP-Protocol-Version"] = "2025-11-25",
    ["Content-Type"] = "application/json", ["Accept"] = "application/json, text/event-stream"}, body)
end
function done(summary, latency, requests)
  io.write(string.format('WRK {"requests":%d,"seconds":%.3f,"non2xx":%d,"socketErrors":%d,"p50ms":%.2f,"p99ms":%.2f,"maxms":%.2f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def lua_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cpu_seconds(roots):
    """User + system CPU seconds of the processes `roots` and all their descendants (from /proc)."""
    parents, times = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(name)] = int(fields[1])
        times[int(name)] = int(fields[11]) + int(fields[12])
    chosen, frontier = set(roots), list(roots)
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in chosen:
                chosen.add(pid)
                frontier.append(pid)
    return sum(times.get(pid, 0) for pid in chosen) / os.sysconf("SC_CLK_TCK")


class SQLiteTarget:
    """One gateway on a fresh SQLite file, reached directly (today's set-up)."""

    def __init__(self, binary, options):
        self.binary, self.options = binary, options
        self.directory = tempfile.mkdtemp(prefix="gateway-wrk-")
        self.process = None

    def start(self):
        db = self.db = os.path.join(self.directory, "gateway.sqlite")
        gateway_load.run(self.binary, "seed-demo", "--db", db)
        self.process = subprocess.Popen([self.binary, "serve", "--db", db, "--port", "0", "--read-rate", RATE, "--write-rate", RATE],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.url = json.loads(self.process.stdout.readline())["url"]
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self.sessions = asyncio.run(self._sessions(host, int(port)))

    async def _sessions(self, host, port):
        sessions = []
        for _ in range(self.options.agents):
            connection, headers = await gateway_load.client_session(host, port, self.binary, self.db)
            connection.writer.close()
            sessions.append((headers["Authorization"], headers["Mcp-Session-Id"]))
        return sessions

    def outcomes_since(self, since_ms):
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as connection:
            rows = connection.execute("SELECT outcome, count(*) FROM auditEvent WHERE at >= ? GROUP BY outcome", (since_ms,)).fetchall()
        return dict(rows)

    def server_pids(self):
        return [self.process.pid]

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=30)
        shutil.rmtree(self.directory, ignore_errors=True)


class PoolTarget:
    """Gateways on a PostgreSQL cluster of their own: one reached directly, or three behind nginx."""

    def __init__(self, binary, options, instances, nginx):
        from pool import Pool  # Tests/MultiInstance/pool.py

        self.options = options
        self.pool = Pool(os.path.dirname(os.path.abspath(binary)), instances=instances, nginx=nginx,
                         read_rate=int(RATE), write_rate=int(RATE), log=lambda line: print(f"# {line}", flush=True))
        self.url = self.pool.origin

    def start(self):
        from client import MCP, Connection, Device  # Tests/MultiInstance/client.py

        self.pool.start()
        ca_file = self.pool.ca_file if self.pool.with_nginx else None
        self.sessions = []
        for number in range(self.options.agents):
            agent = json.loads(self.pool.admin("agent", "create", "--owner", "alice", "--name", f"wrk-{number}", "--project", "WEB",
                                               "--scope", "project:read", "issue:create", "issue:comment", "--json"))["id"]
            code = json.loads(self.pool.admin("agent", "pair", agent, "--json"))["code"]
            connection = Connection(self.url, ca_file=ca_file)
            device = Device.pair(connection, code, self.pool.origin, name="wrk")
            token = device.session_token(connection)
            mcp = MCP(connection, token)
            mcp.initialize()
            connection.close()
            self.sessions.append(("Bearer " + token, mcp.session_id))

    def outcomes_since(self, since_ms):
        return {outcome: int(count) for outcome, count in
                self.pool.sql(f"SELECT outcome, count(*) FROM auditEvent WHERE at >= {int(since_ms)} GROUP BY outcome")}

    def server_pids(self):
        return self.pool.pids()

    def stop(self):
        self.pool.stop()


def make_target(backend, binary, options):
    if backend == "sqlite":
        return SQLiteTarget(binary, options)
    return PoolTarget(binary, options, instances=3 if backend == "postgres-nginx" else 1, nginx=backend == "postgres-nginx")


def measure(backend, binary, options):
    target = make_target(backend, binary, options)
    try:
        target.start()
        table = "{" + ",".join("{" + lua_string(auth) + "," + lua_string(mcp) + "}" for auth, mcp in target.sessions) + "}"
        results = {}
        directory = tempfile.mkdtemp(prefix="gateway-wrk-lua-")
        try:
            for kind in ("healthz", "read", "write"):
                script = os.path.join(directory, f"{kind}.lua")
                with open(script, "w") as handle:
                    handle.write(LUA.replace("{SESSIONS}", table).replace("{KIND}", kind))
                started = int(time.time() * 1000)
                servers_before = cpu_seconds(target.server_pids())
                wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                output = subprocess.run(["wrk", "-t", "2", "-c", str(options.connections), "-d", f"{options.seconds}s", "--timeout", "10s",
                                         "-s", script, target.url], capture_output=True, text=True, timeout=options.seconds + 60).stdout
                wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
                servers_after = cpu_seconds(target.server_pids())
                line = next(line for line in output.splitlines() if line.startswith("WRK "))
                result = json.loads(line[4:])
                result["perSecond"] = round(result["requests"] / result["seconds"])
                wrk_cpu = (wrk_after.ru_utime - wrk_before.ru_utime) + (wrk_after.ru_stime - wrk_before.ru_stime)
                result["wrkCores"] = round(wrk_cpu / result["seconds"], 2)
                result["serverCores"] = round((servers_after - servers_before) / result["seconds"], 2)
                if kind != "healthz":
                    outcomes = target.outcomes_since(started)
                    result["auditOk"] = outcomes.get("ok", 0)
                    result["auditOther"] = sum(count for outcome, count in outcomes.items() if outcome != "ok")
                    # Throughput counts the calls the audit says succeeded, not wrk's requests.
                    result["okPerSecond"] = round(result["auditOk"] / result["seconds"])
                results[kind] = result
                print(json.dumps({"setup": LABELS[backend], "binary": binary, "kind": kind, **result}), flush=True)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        results["readShareOfHealthz"] = round(results["read"]["okPerSecond"] / max(1, results["healthz"]["perSecond"]), 3)
        return results
    finally:
        target.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", help="the directory of the agent-gateway to measure (e.g. .build/release)")
    parser.add_argument("--binary", action="append", default=[], help="an agent-gateway binary (repeat to compare builds)")
    parser.add_argument("--backends", default="sqlite,postgres,postgres-nginx",
                        help="comma-separated set-ups: sqlite, postgres, postgres-nginx (default: all three)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    options = parser.parse_args()
    binaries = list(options.binary) + ([os.path.join(options.bin_dir, "agent-gateway")] if options.bin_dir else [])
    if not binaries:
        parser.error("name the gateway to measure with --bin-dir DIR or --binary FILE")
    backends = [backend.strip() for backend in options.backends.split(",") if backend.strip()]
    unknown = [backend for backend in backends if backend not in LABELS]
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; use sqlite, postgres, postgres-nginx")
    if not shutil.which("wrk"):
        raise SystemExit("gateway-wrk: wrk is missing; install it with `apt-get install wrk`")
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(f"# {os.cpu_count()} cores, load average {' '.join(load)} at the start; wrk shares the cores with the servers", flush=True)
    rows = []
    for round_number in range(options.rounds):
        for binary in binaries:
            for backend in backends:
                rows.append((LABELS[backend], binary, round_number + 1, measure(backend, binary, options)))
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(f"\n# load average {' '.join(load)} at the end; {options.connections} connections, {options.seconds} s per figure")
    print("\n| set-up | binary | round | /healthz per s | read per s | read p50 / p99 ms | write per s | write p50 / p99 ms | read ÷ healthz "
          "| calls not ok | wrk CPU (cores) h / r / w | server CPU (cores) h / r / w |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, binary, round_number, r in rows:
        kinds = ("healthz", "read", "write")
        print(f"| {label} | {binary} | {round_number} | {r['healthz']['perSecond']:,} | {r['read']['okPerSecond']:,} | "
              f"{r['read']['p50ms']} / {r['read']['p99ms']} | {r['write']['okPerSecond']:,} | {r['write']['p50ms']} / {r['write']['p99ms']} | "
              f"{r['readShareOfHealthz']:.0%} | "
              f"{r['read']['auditOther'] + r['write']['auditOther'] + r['read']['non2xx'] + r['write']['non2xx']} | "
              f"{' / '.join(str(r[kind]['wrkCores']) for kind in kinds)} | {' / '.join(str(r[kind]['serverCores']) for kind in kinds)} |")


if __name__ == "__main__":
    main()
