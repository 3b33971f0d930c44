"""Processes and measurements for the benchmarks: everything real, on 127.0.0.1."""

import base64
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
BIN = Path(sys.executable).parent
AUTH = "Basic " + base64.b64encode(b"bench:secret").decode()

INI_TEMPLATE = """\
[app:main]
use = egg:kinto
kinto.includes = {includes}
kinto.storage_backend = kinto.core.storage.postgresql
kinto.storage_url = {storage_url}
kinto.storage_pool_size = 10
kinto.permission_backend = kinto.core.permission.postgresql
kinto.permission_url = {storage_url}
kinto.cache_backend = kinto.core.cache.memory
kinto.bucket_create_principals = system.Authenticated
kinto.userid_hmac_secret = bench-secret
multiauth.policies = basicauth
kinto.paginate_by = 10
kinto.elasticsearch.hosts = {engine_url}
kinto.elasticsearch.engine = opensearch
kinto.elasticsearch.index_prefix = bench
{extra}

[server:main]
use = egg:waitress#main
host = 127.0.0.1
port = {port}
threads = 4

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = plain

[formatter_plain]
format = %(asctime)s %(levelname)s %(name)s %(message)s
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_ini(name, storage_url, engine_url, plugin=True, **settings):
    """An ini file for one Kinto server; ``settings``: more ``kinto.elasticsearch.*``."""
    WORK.mkdir(parents=True, exist_ok=True)
    includes = "kinto_elasticsearch" if plugin else ""
    port = free_port()
    path = WORK / f"{name}.ini"
    extra = "\n".join(f"kinto.elasticsearch.{key} = {value}" for key, value in settings.items())
    path.write_text(
        INI_TEMPLATE.format(
            includes=includes,
            storage_url=storage_url,
            engine_url=engine_url,
            port=port,
            extra=extra,
        )
    )
    return path, port


def stop(process):
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


class KintoServer:
    """``kinto start`` on an ini file: a real HTTP server process."""

    def __init__(self, name, ini, port):
        self.name, self.ini, self.port = name, ini, port
        log = open(WORK / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [str(BIN / "kinto"), "start", "--ini", str(ini)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.client = Client("127.0.0.1", port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Kinto {name} exited; see {WORK / (name + '.log')}")
            try:
                self.client.request("GET", "/v1/")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"Kinto {name} did not start")

    def stop(self):
        self.client.close()
        stop(self.process)


class Client:
    """A keep-alive HTTP client that times each request."""

    def __init__(self, host, port, headers=None):
        self.host, self.port = host, port
        self.headers = {"Authorization": AUTH, "Content-Type": "application/json"}
        self.headers.update(headers or {})
        self._conn = None

    def request(self, method, path, body=None):
        """``(status, decoded body, seconds)``."""
        data = None if body is None else json.dumps(body).encode()
        reused = self._conn is not None
        try:
            return self._send(method, path, data)
        except (OSError, http.client.HTTPException):
            self.close()
            if not reused:
                raise
        # The server closed the idle keep-alive connection: reconnect once, as clients do.
        return self._send(method, path, data)

    def _send(self, method, path, data):
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        started = time.perf_counter()
        try:
            self._conn.request(method, path, body=data, headers=self.headers)
            response = self._conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        elapsed = time.perf_counter() - started
        return response.status, json.loads(payload) if payload else None, elapsed

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class CountingProxy:
    """Forwards HTTP requests to the engine and counts them by path."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.counts = {}
        # ``(method, path)`` of every request, in order.
        self.paths = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        reader = conn.makefile("rb")
        upstream = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=60)
        try:
            while True:
                line = reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
                    key, value = header.decode().split(":", 1)
                    headers[key.strip()] = value.strip()
                length = int(headers.get("Content-Length", headers.get("content-length", 0)))
                body = reader.read(length) if length else None
                route = path.split("?")[0].rsplit("/", 1)[-1]
                with self._lock:
                    self.counts[(method, route)] = self.counts.get((method, route), 0) + 1
                    self.paths.append((method, path.split("?")[0]))
                upstream.request(method, path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                head = [f"HTTP/1.1 {response.status} {response.reason}"]
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        head.append(f"{key}: {value}")
                head.append(f"Content-Length: {len(payload)}")
                conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        except (OSError, ValueError):
            return
        finally:
            upstream.close()
            conn.close()

    def reset(self):
        with self._lock:
            self.counts.clear()
            self.paths.clear()

    def close(self):
        self._sock.close()


class Blackhole:
    """An address that accepts connections and never answers: a hung engine."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1024)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def close(self):
        self._sock.close()


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def median(values):
    return statistics.median(values) if values else float("nan")


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){memory}, Python {platform.python_version()}"


def run_measured(args):
    """Run a command; ``(seconds, peak RSS in MiB, stdout)`` of that very process.

    ``os.wait4`` reports the resource usage of the one child it reaps, so the peak memory
    is the command's own, not a high-water mark shared with other children.
    """
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({process.returncode}): {err.read()[-2000:]}")
        # ru_maxrss is in KiB on Linux.
        return elapsed, usage.ru_maxrss / 1024, out.read()
