import threading
import time

import pytest

from kinto_elasticsearch import storage
from kinto_elasticsearch.index import naming
from kinto_elasticsearch.sync import compare, pipeline, sanity
from kinto_elasticsearch.sync.rebuild import reindex_collection
from tests.conftest import indexed

COLLECTION = "/v1/buckets/b/collections/c"


@pytest.fixture
def filled(app, alice):
    return _fill(app, alice)


@pytest.fixture
def dedicated(make_app, alice):
    """Filled, with an index of its own: a rebuild fills a new one and swaps the alias (a
    pooled collection is rebuilt in place, in its pool)."""
    return _fill(make_app(**{"elasticsearch.pools": "0"}), alice)


def _fill(app, alice):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    for start in range(0, 120, 20):
        requests = [
            {"method": "PUT", "path": f"{COLLECTION}/records/r{i:03}", "body": {"data": {"n": i}}}
            for i in range(start, start + 20)
        ]
        app.post_json("/v1/batch", {"defaults": {"headers": alice}, "requests": requests})
    return app


def _stored(app, alice):
    records = app.get(f"{COLLECTION}/records", headers=alice).json["data"]
    return {r["id"]: (r["last_modified"], r) for r in records}


def _registry(app):
    return app.app.registry


def test_reindex_builds_a_new_index_and_swaps_the_alias(
    dedicated, alice, engine, index_prefix, monkeypatch
):
    registry = _registry(dedicated)
    monkeypatch.setattr(storage, "PAGE_SIZE", 50)
    old = set(registry.elasticsearch.index.indices.listed(f"{index_prefix}.*"))
    result = reindex_collection(
        registry.storage, registry.elasticsearch.index, "b", "c", {}, progress=None
    )
    assert result.indexed == 120
    indices = registry.elasticsearch.index.indices.listed(
        naming.collection_pattern(index_prefix, "b", "c")
    )
    # Only the new index is left, behind the alias.
    assert indices == {result.index: [naming.alias_name(index_prefix, "b", "c")]}
    assert result.index not in old
    assert indexed(engine, index_prefix, "b", "c") == _stored(dedicated, alice)


def test_reindex_applies_the_current_mapping(filled, alice, engine, index_prefix):
    registry = _registry(filled)
    # A change of type the live index cannot take: only a rebuild applies it.
    metadata = {"index:schema": {"properties": {"n": {"type": "keyword"}}}}
    reindex_collection(registry.storage, registry.elasticsearch.index, "b", "c", metadata)
    mapping = registry.elasticsearch.index.known.get_mapping("b", "c")
    assert mapping["properties"]["n"] == {"type": "keyword"}
    assert len(indexed(engine, index_prefix, "b", "c")) == 120


def test_reindex_with_concurrent_writes_ends_equal_to_storage(
    filled, alice, engine, index_prefix, monkeypatch
):
    registry = _registry(filled)
    monkeypatch.setattr(storage, "PAGE_SIZE", 10)
    stop = threading.Event()
    errors = []

    def writer():
        i = 0
        try:
            while not stop.is_set() or i < 30:
                filled.put_json(f"{COLLECTION}/records/new{i}", {"data": {"n": i}}, headers=alice)
                filled.patch_json(
                    f"{COLLECTION}/records/r{i % 120:03}", {"data": {"n": -i}}, headers=alice
                )
                if i % 3 == 0:
                    filled.delete(
                        f"{COLLECTION}/records/r{(i + 60) % 120:03}", headers=alice, status="*"
                    )
                i += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        reindex_collection(registry.storage, registry.elasticsearch.index, "b", "c", {})
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert indexed(engine, index_prefix, "b", "c") == _stored(filled, alice)


def test_verify_finds_nothing_on_a_healthy_collection(filled):
    registry = _registry(filled)
    report = compare.verify_collection(
        registry.storage, registry.elasticsearch.index, "b", "c", {}
    )
    assert not report.differs
    assert report.records == report.documents == 120


def test_verify_reports_and_repairs_every_kind_of_difference(
    filled, alice, engine, index_prefix, monkeypatch
):
    registry = _registry(filled)
    monkeypatch.setattr(storage, "PAGE_SIZE", 50)
    # The index as a lossy past could have left it: two records missing, one outdated,
    # three documents of records storage never had.
    index_side = registry.elasticsearch.index
    index_side.removal.delete_collection_indices("b", "c")
    index_side.admin.create_index("b", "c", {})
    documents = []
    for record_id, (last_modified, record) in _stored(filled, alice).items():
        if record_id == "r003":
            record = {**record, "n": -1, "last_modified": last_modified - 5}
        if record_id not in ("r001", "r002"):
            documents.append(record)
    documents += [{"id": f"ghost{i}", "last_modified": i} for i in (1, 2, 3)]
    index_side.writer.write("b", "c", records=documents)

    report = compare.verify_collection(
        registry.storage, registry.elasticsearch.index, "b", "c", {}
    )
    assert (report.missing.count, report.outdated.count, report.extra.count) == (2, 1, 3)
    assert sorted(report.missing.examples) == ["r001", "r002"]
    assert report.outdated.examples == ["r003"]
    assert sorted(report.extra.examples) == ["ghost1", "ghost2", "ghost3"]

    repaired = compare.verify_collection(
        registry.storage, registry.elasticsearch.index, "b", "c", {}, repair=True
    )
    assert repaired.repaired == 6
    again = compare.verify_collection(registry.storage, registry.elasticsearch.index, "b", "c", {})
    assert not again.differs
    assert indexed(engine, index_prefix, "b", "c") == _stored(filled, alice)


def test_verify_reports_and_repairs_a_collection_without_index(
    filled, alice, engine, index_prefix
):
    registry = _registry(filled)
    index_side = registry.elasticsearch.index
    pool = index_side.locator.placement("b", "c").pool
    index_side.removal.delete_collection_indices("b", "c")
    # A pooled collection's index is its pool: lost with it (an engine restarted empty).
    engine.call("indices.delete", index=pool)
    report = compare.verify_collection(
        registry.storage, registry.elasticsearch.index, "b", "c", {}
    )
    assert report.no_index and report.records == 120
    compare.verify_collection(
        registry.storage, registry.elasticsearch.index, "b", "c", {}, repair=True
    )
    assert indexed(engine, index_prefix, "b", "c") == _stored(filled, alice)


def test_verify_indices_finds_orphans_and_old_generations(filled, engine, index_prefix):
    registry = _registry(filled)
    index_side = registry.elasticsearch.index
    pattern = compare.scope_pattern(index_prefix)
    # The collection's index or pool, and the plugin's own checkpoints index.
    healthy = set(index_side.indices.listed(pattern))
    orphan = naming.new_index_name(index_prefix, "gone", "c")
    engine.call("indices.create", index=orphan)
    detached = naming.new_index_name(index_prefix, "b", "c")
    engine.call("indices.create", index=detached)
    expected = {index_side.locator.alias("b", "c")}
    report = compare.verify_indices(index_side, expected, pattern)
    # A fresh index without alias may be a rebuild in progress: left alone for now.
    assert report.orphans == [orphan] and report.detached == []
    later = compare.verify_indices(index_side, expected, pattern, now=4102444800)
    assert later.detached == [detached]
    compare.verify_indices(index_side, expected, pattern, repair=True, now=4102444800)
    # The plugin's own checkpoints index is neither an orphan nor a generation, a pool
    # neither.
    assert set(index_side.indices.listed(pattern)) == healthy
    assert f"{index_prefix}.-sync" in healthy and len(healthy) == 2


def test_reindex_pages_through_storage_reading_at_most_two_pages_ahead(
    dedicated, engine, index_prefix, alice, monkeypatch
):
    """Reading overlaps sending, but memory stays bounded: the reader never runs ahead."""
    registry = _registry(dedicated)
    monkeypatch.setattr(storage, "PAGE_SIZE", 10)
    pages_read, ahead = [], []
    list_all, fill = registry.storage.list_all, registry.elasticsearch.index.writer.fill

    def counting_list_all(*args, **kwargs):
        page = list_all(*args, **kwargs)
        if kwargs.get("resource_name") == "record" and page:
            pages_read.append(len(page))
        return page

    def slow_fill(index, records, tombstones=(), metadata=None):
        time.sleep(0.05)  # An engine slower than storage: an unbounded reader would race.
        ahead.append(len(pages_read) - len(ahead) - 1)
        return fill(index, records, tombstones, metadata)

    monkeypatch.setattr(registry.storage, "list_all", counting_list_all)
    monkeypatch.setattr(registry.elasticsearch.index.writer, "fill", slow_fill)
    result = reindex_collection(registry.storage, registry.elasticsearch.index, "b", "c", {})
    assert result.indexed == 120
    assert len(ahead) == 12
    assert max(ahead) <= 2
    assert max(ahead) >= 1  # It did read ahead: the pipeline overlaps.
    assert indexed(engine, index_prefix, "b", "c") == _stored(dedicated, alice)


def test_a_failure_on_either_side_stops_the_pipeline():
    sent = []

    def failing_send(item):
        if item == 3:
            raise RuntimeError("engine said no")
        sent.append(item)

    with pytest.raises(RuntimeError, match="engine said no"):
        pipeline.pipelined(iter(range(100)), failing_send)
    assert sent == [0, 1, 2]

    def failing_items():
        yield from range(3)
        raise OSError("storage said no")

    sent.clear()
    with pytest.raises(OSError, match="storage said no"):
        pipeline.pipelined(failing_items(), sent.append)
    assert sent == [0, 1, 2][: len(sent)]


@pytest.mark.parametrize(
    "deleted,kept,refused",
    [(0, 0, False), (1, 0, True), (5, 1, False), (6, 6, False), (6, 5, True), (60, 0, True)],
)
def test_deleting_most_of_what_the_engine_holds_is_refused(deleted, kept, refused):
    reason = sanity.deletion_refused("records", deleted, kept)
    assert bool(reason) == refused
    if refused:
        assert f"the engine holds {deleted} records that storage, holding {kept}, lacks" in reason
