import base64
import contextlib
import itertools
import os
import time

import kinto
import pytest
import webtest
from kinto.core.cornice import service as cornice_service

from kinto_elasticsearch.client import Engine
from kinto_elasticsearch.config import parse_settings
from tests import servers

_prefixes = itertools.count()
# The plugin's default request timeout, with the test servers sharing two cores with other
# suites, times out healthy requests now and then. Tests of a hung or slow engine set their own.
REQUEST_TIMEOUT = "10"


def _engine_params():
    external = servers.external_engine()
    return [external.engine] if external else list(servers.ENGINES)


@pytest.fixture(scope="session", params=_engine_params())
def engine_server(request):
    """A real search server, once per engine (or the cluster named by the environment)."""
    external = servers.external_engine()
    if external:
        yield external
        return
    server = servers.start_engine(request.param)
    yield server
    server.close()


@pytest.fixture
def index_prefix():
    # One prefix per test keeps tests apart on a shared server (or a real cluster).
    return f"t{os.getpid()}-{next(_prefixes)}"


def auth(user):
    token = base64.b64encode(f"{user}:secret".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def base_settings(engine_server, index_prefix, **overrides):
    settings = {
        "storage_backend": "kinto.core.storage.memory",
        "permission_backend": "kinto.core.permission.memory",
        "cache_backend": "kinto.core.cache.memory",
        "includes": "kinto.plugins.default_bucket kinto.plugins.flush kinto_elasticsearch",
        "multiauth.policies": "basicauth",
        "userid_hmac_secret": "test-secret",
        "bucket_create_principals": "system.Authenticated",
        "elasticsearch.hosts": engine_server.url,
        "elasticsearch.engine": engine_server.engine,
        "elasticsearch.index_prefix": index_prefix,
        "elasticsearch.force_refresh": "true",
        "elasticsearch.request_timeout_seconds": REQUEST_TIMEOUT,
        # Tests of one thing see only its effects: those of the background catch-up ask
        # for it (the servers tests start as processes have it, as in production).
        "elasticsearch.catchup_in_process": "false",
    }
    settings.update(overrides)
    return settings


def close_app(app):
    """Stop an app's background threads and close its client: they hold its registry."""
    app.app.registry.elasticsearch.close()


def _made_for_an_app(service):
    """Whether a cornice service was made by an app's configuration (Kinto's resources,
    ``scope`` "function call"), not defined by a module, which every app shares."""
    callbacks = getattr(service, "__venusian_callbacks__", None) or {}
    return any(entry[3] == "function call" for entries in callbacks.values() for entry in entries)


def forget_services(before):
    """Drop from cornice's process-global list the services apps made since ``before``
    (the ids listed then): each holds its app's whole registry, and a suite making
    thousands of apps held gigabytes, which its garbage collections then walked."""
    services = cornice_service.SERVICES
    services[:] = [s for s in services if id(s) in before or not _made_for_an_app(s)]


@pytest.fixture
def make_app(engine_server, index_prefix, engine):
    apps = []
    before = {id(service) for service in cornice_service.SERVICES}

    def make(**overrides):
        settings = base_settings(engine_server, index_prefix, **overrides)
        app = webtest.TestApp(kinto.main({}, **settings))
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_app(app)
    forget_services(before)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def engine(engine_server, index_prefix):
    """A client of the test server, to look at the index behind the plugin's back."""
    settings = parse_settings(
        {
            "elasticsearch.hosts": engine_server.url,
            "elasticsearch.engine": engine_server.engine,
            "elasticsearch.index_prefix": index_prefix,
            "elasticsearch.request_timeout_seconds": REQUEST_TIMEOUT,
        }
    )
    client = Engine(settings)
    yield client
    try:
        names = sorted(client.call("indices.get_alias", index=f"{index_prefix}.*"))
        for name in names:
            client.call("indices.delete", index=name)
    finally:
        client.close()


def present_collections(engine, index_prefix):
    """``{"bucket/collection"}`` of the collections the engine holds anything of, read
    behind the plugin: the aliases of indices of their own, and the collection keys of the
    documents in pools (a pooled collection has no alias, so an empty one holds nothing)."""
    from kinto_elasticsearch.index import naming, placement

    found = set()
    listed = engine.call("indices.get_alias", index=f"{index_prefix}.*")
    for name, info in listed.items():
        if naming.is_pool(index_prefix, name):
            body = {"size": 0, "aggs": {"k": {"terms": {"field": placement.COLLECTION_FIELD,
                                                        "size": 10_000}}}}  # fmt: skip
            buckets = engine.call("search", index=name, body=body)["aggregations"]["k"]
            found.update(bucket["key"] for bucket in buckets["buckets"])
        for alias in info.get("aliases", {}):
            if not naming.is_internal_index(index_prefix, alias):
                found.add(alias[len(index_prefix) + 1 :].replace(".", "/", 1))
    return found


def indexed(engine, index_prefix, bucket_id, collection_id):
    """``{record id: (version, source)}`` as the engine holds them, read behind the plugin.

    Tombstones of deleted records are left out: they are not records.
    """
    from kinto_elasticsearch.index import naming, placement
    from kinto_elasticsearch.index.documents import LIVE_DOCUMENTS

    key = placement.collection_key(bucket_id, collection_id)
    alias = naming.alias_name(index_prefix, bucket_id, collection_id)
    if engine.call("indices.exists_alias", name=alias):
        target, query = alias, LIVE_DOCUMENTS
    else:
        # A pooled collection has no alias: its documents are in a pool, under its key.
        target = naming.pool_pattern(index_prefix)
        query = {"bool": {"filter": [LIVE_DOCUMENTS, {"term": {placement.COLLECTION_FIELD: key}}]}}
    body = engine.call(
        "search", index=target, body={"query": query, "size": 1000, "version": True}
    )
    found = {}
    for hit in body["hits"]["hits"]:
        record_id, source = hit["_id"], dict(hit["_source"])
        if naming.is_pool(index_prefix, hit["_index"]):
            # A pooled document says whose it is, in its ``_id`` and its collection field.
            assert record_id.startswith(f"{key}/")
            assert source.pop(placement.COLLECTION_FIELD) == key
            record_id = record_id[len(key) + 1 :]
        found[record_id] = (hit["_version"], source)
    return found


def wait_until(condition, what, seconds=30.0, every=0.05):
    """Poll ``condition`` until it gives something true, and return that: a busy machine
    gets the time it needs, a quiet one does not wait for nothing.

    An exception of ``condition`` counts as "not yet" (an index being swapped, an engine
    coming back). After ``seconds``, fails saying that ``what`` did not happen and what
    ``condition`` gave last.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = condition()
        except Exception as exc:
            value = exc
        else:
            if value:
                return value
        assert time.monotonic() < deadline, (
            f"{what} did not happen within {seconds} s (last: {value!r})"
        )
        time.sleep(every)


class EngineSpy:
    """Counts the plugin's calls to the engine; every call still reaches the real server."""

    def __init__(self, engine):
        self.calls = []
        self._call = engine.call
        engine.call = self

    def __call__(self, operation, **kwargs):
        self.calls.append((operation, kwargs))
        return self._call(operation, **kwargs)

    def count(self, operation):
        return sum(1 for name, _ in self.calls if name == operation)


class MetricsRecorder:
    """An in-memory metrics service: what Kinto's statsd or Prometheus plugins would receive.

    ``test_metrics`` checks the same names against Kinto's real backends.
    """

    def __init__(self):
        self.counts = {}
        self.timed = {}
        self.observed = {}

    @contextlib.contextmanager
    def timer(self, key, value=None, labels=()):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timed.setdefault(key, []).append(time.perf_counter() - started)

    def observe(self, key, value, labels=()):
        self.observed.setdefault(key, []).append(value)

    def count(self, key, count=1, unique=None):
        self.counts[key] = self.counts.get(key, 0) + count


@pytest.fixture
def metrics_factory():
    """Plug a recorder as the metrics service of an app."""
    from kinto.core.metrics import IMetricsService

    def plug(app):
        recorder = MetricsRecorder()
        app.app.registry.registerUtility(recorder, IMetricsService)
        return recorder

    return plug


@pytest.fixture
def metrics(app, metrics_factory):
    return metrics_factory(app)


@pytest.fixture
def alice():
    return auth("alice")


@pytest.fixture
def blackhole():
    """An address that accepts connections and never answers: a hung engine."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def own_engine_server(engine_server):
    """A server of the current engine that the test may stop and restart."""
    if engine_server.process is None:
        pytest.skip("needs a search server process the test can stop (not a real cluster)")
    server = servers.start_engine(engine_server.engine)
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres():
    from tests.postgres import PostgresServer

    server = PostgresServer.start()
    yield server
    server.stop()


_databases = itertools.count()


@pytest.fixture
def pg_url(postgres):
    """A fresh database with Kinto's schema, for one test."""
    import psycopg2

    name = f"kinto_{os.getpid()}_{next(_databases)}"
    conn = psycopg2.connect(postgres.url)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    conn.close()
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


def pg_settings(pg_url):
    return {
        "storage_backend": "kinto.core.storage.postgresql",
        "storage_url": pg_url,
        "permission_backend": "kinto.core.permission.postgresql",
        "permission_url": pg_url,
    }


@pytest.fixture
def pg_app(make_app, pg_url):
    """Kinto on PostgreSQL storage, which another process (the CLI) can share."""
    app = make_app(**pg_settings(pg_url))
    registry = app.app.registry
    registry.storage.initialize_schema()
    registry.permission.initialize_schema()
    return app


INI_TEMPLATE = """\
[app:main]
use = egg:kinto
kinto.includes = {includes}
{settings}

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = plain

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = plain

[formatter_plain]
format = %(levelname)s %(message)s
"""


@pytest.fixture
def write_ini(tmp_path, engine_server, index_prefix, pg_url):
    """An ini file for the CLI, sharing the test app's storage and engine."""

    def write(includes="kinto_elasticsearch", **overrides):
        settings = {
            **{f"kinto.{k}": v for k, v in pg_settings(pg_url).items()},
            "kinto.elasticsearch.hosts": engine_server.url,
            "kinto.elasticsearch.engine": engine_server.engine,
            "kinto.elasticsearch.index_prefix": index_prefix,
            "kinto.elasticsearch.force_refresh": "true",
            "kinto.elasticsearch.request_timeout_seconds": REQUEST_TIMEOUT,
            **overrides,
        }
        lines = "\n".join(f"{key} = {value}" for key, value in settings.items())
        path = tmp_path / "kinto.ini"
        path.write_text(INI_TEMPLATE.format(includes=includes, settings=lines))
        return path

    return write
