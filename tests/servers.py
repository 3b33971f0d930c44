"""Search servers for the tests and benchmarks: real processes on 127.0.0.1.

``opensearch``: osmem-server, an in-memory OpenSearch-compatible server.
``elasticsearch``: noida-db, which emulates the Elasticsearch 8 REST API.
Each is stopped by its process id.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.resources import files

from scripts.warm_up import warm_up

ENGINES = ("opensearch", "elasticsearch")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url, process=None, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                json.load(response)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no search server answered at {url} within {timeout} s")


@dataclass
class EngineServer:
    """A search server process (or, for a real cluster, just its address)."""

    engine: str
    url: str
    process: subprocess.Popen | None = None
    data_dir: str | None = None
    port: int | None = None
    _cleanup: list = field(default_factory=list)

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def stop(self):
        """Stop the process by its pid; its data stays for :meth:`restart` (noida-db)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self, empty=False):
        """Start the server again on the same port (osmem-server always starts empty;
        noida-db keeps its data unless ``empty``, as a node that lost its disk)."""
        self.stop()
        if empty and self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            os.makedirs(self.data_dir)
        self.process = _launch(self.engine, self.port, self.data_dir)
        wait_until_up(self.url, self.process)
        warm_up(self.url)

    def close(self):
        self.stop()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _launch(engine, port, data_dir):
    if engine == "opensearch":
        binary = os.environ.get("OSMEM_SERVER_BIN") or str(
            files("osmem_server").joinpath("bin", "osmem-server")
        )
        args = [binary, "--addr", f"127.0.0.1:{port}", "--no-stdin-watch"]
        args += ["--parent-pid", str(os.getpid())]
    else:
        binary = str(files("noida_db").joinpath("noida-db"))
        os.chmod(binary, 0o755)
        args = [binary, "start", "--only", "elasticsearch", "--host", "127.0.0.1"]
        args += ["--elasticsearch-port", str(port), "--data-dir", data_dir]
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_engine(engine, port=None):
    """Start a fresh server of ``engine`` on 127.0.0.1 and wait until it answers."""
    port = port or free_port()
    data_dir = tempfile.mkdtemp(prefix=f"kinto-es-{engine}-")
    process = _launch(engine, port, data_dir)
    server = EngineServer(engine, f"http://127.0.0.1:{port}", process, data_dir, port)
    try:
        wait_until_up(server.url, process)
        warm_up(server.url)
    except Exception:
        server.close()
        raise
    return server


def external_engine():
    """The real cluster named by the environment, if any."""
    hosts = os.environ.get("KINTO_ELASTICSEARCH_TEST_HOSTS")
    if not hosts:
        return None
    engine = os.environ.get("KINTO_ELASTICSEARCH_TEST_ENGINE", "elasticsearch")
    return EngineServer(engine, hosts.split()[0])


class FaultProxy:
    """A reverse proxy in front of a real engine that answers some requests itself.

    ``answer(method, path, body)`` returns None to forward the request, ``(status, json
    body)`` to answer with that, ``"hang"`` to hold the connection without answering
    (a proxy whose upstream hangs), or a number of seconds to wait before forwarding.
    It stands for what a real cluster or its load balancer
    does and the test servers cannot: a 429 from the engine's memory breaker, a 500 from
    one aggregation, a 502 with no node behind the proxy.
    """

    def __init__(self, target_url, answer=None):
        import http.server
        import threading

        target = urllib.request.urlparse(target_url)
        proxy = self
        self.answer = answer or (lambda method, path, body: None)
        self.answered = 0
        self._release = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status, payload, headers=()):
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                verdict = proxy.answer(self.command, self.path, body)
                if isinstance(verdict, float):
                    # A slow engine: answer, after ``verdict`` seconds.
                    proxy._release.wait(verdict)
                    verdict = None
                if verdict == "hang":
                    proxy.answered += 1
                    proxy._release.wait(60)
                    self.close_connection = True
                    return
                if verdict is not None:
                    proxy.answered += 1
                    status, payload = verdict
                    data = json.dumps(payload).encode()
                    self._reply(status, data, [("Content-Type", "application/json")])
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                request = urllib.request.Request(
                    f"{target.scheme}://{target.netloc}{self.path}",
                    data=body if length else None,
                    headers=headers,
                    method=self.command,
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, payload, reply = response.status, response.read(), response
                except urllib.error.HTTPError as error:
                    status, payload, reply = error.code, error.read(), error
                self._reply(status, payload, reply.headers.items())

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # A client that gave up on a held request: what the proxy is for.

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def body_size_limit(target_url, limit):
    """A proxy refusing request bodies over ``limit`` bytes with 413, as nginx's
    ``client_max_body_size`` does in front of many clusters; the rest reaches the engine.
    ``answered`` counts the refusals."""

    def answer(method, path, body):
        if len(body) > limit:
            return 413, {"error": "Request Entity Too Large", "status": 413}
        return None

    return FaultProxy(target_url, answer)


class KintoProcess:
    """``kinto start`` on an ini file: a real Kinto HTTP server (waitress), by its pid."""

    def __init__(self, ini, port, log_path):
        self.ini, self.port, self.log_path = ini, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.process = None

    def start(self, timeout=60.0):
        import sys
        from pathlib import Path

        kinto = str(Path(sys.executable).parent / "kinto")
        log = open(self.log_path, "a")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [kinto, "start", "--ini", str(self.ini)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Kinto exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/", timeout=1) as response:
                    response.read()
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Kinto did not start; see {self.log_path}")

    def kill(self):
        """SIGKILL, as an OOM killer or a careless deploy would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
