"""Run Kinto with kinto-elasticsearch and an in-memory search engine, on 127.0.0.1.

The engine is osmem-server (an OpenSearch-compatible server from PyPI), so nothing but
this project's virtualenv is needed. Both processes are stopped by their pid on exit.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

# scripts/warm_up.py, shared with the tests (this script's directory is on sys.path).
from warm_up import warm_up

from kinto_elasticsearch.config import DEFAULT_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
INI = ROOT / "config.example.ini"
KINTO_URL = "http://127.0.0.1:8888/v1"
# The port of the plugin's default hosts, when it is free: a Kinto left with the defaults
# then finds this engine too.
ENGINE_PORT = urlsplit(DEFAULT_SETTINGS["elasticsearch.hosts"]).port


def _port(preferred):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url, process, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited with status {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not answer at {url} within {timeout} s")


def _stop(process):
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)


def main():
    engine_url = f"http://127.0.0.1:{_port(ENGINE_PORT)}"
    binary = str(files("osmem_server").joinpath("bin", "osmem-server"))
    engine = subprocess.Popen(
        [binary, "--addr", engine_url[len("http://") :], "--no-stdin-watch",
         "--parent-pid", str(os.getpid())],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    kinto = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _wait(engine_url, engine, "osmem-server")
        warm_up(engine_url)
        print(f"Search engine (osmem-server, pid {engine.pid}) on {engine_url}", flush=True)
        env = {**os.environ, "KINTO_ELASTICSEARCH_HOSTS": engine_url}
        kinto_bin = Path(sys.executable).parent / "kinto"
        kinto = subprocess.Popen(
            [str(kinto_bin), "start", "--ini", str(INI)], env=env, stdin=subprocess.DEVNULL
        )
        _wait(f"{KINTO_URL}/", kinto, "Kinto")
        print(
            f"\nKinto (pid {kinto.pid}) on {KINTO_URL}/ with kinto-elasticsearch. "
            "Try the README's examples; Ctrl-C stops both servers.\n",
            flush=True,
        )
        kinto.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if kinto is not None:
            _stop(kinto)
        _stop(engine)


if __name__ == "__main__":
    main()
