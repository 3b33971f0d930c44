"""Tombstones in pools: marked, so that one term selects a collection's records; and those
an older version left unmarked, marked online by the catch-up."""

import pytest

from kinto_elasticsearch.index import placement
from kinto_elasticsearch.index.tombstones import mark_changed, mark_tombstones
from kinto_elasticsearch.sync.catchup import CatchUp
from tests.conftest import EngineSpy, pg_settings

ONE_POOL = {"elasticsearch.pools": "1"}


@pytest.fixture
def pooled_app(make_app):
    return make_app(**ONE_POOL)


def _uri(collection_id, record_id=None):
    uri = f"/v1/buckets/blog/collections/{collection_id}"
    return f"{uri}/records/{record_id}" if record_id else uri


def _fill(app, headers, collection_ids, record_ids):
    app.put_json("/v1/buckets/blog", {}, headers=headers)
    for collection_id in collection_ids:
        app.put_json(_uri(collection_id), {}, headers=headers)
        for record_id in record_ids:
            data = {"title": f"{collection_id} {record_id}"}
            app.put_json(_uri(collection_id, record_id), {"data": data}, headers=headers)


def _pool_sources(engine, pool, key):
    """``{document _id: _source}`` of every document of a collection in its pool."""
    engine.call("indices.refresh", index=pool)
    body = {"query": placement.documents_term(key), "size": 100}
    found = engine.call("search", index=pool, body=body, routing=key)
    return {hit["_id"]: hit["_source"] for hit in found["hits"]["hits"]}


def _answer(app, headers, collection_id, body=None):
    response = app.post_json(
        f"{_uri(collection_id)}/search", body or {"size": 50}, headers=headers
    )
    return response.json


def _filters(search_kwargs):
    return search_kwargs.get("body", {}).get("query", {}).get("bool", {}).get("filter", [])


def _ids(answer):
    return sorted(hit["_id"] for hit in answer["hits"]["hits"])


def test_a_pooled_tombstone_is_marked_and_a_search_filters_on_one_term(pooled_app, alice, engine):
    _fill(pooled_app, alice, ["a", "b"], ["r1", "r2", "r3"])
    pooled_app.delete(_uri("a", "r1"), headers=alice)
    registry = pooled_app.app.registry
    assert registry.elasticsearch.sender.wait_until_idle(10)
    where = registry.elasticsearch.index.locator.placement("blog", "a")
    assert where.pooled and where.marked
    sources = _pool_sources(engine, where.pool, where.key)
    assert sources["blog/a/r1"] == {
        "last_modified": sources["blog/a/r1"]["last_modified"],
        "_collection": "blog/a/",
    }
    assert sources["blog/a/r2"]["_collection"] == "blog/a"
    spy = EngineSpy(registry.elasticsearch.index.engine)
    answer = _answer(pooled_app, alice, "a")
    assert _ids(answer) == ["r2", "r3"] and answer["hits"]["total"]["value"] == 2
    (sent,) = [kwargs["body"] for name, kwargs in spy.calls if name == "search"]
    # The collection's term, and no "has an id" over the whole shard.
    assert {"term": {"_collection": "blog/a"}} in sent["query"]["bool"]["filter"]
    assert "exists" not in str(sent["query"]["bool"]["filter"])
    # Aggregations and counts see records only, and another collection sees none of them.
    body = {"size": 0, "aggs": {"n": {"value_count": {"field": "last_modified"}}}}
    assert _answer(pooled_app, alice, "a", body)["aggregations"]["n"]["value"] == 2
    assert _ids(_answer(pooled_app, alice, "b")) == ["r1", "r2", "r3"]
    # The tombstone still keeps the delete a delete: the index says r1 is held, deleted.
    reader = registry.elasticsearch.index.reader
    assert set(reader.versions("blog", "a", ["r1", "r2"])) == {"r1", "r2"}
    assert set(reader.indexed_records("blog", "a", ["r1", "r2"])) == {"r2"}
    assert reader.count_live("blog", "a") == 2
    assert reader.count_live_many({("blog", "a"): 2**62, ("blog", "b"): 2**62}) == {
        ("blog", "a"): 2,
        ("blog", "b"): 3,
    }
    # Written again, the record replaces its tombstone.
    pooled_app.put_json(_uri("a", "r1"), {"data": {"title": "again"}}, headers=alice)
    assert _ids(_answer(pooled_app, alice, "a")) == ["r1", "r2", "r3"]


def test_deleting_a_collection_or_its_bucket_takes_its_tombstones_too(pooled_app, alice, engine):
    _fill(pooled_app, alice, ["a", "b"], ["r1", "r2"])
    pooled_app.put_json("/v1/buckets/other", {}, headers=alice)
    pooled_app.put_json("/v1/buckets/other/collections/c", {}, headers=alice)
    pooled_app.put_json("/v1/buckets/other/collections/c/records/r1", {"data": {}}, headers=alice)
    for collection_id in ("a", "b"):
        pooled_app.delete(_uri(collection_id, "r1"), headers=alice)
    pooled_app.delete("/v1/buckets/other/collections/c/records/r1", headers=alice)
    registry = pooled_app.app.registry
    assert registry.elasticsearch.sender.wait_until_idle(10)
    where = registry.elasticsearch.index.locator.placement("blog", "a")
    assert set(_pool_sources(engine, where.pool, "blog/a")) == {"blog/a/r1", "blog/a/r2"}
    pooled_app.delete(_uri("a"), headers=alice)
    assert registry.elasticsearch.sender.wait_until_idle(10)
    assert _pool_sources(engine, where.pool, "blog/a") == {}
    assert set(_pool_sources(engine, where.pool, "blog/b")) == {"blog/b/r1", "blog/b/r2"}
    pooled_app.delete("/v1/buckets/blog", headers=alice)
    assert registry.elasticsearch.sender.wait_until_idle(10)
    assert _pool_sources(engine, where.pool, "blog/b") == {}
    # Another bucket's tombstone stays.
    assert set(_pool_sources(engine, where.pool, "other/c")) == {"other/c/r1"}


def _as_an_older_version_deleted(engine, where, record_id, version):
    """The tombstone an older version wrote: the collection's key, unmarked."""
    engine.call(
        "index", index=where.pool, id=where.document_id(record_id),
        body={"last_modified": version, "_collection": where.key}, routing=where.key,
        version=version, version_type="external_gte", refresh="true",
    )  # fmt: skip


def _unmark_layout(index_side):
    """The layout an older version recorded: no word of marked tombstones."""
    records = index_side.locator.records
    records.load(refresh=True)
    layout = {**records._layout, "tombstones_marked": False}
    index_side.engine.call("index", index=records.index, id="layout", body=layout, refresh="true")
    records.clear()


def test_tombstones_an_older_version_left_unmarked_are_marked_online(
    pooled_app, alice, engine, index_prefix
):
    _fill(pooled_app, alice, ["a"], ["r1", "r2", "r3"])
    registry = pooled_app.app.registry
    index_side = registry.elasticsearch.index
    CatchUp(registry, overlap_ms=0).run()
    _unmark_layout(index_side)
    where = index_side.locator.placement("blog", "a")
    assert where.pooled and not where.marked
    # An older version deleted r1 (in storage too) and r3's tombstone predates its record.
    pooled_app.delete(_uri("a", "r1"), headers=alice)
    assert registry.elasticsearch.sender.wait_until_idle(10)
    deleted_at = _pool_sources(engine, where.pool, where.key)["blog/a/r1"]["last_modified"]
    _as_an_older_version_deleted(engine, where, "r1", deleted_at)
    # Until they are marked, searches tell tombstones by their lack of id: still right.
    answer = _answer(pooled_app, alice, "a")
    assert _ids(answer) == ["r2", "r3"] and answer["hits"]["total"]["value"] == 2
    # The catch-up (full, then incremental) marks them and records the layout marked.
    CatchUp(registry, overlap_ms=0).run(full=True)
    sources = _pool_sources(engine, where.pool, where.key)
    assert sources["blog/a/r1"]["_collection"] == "blog/a/"
    assert sources["blog/a/r1"]["last_modified"] == deleted_at
    index_side.locator.records.clear()
    assert index_side.locator.placement("blog", "a").marked
    answer = _answer(pooled_app, alice, "a")
    assert _ids(answer) == ["r2", "r3"] and answer["hits"]["total"]["value"] == 2
    # The delete stays a delete: the index holds r1 at its tombstone's version.
    assert index_side.reader.versions("blog", "a", ["r1"]) == {"r1": deleted_at}
    # A full pass with the purge check finds the index agreeing with storage.
    report = CatchUp(registry, overlap_ms=0).run(check_purges=True)
    assert report.rebuilt == [] and _ids(_answer(pooled_app, alice, "a")) == ["r2", "r3"]


def test_marking_never_turns_a_newer_write_back_into_a_tombstone(pooled_app, alice, engine):
    _fill(pooled_app, alice, ["a"], ["r1"])
    index_side = pooled_app.app.registry.elasticsearch.index
    where = index_side.locator.placement("blog", "a")
    written = _pool_sources(engine, where.pool, where.key)["blog/a/r1"]["last_modified"]
    _as_an_older_version_deleted(engine, where, "r2", written - 10)
    newer = {"id": "r2", "last_modified": written + 10, "title": "newer", "_collection": where.key}
    call = index_side.engine.call

    def written_again_meanwhile(name, **kwargs):
        # Between the marking's read of the tombstone and its write: r2 written again.
        if name == "bulk":
            call("index", index=where.pool, id="blog/a/r2", body=newer, routing=where.key,
                 version=newer["last_modified"], version_type="external_gte")  # fmt: skip
        return call(name, **kwargs)

    index_side.engine.call = written_again_meanwhile
    try:
        assert mark_tombstones(index_side.pools, recheck=True) == 0
    finally:
        index_side.engine.call = call
    assert _pool_sources(engine, where.pool, where.key)["blog/a/r2"] == newer
    assert _ids(_answer(pooled_app, alice, "a")) == ["r1", "r2"]


@pytest.fixture
def pg_pooled_apps(make_app, pg_url):
    """Two processes' registries on one PostgreSQL database, whose storage lists changes:
    the catch-up's passes are incremental."""
    first = make_app(**pg_settings(pg_url), **ONE_POOL)
    first.app.registry.storage.initialize_schema()
    first.app.registry.permission.initialize_schema()
    return first, make_app(**pg_settings(pg_url), **ONE_POOL)


def test_tombstones_an_older_process_writes_after_the_marking_are_marked_by_the_catch_up(
    pg_pooled_apps, alice, engine
):
    pooled_app, older = pg_pooled_apps
    _fill(pooled_app, alice, ["a", "b"], ["r1", "r2"])
    registry = pooled_app.app.registry
    index_side = registry.elasticsearch.index
    CatchUp(registry, overlap_ms=0).run()
    where = index_side.locator.placement("blog", "a")
    assert where.marked
    # Another process, of an older version in a rolling upgrade, deletes r1 its way.
    older.delete(_uri("a", "r1"), headers=alice)
    assert older.app.registry.elasticsearch.sender.wait_until_idle(10)
    deleted_at = _pool_sources(engine, where.pool, where.key)["blog/a/r1"]["last_modified"]
    _as_an_older_version_deleted(engine, where, "r1", deleted_at)
    # This process's next pass reads the delete, which its sender did not deliver, and
    # marks what the collection holds unmarked: one search kept to its key.
    assert mark_changed(index_side.pools, [("blog", "b")]) == 0
    spy = EngineSpy(index_side.engine)
    CatchUp(registry, overlap_ms=0).run()
    scoped = {"terms": {"_collection": ["blog/a"]}}
    assert [kw for name, kw in spy.calls if name == "search" and scoped in _filters(kw)]
    assert _pool_sources(engine, where.pool, where.key)["blog/a/r1"]["_collection"] == "blog/a/"
    assert _ids(_answer(pooled_app, alice, "a")) == ["r2"]
    # What this process delivered itself costs the pass no such search.
    pooled_app.delete(_uri("b", "r2"), headers=alice)
    assert registry.elasticsearch.sender.wait_until_idle(10)
    spy.calls.clear()
    CatchUp(registry, overlap_ms=0).run()
    scoped = [kw for name, kw in spy.calls if name == "search" and "terms" in str(_filters(kw))]
    assert not [kw for kw in scoped if "must_not" in str(kw)]
    # Delivered after the overlap, its change no longer read: the end of a sweep marks it,
    # with one search of each pool, and one bulk of what it found.
    other = index_side.locator.placement("blog", "b")
    pooled_app.delete(_uri("b", "r1"), headers=alice)
    assert registry.elasticsearch.sender.wait_until_idle(10)
    deleted_at = _pool_sources(engine, other.pool, other.key)["blog/b/r1"]["last_modified"]
    _as_an_older_version_deleted(engine, other, "r1", deleted_at)
    spy.calls.clear()
    assert mark_tombstones(index_side.pools, recheck=True) == 1
    sent = [name for name, _ in spy.calls]
    assert sent.count("search") == 2 and sent.count("bulk") == 1, sent
    assert _pool_sources(engine, other.pool, other.key)["blog/b/r1"]["_collection"] == "blog/b/"
    assert _ids(_answer(pooled_app, alice, "b")) == []
    # Nothing left: the next check is one search per pool, and marks nothing.
    spy.calls.clear()
    assert mark_tombstones(index_side.pools, recheck=True) == 0
    assert [name for name, _ in spy.calls if name != "indices.get_alias"] == ["search"]


def test_a_bucket_search_leaves_out_the_tombstones_of_pooled_and_dedicated_collections(
    pooled_app, alice, engine
):
    _fill(pooled_app, alice, ["a"], ["r1", "r2"])
    schema = {"index:schema": {"properties": {"title": {"type": "text"}}}}
    pooled_app.put_json(_uri("own"), {"data": schema}, headers=alice)
    for record_id in ("r1", "r2"):
        data = {"title": f"own {record_id}"}
        pooled_app.put_json(_uri("own", record_id), {"data": data}, headers=alice)
    for collection_id in ("a", "own"):
        pooled_app.delete(_uri(collection_id, "r1"), headers=alice)
    registry = pooled_app.app.registry
    assert registry.elasticsearch.sender.wait_until_idle(10)
    assert not registry.elasticsearch.index.locator.placement("blog", "own").pooled
    spy = EngineSpy(registry.elasticsearch.index.engine)
    body = {"size": 50, "aggs": {"n": {"value_count": {"field": "last_modified"}}}}
    answer = pooled_app.post_json("/v1/buckets/blog/search", body, headers=alice).json
    hits = sorted((hit["_collection"], hit["_id"]) for hit in answer["hits"]["hits"])
    assert hits == [("a", "r2"), ("own", "r2")]
    assert answer["hits"]["total"]["value"] == 2 and answer["aggregations"]["n"]["value"] == 2
    # "Has an id" is asked of the dedicated index only, not of the pool's whole shard.
    (sent,) = [
        kw["body"]
        for name, kw in spy.calls
        if name == "search" and "n" in kw["body"].get("aggs", {})
    ]
    (permission,) = sent["query"]["bool"]["filter"]
    assert "exists" not in str(permission["bool"]["should"][-1])
    assert "exists" in str(permission["bool"]["should"][0])
