"""A pooled collection costs nothing in the cluster state: it has no alias, and its create,
writes and delete change no index, alias or mapping once its pool maps its fields. An older
version's pooled aliases are migrated online, and every collection is still found where its
documents are, by processes that read the placement records before or after the move."""

import time

import pytest

from kinto_elasticsearch.index import naming, placement
from kinto_elasticsearch.index.records import KIND, LAYOUT
from kinto_elasticsearch.sync.catchup import CatchUp
from tests.conftest import EngineSpy, auth, wait_until

POOLS = {"elasticsearch.pools": "4"}
ALICE = auth("alice")
# What changes the cluster state: an index, an alias, a mapping or settings.
ADMIN = {
    "indices.create",
    "indices.delete",
    "indices.put_alias",
    "indices.delete_alias",
    "indices.update_aliases",
    "indices.put_mapping",
    "indices.put_settings",
    "indices.rollover",
}


def _uri(bucket_id, collection_id=None):
    uri = f"/v1/buckets/{bucket_id}"
    return f"{uri}/collections/{collection_id}" if collection_id else uri


def _fill(app, bucket_id, collection_ids, records=("r1", "r2")):
    app.put_json(_uri(bucket_id), {}, headers=ALICE)
    for collection_id in collection_ids:
        app.put_json(_uri(bucket_id, collection_id), {}, headers=ALICE)
        for record_id in records:
            data = {"title": f"{collection_id} {record_id}", "n": 1}
            app.put_json(f"{_uri(bucket_id, collection_id)}/records/{record_id}",
                         {"data": data}, headers=ALICE)  # fmt: skip


def _ids(app, bucket_id, collection_id):
    hits = app.post_json(f"{_uri(bucket_id, collection_id)}/search", {}, headers=ALICE)
    return sorted(hit["_id"] for hit in hits.json["hits"]["hits"])


def _documents(engine, index, key):
    body = {"query": {"term": {placement.COLLECTION_FIELD: key}}, "size": 100}
    return engine.call("search", index=index, body=body, routing=key)["hits"]["hits"]


def _admin(spy):
    return [(name, kwargs.get("index") or kwargs.get("name")) for name, kwargs in spy.calls
            if name in ADMIN]  # fmt: skip


def _drained(app):
    """Wait for the background administration and the sender to finish their work."""
    assert app.app.registry.elasticsearch.sender.wait_until_idle(timeout=30)


@pytest.fixture
def pooled_app(make_app):
    return make_app(**POOLS)


def test_a_pooled_collection_changes_nothing_in_the_cluster_state(pooled_app, engine):
    # The pools exist and map the fields: what a first collection of each pool costs once.
    _fill(pooled_app, "first", [f"c{i}" for i in range(16)])
    _drained(pooled_app)
    spy = EngineSpy(pooled_app.app.registry.elasticsearch.index.engine)
    _fill(pooled_app, "blog", ["notes", "drafts"])
    uri = _uri("blog", "notes")
    pooled_app.patch_json(f"{uri}/records/r1", {"data": {"n": 2}}, headers=ALICE)
    pooled_app.delete(f"{uri}/records/r2", headers=ALICE)
    pooled_app.patch_json(uri, {"data": {"title": "Notes"}}, headers=ALICE)
    assert _ids(pooled_app, "blog", "notes") == ["r1"]
    pooled_app.delete(uri, headers=ALICE)
    pooled_app.delete(_uri("blog"), headers=ALICE)
    _drained(pooled_app)
    locator = pooled_app.app.registry.elasticsearch.index.locator
    pool = locator.placement("blog", "drafts").pool
    wait_until(lambda: not _documents(engine, pool, "blog/drafts"), "the bucket's documents go")
    # The writes reached the engine, and nothing else did.
    assert any(name == "bulk" for name, _ in spy.calls)
    assert _admin(spy) == []
    # One alias per pool, the one its writes require, none per collection.
    aliases = engine.call("indices.get_alias", index=pool)[pool]["aliases"]
    assert list(aliases) == [naming.pool_write_alias(pool)]


def test_a_collection_that_shapes_its_index_still_gets_one_of_its_own(pooled_app):
    """The spy sees administration where there is some: the test above can fail."""
    _fill(pooled_app, "first", ["c0"])
    _drained(pooled_app)
    spy = EngineSpy(pooled_app.app.registry.elasticsearch.index.engine)
    schema = {"properties": {"n": {"type": "integer"}}}
    pooled_app.put_json(_uri("first", "shaped"), {"data": {"index:schema": schema}},
                        headers=ALICE)  # fmt: skip
    _drained(pooled_app)
    prefix = pooled_app.app.registry.elasticsearch.index.prefix
    created = [index for name, index in _admin(spy) if name == "indices.create"]
    created = [index for index in created if not naming.is_internal_index(prefix, index)]
    assert created == [f"{naming.alias_name(prefix, 'first', 'shaped')}.0"]


def _as_an_older_version_left_it(app, engine, index_prefix, moved):
    """What an older version left: an alias on its pool for every pooled collection, the
    collection ``moved`` in another pool than its hash's (the number of pools changed since
    it was created), pools without write aliases, and no placement records or layout in
    the sync index."""
    index_side = app.app.registry.elasticsearch.index
    locator = index_side.locator
    keys = {}
    for name in engine.call("indices.get_alias", index=f"{index_prefix}.*"):
        if not naming.is_pool(index_prefix, name):
            continue
        body = {"size": 0, "aggs": {"k": {"terms": {"field": placement.COLLECTION_FIELD}}}}
        found = engine.call("search", index=name, body=body)
        for bucket in found["aggregations"]["k"]["buckets"]:
            keys[bucket["key"]] = name
    assert moved in keys
    bucket_id, _, collection_id = moved.partition("/")
    hashed = keys[moved]
    number = int(hashed.rsplit("-", 1)[1])
    elsewhere = naming.pool_index_name(index_prefix, (number + 1) % 4)
    index_side.pools.ensure(elsewhere)
    for hit in _documents(engine, hashed, moved):
        engine.call("index", index=elsewhere, id=hit["_id"], body=hit["_source"],
                    routing=moved, refresh="true")  # fmt: skip
    engine.call("delete_by_query", index=hashed, routing=moved, refresh=True,
                body={"query": {"term": {placement.COLLECTION_FIELD: moved}}})  # fmt: skip
    keys[moved] = elsewhere
    actions = []
    for key, pool in sorted(keys.items()):
        alias = naming.alias_name(index_prefix, *key.split("/"))
        term = {"term": {placement.COLLECTION_FIELD: key}}
        actions.append({"add": {"index": pool, "alias": alias, "filter": term, "routing": key}})
    for pool in sorted(set(keys.values())):
        actions.append({"remove": {"index": pool, "alias": naming.pool_write_alias(pool)}})
    engine.call("indices.update_aliases", body={"actions": actions})
    engine.call("delete_by_query", index=naming.sync_index_name(index_prefix), refresh=True,
                body={"query": {"terms": {"kind": [KIND, LAYOUT]}}})  # fmt: skip
    locator.forget()
    return keys, elsewhere


def test_an_older_versions_pooled_aliases_are_migrated_online(make_app, engine, index_prefix):
    app = make_app(**POOLS)
    collections = [f"c{i}" for i in range(6)]
    _fill(app, "blog", collections)
    _drained(app)
    keys, elsewhere = _as_an_older_version_left_it(app, engine, index_prefix, "blog/c3")
    # Another process read the records before the migration: it knows of none, and of no
    # migration. Its copy is a second old (a collection it cannot find is read again at
    # most once a second: a write to the moved collection within that second lands in the
    # hash pool, and the next catch-up pass moves it).
    other = make_app(**POOLS)
    other_locator = other.app.registry.elasticsearch.index.locator
    assert other_locator.placement("blog", "c3").pool == elsewhere
    assert not other_locator.records.migrated
    # Before the migration the older version's state is served as it was.
    for collection_id in collections:
        assert _ids(app, "blog", collection_id) == ["r1", "r2"]

    time.sleep(1.0)
    CatchUp(app.app.registry, overlap_ms=0).run()

    found = engine.call("indices.get_alias", index=naming.pool_pattern(index_prefix))
    for info in found.values():
        assert not [a for a in info["aliases"] if not naming.is_pool_write_alias(a)]
    locator = app.app.registry.elasticsearch.index.locator
    assert locator.records.migrated
    # Only what the hash does not give is recorded.
    assert locator.records.recorded() == {naming.alias_name(index_prefix, "blog", "c3"): elsewhere}
    other_locator.forget(naming.alias_name(index_prefix, "blog", "c3"))
    for locator_ in (locator, other_locator):
        for key, pool in keys.items():
            assert locator_.placement(*key.split("/")).pool == pool
    for collection_id in collections:
        assert _ids(app, "blog", collection_id) == ["r1", "r2"]
    # Writes after the migration land where the collection lives, and nothing of it is left
    # in its hash pool.
    app.put_json(f"{_uri('blog', 'c3')}/records/r3", {"data": {"title": "new"}}, headers=ALICE)
    assert _ids(app, "blog", "c3") == ["r1", "r2", "r3"]
    assert len(_documents(engine, elsewhere, "blog/c3")) == 3
    # The pool an older version made got its write alias with that first write.
    assert (
        naming.pool_write_alias(elsewhere)
        in engine.call("indices.get_alias", index=elsewhere)[elsewhere]["aliases"]
    )
    # A second pass has nothing left to migrate.
    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)
    CatchUp(app.app.registry, overlap_ms=0).run()
    assert not [c for c in spy.calls if c[0] == "indices.update_aliases"]
