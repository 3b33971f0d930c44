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
    spy = EngineSpy(registry.elasticsearch.index.engine)
    report = CatchUp(registry, overlap_ms=0, slice_size=1).run()
    assert report.removed == [naming.bucket_pattern(index_prefix, "b")]
    assert store.load_all() == {}
    assert all(indexed(engine, index_prefix, "b", f"c{n}") == {} for n in range(3))
    # Its checkpoints go with one request, not one per collection.
    assert spy.count("delete") == 0


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


def test_two_workers_share_the_lease_and_a_survivor_takes_over(
    make_app, pg_url, alice, engine, index_prefix
):
    """The per-process workers of two apps: one does the passes, the other stands by and
    takes over once the holder dies (its lease no longer renewed)."""
    from kinto_elasticsearch.sync import lease, worker

    settings = {**pg_settings(pg_url), "elasticsearch.catchup_in_process": "true",
                "elasticsearch.catchup_interval_seconds": "0.5"}  # fmt: skip
    first = make_app(**settings)
    first.app.registry.storage.initialize_schema()
    first.app.registry.permission.initialize_schema()
    second = make_app(**settings)
    one, other = (app.app.registry.elasticsearch.catchup for app in (first, second))
    one._turn.seconds = other._turn.seconds = 1.5
    _collections(first, alice, 1)
    assert one.wait_for_pass(20)
    assert other.wait_for_pass(20)
    assert one._turn.held != other._turn.held
    holder, survivor = (one, other) if one._turn.held else (other, one)
    # The holder dies: its passes and its lease's heartbeat stop, nothing is released.
    holder._turn._lease._released.set()
    holder._turn = lease.CatchUpTurn(seconds=1.5)
    holder.enabled = False
    holder.stop()
    # Written behind Kinto's back: only a catch-up pass can index it.
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO objects (id, parent_id, resource_name, data, deleted) "
            "VALUES ('late', '/buckets/b/collections/c0', 'record', '{}', FALSE)"
        )
    deadline = time.monotonic() + 20
    while "late" not in indexed(engine, index_prefix, "b", "c0"):
        assert time.monotonic() < deadline, "no worker took over"
        time.sleep(0.2)
    assert survivor._turn.held
    assert worker.LEASE_SECONDS == lease.LEASE_SECONDS


def test_a_slices_purge_checks_are_counted_at_once_and_find_a_purge(shared, alice, engine,
                                                                    index_prefix):  # fmt: skip
    """The unchanged collections of a slice are checked for purged tombstones with one
    count per index and one storage query, not two requests per collection; a record
    purged from an unchanged collection (an older one: its newest record stays) is found."""
    app, _ = shared
    registry = app.app.registry
    _collections(app, alice, 6, records=2)
    CatchUp(registry, overlap_ms=0).run()
    CatchUp(registry, overlap_ms=0).run()
    with psycopg2.connect(registry.settings["storage_url"]) as conn, conn.cursor() as cursor:
        cursor.execute("DELETE FROM objects WHERE parent_id = '/buckets/b/collections/c4'"
                       " AND resource_name = 'record' AND id = 'r0'")  # fmt: skip
    assert "r0" in indexed(engine, index_prefix, "b", "c4")
    spy = EngineSpy(registry.elasticsearch.index.engine)
    CatchUp(registry, overlap_ms=0, slice_size=10).run()
    assert set(indexed(engine, index_prefix, "b", "c4")) == {"r1"}
    # The pools of the six collections, one count each, before the purged one's repair.
    locator = registry.elasticsearch.index.locator
    pools = {locator.placement("b", f"c{n}").target for n in range(6)}
    counts = [kwargs["index"] for op, kwargs in spy.calls
              if op == "search" and "live" in kwargs.get("body", {}).get("aggs", {})]  # fmt: skip
    assert sorted(counts) == sorted(pools)


def test_the_overlap_read_again_costs_nothing_for_what_this_process_delivered(
    shared, alice, engine, index_prefix
):
    """Every pass reads the overlap's changes again (out-of-order commits): those this
    process's sender delivered, or its catch-up indexed or looked up, cost no engine request
    of their own; a change it never saw (another process's) is still indexed."""
    app, other = shared
    registry = app.app.registry
    _collections(app, alice, 12, records=2)
    assert registry.elasticsearch.sender.wait_until_idle(timeout=30)
    CatchUp(registry, overlap_ms=300_000).run()  # No position yet: a full pass.
    CatchUp(registry, overlap_ms=300_000).run()  # Looks up what it reads again, once.
    spy = EngineSpy(registry.elasticsearch.index.engine)
    report = CatchUp(registry, overlap_ms=300_000, slice_size=1).run()
    sync_index = naming.sync_index_name(index_prefix)
    of_collections = [
        (op, kwargs.get("index")) for op, kwargs in spy.calls
        if kwargs.get("index") != sync_index and op != "indices.refresh"
    ]  # fmt: skip
    # The slice's one collection is checked for purges (one count): nothing else.
    assert len(of_collections) <= 1, of_collections
    assert not [op for op, _ in spy.calls if op == "bulk"]
    saves = [kwargs["id"] for op, kwargs in spy.calls
             if op == "index" and kwargs.get("index") == sync_index]  # fmt: skip
    assert len(saves) <= 3, saves  # The position, the slice's checkpoint, the lease.
    assert report.up_to_date >= 12
    # A write this process never saw, through the other process (whose sender is told to
    # deliver nothing: the engine learns of it from this catch-up only).
    other.app.registry.elasticsearch.sender.submit = lambda *args, **kwargs: None
    other.put_json("/v1/buckets/b/collections/c3/records/late", {"data": {}}, headers=alice)
    CatchUp(registry, overlap_ms=300_000).run()
    assert "late" in indexed(engine, index_prefix, "b", "c3")


def _bucket_pages(spy, sync_index, sorted_=None):
    """The searches of a bucket's checkpoints (by alias prefix) the spy saw: all, its
    samples (``sorted_`` False) or its pages (True)."""
    return [
        kwargs["body"] for op, kwargs in spy.calls
        if op == "search" and kwargs.get("index") == sync_index
        and "prefix" in str(kwargs["body"]["query"])
        and sorted_ in (None, "sort" in kwargs["body"])
    ]  # fmt: skip


def test_a_bucket_created_again_loses_its_earlier_collections_a_page_a_pass(
    shared, alice, engine, index_prefix, monkeypatch
):
    """A bucket deleted and created again behind the plugin looks, to the scan, like a
    bucket changed: its earlier collections went without tombstones. Its checkpoints are
    checked against storage a page a pass, so that no pass reads them all (a sample of
    them first tells that some are gone)."""
    from kinto_elasticsearch.sync import buckets

    app, _ = shared
    registry = app.app.registry
    _collections(app, alice, 5)
    CatchUp(registry, overlap_ms=0).run()
    CatchUp(registry, overlap_ms=0).run()
    store = SyncStore(registry.elasticsearch.index)
    assert len(store.load_all()) == 5
    # Deleted in storage only (its collections purged, as Kinto does), then created again
    # with one collection of the same name: the live row replaces the bucket's tombstone.
    registry.storage.delete_all(resource_name="record", parent_id="/buckets/b/*",
                                with_deleted=False)  # fmt: skip
    registry.storage.delete_all(resource_name="collection", parent_id="/buckets/b",
                                with_deleted=False)  # fmt: skip
    registry.storage.delete(resource_name="bucket", parent_id="", object_id="b")
    transaction.commit()
    registry.storage.create(resource_name="bucket", parent_id="", obj={"id": "b"})
    registry.storage.create(resource_name="collection", parent_id="/buckets/b", obj={"id": "c2"})
    transaction.commit()
    monkeypatch.setattr(buckets, "BUCKET_PAGE", 2)
    spy = EngineSpy(registry.elasticsearch.index.engine)
    sync_index = naming.sync_index_name(index_prefix)
    removed = []
    for _ in range(3):  # 5 checkpoints, 2 a page.
        removed += CatchUp(registry, overlap_ms=0, slice_size=1).run().removed
        assert all(body["size"] <= 2 for body in _bucket_pages(spy, sync_index, True))
    assert sorted(a.rsplit(".", 1)[1] for a in removed) == ["c0", "c1", "c3", "c4"]
    assert sorted(c.collection_id for c in store.load_all().values()) == ["c2"]
    assert indexed(engine, index_prefix, "b", "c0") == {}
    assert store.load_position().buckets == {}


def test_a_bucket_read_again_within_the_overlap_is_checked_once(
    shared, alice, index_prefix, monkeypatch
):
    """Every pass reads the overlap's changes again: a bucket changed once has its
    checkpoints checked once, not at every pass of the overlap; and a bucket that lost
    none (changed, not created again) costs a sample of them, not a page."""
    from kinto_elasticsearch.sync import buckets

    monkeypatch.setattr(buckets, "SAMPLE_SIZE", 2)
    app, _ = shared
    registry = app.app.registry
    _collections(app, alice, 6)
    CatchUp(registry, overlap_ms=300_000).run()
    # Changed, with one of its collections written.
    app.patch_json("/v1/buckets/b", {"data": {"title": "changed"}}, headers=alice)
    app.put_json("/v1/buckets/b/collections/c3/records/new", {"data": {}}, headers=alice)
    spy = EngineSpy(registry.elasticsearch.index.engine)
    sync_index = naming.sync_index_name(index_prefix)
    CatchUp(registry, overlap_ms=300_000).run()
    # All six collections are within the overlap: the sample reaches two beyond them.
    assert [body["size"] for body in _bucket_pages(spy, sync_index)] == [6 + 2]
    assert _bucket_pages(spy, sync_index, True) == []
    for _ in range(2):
        CatchUp(registry, overlap_ms=300_000).run()
    assert len(_bucket_pages(spy, sync_index)) == 1
    # Changed again: checked again.
    app.patch_json("/v1/buckets/b", {"data": {"title": "again"}}, headers=alice)
    CatchUp(registry, overlap_ms=300_000).run()
    assert len(_bucket_pages(spy, sync_index)) == 2


def test_a_bucket_check_that_fails_holds_back_no_change(shared, alice, engine, index_prefix):
    """The check of a bucket seen changed comes last in a pass: when the engine cannot
    answer it (forced here: a timeout of that search only), the pass's changes are indexed
    anyway, and the next pass makes the check."""
    from kinto_elasticsearch.client import EngineUnreachable

    app, _ = shared
    registry = app.app.registry
    _collections(app, alice, 3)
    CatchUp(registry, overlap_ms=0).run()
    CatchUp(registry, overlap_ms=0).run()
    app.patch_json("/v1/buckets/b", {"data": {"title": "changed"}}, headers=alice)
    # Behind the plugin's back: only the catch-up can index it.
    with psycopg2.connect(registry.settings["storage_url"]) as conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO objects (id, parent_id, resource_name, data, deleted) "
            "VALUES ('late', '/buckets/b/collections/c1', 'record', '{}', FALSE)"
        )
    engine_side = registry.elasticsearch.index.engine
    real = engine_side.call

    def timing_out(operation, **kwargs):
        if operation == "search" and "prefix" in str(kwargs.get("body", {}).get("query")):
            raise EngineUnreachable("timed out (forced)")
        return real(operation, **kwargs)

    engine_side.call = timing_out
    with pytest.raises(EngineUnreachable):
        CatchUp(registry, overlap_ms=0).run()
    assert "late" in indexed(engine, index_prefix, "b", "c1")
    engine_side.call = real
    store = SyncStore(registry.elasticsearch.index)
    assert store.load_position().buckets.get("b", {}).get("state") != "done"
    spy = EngineSpy(engine_side)
    CatchUp(registry, overlap_ms=0).run()
    assert _bucket_pages(spy, naming.sync_index_name(index_prefix), False)
    assert store.load_position().buckets == {}
