"""Chaos, with real processes only: Kinto served by waitress on PostgreSQL, killed with
SIGKILL; engines stopped, hung, restarted empty. After each fault, once the engine is
back, the index equals storage within 30 s without any command, and ``verify`` exits 0
(issue 11, point 7)."""

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest

from kinto_elasticsearch.client import Engine
from kinto_elasticsearch.config import parse_settings
from kinto_elasticsearch.index import naming, placement
from kinto_elasticsearch.index.documents import LIVE_DOCUMENTS
from tests.conftest import INI_TEMPLATE, pg_settings
from tests.servers import FaultProxy, KintoProcess, free_port

CLI = str(Path(sys.executable).parent / "kinto-elasticsearch")
AUTH = "Basic " + base64.b64encode(b"alice:secret").decode()
CONVERGE_SECONDS = 30


class Http:
    def __init__(self, url):
        self.url = url

    def __call__(self, method, path, body=None, timeout=10):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/v1{path}",
            data=data,
            method=method,
            headers={"Authorization": AUTH, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


class Writer(threading.Thread):
    """A stream of creates, updates and deletes; it keeps going while Kinto is killed."""

    def __init__(self, http, collection, name):
        super().__init__(daemon=True)
        self.http, self.collection, self.name = http, collection, name
        self.stop = threading.Event()
        self.written = 0
        self.slowest = 0.0

    def run(self):
        i = 0
        while not self.stop.is_set():
            path = f"{self.collection}/records/{self.name}{i}"
            started = time.monotonic()
            try:
                self.http("PUT", path, {"data": {"i": i, "by": self.name}})
                if i % 3 == 2:
                    self.http("PATCH", f"{self.collection}/records/{self.name}{i - 1}",
                              {"data": {"patched": True}})  # fmt: skip
                if i % 5 == 4:
                    self.http("DELETE", f"{self.collection}/records/{self.name}{i - 2}")
                self.written += 1
            except OSError:
                time.sleep(0.05)  # Kinto is down: a client would retry.
            self.slowest = max(self.slowest, time.monotonic() - started)
            i += 1


def _create_schema(pg_url):
    """Kinto's storage and permission schemas, as ``kinto migrate`` creates them (without
    starting a Kinto process for it)."""
    import kinto.core.permission.postgresql as permission
    import kinto.core.storage.postgresql as storage

    with psycopg2.connect(pg_url) as conn, conn.cursor() as cursor:
        for module in (storage, permission):
            cursor.execute((Path(module.__file__).parent / "schema.sql").read_text())


@pytest.fixture
def chaos(tmp_path, own_engine_server, pg_url, index_prefix):
    """Kinto processes on one PostgreSQL database, behind a fault proxy to the engine."""
    proxy = FaultProxy(own_engine_server.url)
    kintos = []

    def kinto(name="kinto", **overrides):
        port = free_port()
        settings = {
            **{f"kinto.{k}": v for k, v in pg_settings(pg_url).items()},
            "kinto.bucket_create_principals": "system.Authenticated",
            "kinto.userid_hmac_secret": "chaos",
            "multiauth.policies": "basicauth",
            "kinto.elasticsearch.hosts": proxy.url,
            "kinto.elasticsearch.engine": own_engine_server.engine,
            "kinto.elasticsearch.index_prefix": index_prefix,
            # Generous: on two cores shared with other suites a healthy engine can take
            # seconds, and a timeout there is no fault under test. The hung engine's test
            # has its own, short one.
            "kinto.elasticsearch.request_timeout_seconds": "10",
            "kinto.elasticsearch.circuit_breaker_seconds": "2",
            **overrides,
        }
        lines = "\n".join(f"{key} = {value}" for key, value in settings.items())
        ini = tmp_path / f"{name}.ini"
        server = f"\n[server:main]\nuse = egg:waitress#main\nhost = 127.0.0.1\nport = {port}\n"
        ini.write_text(
            INI_TEMPLATE.format(includes="kinto_elasticsearch", settings=lines) + server
        )
        process = KintoProcess(ini, port, tmp_path / f"{name}.log")
        kintos.append(process)
        return process

    first = kinto()
    _create_schema(pg_url)
    yield types.SimpleNamespace(
        kinto=kinto,
        first=first,
        proxy=proxy,
        engine_server=own_engine_server,
        pg_url=pg_url,
        prefix=index_prefix,
    )
    for process in kintos:
        process.kill()
    proxy.close()


def _engine(state):
    settings = parse_settings(
        {
            "elasticsearch.hosts": state.engine_server.url,
            "elasticsearch.engine": state.engine_server.engine,
            "elasticsearch.index_prefix": state.prefix,
        }
    )
    return Engine(settings)


def _stored(pg_url, bucket_id, collection_id):
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT id, as_epoch(last_modified) FROM objects WHERE parent_id = %s "
            "AND resource_name = 'record' AND NOT deleted",
            (f"/buckets/{bucket_id}/collections/{collection_id}",),
        )
        return dict(cursor.fetchall())


def _live_documents(engine, prefix, bucket_id, collection_id):
    """``(index, query)`` of a collection's live documents: behind its alias, or, pooled
    (no alias), in a pool (any pool: a copy left in the wrong one counts), under its key."""
    alias = naming.alias_name(prefix, bucket_id, collection_id)
    if engine.call("indices.exists_alias", name=alias):
        return alias, LIVE_DOCUMENTS
    key = placement.collection_key(bucket_id, collection_id)
    in_collection = {"term": {placement.COLLECTION_FIELD: key}}
    return naming.pool_pattern(prefix), {"bool": {"filter": [LIVE_DOCUMENTS, in_collection]}}


def _indexed(engine, prefix, bucket_id, collection_id):
    # A pooled document's ``_id`` starts with its collection's key.
    pooled_id = f"{placement.collection_key(bucket_id, collection_id)}/"
    target, query = _live_documents(engine, prefix, bucket_id, collection_id)
    found, body = {}, {"query": query, "size": 1000, "version": True, "sort": ["id"]}
    while True:
        hits = engine.call("search", index=target, body=body)["hits"]["hits"]
        for hit in hits:
            record_id = hit["_id"]
            if naming.is_pool(prefix, hit["_index"]):
                assert record_id.startswith(pooled_id), hit
                record_id = record_id[len(pooled_id) :]
            assert record_id not in found, f"{record_id} is indexed twice"
            found[record_id] = hit["_version"]
        if len(hits) < 1000:
            return found
        body["search_after"] = hits[-1]["sort"]


def _converges(state, collections, seconds=CONVERGE_SECONDS):
    """Wait until every collection's index equals storage; the last difference if not."""
    engine = _engine(state)
    deadline = time.monotonic() + seconds
    try:
        while True:
            differences = {}
            for bucket_id, collection_id in collections:
                stored = _stored(state.pg_url, bucket_id, collection_id)
                try:
                    found = _indexed(engine, state.prefix, bucket_id, collection_id)
                except Exception as exc:
                    found = repr(exc)
                if found != stored:
                    differences[(bucket_id, collection_id)] = (len(stored), found if isinstance(
                        found, str) else len(found))  # fmt: skip
            if not differences or time.monotonic() > deadline:
                return differences
            time.sleep(0.5)
    finally:
        engine.close()


def _verify(state):
    result = subprocess.run(
        [CLI, "verify", "--ini", str(state.first.ini)], capture_output=True, text=True, timeout=120
    )
    return result.returncode, result.stdout + result.stderr[-2000:]


def _collection(http, bucket_id="b", collection_id="c", data=None):
    http("PUT", f"/buckets/{bucket_id}", {})
    http("PUT", f"/buckets/{bucket_id}/collections/{collection_id}", {"data": data or {}})
    return f"/buckets/{bucket_id}/collections/{collection_id}"


def _until(condition, seconds=60, what="the condition"):
    """Poll ``condition`` until it holds: a busy machine gets the time it needs, a quiet
    one does not wait for nothing."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.05)


def _more_writes(writers, count):
    marks = [writer.written + count for writer in writers]
    _until(lambda: all(w.written >= m for w, m in zip(writers, marks, strict=True)),
           what=f"{count} more writes by each writer")  # fmt: skip


def _stream(http, collection, writes, kill=None, name="w"):
    """A writer's stream, killed (if ``kill``) once it made ``writes`` writes; then it
    goes on a moment against the dead process."""
    writer = Writer(http, collection, name)
    writer.start()
    _until(lambda: writer.written >= writes, what=f"{writes} writes")
    if kill is not None:
        kill.kill()
    time.sleep(0.3)
    writer.stop.set()
    writer.join(30)
    return writer


def test_kinto_killed_mid_stream_with_the_engine_up(chaos):
    kinto = chaos.first.start()
    http = Http(kinto.url)
    collection = _collection(http)
    writer = _stream(http, collection, 15, kill=kinto)
    assert writer.written > 10
    kinto.start()
    assert _converges(chaos, [("b", "c")]) == {}
    assert _verify(chaos)[0] == 0, _verify(chaos)[1]


def test_kinto_killed_mid_stream_with_the_engine_down_then_back_empty(chaos):
    kinto = chaos.first.start()
    http = Http(kinto.url)
    collection = _collection(http)
    for i in range(10):
        http("PUT", f"{collection}/records/before{i}", {"data": {}})
    chaos.engine_server.stop()
    writer = _stream(http, collection, 15, kill=kinto)
    # Every write succeeded quickly while the engine was down.
    assert writer.written > 10 and writer.slowest < 3
    chaos.engine_server.restart(empty=True)
    kinto.start()
    assert _converges(chaos, [("b", "c")]) == {}
    assert _verify(chaos)[0] == 0, _verify(chaos)[1]


def test_kinto_killed_mid_stream_with_the_engine_hung(chaos):
    # A hung engine costs the plugin's requests their whole timeout: a short one, as writes
    # must not wait for it.
    kinto = chaos.kinto("hung", **{"kinto.elasticsearch.request_timeout_seconds": "1"}).start()
    http = Http(kinto.url)
    collection = _collection(http)
    chaos.proxy.answer = lambda method, path, body: "hang"
    writer = _stream(http, collection, 10, kill=kinto)
    assert writer.written > 5 and writer.slowest < 5
    chaos.proxy.answer = lambda method, path, body: None
    kinto.start()
    assert _converges(chaos, [("b", "c")]) == {}
    assert _verify(chaos)[0] == 0, _verify(chaos)[1]


def test_deletes_and_schema_changes_during_an_outage(chaos):
    kinto = chaos.first.start()
    http = Http(kinto.url)
    for bucket_id, collection_id in [("b", "kept"), ("b", "deleted"), ("gone", "c")]:
        collection = _collection(http, bucket_id, collection_id)
        for i in range(5):
            http("PUT", f"{collection}/records/r{i}", {"data": {"title": f"t{i}", "n": i}})
    chaos.engine_server.stop()
    http("DELETE", "/buckets/b/collections/deleted")
    http("DELETE", "/buckets/gone")
    schema = {"properties": {"label": {"type": "keyword"}}}
    http("PATCH", "/buckets/b/collections/kept",
         {"data": {"index:schema": schema, "index:exclude_fields": ["title"]}})  # fmt: skip
    http("PUT", "/buckets/b/collections/kept/records/r9", {"data": {"label": "x", "title": "t"}})
    chaos.engine_server.restart()
    assert _converges(chaos, [("b", "kept")]) == {}
    engine = _engine(chaos)
    try:
        deadline = time.monotonic() + CONVERGE_SECONDS
        while time.monotonic() < deadline:
            found = engine.call("indices.get_alias", index=f"{chaos.prefix}.*")
            aliases = {a for info in found.values() for a in info["aliases"]
                       if not naming.is_pool_write_alias(a)}  # fmt: skip
            alias = naming.alias_name(chaos.prefix, "b", "kept")
            mapping = engine.call("indices.get_mapping", index=alias)
            properties = next(iter(mapping.values()))["mappings"]["properties"]
            hits = engine.call("search", index=alias, body={"query": {"ids": {"values": ["r1"]}}})
            source = hits["hits"]["hits"][0]["_source"] if hits["hits"]["hits"] else {}
            done = aliases == {alias} and properties.get("label") == {"type": "keyword"}
            if done and "title" not in source and source:
                break
            time.sleep(0.5)
        assert aliases == {alias}
        assert properties["label"] == {"type": "keyword"}
        assert source and "title" not in source
    finally:
        engine.close()
    assert _verify(chaos)[0] == 0, _verify(chaos)[1]


def test_two_processes_writing_and_catching_up_at_once(chaos):
    one = chaos.first.start()
    two = chaos.kinto("two").start()
    collection = _collection(Http(one.url))
    writers = [Writer(Http(one.url), collection, "a"), Writer(Http(two.url), collection, "b")]
    for writer in writers:
        writer.start()
    _more_writes(writers, 6)
    chaos.engine_server.stop()
    _more_writes(writers, 3)  # While the engine is down.
    two.kill()
    chaos.engine_server.restart()
    _more_writes(writers[:1], 3)  # The survivor, with the engine back.
    for writer in writers:
        writer.stop.set()
        writer.join(30)
    assert all(writer.written > 5 for writer in writers)
    assert _converges(chaos, [("b", "c")]) == {}
    assert _verify(chaos)[0] == 0, _verify(chaos)[1]


def test_two_rebuilds_at_once(chaos):
    kinto = chaos.first.start()
    http = Http(kinto.url)
    collection = _collection(http)
    requests = [
        {"method": "PUT", "path": f"{collection}/records/r{i}", "body": {"data": {"i": i}}}
        for i in range(25)
    ]
    for _ in range(4):
        http("POST", "/batch", {"requests": requests})
        requests = [{**r, "path": r["path"] + "x"} for r in requests]
    writer = Writer(http, collection, "w")
    writer.start()
    args = [CLI, "reindex", "--ini", str(chaos.first.ini), "-b", "b", "-c", "c"]
    rebuilds = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]  # fmt: skip
    outcomes = [(p.wait(120), p.stdout.read() + p.stderr.read()) for p in rebuilds]
    writer.stop.set()
    writer.join(30)
    # Each either rebuilt, or said another rebuild held the collection: none broke it.
    for status, output in outcomes:
        assert status == 0 or (status == 2 and "being rebuilt" in output), output
    assert any(status == 0 for status, _ in outcomes)
    assert _converges(chaos, [("b", "c")]) == {}
    assert _verify(chaos)[0] == 0, _verify(chaos)[1]


def _collection_indices(engine, prefix, bucket_id, collection_id):
    """``{physical index: [aliases]}`` of one collection."""
    found = engine.call(
        "indices.get_alias", index=naming.collection_pattern(prefix, bucket_id, collection_id)
    )
    return {name: sorted(info.get("aliases", {})) for name, info in found.items()}


def _no_index_without_alias(state, bucket_id, collection_id, seconds=CONVERGE_SECONDS):
    engine = _engine(state)
    deadline = time.monotonic() + seconds
    try:
        while True:
            indices = _collection_indices(engine, state.prefix, bucket_id, collection_id)
            if all(indices.values()) or time.monotonic() > deadline:
                return indices
            time.sleep(0.5)
    finally:
        engine.close()


def test_a_rebuild_killed_midway_leaves_nothing_behind(chaos):
    # Its index goes within the rebuild's lease and a catch-up interval: both short here,
    # as the mechanism and not the production intervals is under test. A collection with
    # an index of its own: a pooled one is rebuilt in place, in no new index.
    kinto = chaos.kinto(
        "often",
        **{
            "kinto.elasticsearch.catchup_interval_seconds": "1",
            "kinto.elasticsearch.pools": "0",
        },
    )
    kinto.start()
    http = Http(kinto.url)
    collection = _collection(http)
    requests = [
        {"method": "PUT", "path": f"{collection}/records/r{i}", "body": {"data": {"i": i}}}
        for i in range(25)
    ]
    http("POST", "/batch", {"requests": requests})
    alias = naming.alias_name(chaos.prefix, "b", "c")
    # The fill of a new generation (not the first, ``.0``) hangs: the rebuild is midway.
    new_generation = re.compile(rb'"_index": ?"' + re.escape(alias.encode()) + rb"\.[1-9]")
    chaos.proxy.answer = lambda method, path, body: (
        "hang" if "_bulk" in path and new_generation.search(body) else None
    )
    args = [CLI, "reindex", "--ini", str(kinto.ini), "-b", "b", "-c", "c"]
    env = {**os.environ, "KINTO_ELASTICSEARCH_REBUILD_LEASE_SECONDS": "5"}
    rebuild = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _until(lambda: chaos.proxy.answered, what="the rebuild reaching its fill")
    rebuild.kill()
    rebuild.wait()
    chaos.proxy.answer = lambda method, path, body: None
    engine = _engine(chaos)
    try:
        left = _collection_indices(engine, chaos.prefix, "b", "c")
    finally:
        engine.close()
    assert [name for name, aliases in left.items() if not aliases], left
    http("PUT", f"{collection}/records/after", {"data": {}})
    http("DELETE", f"{collection}/records/r3")
    # No command run: the catch-up of the Kinto process removes it once its lease expired.
    assert all(_no_index_without_alias(chaos, "b", "c").values())
    assert _converges(chaos, [("b", "c")]) == {}
    assert _verify(chaos)[0] == 0, _verify(chaos)[1]


def test_a_rebuild_owed_by_a_process_killed_before_it_started_is_still_done(chaos):
    kinto = chaos.first.start()
    http = Http(kinto.url)
    collection = _collection(http)
    for i in range(5):
        http("PUT", f"{collection}/records/r{i}", {"data": {"title": f"t{i}", "n": i}})
    # The rebuild the change asks for never gets its lease: Kinto dies first.
    chaos.proxy.answer = lambda method, path, body: "hang" if "lease" in path else None
    status, _ = http("PATCH", collection, {"data": {"index:exclude_fields": ["title"]}})
    assert status == 200
    _until(lambda: chaos.proxy.answered, what="the catch-up trying to rebuild")
    kinto.kill()
    chaos.proxy.answer = lambda method, path, body: None
    kinto.start()
    engine = _engine(chaos)
    try:
        deadline = time.monotonic() + CONVERGE_SECONDS
        while True:
            target, query = _live_documents(engine, chaos.prefix, "b", "c")
            hits = engine.call("search", index=target, body={"query": query})
            sources = [hit["_source"] for hit in hits["hits"]["hits"]]
            rebuilt = len(sources) == 5 and not any("title" in s for s in sources)
            if rebuilt or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        engine.close()
    assert rebuilt, sources
    assert _converges(chaos, [("b", "c")]) == {}
    assert _verify(chaos)[0] == 0, _verify(chaos)[1]
