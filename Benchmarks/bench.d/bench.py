#!/usr/bin/env python3
"""Side-by-side benchmarks of agent-sidecar, the Python mcp-proxy bridge and direct HTTP.

Run through Benchmarks/bench, which builds the release binaries, compiles the C client
(Benchmarks/bench.d/mcpbench.c) and installs mcp-proxy into .venv/bench. This file starts the
upstreams (mcp-fixture-server, agent-gateway), runs every measurement with the C client, prints
the table and writes it into docs/benchmarks.md (between the generated-section markers; the prose
outside them is kept), or into bench-results/ with --quick.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RELEASE = os.path.join(ROOT, ".build", "release")
BEGIN_MARK = "<!-- Benchmarks/bench: generated section begins; edits inside it are overwritten -->"
END_MARK = "<!-- Benchmarks/bench: generated section ends -->"


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Settings:
    def __init__(self, quick):
        self.quick = quick
        self.cold_runs = 3 if quick else 30
        self.latency_runs = 1 if quick else 3
        self.latency_calls = 1000 if quick else 10000
        self.peer_latency_calls = 200 if quick else 10000
        self.throughput_seconds = 0.5 if quick else 3.0
        self.throughput_runs = 1 if quick else 3
        self.inflight = [1, 4, 16, 64]
        self.memory_checkpoints = [1000, 10000] if quick else [1000, 10000, 100000]
        self.memory_runs = 1 if quick else 3
        self.peer_memory_checkpoints = [1000] if quick else [1000, 10000, 100000]
        self.peer_memory_runs = 1 if quick else 3
        self.big_runs = 2 if quick else 5
        self.big_bytes = 10_000_000
        self.gateway_seconds = 2 if quick else 10
        self.gateway_runs = 1 if quick else 3


# ------------------------------------------------------------------------------------------------
# Processes


def binary(name):
    path = os.path.join(RELEASE, name)
    if not os.access(path, os.X_OK):
        sys.exit(f"bench: {path} is missing; run Benchmarks/bench (it builds the release binaries)")
    return path


def run(args, env=None, check=True):
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        sys.exit(f"bench: {' '.join(args[:3])}… failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result.stdout


def start_server(args, env=None):
    """Starts a server that prints {"url": …} on its first line; returns (process, url)."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = process.stdout.readline()
    try:
        return process, json.loads(line)["url"]
    except (ValueError, KeyError):
        process.kill()
        sys.exit(f"bench: {args[0]} did not print its URL (got {line!r})")


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Bench:
    def __init__(self, settings, workdir, sidecar=None, peer=True):
        self.settings = settings
        self.workdir = workdir
        self.sidecar = sidecar or binary("agent-sidecar")
        self.peer = peer
        self.client = os.path.join(ROOT, ".build", "bench", "mcpbench")
        self.token = secrets.token_hex(16)  # the fixture's bearer token: random, never printed
        self.processes = []
        self.results = {}

    def mcpbench(self, mode, options, bridge, env_extra=None, prefix=()):
        env = dict(os.environ)
        env["MCPBENCH_BEARER"] = self.token
        env["BENCH_UPSTREAM_TOKEN"] = self.token
        env.update(bridge.get("env", {}))
        if env_extra:
            env.update(env_extra)
        stderr_file = os.path.join(self.workdir, f"{bridge['key']}.stderr")
        args = [*prefix, self.client, mode, *options, "--stderr", stderr_file, "--", *bridge["argv"]]
        result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=3600)
        if result.returncode != 0:
            tail = ""
            if os.path.exists(stderr_file):
                with open(stderr_file, errors="replace") as f:
                    tail = f.read()[-800:]
            sys.exit(f"bench: mcpbench {mode} with {bridge['name']} failed: {result.stderr.strip()}\n{tail}")
        return json.loads(result.stdout)

    # --------------------------------------------------------------------------------------------
    # Upstreams and bridges

    def start_fixture(self):
        process, url = start_server([binary("mcp-fixture-server"), "--port", "0", "--require-bearer", self.token])
        self.processes.append(process)
        self.fixture_url = url
        self.fixture_pid = process.pid

    def start_gateway(self):
        gateway = binary("agent-gateway")
        database = os.path.join(self.workdir, "gateway.sqlite")
        run([gateway, "seed-demo", "--db", database])
        process, url = start_server(
            [gateway, "serve", "--db", database, "--port", "0", "--read-rate", "10000000", "--write-rate", "10000000"])
        self.processes.append(process)
        self.gateway_url = url
        self.gateway_database = database
        # The sidecar's pairing: an agent, a one-time code, `agent-sidecar setup` into a private home.
        agent = json.loads(run([gateway, "agent", "create", "--db", database, "--owner", "alice", "--name", "bench",
                                "--project", "WEB", "--scope", "project:read", "issue:create", "issue:comment", "--json"]))["id"]
        code = json.loads(run([gateway, "agent", "pair", "--db", database, agent, "--json"]))["code"]
        home = os.path.join(self.workdir, "sidecar-home")
        project = os.path.join(self.workdir, "project")
        os.makedirs(project, exist_ok=True)
        self.paired_env = {"AGENT_SIDECAR_HOME": home, "CODEX_HOME": os.path.join(self.workdir, "codex"),
                           "HOME": os.path.join(self.workdir, "user")}
        env = dict(os.environ)
        env.update(self.paired_env)
        env["AGENT_SIDECAR_PAIRING_CODE"] = code
        run([self.sidecar, "setup", "--gateway", url, "--profile", "bench", "--project-dir", project,
             "--device-name", "bench"], env=env)
        # mcp-proxy cannot sign in: it gets a session token minted beforehand by this script.
        self.gateway_token = self.mint_gateway_session(gateway, database, url) if self.peer else ""

    def mint_gateway_session(self, gateway, database, url):
        import base64
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        agent = json.loads(run([gateway, "agent", "create", "--db", database, "--owner", "alice", "--name", "bench-peer",
                                "--project", "WEB", "--scope", "project:read", "issue:create", "issue:comment", "--json"]))["id"]
        code = json.loads(run([gateway, "agent", "pair", "--db", database, agent, "--json"]))["code"]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

        def post(path, body):
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            connection.close()
            if response.status != 201:
                sys.exit(f"bench: {path} answered {response.status}")
            return json.loads(payload)

        device = post("/api/v1/pairing/claim", {"code": code, "publicKey": base64.b64encode(public).decode(),
                                                "deviceName": "bench-peer"})["deviceId"]
        timestamp, nonce = int(time.time()), base64.b64encode(os.urandom(16)).decode()
        message = f"agent-sidecar-session-v1\n{url}\n{device}\n{timestamp}\n{nonce}".encode()
        return post("/api/v1/sessions", {"deviceId": device, "timestamp": timestamp, "nonce": nonce,
                                         "signature": base64.b64encode(key.sign(message)).decode()})["token"]

    def bridges(self):
        sidecar = self.sidecar
        proxy = os.path.join(ROOT, ".venv", "bench", "bin", "mcp-proxy")
        # mcp-proxy logs every HTTP request at its default level (INFO); WARNING keeps logging out of the figures.
        proxy_args = [proxy, "--log-level", "WARNING", "--transport", "streamablehttp"]
        generic = {
            "sidecar": {"key": "sidecar", "name": "agent-sidecar", "era": "modern",
                        "argv": [sidecar, "serve", "--upstream", self.fixture_url, "--bearer-env", "BENCH_UPSTREAM_TOKEN"]},
            "proxy": {"key": "proxy", "name": "mcp-proxy", "era": "legacy",
                      "argv": [*proxy_args, "-H", "Authorization", f"Bearer {self.token}", self.fixture_url]},
        }
        paired = {
            "sidecar": {"key": "sidecar-paired", "name": "agent-sidecar (paired)",
                        "argv": [sidecar, "serve", "--profile", "bench"], "env": self.paired_env},
            "proxy": {"key": "proxy-paired", "name": "mcp-proxy (gateway token)",
                      "argv": [*proxy_args, "-H", "Authorization", f"Bearer {self.gateway_token}", self.gateway_url + "/mcp"]},
        }
        return generic, paired

    # --------------------------------------------------------------------------------------------
    # Measurements

    def who(self):
        return ("sidecar", "proxy") if self.peer else ("sidecar",)

    def cold_start(self, generic, paired):
        s = self.settings
        order = [(mode, who, bridges[who]) for mode, bridges in (("generic", generic), ("paired", paired)) for who in self.who()]
        runs = {(mode, who): [] for mode, who, _ in order}
        log(f"cold start: {s.cold_runs} runs each, interleaved")
        for _ in range(s.cold_runs):
            for mode, who, bridge in order:
                runs[(mode, who)].extend(self.mcpbench("cold", ["--runs", "1"], bridge)["runs"])
        self.results["cold"] = {f"{mode}/{who}": values for (mode, who), values in runs.items()}

    def latency(self, generic):
        s = self.settings
        out = {}
        for who in self.who():
            bridge = generic[who]
            calls = s.latency_calls if who == "sidecar" else s.peer_latency_calls
            log(f"per-call latency: {bridge['name']}, {s.latency_runs} run(s) of {calls} calls each path")
            out[who] = [self.mcpbench("latency", ["--url", self.fixture_url, "--era", bridge["era"], "--calls", str(calls)], bridge)
                        for _ in range(s.latency_runs)]
        self.results["latency"] = out

    def throughput(self, generic):
        s = self.settings
        out = {}
        for who in self.who():
            bridge = generic[who]
            log(f"throughput: {bridge['name']}, in flight {s.inflight}, {s.throughput_runs} run(s) of {s.throughput_seconds} s per path")
            out[who] = {str(k): [self.mcpbench("throughput", ["--url", self.fixture_url, "--era", bridge["era"], "--inflight", str(k),
                                                              "--seconds", str(s.throughput_seconds)], bridge)
                                 for _ in range(s.throughput_runs)] for k in s.inflight}
        self.results["throughput"] = out

    def throughput_pinned(self, generic):
        """16 in flight with the upstream on core 0 and the driver and the bridge on core 1: whether
        the bridge keeps up when it does not take the upstream's CPU (as with a remote upstream)."""
        s = self.settings
        cores = os.cpu_count() or 1
        if cores < 2 or not shutil.which("taskset"):
            log("pinned throughput: skipped (needs 2 cores and taskset)")
            return
        out = {}
        subprocess.run(["taskset", "-a", "-p", "-c", "0", str(self.fixture_pid)], check=True, capture_output=True)
        try:
            for who in self.who():
                bridge = generic[who]
                log(f"throughput, upstream pinned to core 0, {bridge['name']} and driver to core 1: 16 in flight")
                out[who] = [self.mcpbench("throughput", ["--url", self.fixture_url, "--era", bridge["era"], "--inflight", "16",
                                                         "--seconds", str(s.throughput_seconds)], bridge, prefix=("taskset", "-c", "1"))
                            for _ in range(s.throughput_runs)]
        finally:
            subprocess.run(["taskset", "-a", "-p", "-c", f"0-{cores - 1}", str(self.fixture_pid)], capture_output=True)
        self.results["throughputPinned"] = out

    def memory(self, generic):
        s = self.settings
        out = {}
        for who in self.who():
            bridge = generic[who]
            checkpoints = s.memory_checkpoints if who == "sidecar" else s.peer_memory_checkpoints
            runs = s.memory_runs if who == "sidecar" else s.peer_memory_runs
            log(f"memory: {bridge['name']}, RSS after {checkpoints} calls, {runs} run(s)")
            out[who] = [self.mcpbench("memory", ["--checkpoints", ",".join(map(str, checkpoints)), "--inflight", "4"], bridge)
                        for _ in range(runs)]
        self.results["memory"] = out

    def big_result(self, generic):
        s = self.settings
        out = {}
        for who in self.who():
            bridge = generic[who]
            log(f"large result: {bridge['name']}, {s.big_runs} calls of {s.big_bytes} bytes")
            out[who] = self.mcpbench("big", ["--url", self.fixture_url, "--era", bridge["era"], "--bytes", str(s.big_bytes),
                                             "--runs", str(s.big_runs)], bridge)
        self.results["big"] = out

    def gateway(self):
        s = self.settings
        log(f"gateway: {s.gateway_runs} run(s) of Benchmarks/gateway-load.py, 16 clients, {s.gateway_seconds} s reads + writes")
        runs = []
        for _ in range(s.gateway_runs):
            output = run([sys.executable, os.path.join(ROOT, "Benchmarks", "gateway-load.py"), "--binary", binary("agent-gateway"),
                          "--clients", "16", "--seconds", str(s.gateway_seconds)])
            lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
            runs.append({line["kind"]: line for line in lines})
        self.results["gateway"] = runs


# ------------------------------------------------------------------------------------------------
# Figures


def spread(values, digits=1):
    """median [min–max] as text, and the median."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a", None
    median = statistics.median(values)
    fmt = f"{{:,.{digits}f}}"
    if len(values) == 1:
        return fmt.format(median), median
    return f"{fmt.format(median)} [{fmt.format(min(values))}–{fmt.format(max(values))}]", median


class Table:
    def __init__(self):
        self.rows = []

    def add(self, measure, target, sidecar, peer, direct, verdict):
        self.rows.append((measure, target, sidecar, peer, direct, verdict))

    def markdown(self):
        header = ("measure", "target", "agent-sidecar", "mcp-proxy 0.13.0 (peer)", "direct / reference", "sidecar vs target")
        lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)

    def text(self):
        widths = [max(len(str(row[i])) for row in self.rows + [("measure", "target", "agent-sidecar", "mcp-proxy", "direct", "verdict")])
                  for i in range(6)]
        widths = [min(w, 44) for w in widths]
        out = []
        for row in [("measure", "target", "agent-sidecar", "mcp-proxy", "direct", "verdict")] + self.rows:
            out.append("  ".join(str(cell)[:44].ljust(width) for cell, width in zip(row, widths)))
        return "\n".join(out)


def verdict(value, limit, better="lower", unit=""):
    if value is None:
        return "not measured"
    met = value <= limit if better == "lower" else value >= limit
    return "met" if met else f"**missed** ({value:,.2f}{unit})"


def build_table(results):
    """The table rows, and the verdict of each target (by name), from whatever the run measured."""
    table = Table()
    verdicts = {}

    def peer(section, function):
        return function(section["proxy"]) if "proxy" in section else ("n/a", None)

    cold = results.get("cold")
    if cold:
        for mode, label in (("generic", "generic mode (fixture)"), ("paired", "paired mode (gateway)")):
            for field, what in (("initializeMs", "spawn → initialize response"), ("toolsListMs", "spawn → first tools/list response")):
                sidecar_text, sidecar_median = spread([r[field] for r in cold[f"{mode}/sidecar"]])
                peer_text = spread([r[field] for r in cold[f"{mode}/proxy"]])[0] if f"{mode}/proxy" in cold else "n/a"
                v = verdict(sidecar_median, 15, unit=" ms")
                verdicts[f"cold start, {mode}, {field}"] = v
                table.add(f"cold start, {label}: {what} (ms)", "≤ 15 ms median", sidecar_text, peer_text, "–", v)

    latency = results.get("latency")
    if latency:
        for quantile, limit, key in (("p50", 0.25, "p50Us"), ("p99", 1.0, "p99Us")):
            texts, medians, directs = {}, {}, {}
            for who, runs in latency.items():
                added = [(r["bridge"][key] - r["direct"][key]) / 1000 for r in runs]
                texts[who], medians[who] = spread(added, 3)
                through = spread([r["bridge"][key] / 1000 for r in runs], 3)[0]
                texts[who] += f" (through the bridge: {through})"
                directs[who] = spread([r["direct"][key] / 1000 for r in runs], 3)[0]
            v = verdict(medians["sidecar"], limit, unit=" ms")
            verdicts[f"added latency {quantile}"] = v
            direct_text = f"direct {quantile}: {directs['sidecar']} (modern)" + (f", {directs['proxy']} (legacy)" if "proxy" in directs else "")
            table.add(f"added latency per tools/call, {quantile} (ms)", f"≤ {limit} ms", texts["sidecar"], texts.get("proxy", "n/a"),
                      direct_text, v)
        cpu = {who: spread([r.get("bridgeCpuUsPerCall") for r in runs], 0)[0] for who, runs in latency.items()}
        switches = {who: spread([r.get("bridgeVoluntarySwitchesPerCall") for r in runs], 1)[0] for who, runs in latency.items()}
        table.add("bridge CPU time per call, one at a time (µs; voluntary context switches per call)", "–",
                  f"{cpu['sidecar']} µs; {switches['sidecar']}", f"{cpu['proxy']} µs; {switches['proxy']}" if "proxy" in cpu else "n/a", "–", "–")

    def throughput_rows(section, label, target_row):
        for k in sorted(section["sidecar"], key=int):
            texts, ratios = {}, {}
            for who, by_k in section.items():
                runs = by_k[k]
                rate = spread([r["bridgeCallsPerSecond"] for r in runs], 0)[0]
                ratio_text, ratios[who] = spread([100 * r["bridgeCallsPerSecond"] / r["directCallsPerSecond"] for r in runs], 0)
                cpu = spread([r.get("bridgeCpuUsPerCall") for r in runs], 0)[0]
                texts[who] = f"{rate}/s = {ratio_text} % of direct (bridge CPU {cpu} µs/call)"
            direct_text = spread([r["directCallsPerSecond"] for r in section["sidecar"][k]], 0)[0]
            is_target = target_row and k == "16"
            v = verdict(ratios["sidecar"], 90, better="higher", unit=" % of direct") if is_target else "–"
            if is_target:
                verdicts["throughput at 16 in flight"] = v
            table.add(f"throughput, {k} in flight{label} (calls/s)", "≥ 90 % of direct" if is_target else "–", texts["sidecar"],
                      texts.get("proxy", "n/a"), f"{direct_text}/s", v)

    if results.get("throughput"):
        throughput_rows(results["throughput"], "", True)
    if results.get("throughputPinned"):
        throughput_rows({who: {"16": runs} for who, runs in results["throughputPinned"].items()},
                        ", upstream on core 0, bridge and driver on core 1", False)

    memory = results.get("memory")
    if memory:
        def rss_at(runs, calls):
            return [p["rssKB"] / 1024 for run in runs for p in run["checkpoints"] if p["calls"] == calls]

        all_calls = sorted({p["calls"] for run in memory["sidecar"] for p in run["checkpoints"]})
        for calls in all_calls:
            sidecar_text, sidecar_median = spread(rss_at(memory["sidecar"], calls))
            peer_text = spread(rss_at(memory["proxy"], calls))[0] if "proxy" in memory else "n/a"
            v = verdict(sidecar_median, 20, unit=" MB")
            verdicts[f"RSS after {calls:,} calls"] = v
            anon = spread([p["anonKB"] / 1024 for run in memory["sidecar"] for p in run["checkpoints"] if p["calls"] == calls])[0]
            mapped = spread([p["fileKB"] / 1024 for run in memory["sidecar"] for p in run["checkpoints"] if p["calls"] == calls])[0]
            table.add(f"RSS after {calls:,} calls (MB)", "≤ 20 MB", f"{sidecar_text} (anonymous {anon}, file-backed {mapped})", peer_text, "–", v)

        def growth(runs):
            out = []
            for run in runs:
                points = {p["calls"]: p["rssKB"] for p in run["checkpoints"]}
                if 100000 in points and 10000 in points:
                    out.append((points[100000] - points[10000]) / 1024)
            return out

        if 100000 in all_calls and 10000 in all_calls:
            sidecar_text, sidecar_median = spread(growth(memory["sidecar"]), 2)
            peer_text = spread(growth(memory["proxy"]), 2)[0] if "proxy" in memory else "n/a"
            v = verdict(sidecar_median, 0.999, unit=" MB")
            verdicts["RSS growth 10k → 100k calls"] = v
            table.add("RSS growth from 10k to 100k calls (MB)", "< 1 MB", sidecar_text, peer_text, "–", v)

    big = results.get("big")
    if big:
        size_mb = big["sidecar"]["bytes"] / 1e6
        texts, medians = {}, {}
        for who, result in big.items():
            runs = result["runs"]
            time_text = spread([r["bridgeMs"] for r in runs], 0)[0]
            above = [(r["peakKB"] - r["rssBeforeKB"]) * 1024 / 1e6 for r in runs]
            above_text, medians[who] = spread(above, 1)
            after = spread([r["rssAfterKB"] / 1024 for r in runs], 1)[0]
            highest = (max(r["peakKB"] for r in runs) - result["baselineKB"]) * 1024 / 1e6
            texts[who] = (f"{time_text} ms; peak {above_text} MB above the RSS before the call (highest: {highest:,.1f} MB above "
                          f"the RSS before the first call); RSS after it {after} MB")
        direct_time = spread([r["directMs"] for r in big["sidecar"]["runs"]], 0)[0]
        ratio = medians["sidecar"] / size_mb if medians["sidecar"] is not None else None
        v = verdict(ratio, 3, unit="× its size")
        verdicts["10 MB result, peak RSS"] = v
        table.add(f"{size_mb:.0f} MB tool result: time (ms), peak RSS (MB)", f"peak ≤ 3× size ({3 * size_mb:.0f} MB) above baseline",
                  texts["sidecar"], texts.get("proxy", "n/a"), f"{direct_time} ms direct", v)

    gateway = results.get("gateway")
    if gateway:
        for kind, limit in (("read", 1000), ("write", 300)):
            rate_text, rate_median = spread([r[kind]["callsPerSecond"] for r in gateway], 0)
            p50 = spread([r[kind]["p50ms"] for r in gateway], 1)[0]
            p99 = spread([r[kind]["p99ms"] for r in gateway], 1)[0]
            v = verdict(rate_median, limit, better="higher", unit=" calls/s")
            verdicts[f"gateway {kind}s"] = v
            table.add(f"gateway {kind}s, 16 clients (calls/s)", f"≥ {limit:,}/s", "–", "–",
                      f"agent-gateway: {rate_text}/s (p50 {p50} ms, p99 {p99} ms)", v)
    return table, verdicts


# ------------------------------------------------------------------------------------------------
# The machine


def machine():
    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""
    cpu = next((line.split(":", 1)[1].strip() for line in read("/proc/cpuinfo").splitlines() if line.startswith("model name")), "?")
    memory_kb = next((int(line.split()[1]) for line in read("/proc/meminfo").splitlines() if line.startswith("MemTotal")), 0)
    os_name = next((line.split("=", 1)[1].strip().strip('"') for line in read("/etc/os-release").splitlines()
                    if line.startswith("PRETTY_NAME")), platform.system())
    swift = subprocess.run(["swift", "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    curl = subprocess.run(["curl-config", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("curl-config") else "?"
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{memory_kb / 1024 / 1024:.1f} GiB",
        "os": f"{os_name}, Linux {platform.release()}",
        "swift": swift[0] if swift else "?",
        "python": platform.python_version(),
        "libcurl": curl,
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
    }


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def render(results, table, verdicts, settings, info, started, load_before, load_after, elapsed, command):
    s = settings
    lines = [
        BEGIN_MARK,
        "",
        f"Generated by `{command}` on {started} in {elapsed / 60:.1f} minutes.",
        "",
        "| machine | |",
        "| --- | --- |",
        f"| CPU | {info['cpu']} |",
        f"| memory | {info['memory']} |",
        f"| system | {info['os']} |",
        f"| toolchain | {info['swift']}; release build with `--static-swift-stdlib` |",
        f"| libcurl | {info['libcurl']} |",
        f"| Python (driver of the run, mcp-proxy) | {info['python']} |",
        f"| commit | {info['commit']} |",
        f"| agent-sidecar binary measured | `{info['sidecarBinary']}` |",
        f"| load average (1, 5, 15 min) before / after | {load_before} / {load_after} |",
        "",
        "Figures are medians with [min–max] over repeated runs: cold start over "
        f"{s.cold_runs} spawns per bridge and mode (the four interleaved); latency over {s.latency_runs} run(s) of "
        f"{s.latency_calls:,} calls per path (mcp-proxy: {s.peer_latency_calls:,}), each figure a quantile of one run; throughput over "
        f"{s.throughput_runs} run(s) of {s.throughput_seconds:g} s per path; memory over {s.memory_runs} run(s) "
        f"(mcp-proxy: {s.peer_memory_runs}); the large result over {s.big_runs} calls in one process. A bridge's figure and the "
        "direct figure beside it come from the same driver process in the same run.",
        "",
        table.markdown(),
        "",
        "Targets in this run (the sidecar's figures):",
        "",
        *[f"* {name}: {v}" for name, v in verdicts.items()],
        "",
        "Commands of this run:",
        "",
        "```sh",
        command,
        "# which ran, per bridge (BRIDGE = agent-sidecar serve … | mcp-proxy …):",
        f"mcpbench cold --runs 1 -- BRIDGE                       # x {s.cold_runs}, the four bridges interleaved",
        f"mcpbench latency --url FIXTURE --era E --calls {s.latency_calls} -- BRIDGE   # x {s.latency_runs}",
        f"mcpbench throughput --url FIXTURE --era E --inflight K --seconds {s.throughput_seconds:g} -- BRIDGE   # K = 1 4 16 64, x {s.throughput_runs}",
        f"taskset -a -p -c 0 FIXTURE_PID; taskset -c 1 mcpbench throughput … --inflight 16 -- BRIDGE   # x {s.throughput_runs}",
        f"mcpbench memory --checkpoints {','.join(map(str, s.memory_checkpoints))} --inflight 4 -- BRIDGE",
        f"mcpbench big --url FIXTURE --era E --bytes {s.big_bytes} --runs {s.big_runs} -- BRIDGE",
        f"Benchmarks/gateway-load.py --binary .build/release/agent-gateway --clients 16 --seconds {s.gateway_seconds:g}   # x {s.gateway_runs}",
        "```",
        "",
        END_MARK,
    ]
    return "\n".join(lines)


SKELETON = """# Benchmarks

{generated}
"""


def write_document(path, generated):
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        if BEGIN_MARK in text and END_MARK in text:
            before = text.split(BEGIN_MARK, 1)[0]
            after = text.split(END_MARK, 1)[1]
            text = before + generated + after
        else:
            text = text.rstrip("\n") + "\n\n" + generated + "\n"
    else:
        text = SKELETON.format(generated=generated)
    with open(path, "w") as f:
        f.write(text)


ALL_PARTS = ("cold", "latency", "throughput", "memory", "big", "gateway")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run in under 2 minutes; writes bench-results/, not docs/")
    parser.add_argument("--output", help="the Markdown file to write (default: docs/benchmarks.md for a full run, "
                                         "bench-results/benchmarks-quick.md with --quick, bench-results/benchmarks-partial.md otherwise)")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(ALL_PARTS))
    parser.add_argument("--sidecar", help="measure this agent-sidecar binary instead of .build/release/agent-sidecar (before/after runs)")
    parser.add_argument("--no-peer", action="store_true", help="skip mcp-proxy")
    parser.add_argument("--no-pinned", action="store_true", help="skip the throughput run with the upstream and the bridge on separate cores")
    parser.add_argument("--raw", help="where to write the raw figures (JSON; default bench-results/{quick,full,partial}.json)")
    parser.add_argument("--from-json", help="print the table of a saved run (a --raw file) instead of measuring; with --output, "
                                            "also rewrite that file's generated section")
    options = parser.parse_args()
    settings = Settings(options.quick)
    only = set(options.only.split(",")) if options.only else set(ALL_PARTS)
    unknown = only - set(ALL_PARTS)
    if unknown:
        sys.exit(f"bench: unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(ALL_PARTS)}")
    complete = only == set(ALL_PARTS) and not options.sidecar and not options.no_peer
    kind = "quick" if options.quick else ("full" if complete else "partial")
    output = options.output or os.path.join(ROOT, "docs/benchmarks.md" if kind == "full" else f"bench-results/benchmarks-{kind}.md")
    raw_path = options.raw or os.path.join(ROOT, "bench-results", f"{kind}.json")

    if options.from_json:
        with open(options.from_json) as f:
            saved = json.load(f)
        table, verdicts = build_table(saved["results"])
        print(table.text())
        if options.output:
            settings = argparse.Namespace(**saved["settings"])
            generated = render(saved["results"], table, verdicts, settings, saved["machine"], saved["started"], *saved["load"],
                               saved["elapsedSeconds"], saved.get("command", "Benchmarks/bench"))
            write_document(options.output, generated)
            log(f"wrote {os.path.relpath(options.output, ROOT)} from {options.from_json}")
        return

    command = "Benchmarks/bench" + "".join(" " + arg for arg in sys.argv[1:])
    started_clock = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = load_average()
    log(f"load average {load_before}; {os.cpu_count()} cores")
    workdir = tempfile.mkdtemp(prefix="agent-sidecar-bench-")
    bench = Bench(settings, workdir, sidecar=options.sidecar, peer=not options.no_peer)
    try:
        bench.start_fixture()
        bench.start_gateway()
        generic, paired = bench.bridges()
        if "cold" in only:
            bench.cold_start(generic, paired)
        if "latency" in only:
            bench.latency(generic)
        if "throughput" in only:
            bench.throughput(generic)
            if not options.no_pinned:
                bench.throughput_pinned(generic)
        if "memory" in only:
            bench.memory(generic)
        if "big" in only:
            bench.big_result(generic)
        if "gateway" in only:
            bench.gateway()
    finally:
        for process in bench.processes:
            stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started_clock
    load_after = load_average()
    info = machine()
    info["sidecarBinary"] = os.path.relpath(bench.sidecar, ROOT) if bench.sidecar.startswith(ROOT) else bench.sidecar
    os.makedirs(os.path.dirname(raw_path), exist_ok=True)
    with open(raw_path, "w") as f:
        json.dump({"command": command, "started": started, "settings": vars(settings), "machine": info,
                   "load": [load_before, load_after], "elapsedSeconds": round(elapsed), "results": bench.results}, f, indent=1)
    table, verdicts = build_table(bench.results)
    print(table.text())
    generated = render(bench.results, table, verdicts, settings, info, started, load_before, load_after, elapsed, command)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    write_document(output, generated)
    log(f"wrote {os.path.relpath(output, ROOT)} and {os.path.relpath(raw_path, ROOT)} in {elapsed:.0f} s; load average now {load_after}")


if __name__ == "__main__":
    main()
