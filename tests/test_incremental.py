"""The catch-up pass proportional to change, its slices and its lease (issue 21)."""

import time

import psycopg2
import pytest
import transaction

from kinto_elasticsearch.index import naming
from kinto_elasticsearch.sync.catchup import CatchUp
from kinto_elasticsearch.sync.checkpoints import SyncStore
from kinto_elasticsearch.sync.lease import CatchUpTurn
from tests.conftest import EngineSpy, indexed, pg_settings


@pytest.fixture
def shared(make_app, pg_url):
    """Two Kinto apps (two processes' registries) on one PostgreSQL database."""
    first = make_app(**pg_settings(pg_url))
    first.app.registry.storage.initialize_schema()
    first.app.registry.permission.initialize_schema()
    return first, make_app(**pg_settings(pg_url))


def _collections(app, alice, count, records=1):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    for n in range(count):
        app.put_json(f"/v1/buckets/b/collections/c{n}", {}, headers=alice)
        for r in range(records):
            app.put_json(f"/v1/buckets/b/collections/c{n}/records/r{r}", {"data": {}},
                         headers=alice)  # fmt: skip


def _checkpoints_read(spy, sync_index):
    """Checkpoint ids multi-got, and the largest search of the sync index."""
    ids, largest = 0, 0
    for operation, kwargs in spy.calls:
        if kwargs.get("index") != sync_index:
            continue
        if operation == "mget":
            ids += len(kwargs["body"]["ids"])
        elif operation == "search":
            largest = max(largest, kwargs["body"].get("size", 10))
    return ids, largest


def test_one_change_among_many_collections_reads_one_checkpoint(shared, alice, engine,
                                                                index_prefix):  # fmt: skip
    app, _ = shared
    registry = app.app.registry
    _collections(app, alice, 12)
    CatchUp(registry, overlap_ms=0).run()  # No position yet: a full pass.
    CatchUp(registry, overlap_ms=0).run()
    app.put_json("/v1/buckets/b/collections/c7/records/new", {"data": {}}, headers=alice)
    spy = EngineSpy(registry.elasticsearch.index.engine)
    report = CatchUp(registry, overlap_ms=0, slice_size=1).run()
    ids, largest = _checkpoints_read(spy, naming.sync_index_name(index_prefix))
    # The changed collection's, and the slice's one collection and one checkpoint.
    assert ids <= 2, spy.calls
    assert largest <= 1
    assert report.collections <= 2
    assert not any(op == "indices.get_alias" or op == "indices.get" for op, _ in spy.calls)
    assert "new" in indexed(engine, index_prefix, "b", "c7")


def test_the_slices_check_every_collection_within_a_sweep(shared, alice, engine, index_prefix):
    """A record deleted in storage without a tombstone the index saw (a purge) is found
    by the slice that reaches its collection, however long it was unchanged."""
    app, _ = shared
    registry = app.app.registry
    _collections(app, alice, 6)
    CatchUp(registry, overlap_ms=0).run()
    with psycopg2.connect(registry.settings["storage_url"]) as conn, conn.cursor() as cursor:
        # Gone from storage for good, its tombstone purged at once.
        cursor.execute("DELETE FROM objects WHERE parent_id = '/buckets/b/collections/c4'"
                       " AND resource_name = 'record'")  # fmt: skip
    assert "r0" in indexed(engine, index_prefix, "b", "c4")
    store = SyncStore(registry.elasticsearch.index)
    for _ in range(4):  # 6 collections, 2 a slice: a sweep within 3 passes.
        CatchUp(registry, overlap_ms=0, slice_size=2).run()
    assert store.load_position().sweeps >= 1
    assert indexed(engine, index_prefix, "b", "c4") == {}


def test_a_deleted_bucket_found_by_the_scan_loses_its_documents(shared, alice, engine,
                                                               index_prefix):  # fmt: skip
    app, _ = shared
    registry = app.app.registry
    _collections(app, alice, 3)
    CatchUp(registry, overlap_ms=0).run()
    store = SyncStore(registry.elasticsearch.index)
    assert len(store.load_all()) == 3
    # Deleted in storage only, as while the engine was away: the bucket leaves a tombstone.
    registry.storage.delete_all(resource_name="collection", parent_id="/buckets/b",
                                with_deleted=False)  # fmt: skip
    registry.storage.delete(resource_name="bucket", parent_id="", object_id="b")
    transaction.commit()
    report = CatchUp(registry, overlap_ms=0, slice_size=1).run()
    assert len(report.removed) == 3
    assert store.load_all() == {}


def test_one_process_at_a_time_and_a_dead_holder_is_replaced(shared, alice, engine,
                                                            index_prefix):  # fmt: skip
    first, second = shared
    _collections(first, alice, 2)
    one, other = CatchUpTurn(seconds=1.5), CatchUpTurn(seconds=1.5)
    try:
        assert not CatchUp(first.app.registry, overlap_ms=0).run(full=False, turn=one).standby
        assert CatchUp(second.app.registry, overlap_ms=0).run(full=False, turn=other).standby
        assert not CatchUp(first.app.registry, overlap_ms=0).run(full=False, turn=one).standby
        # The holder dies: its lease is renewed no more, nor released.
        one._lease._released.set()
        first.put_json("/v1/buckets/b/collections/c1/records/late", {"data": {}}, headers=alice)
        deadline = time.monotonic() + 10
        while CatchUp(second.app.registry, overlap_ms=0).run(full=False, turn=other).standby:
            assert time.monotonic() < deadline, "the lease was not taken over"
            time.sleep(0.2)
        assert "late" in indexed(engine, index_prefix, "b", "c1")
        assert CatchUp(first.app.registry, overlap_ms=0).run(full=False, turn=one).standby
    finally:
        one._lease = None
        other.release()


def test_out_of_order_commits_across_collections_with_the_global_position(
    shared, alice, engine, index_prefix
):
    app, _ = shared
    registry = app.app.registry
    _collections(app, alice, 2, records=0)
    catchup = CatchUp(registry, overlap_ms=60_000)
    catchup.run()  # The first, full pass: the global position is set.
    insert = (
        "INSERT INTO objects (id, parent_id, resource_name, data, deleted) "
        "VALUES (%s, %s, 'record', '{}'::jsonb, FALSE) RETURNING as_epoch(last_modified)"
    )
    url = registry.settings["storage_url"]
    slow, fast = psycopg2.connect(url), psycopg2.connect(url)
    try:
        with slow.cursor() as cursor:
            cursor.execute(insert, ("slow", "/buckets/b/collections/c0"))
            [slow_timestamp] = cursor.fetchone()
        time.sleep(0.01)
        with fast.cursor() as cursor:
            cursor.execute(insert, ("fast", "/buckets/b/collections/c1"))
            [fast_timestamp] = cursor.fetchone()
        fast.commit()
        assert slow_timestamp < fast_timestamp
        catchup.run()
        assert "fast" in indexed(engine, index_prefix, "b", "c1")
        assert "slow" not in indexed(engine, index_prefix, "b", "c0")
        position = SyncStore(registry.elasticsearch.index).load_position()
        # Behind the late commit: the next pass re-reads it.
        assert position.timestamp < slow_timestamp
        slow.commit()
    finally:
        slow.close()
        fast.close()
    catchup.run()
    assert "slow" in indexed(engine, index_prefix, "b", "c0")


def test_a_first_indexing_sends_many_collections_in_one_bulk_request(shared, alice, engine,
                                                                     index_prefix):  # fmt: skip
    app, _ = shared
    registry = app.app.registry
    _collections(app, alice, 20, records=2)
    app.delete("/v1/buckets/b/collections/c3/records/r1", headers=alice)
    # As an engine that lost its data: nothing indexed, no checkpoint, no position.
    registry.elasticsearch.index.removal.flush()
    spy = EngineSpy(registry.elasticsearch.index.engine)
    report = CatchUp(registry, overlap_ms=0).run()
    bulks = [kw for op, kw in spy.calls if op == "bulk" and kw.get("index") is None]
    assert report.collections == 20
    assert len(bulks) <= 3, len(bulks)
    assert indexed(engine, index_prefix, "b", "c3").keys() == {"r0"}
    assert indexed(engine, index_prefix, "b", "c19").keys() == {"r0", "r1"}
    assert len(SyncStore(registry.elasticsearch.index).load_all()) == 20
    # And the next pass finds them all up to date.
    again = CatchUp(registry, overlap_ms=0).run(full=True)
    assert again.up_to_date == 20 and again.indexed == 0
