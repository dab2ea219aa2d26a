#!/usr/bin/env python3
"""The gateway's request path under wrk (a load generator in C), on loopback.

Usage: Benchmarks/gateway-wrk.py --binary .build/release/agent-gateway [--binary OTHER …]
           [--connections 16] [--seconds 10] [--agents 16] [--rounds 1]

For each binary (several are measured side by side, alternating, --rounds times): a fresh SQLite
database, the demo workspace, --agents agents paired and with an MCP session each (this set-up is
Python; the load is not), rate limits raised so that only the request path is measured, then three
wrk runs of --seconds each with --connections keep-alive connections on 2 threads:
  healthz  GET /healthz: the framework's ceiling on this machine, in the same run;
  read     tools/call get_issue WEB-1, agents taken in turn;
  write    tools/call comment_issue WEB-2, agents taken in turn.
Every call's outcome is counted from the gateway's audit afterwards, so an error answered with
HTTP 200 is not counted as throughput. Prints one JSON line per run and a Markdown table.
Needs wrk (apt) and the `cryptography` package (as Benchmarks/gateway-load.py does).
"""
import argparse, asyncio, importlib.util, json, os, shutil, sqlite3, subprocess, tempfile, time

spec = importlib.util.spec_from_file_location("gateway_load", os.path.join(os.path.dirname(os.path.abspath(__file__)), "gateway-load.py"))
gateway_load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gateway_load)

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


def start_gateway(binary, directory):
    db = os.path.join(directory, "gateway.sqlite")
    gateway_load.run(binary, "seed-demo", "--db", db)
    process = subprocess.Popen([binary, "serve", "--db", db, "--port", "0", "--read-rate", "100000000", "--write-rate", "100000000"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    url = json.loads(process.stdout.readline())["url"]
    return process, db, url


async def sessions_for(host, port, binary, db, count):
    sessions = []
    for _ in range(count):
        connection, headers = await gateway_load.client_session(host, port, binary, db)
        connection.writer.close()
        sessions.append((headers["Authorization"], headers["Mcp-Session-Id"]))
    return sessions


def outcomes_since(db, since_ms):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT outcome, count(*) FROM auditEvent WHERE at >= ? GROUP BY outcome", (since_ms,)).fetchall()
    return dict(rows)


def measure(binary, options, label):
    directory = tempfile.mkdtemp(prefix="gateway-wrk-")
    process = None
    try:
        process, db, url = start_gateway(binary, directory)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        sessions = asyncio.run(sessions_for(host, int(port), binary, db, options.agents))
        table = "{" + ",".join("{" + lua_string(auth) + "," + lua_string(mcp) + "}" for auth, mcp in sessions) + "}"
        results = {}
        for kind in ("healthz", "read", "write"):
            script = os.path.join(directory, f"{kind}.lua")
            with open(script, "w") as handle:
                handle.write(LUA.replace("{SESSIONS}", table).replace("{KIND}", kind))
            started = int(time.time() * 1000)
            output = subprocess.run(["wrk", "-t", "2", "-c", str(options.connections), "-d", f"{options.seconds}s", "--timeout", "10s",
                                     "-s", script, url], capture_output=True, text=True, timeout=options.seconds + 60).stdout
            line = next(line for line in output.splitlines() if line.startswith("WRK "))
            result = json.loads(line[4:])
            result["perSecond"] = round(result["requests"] / result["seconds"])
            if kind != "healthz":
                outcomes = outcomes_since(db, started)
                result["auditOk"] = outcomes.get("ok", 0)
                result["auditOther"] = sum(count for outcome, count in outcomes.items() if outcome != "ok")
            results[kind] = result
            print(json.dumps({"binary": label, "kind": kind, **result}), flush=True)
        results["readShareOfHealthz"] = round(results["read"]["perSecond"] / results["healthz"]["perSecond"], 3)
        return results
    finally:
        if process:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", action="append", required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    options = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("gateway-wrk: wrk is missing; install it with `apt-get install wrk` (scripts/install-deps --bench)")
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(f"# {os.cpu_count()} cores, load average {' '.join(load)} at the start", flush=True)
    rows = []
    for round_number in range(options.rounds):
        for binary in options.binary:
            results = measure(binary, options, binary)
            rows.append((binary, round_number + 1, results))
    print("\n| binary | round | /healthz per s | read per s | read p50 / p99 ms | write per s | write p50 / p99 ms | read ÷ healthz | calls not ok |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for binary, round_number, r in rows:
        print(f"| {binary} | {round_number} | {r['healthz']['perSecond']} | {r['read']['perSecond']} | {r['read']['p50ms']} / {r['read']['p99ms']} | "
              f"{r['write']['perSecond']} | {r['write']['p50ms']} / {r['write']['p99ms']} | {r['readShareOfHealthz']:.0%} | "
              f"{r['read']['auditOther'] + r['write']['auditOther'] + r['read']['non2xx'] + r['write']['non2xx']} |")


if __name__ == "__main__":
    main()
