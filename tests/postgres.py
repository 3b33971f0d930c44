"""A throwaway PostgreSQL cluster for tests and benchmarks, on 127.0.0.1.

PostgreSQL refuses to run as root: as root, the cluster runs as the ``postgres`` system
user (created if missing) through ``setpriv``, which execs the server so that the process
we hold is the postmaster itself, stopped by its pid.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg2

SERVER_USER = "postgres"


def _binary(name):
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: int(path.split("/")[4]),
    )
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: run .ci/install-system-deps "
            "(or apt-get install postgresql)"
        )
    return candidates[-1]


def _as_server_user():
    """The command prefix to run as an unprivileged user, and that user's ids."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/false", SERVER_USER],
            check=True,
        )
        user = pwd.getpwnam(SERVER_USER)
    prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    return prefix, user.pw_uid, user.pw_gid


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self, process, data_dir, port):
        self.process = process
        self.data_dir = data_dir
        self.port = port
        self.url = f"postgresql://{SERVER_USER}@127.0.0.1:{port}/kinto"

    @property
    def pid(self):
        return self.process.pid

    @classmethod
    def start(cls, timeout=30.0):
        prefix, uid, gid = _as_server_user()
        data_dir = tempfile.mkdtemp(prefix="kinto-es-pg-")
        os.chown(data_dir, uid, gid)
        cluster = os.path.join(data_dir, "cluster")
        subprocess.run(
            [*prefix, _binary("initdb"), "-D", cluster, "-U", SERVER_USER, "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        port = _free_port()
        log = open(os.path.join(data_dir, "server.log"), "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [*prefix, _binary("postgres"), "-D", cluster, "-h", "127.0.0.1", "-p", str(port),
             "-k", data_dir, "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        server = cls(process, data_dir, port)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(data_dir, "server.log")) as server_log:
                    output = server_log.read()[-2000:]
                server.stop()
                raise RuntimeError(f"PostgreSQL did not start:\n{output}")
            try:
                conn = psycopg2.connect(
                    host="127.0.0.1", port=port, user=SERVER_USER, dbname="postgres"
                )
                break
            except psycopg2.OperationalError:
                time.sleep(0.05)
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("CREATE DATABASE kinto")
        conn.close()
        return server

    def stop(self):
        """Fast shutdown by the postmaster's pid, then remove the cluster."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
