"""Several agent-gateway instances on one PostgreSQL behind nginx over TLS, for tests and benchmarks.

    from pool import Pool
    with Pool(bin_dir, instances=3, work_dir=DIR) as pool:   # everything on 127.0.0.1, free ports
        pool.origin        # https://127.0.0.1:PORT, nginx: what clients use and sessions name
        pool.instances[0]  # .url (plain HTTP, direct), .port, .log_path, .process
        pool.admin("agent", "create", ...)         # the admin CLI against the shared database
        pool.sql("SELECT count(*) FROM issue")     # psql, rows as lists of strings
        pool.kill_instance(1); pool.restart_instance(1)
        pool.stop_postgres(); pool.start_postgres()   # same port, so the gateways' URL stays valid

What it starts, each with its own log file under the work directory:
  * a PostgreSQL cluster (Tests/Tooling/postgres-cluster: initdb + pg_ctl, as the postgres user
    when run as root). Its URL holds a password: the gateways get the URL without it and the
    password in PGPASSWORD, so it is in no argv, no log and nothing printed;
  * N `agent-gateway serve` instances on it, each on its own port, all sharing the keyed-hash
    secret file and --public-origin (the nginx origin: session signatures name the origin);
  * nginx from a prefix of its own (nginx -p DIR -c nginx.conf -g 'daemon off;'), round robin over
    the instances with upstream keep-alive, terminating TLS with a CA made for the run (openssl:
    a CA key and certificate, a server certificate for 127.0.0.1 and localhost signed by it; the
    keys 0600 in 0700 directories). Clients trust `pool.ca_file`.

Every wait is bounded. stop() (also from `with`, atexit, and SIGTERM/SIGINT/SIGHUP once
install_signal_handlers() ran) ends every process it started and the cluster, and removes the work
directory unless keep=True. Python 3 standard library only.
"""
import atexit
import csv
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
POSTGRES_CLUSTER = os.path.join(REPO, "Tests", "Tooling", "postgres-cluster")

START_TIMEOUT = 30  # seconds for a gateway, nginx or the cluster to answer after starting
STOP_TIMEOUT = 5  # seconds after SIGTERM before SIGKILL


class PoolError(Exception):
    """Something the pool could not start or stop; the message says what and where to look."""


def free_port():
    """A port nothing listens on now (the kernel's pick; another process may still take it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout, what, interval=0.1):
    """Polls `predicate` until it returns a true value or `timeout` seconds pass (then PoolError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise PoolError(f"{what} within {timeout} s")
        time.sleep(interval)


def tail(path, lines=5):
    try:
        with open(path, "rb") as handle:
            return b" | ".join(handle.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return "(no log)"


def install_signal_handlers():
    """SIGTERM, SIGINT and SIGHUP raise SystemExit, so `with`, finally and atexit clean up."""

    def leave(signum, frame):
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, leave)


def find_nginx():
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise PoolError("nginx is not installed; run scripts/install-deps --nginx")


def find_psql():
    for candidate in sorted(__import__("glob").glob("/usr/lib/postgresql/*/bin/psql")) + [shutil.which("psql")]:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise PoolError("psql is not installed; run scripts/install-deps --postgres")


class Instance:
    """One `agent-gateway serve`: its index, port, direct URL, log file and process."""

    def __init__(self, index, port, log_path):
        self.index = index
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process = None
        self.starts = 0

    @property
    def name(self):
        return f"instance {self.index}"

    def alive(self):
        return self.process is not None and self.process.poll() is None


class Pool:
    def __init__(self, bin_dir, instances=3, work_dir=None, keep=False, read_rate=6000, write_rate=1200,
                 serve_args=(), pid_file=None, nginx=True, nginx_workers=2, log=None):
        self.bin_dir = os.path.abspath(bin_dir)
        self.gateway_bin = os.path.join(self.bin_dir, "agent-gateway")
        if not os.access(self.gateway_bin, os.X_OK):
            raise PoolError(f"{self.gateway_bin} is missing; build it first (swift build --product agent-gateway)")
        self.count = instances
        self.keep = keep
        self.read_rate = read_rate
        self.write_rate = write_rate
        self.serve_args = list(serve_args)
        self.pid_file = pid_file
        self.nginx_workers = nginx_workers
        self.log = log or (lambda message: None)
        if work_dir:
            os.makedirs(work_dir, exist_ok=True)
            if os.listdir(work_dir):
                raise PoolError(f"the work directory {work_dir} is not empty; give an empty or new one")
            self.work = os.path.abspath(work_dir)
        else:
            self.work = tempfile.mkdtemp(prefix="agent-gateway-pool-")
        # The postgres user (when run as root) must pass through the work directory to its cluster;
        # everything secret sits in 0700 directories below it.
        os.chmod(self.work, 0o755)
        self.secrets = self._private_dir("secrets")
        self.hash_key_file = os.path.join(self.secrets, "hash.key")
        self.postgres_dir = os.path.join(self.work, "postgres")
        self.nginx_dir = os.path.join(self.work, "nginx")
        self.tls_dir = os.path.join(self.nginx_dir, "tls")
        self.ca_file = os.path.join(self.work, "ca.crt")
        self.logs = os.path.join(self.work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.instances = [Instance(i, free_port(), os.path.join(self.logs, f"gateway-{i}.log")) for i in range(instances)]
        self.with_nginx = nginx
        if nginx:
            self.nginx_port = free_port()
            self.origin = f"https://127.0.0.1:{self.nginx_port}"
        else:
            # Without nginx, clients call the instances directly and sign for the first one's URL.
            self.nginx_port = None
            self.origin = self.instances[0].url
        self.nginx = None
        self.nginx_access_log = os.path.join(self.logs, "nginx-access.log")
        self.database_url = None  # without the password
        self.postgres_port = None
        self._password = None
        self._postgres_started = False
        self._stopped = False
        self._children = []
        atexit.register(self.stop)

    # ----- life cycle -----

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *failure):
        self.stop()

    def start(self):
        started = time.monotonic()
        self.start_postgres()
        self.admin("seed-demo")
        # A build without the PostgreSQL backend takes the URL for a SQLite file name (in the work
        # directory, the processes' working directory) and leaves the cluster empty.
        try:
            projects = self.sql("SELECT count(*) FROM project")[0][0]
        except PoolError as error:
            raise PoolError(f"seed-demo left no tables in PostgreSQL ({error}); {self.gateway_bin} was built "
                            "without the PostgreSQL backend: use a build of a tree that has it") from None
        if projects != "2":
            raise PoolError(f"seed-demo made {projects} projects in PostgreSQL, not WEB and OPS")
        if self.with_nginx:
            self.make_tls()
        for instance in self.instances:
            self.start_instance(instance.index, wait=False)
        for instance in self.instances:
            self.wait_healthy(instance)
        if self.with_nginx:
            self.start_nginx()
        front = f"nginx (TLS) at {self.origin}" if self.with_nginx else "no nginx"
        self.log(f"pool: PostgreSQL on 127.0.0.1:{self.postgres_port}, {self.count} gateways on ports "
                 f"{', '.join(str(i.port) for i in self.instances)}, {front} [{time.monotonic() - started:.1f} s]")
        return self

    def stop(self):
        """Ends nginx, the gateways and the cluster (each bounded), then removes the work directory
        unless keep. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        for process in reversed(self._children):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in reversed(self._children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        if self._postgres_started or os.path.isdir(os.path.join(self.postgres_dir, "data")):
            subprocess.run([POSTGRES_CLUSTER, "stop", self.postgres_dir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=90, check=False)
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def _private_dir(self, name):
        path = os.path.join(self.work, name)
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
        return path

    def _spawn(self, argv, log_path, env=None, stdout=None):
        with open(log_path, "ab") as log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout or log, stderr=log, env=env,
                                       cwd=self.work, start_new_session=True)
        self._children.append(process)
        if self.pid_file:
            with open(self.pid_file, "a") as handle:
                handle.write(f"{process.pid}\n")
        return process

    # ----- PostgreSQL -----

    def start_postgres(self):
        """Starts the cluster (initdb the first time); on a restart it keeps its port."""
        result = subprocess.run([POSTGRES_CLUSTER, "start", self.postgres_dir], capture_output=True, text=True, timeout=150)
        if result.returncode != 0:
            raise PoolError(f"PostgreSQL did not start: {result.stderr.strip()[-400:]}")
        self._postgres_started = True
        parts = urllib.parse.urlsplit(result.stdout.strip())
        port = parts.port
        if self.postgres_port is not None and port != self.postgres_port:
            raise PoolError(f"PostgreSQL came back on port {port}, not {self.postgres_port} (the old port was taken); "
                            "the gateways cannot reach it")
        self.postgres_port = port
        self._password = urllib.parse.unquote(parts.password or "")
        self.database_url = f"postgres://{parts.username}@127.0.0.1:{port}{parts.path}"

    def stop_postgres(self):
        """pg_ctl stop -m fast (bounded by postgres-cluster)."""
        result = subprocess.run([POSTGRES_CLUSTER, "stop", self.postgres_dir], capture_output=True, text=True, timeout=90)
        if result.returncode != 0:
            raise PoolError(f"PostgreSQL did not stop: {result.stderr.strip()[-400:]}")

    def restart_postgres(self):
        self.stop_postgres()
        self.start_postgres()

    def database_environment(self):
        """The environment for a process that connects to the cluster: the password in PGPASSWORD."""
        return {**os.environ, "PGPASSWORD": self._password}

    def sql(self, query, timeout=30):
        """Runs one statement with psql; returns the rows (lists of strings, NULL as '')."""
        result = subprocess.run(
            [find_psql(), "-h", "127.0.0.1", "-p", str(self.postgres_port), "-U", "gateway", "-d", "gateway", "-X", "-q",
             "--csv", "-t", "-v", "ON_ERROR_STOP=1", "-c", query],
            capture_output=True, text=True, timeout=timeout, env=self.database_environment())
        if result.returncode != 0:
            raise PoolError(f"psql failed: {result.stderr.strip()[:300]}")
        return list(csv.reader(io.StringIO(result.stdout)))

    def admin(self, *args, timeout=60):
        """Runs an admin command of agent-gateway against the shared database; returns its stdout."""
        result = subprocess.run([self.gateway_bin, *args, "--db", self.database_url, "--hash-key-file", self.hash_key_file],
                                capture_output=True, text=True, timeout=timeout, env=self.database_environment(),
                                stdin=subprocess.DEVNULL, cwd=self.work)
        if result.returncode != 0:
            raise PoolError(f"agent-gateway {' '.join(args[:2])} exited {result.returncode}: {result.stderr.strip()[:300]}")
        return result.stdout

    # ----- the gateways -----

    def serve_argv(self, instance):
        return [self.gateway_bin, "serve", "--db", self.database_url, "--hash-key-file", self.hash_key_file,
                "--host", "127.0.0.1", "--port", str(instance.port), "--public-origin", self.origin,
                "--read-rate", str(self.read_rate), "--write-rate", str(self.write_rate),
                # Every connection through nginx comes from 127.0.0.1.
                "--max-connections-per-address", "1024", *self.serve_args]

    def start_instance(self, index, wait=True):
        instance = self.instances[index]
        if instance.alive():
            raise PoolError(f"{instance.name} is already running (pid {instance.process.pid})")
        with open(instance.log_path, "ab") as log:
            log.write(f"--- start {instance.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
        instance.process = self._spawn(self.serve_argv(instance), instance.log_path, env=self.database_environment())
        instance.starts += 1
        if wait:
            self.wait_healthy(instance)
        return instance

    def wait_healthy(self, instance, timeout=START_TIMEOUT):
        def healthy():
            if not instance.alive():
                raise PoolError(f"{instance.name} exited with status {instance.process.poll()} while starting; "
                                f"see {instance.log_path}: {tail(instance.log_path)}")
            return http_status(instance.url + "/healthz") == 200

        wait_until(healthy, timeout, f"{instance.name} on port {instance.port} did not answer /healthz "
                                     f"(see {instance.log_path})")

    def kill_instance(self, index):
        """kill -9: no goodbye, in-flight requests are cut."""
        instance = self.instances[index]
        if instance.alive():
            instance.process.kill()
            instance.process.wait(timeout=10)
        return instance

    def stop_instance(self, index):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT."""
        instance = self.instances[index]
        if instance.alive():
            instance.process.terminate()
            try:
                instance.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                instance.process.kill()
                instance.process.wait(timeout=10)
        return instance

    def restart_instance(self, index):
        """Starts a stopped or killed instance again on its port; waits for /healthz."""
        self.stop_instance(index)
        # A port freed by kill -9 can be briefly busy; retry within the start bound.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                return self.start_instance(index)
            except PoolError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    def restart_all(self, read_rate=None, write_rate=None):
        """Restarts every instance (one by one), with new rates if given."""
        if read_rate is not None:
            self.read_rate = read_rate
        if write_rate is not None:
            self.write_rate = write_rate
        for instance in self.instances:
            self.stop_instance(instance.index)
            self.restart_instance(instance.index)

    # ----- TLS and nginx -----

    def make_tls(self):
        """A CA for this run and a server certificate for 127.0.0.1 and localhost signed by it."""
        os.makedirs(self.nginx_dir, exist_ok=True)
        os.chmod(self.nginx_dir, 0o755)
        tls = self._private_dir(os.path.join("nginx", "tls"))
        ca_key = os.path.join(self.secrets, "ca.key")
        server_key = os.path.join(tls, "server.key")
        csr = os.path.join(tls, "server.csr")
        extensions = os.path.join(tls, "server.ext")
        with open(extensions, "w") as handle:
            handle.write("basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
                         "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1, DNS:localhost\n")

        def openssl(*args):
            result = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
            if result.returncode != 0:
                raise PoolError(f"openssl {args[0]} failed: {result.stderr.strip()[:300]}")

        old_umask = os.umask(0o077)
        try:
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ca_key)
            openssl("req", "-x509", "-new", "-key", ca_key, "-subj", "/CN=agent-gateway multi-instance test CA", "-days", "2",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                    "-out", self.ca_file)
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", server_key)
            openssl("req", "-new", "-key", server_key, "-subj", "/CN=127.0.0.1", "-out", csr)
            openssl("x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey", ca_key, "-CAcreateserial",
                    "-CAserial", os.path.join(self.secrets, "ca.srl"), "-days", "2",
                    "-sha256", "-extfile", extensions, "-out", os.path.join(tls, "server.crt"))
        finally:
            os.umask(old_umask)
        os.chmod(self.ca_file, 0o644)  # a certificate, no secret: clients read it
        for name in os.listdir(tls):
            os.chmod(os.path.join(tls, name), 0o600)

    def nginx_config(self):
        servers = "\n".join(f"        server 127.0.0.1:{i.port} max_fails=1 fail_timeout=2s;" for i in self.instances)
        # As root, nginx's workers run as `nobody`; its temp paths are made for them in the prefix.
        user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
        return f"""# Made by Tests/MultiInstance/pool.py for one run; docs/gateway.md shows the same shape.
{user}worker_processes {self.nginx_workers};
pid nginx.pid;
error_log {self.logs}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    # Which instance answered each request: the tests read $upstream_addr from here.
    log_format upstream '$msec $status $request_method $uri $upstream_addr $upstream_status $request_time';
    access_log {self.nginx_access_log} upstream;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    client_max_body_size 2m;
    client_body_buffer_size 2m;

    upstream agent_gateway {{
        # Round robin (the default); a refused connection marks an instance down for 2 s.
{servers}
        keepalive 64;
        keepalive_timeout 30s;
    }}

    server {{
        listen 127.0.0.1:{self.nginx_port} ssl;
        ssl_certificate tls/server.crt;
        ssl_certificate_key tls/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:1m;

        location / {{
            proxy_pass http://agent_gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            # A POST is passed to another instance only when it never reached one (nginx's default,
            # no non_idempotent): a write cut in flight is answered 502 and the client retries it
            # with its idempotency key.
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_send_timeout 30s;
            proxy_read_timeout 60s;
            proxy_buffering off;
        }}
    }}
}}
"""

    def start_nginx(self):
        nginx = find_nginx()
        os.makedirs(os.path.join(self.nginx_dir, "tmp"), exist_ok=True)
        config = os.path.join(self.nginx_dir, "nginx.conf")
        with open(config, "w") as handle:
            handle.write(self.nginx_config())
        log_path = os.path.join(self.logs, "nginx-stderr.log")
        argv = [nginx, "-p", self.nginx_dir, "-e", os.path.join(self.logs, "nginx-error.log"), "-c", config, "-g", "daemon off;"]
        self.nginx = self._spawn(argv, log_path)

        def up():
            if self.nginx.poll() is not None:
                raise PoolError(f"nginx exited with status {self.nginx.poll()}: {tail(log_path)} {tail(os.path.join(self.logs, 'nginx-error.log'))}")
            return http_status(self.origin + "/healthz", ca_file=self.ca_file) == 200

        wait_until(up, START_TIMEOUT, f"nginx did not answer https {self.origin}/healthz (see {self.logs}/nginx-error.log)")

    def upstream_counts(self, since_line=0):
        """How many requests nginx passed to each instance port since line `since_line` of its
        access log: ({port: count}, lines read)."""
        counts = {}
        with open(self.nginx_access_log) as handle:
            lines = handle.read().splitlines()
        for line in lines[since_line:]:
            fields = line.split()
            if len(fields) >= 5:
                for address in fields[4].split(","):
                    address = address.strip().rsplit(":", 1)[-1]
                    if address.isdigit():
                        counts[int(address)] = counts.get(int(address), 0) + 1
        return counts, len(lines)

    def pids(self):
        """The processes serving a request: the gateways, nginx and its workers, PostgreSQL and its
        backends (for CPU accounting)."""
        roots = [instance.process.pid for instance in self.instances if instance.alive()]
        if self.nginx is not None and self.nginx.poll() is None:
            roots.append(self.nginx.pid)
        try:
            with open(os.path.join(self.postgres_dir, "data", "postmaster.pid")) as handle:
                roots.append(int(handle.readline()))
        except (OSError, ValueError):
            pass
        return roots

    def access_log_lines(self):
        try:
            with open(self.nginx_access_log) as handle:
                return sum(1 for _ in handle)
        except OSError:
            return 0


def http_status(url, ca_file=None, timeout=2):
    """The HTTP status of a GET, or None when nothing answered within `timeout`."""
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


def readiness(url, ca_file=None, timeout=5):
    """(status, body text) of GET /readyz, or (None, error) when nothing answered."""
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=timeout, context=context) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (OSError, ValueError) as error:
        return None, str(error)


if __name__ == "__main__":
    # A pool by hand: `python3 Tests/MultiInstance/pool.py BIN_DIR [N]`, until Ctrl-C.
    import sys

    install_signal_handlers()
    with Pool(sys.argv[1], instances=int(sys.argv[2]) if len(sys.argv) > 2 else 3, log=print) as pool:
        print(json.dumps({"origin": pool.origin, "caFile": pool.ca_file, "instances": [i.url for i in pool.instances],
                          "work": pool.work}), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
