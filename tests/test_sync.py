"""Storage is the outbox: the sender, the catch-up and the rebuild lease (issue 11)."""

import os
import subprocess
import sys
import time

import psycopg2
import pytest
from kinto.core.utils import COMPARISON

from kinto_elasticsearch.client import EngineUnreachable
from kinto_elasticsearch.index import naming
from kinto_elasticsearch.sync.apply import apply_changes
from kinto_elasticsearch.sync.catchup import CatchUp
from kinto_elasticsearch.sync.checkpoints import SyncStore
from kinto_elasticsearch.sync.rebuild import RebuildInProgress, RebuildLease, reindex_collection
from tests.conftest import indexed, pg_settings, wait_until
from tests.servers import FaultProxy

COLLECTION = "/v1/buckets/b/collections/c"
CATCHUP = {"elasticsearch.catchup_in_process": "true"}
# Collections with indices of their own: a rebuild fills a new generation, swaps the alias
# and replays the overlap (a pooled collection that stays pooled is refilled in place,
# and the next catch-up pass re-reads the overlap).
DEDICATED = {"elasticsearch.pools": "0"}


@pytest.fixture
def dedicated_app(make_app):
    return make_app(**DEDICATED)


def _stored(app, alice, collection=COLLECTION):
    records = app.get(f"{collection}/records?_limit=10000", headers=alice).json["data"]
    return {r["id"]: (r["last_modified"], r) for r in records}


def _setup(app, alice):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    # Without read-your-writes the collection's index is created after the response.
    assert app.app.registry.elasticsearch.sender.wait_until_idle(timeout=10)


def _pass(app, overlap_ms=0, within=10.0):
    """One catch-up pass, tried again while the engine is not reachable yet (as the
    worker does after an outage)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return CatchUp(app.app.registry, overlap_ms=overlap_ms).run()
        except EngineUnreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# The sender.


def test_a_write_does_not_wait_for_the_engine(
    make_app, alice, engine_server, engine, index_prefix
):
    proxy = FaultProxy(engine_server.url)
    app = make_app(**{"elasticsearch.hosts": proxy.url, "elasticsearch.force_refresh": "false"})
    try:
        _setup(app, alice)
        proxy.answer = lambda method, path, body: 1.5 if "_bulk" in path else None
        started = time.monotonic()
        for i in range(5):
            app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
        assert time.monotonic() - started < 1.5
        assert app.app.registry.elasticsearch.sender.wait_until_idle(timeout=20)
        engine.call("indices.refresh", index=f"{index_prefix}.*")
        assert set(indexed(engine, index_prefix, "b", "c")) == {f"r{i}" for i in range(5)}
    finally:
        proxy.close()


def test_the_changes_of_many_requests_share_one_bulk(make_app, alice, engine_server):
    proxy = FaultProxy(engine_server.url)
    bulks = []

    def slow_first_bulk(method, path, body):
        if "_bulk" in path:
            bulks.append(body.count(b'"_id"'))
            return 2.0 if len(bulks) == 1 else None
        return None

    app = make_app(**{"elasticsearch.hosts": proxy.url, "elasticsearch.force_refresh": "false"})
    # The first write goes alone, at once (without the linger, which could gather all ten).
    app.app.registry.elasticsearch.sender.linger_seconds = 0
    try:
        _setup(app, alice)
        proxy.answer = slow_first_bulk
        for i in range(10):
            app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
        assert app.app.registry.elasticsearch.sender.wait_until_idle(timeout=20)
    finally:
        proxy.close()
    # The first bulk was slow: the writes made meanwhile waited for the next one, together.
    assert len(bulks) == 2 and sum(bulks) == 10


def test_read_your_writes_waits_for_its_bulk_but_never_hangs(make_app, alice, engine_server):
    proxy = FaultProxy(engine_server.url)
    app = make_app(
        **{
            "elasticsearch.hosts": proxy.url,
            "elasticsearch.request_timeout_seconds": "0.5",
            "elasticsearch.force_refresh": "true",
        }
    )
    try:
        _setup(app, alice)
        app.put_json(f"{COLLECTION}/records/r0", {"data": {}}, headers=alice)
        assert app.post_json(f"{COLLECTION}/search", {}, headers=alice).json["hits"]["hits"]
        proxy.answer = lambda method, path, body: "hang" if "_bulk" in path else None
        started = time.monotonic()
        app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice, status=201)
        # The bulk hangs: the write waits for its timeout (plus one second), no more.
        assert time.monotonic() - started < 3
    finally:
        proxy.close()


def test_a_full_sender_hands_over_to_the_catch_up(
    make_app, alice, engine, index_prefix, metrics_factory
):
    app = make_app(**CATCHUP, **{"elasticsearch.sender_max_pending": "2"})
    metrics = metrics_factory(app)
    _setup(app, alice)
    requests = [
        {"method": "PUT", "path": f"{COLLECTION}/records/r{i}", "body": {"data": {}}}
        for i in range(5)
    ]
    app.post_json("/v1/batch", {"defaults": {"headers": alice}, "requests": requests})
    assert metrics.counts["elasticsearch.sender.overflow"] == 5
    expected = {f"r{i}" for i in range(5)}
    wait_until(
        lambda: set(indexed(engine, index_prefix, "b", "c")) == expected,
        "the catch-up indexing what the sender could not take",
    )


def test_the_sender_and_the_worker_start_again_in_a_forked_process(make_app, alice):
    app = make_app(**CATCHUP)
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/r0", {"data": {}}, headers=alice)
    registry = app.app.registry
    pid = os.fork()
    if pid == 0:  # The child, as a pre-loading server's worker: no thread came along.
        try:
            app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
            ok = (
                registry.elasticsearch.sender._thread.is_alive()
                and registry.elasticsearch.catchup._thread.is_alive()
            )
            ok = ok and registry.elasticsearch.catchup.wait_for_pass(timeout=20)
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_forked_process_talks_to_the_engine_on_connections_of_its_own(make_app, alice):
    """A child of a pre-loading server does not use the connections its parent opened: on
    a shared socket, the two would read each other's answers."""
    app = make_app()
    _setup(app, alice)
    engine = app.app.registry.elasticsearch.index.engine
    engine.call("cluster.health")  # The parent has a connection open.
    parent_client = engine._client
    pid = os.fork()
    if pid == 0:
        try:
            answer = engine.call("cluster.health")
            ok = engine._client is not parent_client and "status" in answer
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert engine._client is parent_client  # The parent keeps its own.


# Deletes stay deleted.


def test_an_older_write_delivered_after_the_delete_never_brings_the_record_back(
    app, alice, engine, index_prefix
):
    _setup(app, alice)
    old = app.put_json(f"{COLLECTION}/records/r1", {"data": {"v": 1}}, headers=alice).json["data"]
    app.delete(f"{COLLECTION}/records/r1", headers=alice)
    index_side = app.app.registry.elasticsearch.index
    # However late (the engines forget a bulk delete's version after index.gc_deletes),
    # the tombstone document keeps the delete's version.
    assert index_side.reader.versions("b", "c", ["r1"])["r1"] > old["last_modified"]
    report = apply_changes(index_side, "b", "c", [old], {})
    assert report.superseded == ["r1"]
    assert "r1" not in indexed(engine, index_prefix, "b", "c")
    hits = app.post_json(f"{COLLECTION}/search", {}, headers=alice).json["hits"]
    assert hits["total"]["value"] == 0
    facets = app.get(f"{COLLECTION}/search/facets", headers=alice).json
    last_modified = [f for f in facets["fields"] if f["name"] == "last_modified"]
    assert facets["total"] == 0 and all(not f.get("values") for f in last_modified)
    assert app.get(f"{COLLECTION}/search", headers=alice).headers["Total-Objects"] == "0"


# The catch-up.


def test_an_outage_longer_than_any_queue_ends_with_the_index_equal_to_storage(
    make_app, alice, own_engine_server, engine_server, index_prefix
):
    app = make_app(
        **CATCHUP,
        **{
            "elasticsearch.hosts": own_engine_server.url,
            "elasticsearch.sender_max_pending": "10",
            "elasticsearch.circuit_breaker_seconds": "0.5",
        },
    )
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/before", {"data": {}}, headers=alice)
    app.put_json(f"{COLLECTION}/records/gone", {"data": {}}, headers=alice)
    own_engine_server.stop()
    for first in range(0, 60, 20):
        requests = [
            {"method": "PUT", "path": f"{COLLECTION}/records/r{i}", "body": {"data": {"i": i}}}
            for i in range(first, first + 20)
        ]
        app.post_json("/v1/batch", {"defaults": {"headers": alice}, "requests": requests})
    app.patch_json(f"{COLLECTION}/records/before", {"data": {"n": 1}}, headers=alice)
    app.delete(f"{COLLECTION}/records/gone", headers=alice)
    own_engine_server.restart()
    # No command: the worker notices the engine is back.
    engine = app.app.registry.elasticsearch.index.engine
    wait_until(
        lambda: indexed(engine, index_prefix, "b", "c") == _stored(app, alice),
        "the index catching up with storage",
    )


def test_an_engine_restarted_empty_is_refilled_from_storage(
    make_app, alice, own_engine_server, index_prefix
):
    app = make_app(**{"elasticsearch.hosts": own_engine_server.url})
    _setup(app, alice)
    for i in range(5):
        app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
    app.delete(f"{COLLECTION}/records/r0", headers=alice)
    _pass(app)
    own_engine_server.restart(empty=True)
    report = _pass(app)
    assert report.created == [naming.alias_name(index_prefix, "b", "c")]
    engine = app.app.registry.elasticsearch.index.engine
    assert indexed(engine, index_prefix, "b", "c") == _stored(app, alice)


def test_a_settled_collection_costs_no_read_of_its_records(app, alice):
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    _pass(app)
    storage = app.app.registry.storage
    reads = []
    list_all = storage.list_all

    def counting(*args, **kwargs):
        if kwargs.get("resource_name") == "record":
            reads.append(kwargs)
        return list_all(*args, **kwargs)

    storage.list_all = counting
    report = _pass(app)
    assert (report.up_to_date, reads) == (1, [])
    app.put_json(f"{COLLECTION}/records/r2", {"data": {}}, headers=alice)
    report = _pass(app)
    assert report.up_to_date == 0 and len(reads) == 1
    # Only what changed since the checkpoint was read.
    [since] = reads[0]["filters"]
    assert since.field == "last_modified" and since.operator == COMPARISON.GT


def test_collection_and_bucket_changes_during_an_outage_are_applied(
    make_app, alice, own_engine_server, index_prefix
):
    app = make_app(
        **{
            "elasticsearch.hosts": own_engine_server.url,
            "elasticsearch.circuit_breaker_seconds": "0.1",
        }
    )
    for bucket in ("b", "gone"):
        app.put_json(f"/v1/buckets/{bucket}", {}, headers=alice)
        for collection in ("c", "deleted", "schema"):
            app.put_json(f"/v1/buckets/{bucket}/collections/{collection}", {}, headers=alice)
            app.put_json(
                f"/v1/buckets/{bucket}/collections/{collection}/records/r1",
                {"data": {"n": 1}},
                headers=alice,
            )
    _pass(app)
    own_engine_server.stop()
    app.delete("/v1/buckets/b/collections/deleted", headers=alice)
    app.delete("/v1/buckets/gone", headers=alice)
    schema = {"properties": {"title": {"type": "keyword"}}}
    app.patch_json(
        "/v1/buckets/b/collections/schema", {"data": {"index:schema": schema}}, headers=alice
    )
    own_engine_server.restart()
    report = _pass(app)
    engine = app.app.registry.elasticsearch.index.engine
    aliases = {
        alias
        for info in engine.call("indices.get_alias", index=f"{index_prefix}.*").values()
        for alias in info["aliases"]
        if not naming.is_pool_write_alias(alias)
    }
    # Only the collection with an index of its own has an alias: "c" is pooled (no alias;
    # its pool has its write alias).
    assert aliases == {naming.alias_name(index_prefix, "b", "schema")}
    mapping = app.app.registry.elasticsearch.index.known.get_mapping("b", "schema")
    assert mapping["properties"]["title"] == {"type": "keyword"}
    assert set(indexed(engine, index_prefix, "b", "schema")) == {"r1"}
    assert report.collections == 2


def test_purged_tombstones_are_detected_and_their_records_unindexed(
    make_app, alice, own_engine_server, index_prefix
):
    app = make_app(**{"elasticsearch.hosts": own_engine_server.url})
    _setup(app, alice)
    for i in range(3):
        app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
    _pass(app)
    own_engine_server.stop()
    app.delete(f"{COLLECTION}/records/r1", headers=alice)
    # kinto purge_deleted: the tombstone is gone before the engine saw it.
    storage = app.app.registry.storage
    assert storage.purge_deleted(resource_name="record", parent_id="/buckets/b/collections/c")
    own_engine_server.restart()
    report = _pass(app)
    engine = app.app.registry.elasticsearch.index.engine
    assert set(indexed(engine, index_prefix, "b", "c")) == {"r0", "r2"}
    if own_engine_server.engine == "elasticsearch":  # noida-db kept the old index.
        assert report.compared == [naming.alias_name(index_prefix, "b", "c")]


def test_two_transactions_committed_out_of_timestamp_order_are_both_indexed(
    make_app, alice, pg_url, engine, index_prefix
):
    app = make_app(**pg_settings(pg_url))
    app.app.registry.storage.initialize_schema()
    app.app.registry.permission.initialize_schema()
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/first", {"data": {}}, headers=alice)
    parent = "/buckets/b/collections/c"
    insert = (
        "INSERT INTO objects (id, parent_id, resource_name, data, deleted) "
        "VALUES (%s, %s, 'record', '{}'::jsonb, FALSE) RETURNING as_epoch(last_modified)"
    )
    slow, fast = psycopg2.connect(pg_url), psycopg2.connect(pg_url)
    try:
        with slow.cursor() as cursor:
            cursor.execute(insert, ("slow", parent))
            [slow_timestamp] = cursor.fetchone()
        time.sleep(0.01)
        with fast.cursor() as cursor:
            cursor.execute(insert, ("fast", parent))
            [fast_timestamp] = cursor.fetchone()
        fast.commit()
        # "fast" is visible, "slow" is not yet, and has the earlier timestamp.
        assert slow_timestamp < fast_timestamp
        catchup = CatchUp(app.app.registry, overlap_ms=60_000)
        catchup.run()
        assert "slow" not in indexed(engine, index_prefix, "b", "c")
        slow.commit()
    finally:
        slow.close()
        fast.close()
    catchup.run()
    assert {"first", "fast", "slow"} == set(indexed(engine, index_prefix, "b", "c"))
    # Without the overlap, a checkpoint past "fast" would have missed "slow" for good.
    store = SyncStore(app.app.registry.elasticsearch.index)
    [checkpoint] = store.load_all().values()
    assert checkpoint.timestamp < slow_timestamp <= checkpoint.seen


# Rebuilds.


def test_one_rebuild_per_collection_at_a_time(app, alice, engine, index_prefix):
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    registry = app.app.registry
    index_side, storage = registry.elasticsearch.index, registry.storage
    metadata = storage.get(resource_name="collection", parent_id="/buckets/b", object_id="c")
    alias = index_side.locator.alias("b", "c")
    other = RebuildLease(SyncStore(index_side), alias).acquire()
    with pytest.raises(RebuildInProgress):
        reindex_collection(storage, index_side, "b", "c", metadata)
    # A crashed rebuild's lease expires: the next rebuild takes it over.
    other.release()
    _dead_lease(index_side, alias, "never-created")
    result = reindex_collection(storage, index_side, "b", "c", metadata)
    assert result.indexed == 1


def _dead_lease(index_side, alias, index):
    """What a rebuild killed midway leaves in the sync index: a lease that expired."""
    store = SyncStore(index_side)
    store.ensure_index()
    body = {"kind": "lease", "alias": alias, "owner": "dead", "index": index,
            "expires_at": time.time() - 1}  # fmt: skip
    index_side.engine.call("index", index=store.index, id=f"lease:{alias}", body=body)


def test_a_lease_released_between_another_rebuilds_create_and_read_is_taken(app, alice):
    _setup(app, alice)
    index_side = app.app.registry.elasticsearch.index
    alias = index_side.locator.alias("b", "c")
    first = RebuildLease(SyncStore(index_side), alias).acquire()
    second = RebuildLease(SyncStore(index_side), alias)
    call = second._call

    def released_before_the_read(operation, **kwargs):
        # The first rebuild ends between the second's refused create and its read.
        if operation == "get" and not first._released.is_set():
            first.release()
        return call(operation, **kwargs)

    second._call = released_before_the_read
    second.acquire()
    try:
        assert first._released.is_set()
        stored = index_side.engine.call(
            "get", index=SyncStore(index_side).index, id=f"lease:{alias}"
        )
        assert stored["_source"]["owner"] == second.owner
    finally:
        second.release()


def test_a_live_lease_is_renewed_by_its_heartbeat_however_long_a_page_takes(app, alice):
    _setup(app, alice)
    index_side = app.app.registry.elasticsearch.index
    lease = RebuildLease(
        SyncStore(index_side), index_side.locator.alias("b", "c"), seconds=0.6
    ).acquire()
    try:
        time.sleep(1.5)
        lease.renew()  # Not lost, not expired.
        with pytest.raises(RebuildInProgress):
            RebuildLease(SyncStore(index_side), index_side.locator.alias("b", "c")).acquire()
    finally:
        lease.release()


def test_a_rebuild_holds_its_lease_for_the_configured_seconds(make_app, alice):
    from tests.conftest import EngineSpy

    app = make_app(**{"elasticsearch.rebuild_lease_seconds": "3"})
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {"title": "a"}}, headers=alice)
    _pass(app)
    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)
    # A change of shape: the collection's write owes it a rebuild, under a lease, done in
    # the background (and waited for, with read-your-writes).
    started = time.time()
    app.patch_json(COLLECTION, {"data": {"index:exclude_fields": ["title"]}}, headers=alice)
    assert app.app.registry.elasticsearch.sender.wait_until_idle(timeout=10)
    assert _pass(app).rebuilt == []  # Nothing left for the catch-up.
    leases = [kwargs["body"] for name, kwargs in spy.calls
              if name == "index" and str(kwargs.get("id")).startswith("lease:")]  # fmt: skip
    assert leases
    assert all(started + 3 <= body["expires_at"] <= time.time() + 3 for body in leases)


def test_the_catch_up_removes_what_a_dead_rebuild_left_and_keeps_a_live_ones(
    dedicated_app, alice, engine, index_prefix
):
    app = dedicated_app
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    app.put_json("/v1/buckets/b/collections/other", {}, headers=alice)
    index_side = app.app.registry.elasticsearch.index
    _pass(app)
    # A rebuild of b/c killed midway: its index is half filled, behind no alias.
    dead = index_side.admin.create_physical_index("b", "c", {})
    _dead_lease(index_side, index_side.locator.alias("b", "c"), dead)
    # A live rebuild of b/other, filling its new index.
    filling = naming.new_index_name(index_prefix, "b", "other")
    lease = RebuildLease(
        SyncStore(index_side), index_side.locator.alias("b", "other"), index=filling
    )
    lease.acquire()
    try:
        index_side.admin.create_physical_index("b", "other", {}, name=filling)
        assert _pass(app).abandoned == [dead]
        names = set(index_side.indices.listed(f"{index_prefix}.b.*"))
        alias = index_side.locator.alias
        assert names == {f"{alias('b', 'c')}.0", f"{alias('b', 'other')}.0", filling}
    finally:
        lease.release()
    # Its rebuild gone without a swap (and its lease with it): the index goes too.
    assert _pass(app).abandoned == [filling]
    assert set(indexed(engine, index_prefix, "b", "c")) == {"r1"}


def test_a_rebuild_taking_over_an_expired_lease_removes_the_dead_rebuilds_index(
    dedicated_app, alice, index_prefix
):
    app = dedicated_app
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    registry = app.app.registry
    index_side, storage = registry.elasticsearch.index, registry.storage
    metadata = storage.get(resource_name="collection", parent_id="/buckets/b", object_id="c")
    dead = index_side.admin.create_physical_index("b", "c", {})
    _dead_lease(index_side, index_side.locator.alias("b", "c"), dead)
    result = reindex_collection(storage, index_side, "b", "c", metadata)
    assert set(index_side.indices.listed(naming.collection_pattern(index_prefix, "b", "c"))) == {
        result.index
    }


def test_a_rebuild_never_deletes_an_index_it_did_not_replace(
    dedicated_app, alice, engine, index_prefix
):
    app = dedicated_app
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    registry = app.app.registry
    index_side, storage = registry.elasticsearch.index, registry.storage
    metadata = storage.get(resource_name="collection", parent_id="/buckets/b", object_id="c")
    filling = []

    def another_rebuild_starts(count):
        # Another rebuild's new generation, being filled (not behind the alias yet).
        filling.append(index_side.admin.create_physical_index("b", "c", {}))

    result = reindex_collection(storage, index_side, "b", "c", metadata, another_rebuild_starts)
    names = set(index_side.indices.listed(naming.collection_pattern(index_prefix, "b", "c")))
    assert names == {*filling, result.index}


def test_the_rebuild_replays_what_committed_late_with_the_overlap(
    make_app, alice, pg_url, engine, index_prefix
):
    app = make_app(**pg_settings(pg_url), **DEDICATED)
    registry = app.app.registry
    registry.storage.initialize_schema()
    registry.permission.initialize_schema()
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/first", {"data": {}}, headers=alice)
    insert = (
        "INSERT INTO objects (id, parent_id, resource_name, data, deleted) "
        "VALUES (%s, %s, 'record', '{}'::jsonb, FALSE)"
    )
    late = psycopg2.connect(pg_url)
    storage, index_side = registry.storage, registry.elasticsearch.index
    metadata = storage.get(resource_name="collection", parent_id="/buckets/b", object_id="c")
    list_all = storage.list_all

    def commit_late_during_the_fill(*args, **kwargs):
        page = list_all(*args, **kwargs)
        filters = kwargs.get("filters") or []
        replaying = any(
            f.field == "last_modified" and f.operator == COMPARISON.GT for f in filters
        )
        if not replaying and not late.closed:
            late.commit()  # Its timestamp predates the rebuild's start.
            late.close()
        return page

    try:
        with late.cursor() as cursor:
            cursor.execute(insert, ("late", "/buckets/b/collections/c"))
        storage.list_all = commit_late_during_the_fill
        reindex_collection(storage, index_side, "b", "c", metadata, overlap_ms=60_000)
    finally:
        storage.list_all = list_all
        if not late.closed:
            late.close()
    assert set(indexed(engine, index_prefix, "b", "c")) == {"first", "late"}


def test_the_retry_queue_setting_is_deprecated_and_ignored(make_app, caplog):
    with pytest.warns(DeprecationWarning, match="retry_queue_size is deprecated and ignored"):
        make_app(**{"elasticsearch.retry_queue_size": "10"})
    assert "storage is the outbox" in caplog.text


def test_an_unexpected_error_neither_ends_the_sender_nor_loses_the_changes(
    make_app, alice, engine, index_prefix
):
    app = make_app(**CATCHUP)
    _setup(app, alice)
    index_side = app.app.registry.elasticsearch.index
    write = index_side.writer.write

    def broken_once(*args, **kwargs):
        index_side.writer.write = write
        raise RuntimeError("a bug")

    # A mock: nothing real makes the bulk path raise an exception nobody expects.
    index_side.writer.write = broken_once
    app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    app.put_json(f"{COLLECTION}/records/r2", {"data": {}}, headers=alice)
    assert "r2" in indexed(engine, index_prefix, "b", "c")  # The sender goes on...
    wait_until(
        lambda: set(indexed(engine, index_prefix, "b", "c")) == {"r1", "r2"},
        "the catch-up healing r1",
    )


def test_a_collection_being_rebuilt_elsewhere_is_still_caught_up(app, alice, engine, index_prefix):
    _setup(app, alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {"title": "a"}}, headers=alice)
    _pass(app)
    registry = app.app.registry
    alias = registry.elasticsearch.index.locator.alias("b", "c")
    # Another process holds the rebuild lease.
    lease = RebuildLease(SyncStore(registry.elasticsearch.index), alias).acquire()
    app.patch_json(COLLECTION, {"data": {"index:exclude_fields": ["title"]}}, headers=alice)
    # A record written behind the sender's back: only the catch-up can index it.
    registry.storage.create(
        resource_name="record", parent_id="/buckets/b/collections/c", obj={"id": "r2"}
    )
    report = _pass(app)
    assert report.busy == [alias]
    assert set(indexed(engine, index_prefix, "b", "c")) == {"r1", "r2"}
    # The rebuild is still owed: the checkpoint kept the old fingerprint.
    [checkpoint] = SyncStore(registry.elasticsearch.index).load_all().values()
    assert _pass(app).busy == [alias] and checkpoint.fingerprint
    lease.release()


# Tombstone purges.


def _purge_deleted(ini, max_retained):
    """Kinto's own command, as an operator runs it."""
    kinto = os.path.join(os.path.dirname(sys.executable), "kinto")
    result = subprocess.run(
        [kinto, "purge-deleted", "--ini", str(ini), "record", str(max_retained)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _deleted_during_an_outage(registry, ids):
    """Deletes the index never hears of: the sender's bulk failed, the engine was away."""
    for record_id in ids:
        registry.storage.delete(
            resource_name="record", parent_id="/buckets/b/collections/c", object_id=record_id
        )
    import transaction

    transaction.commit()


def test_records_deleted_during_an_outage_then_purged_leave_the_index(
    pg_app, alice, write_ini, engine, index_prefix
):
    _setup(pg_app, alice)
    for i in range(5):
        pg_app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
    _pass(pg_app)
    registry = pg_app.app.registry
    _deleted_during_an_outage(registry, ["r0", "r1"])
    _purge_deleted(write_ini(), 0)
    # As many records created since as tombstones purged: the count of objects is the
    # checkpoint's again, and the collection's timestamp went forward.
    for record_id in ("r8", "r9"):
        registry.storage.create(
            resource_name="record", parent_id="/buckets/b/collections/c", obj={"id": record_id}
        )
    import transaction

    transaction.commit()
    report = _pass(pg_app)
    assert report.compared == [registry.elasticsearch.index.locator.alias("b", "c")]
    assert set(indexed(engine, index_prefix, "b", "c")) == {"r2", "r3", "r4", "r8", "r9"}
    # Found and repaired: the next pass compares nothing.
    registry.storage.create(
        resource_name="record", parent_id="/buckets/b/collections/c", obj={"id": "r10"}
    )
    transaction.commit()
    assert _pass(pg_app).compared == []


@pytest.mark.parametrize("max_retained", [0, 1])
def test_a_purge_of_everything_since_the_checkpoint_is_found_by_the_purge_check(
    pg_app, alice, write_ini, engine, index_prefix, max_retained
):
    _setup(pg_app, alice)
    for i in range(4):
        pg_app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
    # Records deleted, their tombstones purged: without a kept one, the newest object left
    # is the one the checkpoint saw last, and the collection looks up to date.
    _pass(pg_app)
    registry = pg_app.app.registry
    _deleted_during_an_outage(registry, ["r0", "r1"])
    _purge_deleted(write_ini(), max_retained)
    catchup = CatchUp(registry, overlap_ms=0)
    catchup.run(check_purges=True)
    # With one kept, r1's tombstone is left and read; r0's is purged, and found.
    assert set(indexed(engine, index_prefix, "b", "c")) == {"r2", "r3"}


def test_the_checkpoints_index_is_created_once_per_process(app, alice, engine, index_prefix):
    from tests.conftest import EngineSpy

    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)
    app.put_json("/v1/buckets/b", {}, headers=alice)
    for i in range(3):
        app.put_json(f"/v1/buckets/b/collections/c{i}", {}, headers=alice)
    sync_index = f"{index_prefix}.-sync"
    creates = [kw for op, kw in spy.calls if op == "indices.create" and kw["index"] == sync_index]
    assert len(creates) == 1
    # Each new collection has its checkpoint all the same.
    assert set(SyncStore(app.app.registry.elasticsearch.index).load_all()) == {
        naming.alias_name(index_prefix, "b", f"c{i}") for i in range(3)
    }
