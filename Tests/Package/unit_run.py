#!/usr/bin/env python3
"""Runs the installed agent-gateway the way its systemd unit says, and checks it serves.

Usage: Tests/Package/unit_run.py   (as root, after `dpkg -i` of both packages; Tests/Package/package-install)

Where systemd runs (/run/systemd/system exists), it is `systemctl start agent-gateway`. Where it
does not (containers, CI), the settings are read from the installed unit rather than repeated here
(ExecStart, EnvironmentFile, User, Group, StateDirectory, StateDirectoryMode, UMask,
WorkingDirectory, NoNewPrivileges, MemoryDenyWriteExecute, ExecReload) and applied as systemd
would: the state directory made and owned by the service user, the process started as that user
with the unit's umask, no new privileges and, where the kernel has prctl(PR_SET_MDWE), memory that
is never writable and executable. The other sandboxing options (ProtectSystem, SystemCallFilter,
...) need systemd and are not applied here.

Checks, each printed PASS or FAIL: the hash key file is made 0600 on the first start, /healthz
answers, the admin CLI works as the service user, a sidecar paired through `agent-sidecar setup`
makes a tool call, the /metrics scrape counts it and shows no secret, neither process maps
anything from the Swift toolchain, ExecReload (SIGHUP) reloads the policy without stopping the
gateway, and SIGTERM stops it. Python 3.11's standard library only; every process it starts is
stopped on exit.
"""
import ctypes
import grp
import json
import os
import pwd
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request

# The smoke run's step report, failures and MCP stdio client (Tests/Smoke/driver.py, which
# package-install runs too).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Smoke"))
from driver import TOKEN_PATTERN, Report, StdioClient, StepFailed, expect  # noqa: E402

UNIT = "/lib/systemd/system/agent-gateway.service"
TIMEOUT = 20


def unit_settings(path):
    """The [Service] section: {key: [values]} (a key may repeat)."""
    settings, section = {}, None
    with open(path) as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service" and "=" in line:
                key, value = line.split("=", 1)
                settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def environment_file(path):
    """NAME=value lines, as systemd reads an EnvironmentFile (quotes removed)."""
    values = {}
    with open(path) as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith(("#", ";")) or "=" not in line:
                continue
            key, value = line.split("=", 1)
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return values


def expand(command, env):
    """systemd's expansion of a command line: ${NAME} is one word, a lone $NAME splits on spaces."""
    words = []
    for word in shlex.split(command):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            words += env.get(whole.group(1), "").split()
        else:
            words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return words


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def toolchain_mappings(pid):
    """Files from the Swift toolchain (or any libswift*) mapped into the process."""
    with open(f"/proc/{pid}/maps") as handle:
        return sorted({line.split()[-1] for line in handle if "/opt/swift" in line or "libswift" in line})


class Run:
    def __init__(self):
        self.report = Report()
        self.children = []
        self.work = tempfile.mkdtemp(prefix="agent-gateway-unit-run-")
        os.chmod(self.work, 0o755)

    # ----- the unit's settings -----

    def read_unit(self):
        self.unit = unit_settings(UNIT)
        for key in ("ExecStart", "EnvironmentFile", "User", "Group", "StateDirectory", "UMask", "ExecReload"):
            expect(key in self.unit, f"{UNIT} has no {key}=")
        self.env_file = self.unit["EnvironmentFile"][0].lstrip("-")
        # As an operator would: free ports for this run, in the /etc file (a conffile).
        self.port, self.metrics_port = free_port(), free_port()
        with open(self.env_file) as handle:
            text = handle.read()
        text = re.sub(r"(?m)^AGENT_GATEWAY_PORT=.*$", f"AGENT_GATEWAY_PORT={self.port}", text)
        text = re.sub(r"(?m)^(AGENT_GATEWAY_OPTIONS=.*)--metrics-port \d+", rf"\g<1>--metrics-port {self.metrics_port}", text)
        with open(self.env_file, "w") as handle:
            handle.write(text)
        self.env = environment_file(self.env_file)
        self.argv = expand(self.unit["ExecStart"][0], self.env)
        expect(self.argv[:2] == ["/usr/bin/agent-gateway", "serve"], f"ExecStart runs {self.argv[:2]}")
        self.user = pwd.getpwnam(self.unit["User"][0])
        self.group = grp.getgrnam(self.unit["Group"][0])
        expect(self.user.pw_uid != 0 and self.user.pw_uid < 1000, f"the service user {self.user.pw_name} is uid {self.user.pw_uid}, not a system user")
        self.state = os.path.join("/var/lib", self.unit["StateDirectory"][0])
        self.db = self.argv[self.argv.index("--db") + 1]
        self.key_file = self.argv[self.argv.index("--hash-key-file") + 1]
        return f"{' '.join(self.argv[1:])}; as {self.user.pw_name}, state in {self.state}"

    # ----- running it -----

    def as_service_user(self, extra=None):
        """subprocess options that run a command as the unit's user, group and umask."""
        mdwe = self.unit.get("MemoryDenyWriteExecute", ["no"])[0] == "yes"
        no_new_privileges = self.unit.get("NoNewPrivileges", ["no"])[0] == "yes"

        def limits():
            libc = ctypes.CDLL(None, use_errno=True)
            if no_new_privileges and libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
                os._exit(126)
            if mdwe:
                libc.prctl(65, 1, 0, 0, 0)  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN; older kernels: EINVAL, ignored

        options = dict(user=self.user.pw_uid, group=self.group.gr_gid, extra_groups=[], umask=int(self.unit["UMask"][0], 8),
                       cwd=self.unit.get("WorkingDirectory", [self.state])[0], preexec_fn=limits, start_new_session=True,
                       env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **self.env, **(extra or {})})
        return options

    def mdwe_supported(self):
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(66, 0, 0, 0, 0) >= 0  # PR_GET_MDWE

    def start(self):
        if os.path.isdir("/run/systemd/system"):
            subprocess.run(["systemctl", "start", "agent-gateway"], check=True, timeout=60)
            self.gateway = None
            self.url = f"http://{self.env['AGENT_GATEWAY_HOST']}:{self.port}"
            self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            self.wait_healthy()
            return "systemctl start agent-gateway"
        # StateDirectory= and StateDirectoryMode=, as systemd makes them.
        os.makedirs(self.state, exist_ok=True)
        os.chown(self.state, self.user.pw_uid, self.group.gr_gid)
        os.chmod(self.state, int(self.unit.get("StateDirectoryMode", ["0755"])[0], 8))
        self.log_path = os.path.join(self.work, "gateway.log")
        log = open(self.log_path, "wb")
        self.gateway = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, **self.as_service_user())
        self.children.append(self.gateway)
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.gateway.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=TIMEOUT)
        except queue.Empty:
            raise StepFailed(f"no listening line within {TIMEOUT} s; see {self.log_path}")
        expect(line, f"the gateway exited {self.gateway.poll()} before listening: {open(self.log_path).read()[-400:]}")
        listening = json.loads(line)
        self.url, self.metrics_url = listening["url"], listening.get("metricsUrl")
        expect(self.url == f"http://127.0.0.1:{self.port}", f"listening on {self.url}, the /etc file says port {self.port}")
        expect(self.metrics_url == f"http://127.0.0.1:{self.metrics_port}/metrics", f"metrics on {self.metrics_url}")
        mdwe = "with MemoryDenyWriteExecute (prctl PR_SET_MDWE)" if self.mdwe_supported() else "MemoryDenyWriteExecute not checkable on this kernel"
        return f"pid {self.gateway.pid} as {self.user.pw_name}, umask {self.unit['UMask'][0]}, no new privileges, {mdwe}; {self.url}"

    def wait_healthy(self):
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=5) as response:
                    return response.status, response.read(4096)
            except OSError:
                if time.monotonic() > deadline:
                    raise StepFailed(f"{self.url}/healthz did not answer within {TIMEOUT} s")
                time.sleep(0.2)

    def check_state(self):
        mode = os.stat(self.state)
        expect(mode.st_uid == self.user.pw_uid and (mode.st_mode & 0o777) == 0o700, f"{self.state}: uid {mode.st_uid}, mode {oct(mode.st_mode & 0o777)}")
        key = os.lstat(self.key_file)
        expect((key.st_mode & 0o777) == 0o600 and key.st_uid == self.user.pw_uid, f"{self.key_file}: mode {oct(key.st_mode & 0o777)}, uid {key.st_uid}")
        database = os.stat(self.db)
        expect((database.st_mode & 0o077) == 0, f"{self.db} has mode {oct(database.st_mode & 0o777)}: the umask was not applied")
        status, body = self.wait_healthy()
        expect(status == 200, f"/healthz answered {status}")
        return f"{self.key_file} made 0600 on the first start, the database {oct(database.st_mode & 0o777)}, /healthz 200"

    def admin(self, *args):
        result = subprocess.run(["/usr/bin/agent-gateway", *args, "--db", self.db, "--hash-key-file", self.key_file],
                                capture_output=True, text=True, timeout=30, **self.as_service_user())
        expect(result.returncode == 0, f"agent-gateway {' '.join(args[:2])} as {self.user.pw_name} exited {result.returncode}: {result.stderr.strip()[:300]}")
        return result.stdout

    def pair(self):
        self.admin("seed-demo")
        agent = json.loads(self.admin("agent", "create", "--owner", "alice", "--name", "package-test", "--project", "WEB",
                                      "--scope", "project:read", "--json"))
        self.agent_id = agent["id"]
        self.code = json.loads(self.admin("agent", "pair", self.agent_id, "--json"))["code"]
        self.home = os.path.join(self.work, "home")
        self.project = os.path.join(self.home, "src", "website")
        os.makedirs(self.project)
        env = {"HOME": self.home, "PATH": "/usr/bin:/bin", "AGENT_SIDECAR_PAIRING_CODE": self.code}
        result = subprocess.run(["agent-sidecar", "setup", "--gateway", self.url, "--device-name", "package-test"],
                                cwd=self.project, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        expect(result.returncode == 0, f"setup exited {result.returncode}: {(result.stderr or result.stdout)[:400]}")
        with open(os.path.join(self.home, ".codex", "config.toml"), "rb") as handle:
            self.entry = tomllib.load(handle)["mcp_servers"]["agent-sidecar"]
        expect(self.entry["command"] == "/usr/bin/agent-sidecar", f"config.toml runs {self.entry['command']}")
        return f"admin CLI as {self.user.pw_name}: seed-demo, agent {self.agent_id}, pairing code; setup wrote config.toml running /usr/bin/agent-sidecar"

    def tool_call(self):
        env = {"HOME": self.home, "PATH": "/usr/bin:/bin", **{key: str(value) for key, value in self.entry.get("env", {}).items()}}
        sidecar = subprocess.Popen([self.entry["command"], *self.entry.get("args", [])], cwd=self.project, env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.children.append(sidecar)
        client = StdioClient(sidecar)
        client.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "package-test", "version": "1"}},
                       timeout=TIMEOUT)
        client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        answer = client.request("tools/call", {"name": "list_projects", "arguments": {}}, timeout=TIMEOUT)
        result = answer.get("result", {})
        expect(not result.get("isError") and "error" not in answer, f"list_projects failed: {json.dumps(answer)[:300]}")
        keys = [project.get("key") for project in result.get("structuredContent", {}).get("projects", [])]
        expect(keys == ["WEB"], f"list_projects gave {keys}")
        mapped = toolchain_mappings(sidecar.pid) + (toolchain_mappings(self.gateway.pid) if self.gateway else [])
        expect(not mapped, f"toolchain files mapped: {mapped[:3]}")
        sidecar.stdin.close()
        sidecar.wait(timeout=10)
        return "list_projects through the paired sidecar: WEB; neither process maps a file from /opt/swift or a libswift"

    def metrics(self):
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            raw = response.read(4 * 1024 * 1024)
        scrape = raw.decode()
        counted = re.findall(r'^agent_gateway_tool_calls_total\{([^}]*)\} (\S+)$', scrape, re.M)
        series = {labels: float(value) for labels, value in counted}
        expect(len(series) == 1 and float(next(iter(series.values()))) == 1 and 'tool="list_projects"' in next(iter(series))
               and 'outcome="ok"' in next(iter(series)), f"tool call series: {series}")
        for secret in (self.code, self.code.replace("-", ""), self.agent_id):
            expect(secret not in scrape, "the scrape holds the pairing code or the agent id")
        expect(not TOKEN_PATTERN.search(raw), "the scrape holds a session token")
        return "one call counted: list_projects ok = 1; no code, id or token in the scrape"

    def reload(self):
        if not self.gateway:
            subprocess.run(["systemctl", "reload", "agent-gateway"], check=True, timeout=30)
            self.wait_healthy()
            return "systemctl reload agent-gateway"
        argv = expand(self.unit["ExecReload"][0].replace("$MAINPID", str(self.gateway.pid)), self.env)
        subprocess.run(argv, check=True, timeout=10, **self.as_service_user())
        deadline = time.monotonic() + TIMEOUT
        while b"policy reloaded" not in open(self.log_path, "rb").read():
            expect(time.monotonic() < deadline, f"no 'policy reloaded' in the log within {TIMEOUT} s")
            expect(self.gateway.poll() is None, f"the gateway exited {self.gateway.poll()} on SIGHUP")
            time.sleep(0.2)
        status, _ = self.wait_healthy()
        expect(self.gateway.poll() is None and status == 200, "the gateway is not serving after the reload")
        return f"ExecReload ({' '.join(argv)}): policy reloaded, still serving"

    def stop(self):
        if not self.gateway:
            subprocess.run(["systemctl", "stop", "agent-gateway"], check=True, timeout=60)
            return "systemctl stop agent-gateway"
        self.gateway.send_signal(signal.SIGTERM)
        status = self.gateway.wait(timeout=30)
        expect(status == 0, f"the gateway exited {status} on SIGTERM")
        return "SIGTERM: exited 0"

    def stop_all(self):
        for child in reversed(self.children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(timeout=10)
        if os.path.isdir("/run/systemd/system"):
            subprocess.run(["systemctl", "stop", "agent-gateway"], timeout=60)


def main():
    if len(sys.argv) != 1 or os.geteuid() != 0:
        print("usage: sudo Tests/Package/unit_run.py   (after dpkg -i of both packages)", file=sys.stderr)
        sys.exit(2)
    run = Run()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:
        ok = run.report.run("the installed unit's settings (ExecStart, EnvironmentFile, User, StateDirectory, UMask)", run.read_unit)
        ok = ok and run.report.run("start the gateway as the unit would", run.start)
        ok = ok and run.report.run("state directory 0700, hash key made 0600 on first start, /healthz", run.check_state)
        ok = ok and run.report.run("pair a sidecar (admin CLI as the service user, agent-sidecar setup)", run.pair)
        ok = ok and run.report.run("a tool call through the paired, installed sidecar", run.tool_call)
        ok = ok and run.report.run("/metrics counts the call and holds no secret", run.metrics)
        ok = ok and run.report.run("ExecReload: SIGHUP reloads the policy, the gateway keeps serving", run.reload)
        ok = ok and run.report.run("stop: SIGTERM ends the gateway cleanly", run.stop)
    finally:
        run.stop_all()
        if run.report.failed:
            print(f"unit run: kept {run.work}", flush=True)
        else:
            shutil.rmtree(run.work, ignore_errors=True)
    print(f"{run.report.passed} passed, {run.report.failed} failed", flush=True)
    sys.exit(1 if run.report.failed or not ok else 0)


if __name__ == "__main__":
    main()
