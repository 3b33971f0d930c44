"""Pooled indices: many collections share a few indices, each answering its own records only."""

import pytest

from kinto_elasticsearch.index import naming, placement
from kinto_elasticsearch.index.records import MAX_AGE
from kinto_elasticsearch.sync.catchup import CatchUp
from tests.conftest import auth, indexed

POOLS = {"elasticsearch.pools": "3", "elasticsearch.pool_number_of_shards": "2"}


@pytest.fixture
def pooled_app(make_app):
    return make_app(**POOLS)


def _collection(bucket_id, collection_id):
    return f"/v1/buckets/{bucket_id}/collections/{collection_id}"


def _fill(app, headers, bucket_id, collection_ids, records=("r1", "r2")):
    app.put_json(f"/v1/buckets/{bucket_id}", {}, headers=headers)
    for collection_id in collection_ids:
        uri = _collection(bucket_id, collection_id)
        app.put_json(uri, {}, headers=headers)
        for record_id in records:
            app.put_json(
                f"{uri}/records/{record_id}",
                {"data": {"title": f"{collection_id} {record_id}", "n": 1}},
                headers=headers,
            )


def _search(app, headers, bucket_id, collection_id, body=None, status=200):
    uri = f"{_collection(bucket_id, collection_id)}/search"
    return app.post_json(uri, body or {}, headers=headers, status=status)


def _hits(response):
    return sorted(
        (hit["_id"], hit["_source"]["title"], hit["_index"])
        for hit in response.json["hits"]["hits"]
    )


def _physical_indices(engine, index_prefix):
    return sorted(engine.call("indices.get_alias", index=f"{index_prefix}.*"))


def test_collections_share_the_pools_and_answer_their_own_records_only(
    pooled_app, alice, engine, index_prefix
):
    collections = [f"c{i}" for i in range(12)]
    _fill(pooled_app, alice, "blog", collections)
    for collection_id in collections:
        alias = naming.alias_name(index_prefix, "blog", collection_id)
        assert _hits(_search(pooled_app, alice, "blog", collection_id)) == [
            ("r1", f"{collection_id} r1", alias),
            ("r2", f"{collection_id} r2", alias),
        ]
    names = [n for n in _physical_indices(engine, index_prefix) if not n.endswith(".-sync")]
    assert names and all(naming.is_pool(index_prefix, name) for name in names)
    assert len(names) <= 3


def test_by_default_collections_share_sixteen_pools(app, alice, engine, index_prefix):
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    requests = [
        {"method": "PUT", "path": f"/buckets/blog/collections/c{i}", "body": {}} for i in range(40)
    ]
    for first in range(0, len(requests), 20):
        batch = {"defaults": {"headers": alice}, "requests": requests[first : first + 20]}
        app.post_json("/v1/batch", batch)
    names = [n for n in _physical_indices(engine, index_prefix) if not n.endswith(".-sync")]
    assert names and all(naming.is_pool(index_prefix, name) for name in names)
    assert len(names) <= 16 < len(requests)
    assert app.app.registry.elasticsearch.settings.pools == 16


def test_ids_queries_and_record_permissions_name_record_ids(pooled_app, alice):
    _fill(pooled_app, alice, "blog", ["a", "b"])
    body = {"query": {"ids": {"values": ["r1"]}}}
    hits = _hits(_search(pooled_app, alice, "blog", "b", body))
    assert [(hit[0], hit[1]) for hit in hits] == [("r1", "b r1")]
    bob = pooled_app.get("/v1/", headers=auth("bob")).json["user"]["id"]
    pooled_app.patch_json(
        f"{_collection('blog', 'a')}/records/r2",
        {"permissions": {"read": [bob]}},
        headers=alice,
    )
    hits = _hits(_search(pooled_app, auth("bob"), "blog", "a"))
    assert [(hit[0], hit[1]) for hit in hits] == [("r2", "a r2")]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"terms": {"_id": ["r1", "r2"]}}, ["r1", "r2"]),
        ({"term": {"_id": "r1"}}, ["r1"]),
        ({"term": {"_id": {"value": "r2", "boost": 2}}}, ["r2"]),
        ({"bool": {"filter": [{"terms": {"_id": ["r2"], "boost": 1}}]}}, ["r2"]),
    ],
)
def test_term_queries_on_id_name_record_ids(pooled_app, alice, index_prefix, query, expected):
    # The engines' documentation queries _id with term and terms, as it does with ids.
    _fill(pooled_app, alice, "blog", ["a", "b"])
    hits = _search(pooled_app, alice, "blog", "a", {"query": query}).json["hits"]["hits"]
    assert sorted(hit["_id"] for hit in hits) == expected
    assert {hit["_index"] for hit in hits} == {naming.alias_name(index_prefix, "blog", "a")}


def test_hits_name_the_collections_alias_wherever_it_lives(make_app, alice, index_prefix):
    """A pooled collection's hits name its alias, not the pool; a dedicated one's, not the
    generation behind it (which a rebuild changes): a client sees one name per collection,
    in top-level and in inner hits, and in a bucket search."""
    from kinto_elasticsearch.sync.rebuild import reindex_collection

    app = make_app(**{"elasticsearch.pools": "0"})
    _fill(app, alice, "blog", ["own"])
    registry = app.app.registry
    metadata = registry.storage.get(
        resource_name="collection", parent_id="/buckets/blog", object_id="own"
    )
    reindex_collection(registry.storage, registry.elasticsearch.index, "blog", "own", metadata)
    alias = naming.alias_name(index_prefix, "blog", "own")
    body = {
        "aggs": {"top": {"top_hits": {"size": 1}}},
        "collapse": {"field": "n", "inner_hits": {"name": "same", "size": 2}},
    }
    found = _search(app, alice, "blog", "own", body).json
    inner = [
        hit for top in found["hits"]["hits"] for hit in top["inner_hits"]["same"]["hits"]["hits"]
    ]
    top_hits = found["aggregations"]["top"]["hits"]["hits"]
    assert {hit["_index"] for hit in found["hits"]["hits"] + inner + top_hits} == {alias}
    bucket = app.post_json("/v1/buckets/blog/search", {}, headers=alice).json["hits"]["hits"]
    assert {(hit["_index"], hit["_collection"]) for hit in bucket} == {(alias, "own")}


def test_the_engine_ids_of_a_pool_cannot_be_searched(pooled_app, alice):
    _fill(pooled_app, alice, "blog", ["a"])
    body = {"aggs": {"where": {"terms": {"field": "_index"}}}}
    response = _search(pooled_app, alice, "blog", "a", body, status=400)
    assert "_index" in response.json["message"]


def test_deleting_a_collection_or_a_bucket_removes_its_documents_only(
    pooled_app, alice, engine, index_prefix
):
    _fill(pooled_app, alice, "blog", ["a", "b", "c"])
    _fill(pooled_app, alice, "other", ["a"])
    pooled_app.delete(_collection("blog", "b"), headers=alice)
    pooled_app.put_json(_collection("blog", "b"), {}, headers=alice)
    assert _hits(_search(pooled_app, alice, "blog", "b")) == []
    assert len(_hits(_search(pooled_app, alice, "blog", "a"))) == 2
    pooled_app.delete("/v1/buckets/blog", headers=alice)
    assert len(_hits(_search(pooled_app, alice, "other", "a"))) == 2
    count = engine.call("count", index=naming.pool_pattern(index_prefix))["count"]
    # other/a: two records; nothing of blog is left in any pool.
    assert count == 2


def test_a_collection_with_a_mapping_of_its_own_gets_its_own_index(
    pooled_app, alice, engine, index_prefix
):
    pooled_app.put_json("/v1/buckets/blog", {}, headers=alice)
    schema = {"properties": {"title": {"type": "keyword"}}}
    pooled_app.put_json(
        _collection("blog", "own"), {"data": {"index:schema": schema}}, headers=alice
    )
    alias = naming.alias_name(index_prefix, "blog", "own")
    assert sorted(engine.call("indices.get_alias", name=alias)) == [f"{alias}.0"]


DATED = {"type": "object", "properties": {"published": {"type": "string", "format": "date"}}}


@pytest.mark.parametrize(
    "metadata",
    [
        {"schema": DATED},
        {"schema": {"type": "object", "properties": {"price": {"type": "number"}}}},
        {"index:map_like": ["tags"]},
    ],
    ids=["date", "number", "map_like"],
)
def test_a_collection_whose_metadata_derives_a_mapping_gets_its_own_index(
    pooled_app, alice, engine, index_prefix, metadata
):
    pooled_app.put_json("/v1/buckets/blog", {}, headers=alice)
    pooled_app.put_json(_collection("blog", "own"), {"data": metadata}, headers=alice)
    alias = naming.alias_name(index_prefix, "blog", "own")
    assert sorted(engine.call("indices.get_alias", name=alias)) == [f"{alias}.0"]


def test_a_schema_of_strings_only_stays_pooled(pooled_app, alice, engine, index_prefix):
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "author": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    }
    pooled_app.put_json("/v1/buckets/blog", {}, headers=alice)
    pooled_app.put_json(_collection("blog", "plain"), {"data": {"schema": schema}}, headers=alice)
    _assert_pooled_without_alias(pooled_app, engine, index_prefix, "blog", "plain")


def _assert_pooled_without_alias(app, engine, index_prefix, bucket_id, collection_id):
    """Pooled, and with nothing of its own in the cluster state: no alias."""
    alias = naming.alias_name(index_prefix, bucket_id, collection_id)
    assert not engine.call("indices.exists_alias", name=alias)
    locator = app.app.registry.elasticsearch.index.locator
    assert locator.placement(bucket_id, collection_id, refresh=True).pooled


def _as_an_older_version_pooled(index_side, bucket_id, collection_id):
    """Give a pooled collection the filtered alias on its pool an older version gave it."""
    where = index_side.locator.placement(bucket_id, collection_id)
    index_side.pools.ensure_cached(where.pool)
    index_side.indices.update_aliases([where.alias_action()], where.alias)
    return where


def _published_in_may(app, headers, collection_id):
    body = {"query": {"range": {"published": {"gte": "2024-05-01", "lt": "2024-06-01"}}}}
    return sorted(hit[0] for hit in _hits(_search(app, headers, "blog", collection_id, body)))


def _dated_records(app, headers, collection_id):
    uri = _collection("blog", collection_id)
    for record_id, published in [("may", "2024-05-02"), ("june", "2024-06-03")]:
        app.put_json(
            f"{uri}/records/{record_id}",
            {"data": {"title": record_id, "published": published, "n": 1}},
            headers=headers,
        )


def _assert_promoted_with_its_mapping(app, headers, engine, index_prefix, collection_id):
    registry = app.app.registry
    alias = naming.alias_name(index_prefix, "blog", collection_id)
    assert not registry.elasticsearch.index.locator.placement(
        "blog", collection_id, refresh=True
    ).pooled
    (index,) = engine.call("indices.get_alias", name=alias)
    assert not naming.is_pool(index_prefix, index)
    mapping = registry.elasticsearch.index.known.get_mapping("blog", collection_id)
    assert mapping["properties"]["published"]["type"] == "date"
    assert _published_in_may(app, headers, collection_id) == ["may"]
    assert _pool_documents(engine, index_prefix, f"blog/{collection_id}") == 0


def test_a_pooled_collection_whose_metadata_gains_a_mapping_is_promoted(
    pooled_app, alice, engine, index_prefix
):
    _fill(pooled_app, alice, "blog", ["dated", "other"])
    _dated_records(pooled_app, alice, "dated")
    registry = pooled_app.app.registry
    assert registry.elasticsearch.index.locator.placement("blog", "dated").pooled
    pooled_app.patch_json(_collection("blog", "dated"), {"data": {"schema": DATED}}, headers=alice)
    # Read-your-writes: the write answered once the promotion was done.
    _assert_promoted_with_its_mapping(pooled_app, alice, engine, index_prefix, "dated")
    report = CatchUp(registry, overlap_ms=0).run()
    assert naming.alias_name(index_prefix, "blog", "dated") not in report.rebuilt
    hits = _hits(_search(pooled_app, alice, "blog", "dated", {"size": 10}))
    assert [hit[0] for hit in hits] == ["june", "may", "r1", "r2"]
    assert len(_hits(_search(pooled_app, alice, "blog", "other"))) == 2


def test_a_collection_an_earlier_version_pooled_despite_its_mapping_is_promoted(
    pooled_app, alice, engine, index_prefix
):
    pooled_app.put_json("/v1/buckets/blog", {}, headers=alice)
    pooled_app.put_json(_collection("blog", "dated"), {"data": {"schema": DATED}}, headers=alice)
    index_side = pooled_app.app.registry.elasticsearch.index
    # Where an earlier version put it: its pool, with its checkpoint and metadata unchanged.
    index_side.removal.delete_collection_indices("blog", "dated")
    _as_an_older_version_pooled(index_side, "blog", "dated")
    assert index_side.locator.placement("blog", "dated", DATED, refresh=True).pooled
    _dated_records(pooled_app, alice, "dated")
    assert _pool_documents(engine, index_prefix, "blog/dated") == 2
    report = CatchUp(pooled_app.app.registry, overlap_ms=0).run()
    assert report.rebuilt == [naming.alias_name(index_prefix, "blog", "dated")]
    _assert_promoted_with_its_mapping(pooled_app, alice, engine, index_prefix, "dated")


def test_bucket_search_names_the_pools_not_each_collection(pooled_app, alice):
    from tests.conftest import EngineSpy

    _fill(pooled_app, alice, "blog", [f"c{i}" for i in range(8)])
    _fill(pooled_app, alice, "other", ["c0"])
    spy = EngineSpy(pooled_app.app.registry.elasticsearch.index.engine)
    response = pooled_app.post_json("/v1/buckets/blog/search", {"size": 100}, headers=alice)
    hits = sorted((hit["_collection"], hit["_id"]) for hit in response.json["hits"]["hits"])
    assert hits == sorted((f"c{i}", r) for i in range(8) for r in ("r1", "r2"))
    (searched,) = [kwargs["index"] for name, kwargs in spy.calls if name == "search"]
    assert len(searched.split(",")) <= 3


def test_a_bucket_search_names_record_ids_of_pooled_and_dedicated_collections(pooled_app, alice):
    _fill(pooled_app, alice, "blog", ["a", "b"])
    own = _collection("blog", "own")
    mapping = {"properties": {"title": {"type": "text"}}}
    pooled_app.put_json(own, {"data": {"index:schema": mapping}}, headers=alice)
    pooled_app.put_json(f"{own}/records/r1", {"data": {"title": "own r1"}}, headers=alice)
    index_side = pooled_app.app.registry.elasticsearch.index
    assert (
        index_side.locator.placement("blog", "a").pooled
        and not index_side.locator.placement("blog", "own").pooled
    )
    for query in ({"ids": {"values": ["r1"]}}, {"terms": {"_id": ["r1"]}}):
        response = pooled_app.post_json("/v1/buckets/blog/search", {"query": query}, headers=alice)
        hits = sorted((hit["_collection"], hit["_id"]) for hit in response.json["hits"]["hits"])
        assert hits == [("a", "r1"), ("b", "r1"), ("own", "r1")]
    # One id where the engine takes one value is an id in each collection: refused, saying
    # what to write instead.
    body = {"query": {"term": {"_id": "r1"}}}
    response = pooled_app.post_json("/v1/buckets/blog/search", body, headers=alice, status=400)
    assert "'terms'" in response.json["message"]
    # The pools' names are the engine's: not something to search or aggregate on.
    body = {"size": 0, "aggs": {"where": {"terms": {"field": "_index"}}}}
    response = pooled_app.post_json("/v1/buckets/blog/search", body, headers=alice, status=400)
    assert "_index" in response.json["message"]


def test_kinto_filters_and_paging_in_a_pool(pooled_app, alice):
    _fill(pooled_app, alice, "blog", ["a", "b"], records=[f"r{i}" for i in range(5)])
    uri = f"{_collection('blog', 'a')}/search?_sort=title&_limit=2"
    first = pooled_app.get(uri, headers=alice)
    assert [hit["_id"] for hit in first.json["hits"]["hits"]] == ["r0", "r1"]
    assert first.headers["Total-Objects"] == "5"
    second = pooled_app.get(first.headers["Next-Page"], headers=alice)
    assert [hit["_id"] for hit in second.json["hits"]["hits"]] == ["r2", "r3"]
    filtered = pooled_app.get(f"{_collection('blog', 'b')}/search?in_id=r1,r4", headers=alice)
    assert sorted(hit["_id"] for hit in filtered.json["hits"]["hits"]) == ["r1", "r4"]


def test_facets_of_a_pooled_collection_count_its_records_only(pooled_app, alice):
    _fill(pooled_app, alice, "blog", ["a", "b"])
    uri = f"{_collection('blog', 'b')}/records/r9"
    pooled_app.put_json(uri, {"data": {"only_in_b": "x"}}, headers=alice)
    response = pooled_app.get(f"{_collection('blog', 'a')}/search/facets", headers=alice)
    by_name = {field["name"]: field for field in response.json["fields"]}
    assert sum(v["count"] for v in by_name["n"]["values"]) == 2
    # The pool maps another collection's field: not this collection's facet.
    assert "only_in_b" not in by_name


def test_facets_of_a_pooled_collection_aggregate_only_the_fields_it_holds(pooled_app, alice):
    from tests.conftest import EngineSpy

    _fill(pooled_app, alice, "blog", ["a", "b"])
    # Another tenant of the pool with fields of its own, many of them.
    other = placement.choose("x", 3, "blog", "a", {}).pool
    neighbour = next(
        f"n{i}" for i in range(100) if placement.choose("x", 3, "blog", f"n{i}", {}).pool == other
    )
    pooled_app.put_json(_collection("blog", neighbour), {}, headers=alice)
    uri = f"{_collection('blog', neighbour)}/records/r1"
    pooled_app.put_json(uri, {"data": {f"k{i}": i for i in range(40)}}, headers=alice)
    spy = EngineSpy(pooled_app.app.registry.elasticsearch.index.engine)
    response = pooled_app.get(f"{_collection('blog', 'a')}/search/facets", headers=alice)
    by_name = {field["name"]: field for field in response.json["fields"]}
    assert sum(v["count"] for v in by_name["n"]["values"]) == 2
    assert not any(name.startswith("k") for name in by_name)
    assert placement.COLLECTION_FIELD not in by_name
    bodies = [kwargs["body"] for name, kwargs in spy.calls if name == "search"]
    terms = [agg for agg in bodies[-1]["aggs"].values() if "terms" in agg]
    # n, title (keyword) and the list of fields left out: none of the neighbour's 40.
    assert len(terms) == 3


def test_placement_is_stable_and_spreads_collections():
    numbers = [placement.pool_number("b", f"c{i}", 8) for i in range(800)]
    assert numbers == [placement.pool_number("b", f"c{i}", 8) for i in range(800)]
    assert min(numbers.count(n) for n in range(8)) > 60


def test_the_catch_up_indexes_pooled_collections(make_app, alice, engine, index_prefix):
    app = make_app(**POOLS)
    _fill(app, alice, "blog", ["a", "b"])
    # The pools are lost (an operator deleted them): the catch-up gives both collections
    # their aliases back and indexes them again from storage.
    pools = [n for n in _physical_indices(engine, index_prefix) if naming.is_pool(index_prefix, n)]
    for name in pools:
        engine.call("indices.delete", index=name)
    report = CatchUp(app.app.registry, overlap_ms=0).run()
    assert report.collections == 2
    assert len(report.created) == 2
    assert len(_hits(_search(app, alice, "blog", "a"))) == 2


def test_a_pooled_collection_whose_documents_went_is_indexed_again_at_once(
    pooled_app, alice, engine, index_prefix
):
    from kinto_elasticsearch.sync.rebuild import reindex_collection

    _fill(pooled_app, alice, "blog", ["a", "b"])
    registry = pooled_app.app.registry
    # Its alias and documents deleted from its pool (an operator's mistake, a lost
    # index): rebuilt at once, at the records' own versions, which the deletes preceded.
    registry.elasticsearch.index.removal.delete_collection_indices("blog", "a")
    metadata = registry.storage.get(
        resource_name="collection", parent_id="/buckets/blog", object_id="a"
    )
    result = reindex_collection(
        registry.storage, registry.elasticsearch.index, "blog", "a", metadata
    )
    assert naming.is_pool(index_prefix, result.index) and result.indexed == 2
    assert [hit[0] for hit in _hits(_search(pooled_app, alice, "blog", "a"))] == ["r1", "r2"]
    assert _pool_documents(engine, index_prefix, "blog/a") == 2


def _pool_documents(engine, index_prefix, key):
    body = {"query": {"term": {placement.COLLECTION_FIELD: key}}}
    return engine.call("count", index=naming.pool_pattern(index_prefix), body=body)["count"]


def test_the_purge_check_refreshes_a_pool_once_for_all_its_collections(
    make_app, alice, engine, index_prefix
):
    from tests.conftest import EngineSpy

    app = make_app(**{"elasticsearch.pools": "1"})
    _fill(app, alice, "blog", [f"c{i}" for i in range(6)])
    CatchUp(app.app.registry, overlap_ms=0).run()
    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)
    report = CatchUp(app.app.registry, overlap_ms=0).run(check_purges=True)
    assert report.up_to_date == 6
    refreshed = [kwargs["index"] for name, kwargs in spy.calls if name == "indices.refresh"]
    assert len([name for name in refreshed if naming.is_pool(index_prefix, name)]) == 1


def test_a_write_indexed_but_not_yet_refreshed_leaves_the_pool_with_its_collection(
    pooled_app, alice, engine, index_prefix
):
    _fill(pooled_app, alice, "blog", ["gone", "kept"])
    index_side = pooled_app.app.registry.elasticsearch.index
    where = index_side.locator.placement("blog", "gone")
    assert where.pooled
    # A late write, as a sender's bulk in flight leaves it: indexed, not yet searchable.
    body = {"query": where.collection_term()}
    source = engine.call("search", index=where.pool, body=body, routing=where.key)
    document = source["hits"]["hits"][0]["_source"]
    engine.call("index", index=where.pool, id=f"{where.key}/late", body=document,
                routing=where.key, refresh="false")  # fmt: skip
    pooled_app.delete(_collection("blog", "gone"), headers=alice)
    assert pooled_app.app.registry.elasticsearch.sender.wait_until_idle(10)
    engine.call("indices.refresh", index=where.pool)
    assert _pool_documents(engine, index_prefix, "blog/gone") == 0
    assert _pool_documents(engine, index_prefix, "blog/kept") == 2


def test_a_collection_promoted_while_written_to_loses_no_write(
    pooled_app, alice, engine, index_prefix
):
    import threading

    from kinto_elasticsearch.sync.rebuild import reindex_collection

    _fill(pooled_app, alice, "blog", ["big", "small"], records=[f"r{i}" for i in range(30)])
    registry = pooled_app.app.registry
    uri = _collection("blog", "big")
    written, done = [], threading.Event()

    def write():
        i = 0
        while not done.is_set() or i < 20:
            pooled_app.put_json(f"{uri}/records/w{i}", {"data": {"title": "late"}}, headers=alice)
            written.append(f"w{i}")
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        metadata = registry.storage.get(
            resource_name="collection", parent_id="/buckets/blog", object_id="big"
        )
        result = reindex_collection(
            registry.storage, registry.elasticsearch.index, "blog", "big", metadata, promote=True
        )
    finally:
        done.set()
        writer.join()
    alias = naming.alias_name(index_prefix, "blog", "big")
    assert sorted(engine.call("indices.get_alias", name=alias)) == [result.index]
    ids = {hit[0] for hit in _hits(_search(pooled_app, alice, "blog", "big", {"size": 500}))}
    assert ids == {f"r{i}" for i in range(30)} | set(written)
    # Its documents left the pool; the other collection's stayed.
    assert _pool_documents(engine, index_prefix, "blog/big") == 0
    assert len(_hits(_search(pooled_app, alice, "blog", "small", {"size": 100}))) == 30


def test_a_write_with_an_outdated_placement_lands_where_the_collection_lives(
    make_app, alice, engine, index_prefix
):
    from kinto_elasticsearch.sync.rebuild import reindex_collection

    promoter, writer = make_app(**POOLS), make_app(**POOLS)
    # Two processes: the writer has seen the collection pooled, the promoter moves it.
    for app in (promoter, writer):
        app.app.registry.storage = promoter.app.registry.storage
        app.app.registry.permission = promoter.app.registry.permission
    _fill(writer, alice, "blog", ["c"])
    registry = promoter.app.registry
    metadata = registry.storage.get(
        resource_name="collection", parent_id="/buckets/blog", object_id="c"
    )
    reindex_collection(
        registry.storage, registry.elasticsearch.index, "blog", "c", metadata, promote=True
    )
    # The writer's copy of the placement records is not yet MAX_AGE old: its write goes to
    # the pool, and the catch-up's overlap brings it where the collection lives.
    writer.put_json(
        f"{_collection('blog', 'c')}/records/r3", {"data": {"title": "c r3"}}, headers=alice
    )
    CatchUp(promoter.app.registry, overlap_ms=60_000).run()
    hits = _hits(_search(promoter, alice, "blog", "c"))
    assert [hit[0] for hit in hits] == ["r1", "r2", "r3"]
    # Once its copy is that old, the writer writes where the collection lives.
    writer.app.registry.elasticsearch.index.locator.records._loaded_at -= MAX_AGE
    writer.put_json(
        f"{_collection('blog', 'c')}/records/r4", {"data": {"title": "c r4"}}, headers=alice
    )
    hits = _hits(_search(promoter, alice, "blog", "c"))
    assert [hit[0] for hit in hits] == ["r1", "r2", "r3", "r4"]


def test_a_pooled_collection_past_the_size_limit_is_promoted_by_the_catch_up(
    make_app, alice, engine, index_prefix
):
    app = make_app(**POOLS, **{"elasticsearch.pool_max_records": "3"})
    _fill(app, alice, "blog", ["big", "small"], records=["r1", "r2", "r3", "r4"])
    _fill(app, alice, "blog", ["tiny"], records=["r1"])
    report = CatchUp(app.app.registry, overlap_ms=0).run()
    big, small = (naming.alias_name(index_prefix, "blog", c) for c in ("big", "small"))
    assert sorted(report.rebuilt) == sorted([big, small])
    for collection_id in ("big", "small", "tiny"):
        where = app.app.registry.elasticsearch.index.locator.placement(
            "blog", collection_id, refresh=True
        )
        assert where.pooled == (collection_id == "tiny")
    assert len(_hits(_search(app, alice, "blog", "big"))) == 4


def test_verify_finds_and_repairs_a_pooled_collection(pooled_app, alice, engine, index_prefix):
    from kinto_elasticsearch.sync import compare

    _fill(pooled_app, alice, "blog", ["a", "b"], records=["r1", "r2", "r3"])
    registry = pooled_app.app.registry
    index_side = registry.elasticsearch.index
    metadata = registry.storage.get(
        resource_name="collection", parent_id="/buckets/blog", object_id="a"
    )
    # The pools as a lossy past could have left them: r2 of a missing, a ghost record.
    for name in _physical_indices(engine, index_prefix):
        if naming.is_pool(index_prefix, name):
            engine.call("indices.delete", index=name)
    # Pools are created once per process: this one must learn they went.
    index_side.indices.internal.clear()
    for collection_id in ("a", "b"):
        index_side.admin.create_index("blog", collection_id, metadata)
    stored = {
        r["id"]: r
        for r in pooled_app.get(f"{_collection('blog', 'a')}/records", headers=alice).json["data"]
    }
    ghost = {"id": "ghost", "last_modified": 1}
    index_side.writer.write("blog", "a", records=[stored["r1"], stored["r3"], ghost])
    check = compare.verify_collection(
        registry.storage, index_side, "blog", "a", metadata, repair=True
    )
    assert (check.records, check.missing.examples, check.extra.examples) == (3, ["r2"], ["ghost"])
    again = compare.verify_collection(registry.storage, index_side, "blog", "a", metadata)
    assert not again.differs and again.documents == 3
    # The documents of a pooled collection that is gone are orphans; the pool never is.
    index_side.writer.write("blog", "b", records=[ghost])
    registry.storage.delete(resource_name="collection", parent_id="/buckets/blog", object_id="b")
    expected = {naming.alias_name(index_prefix, "blog", "a")}
    found = compare.verify_indices(
        index_side, expected, naming.prefix_pattern(index_prefix), repair=True
    )
    assert found.orphans == [] and found.orphan_aliases == []
    b_pool = index_side.locator.placement("blog", "b").pool
    assert found.orphan_documents == {b_pool: {"blog/b": 1}}
    assert _pool_documents(engine, index_prefix, "blog/b") == 0
    assert len(_hits(_search(pooled_app, alice, "blog", "a"))) == 3


@pytest.mark.parametrize("found_by", ["catch-up", "verify --repair"])
def test_an_id_too_long_for_the_pool_moves_its_collection_to_an_index_of_its_own(
    make_app, alice, engine, index_prefix, found_by
):
    from kinto_elasticsearch.sync import compare

    app = make_app(**{"elasticsearch.pools": "1"})
    registry = app.app.registry
    # 510 bytes: an index of its own takes it, the pool's "blog/long/..." _id is too long.
    long_id = "a" * 510
    _fill(app, alice, "blog", ["long"], records=["r1", long_id])
    _fill(app, alice, "blog", ["short"], records=["r1"])
    by_ids = {"query": {"ids": {"values": ["r1", long_id]}}}
    hits = _search(app, alice, "blog", "long", by_ids).json["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["r1"]
    if found_by == "catch-up":
        report = CatchUp(registry, overlap_ms=0).run()
        assert report.rebuilt == [naming.alias_name(index_prefix, "blog", "long")]
    else:
        metadata = registry.storage.get(
            resource_name="collection", parent_id="/buckets/blog", object_id="long"
        )
        check = compare.verify_collection(
            registry.storage, registry.elasticsearch.index, "blog", "long", metadata, repair=True
        )
        assert check.missing.examples == [long_id]
        again = compare.verify_collection(
            registry.storage, registry.elasticsearch.index, "blog", "long", metadata
        )
        assert not again.differs
    assert not registry.elasticsearch.index.locator.placement("blog", "long").pooled
    hits = _search(app, alice, "blog", "long", by_ids).json["hits"]["hits"]
    assert sorted(hit["_id"] for hit in hits) == sorted(["r1", long_id])
    # Its neighbour's ids are short enough for the pool: it stays there, whole.
    assert registry.elasticsearch.index.locator.placement("blog", "short").pooled
    assert len(_hits(_search(app, alice, "blog", "short", by_ids))) == 1


def test_verify_finds_and_deletes_pool_documents_left_without_their_collection(
    pooled_app, alice, engine, index_prefix
):
    from kinto_elasticsearch.sync import compare

    _fill(pooled_app, alice, "blog", ["a", "b"])
    _fill(pooled_app, alice, "news", ["a"])
    index_side = pooled_app.app.registry.elasticsearch.index
    ghost = placement.choose(index_prefix, 3, "blog", "ghost", {})
    # What a process that died between removing a deleted collection's alias and deleting
    # its documents leaves: documents of the pool's no collection has.
    for record_id in ("r1", "r2"):
        engine.call(
            "index",
            index=ghost.pool,
            id=ghost.document_id(record_id),
            body=ghost.source({"id": record_id, "last_modified": 1}),
            routing=ghost.key,
        )
    expected = {naming.alias_name(index_prefix, b, c) for b, c in [("blog", "a"), ("blog", "b")]}
    expected.add(naming.alias_name(index_prefix, "news", "a"))
    everything = naming.prefix_pattern(index_prefix)
    found = compare.verify_indices(index_side, expected, everything)
    assert found.differs and found.orphan_documents == {ghost.pool: {"blog/ghost": 2}}
    # A verify of another bucket is not about them.
    news = compare.scope_pattern(index_prefix, "news")
    assert not compare.verify_indices(index_side, expected, news).differs
    compare.verify_indices(index_side, expected, everything, repair=True)
    assert not compare.verify_indices(index_side, expected, everything).differs
    for bucket_id, collection_id in [("blog", "a"), ("blog", "b"), ("news", "a")]:
        assert len(_hits(_search(pooled_app, alice, bucket_id, collection_id))) == 2


def _conflicting_tenants(make_app, alice):
    """One pool, two collections: "numbers" maps ``price`` as a number first, then "words"
    writes a string there."""
    app = make_app(**{"elasticsearch.pools": "1"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    for collection_id, price in (("numbers", 5), ("words", "cheap")):
        app.put_json(_collection("blog", collection_id), {}, headers=alice)
        app.put_json(
            f"{_collection('blog', collection_id)}/records/r1",
            {"data": {"price": price}},
            headers=alice,
        )
    return app


def test_a_type_conflict_between_tenants_stays_with_the_tenant_that_has_it(
    make_app, alice, engine, index_prefix
):
    app = _conflicting_tenants(make_app, alice)
    # In the pool, "price" is a number (the first tenant's): the second tenant's record
    # would be indexed without it, so its collection moves to an index of its own first,
    # and a search right after the write finds the record whole.
    left_out = {"query": {"exists": {"field": "_unindexed"}}}
    assert _search(app, alice, "blog", "words", left_out).json["hits"]["hits"] == []
    body = {"query": {"term": {"price": "cheap"}}}
    assert len(_search(app, alice, "blog", "words", body).json["hits"]["hits"]) == 1
    where = app.app.registry.elasticsearch.index.locator.placement("blog", "words", refresh=True)
    assert (where.pooled, where.moved) == (False, True)
    assert CatchUp(app.app.registry, overlap_ms=0).run().rebuilt == []
    numbers = {"query": {"range": {"price": {"gte": 5}}}}
    assert len(_search(app, alice, "blog", "numbers", numbers).json["hits"]["hits"]) == 1
    assert app.app.registry.elasticsearch.index.locator.placement("blog", "numbers").pooled


def test_a_collection_the_plugin_moves_keeps_the_rules_of_its_pool(
    make_app, alice, engine, index_prefix
):
    """Moved out of its pool (at its first write) because another tenant typed a field
    first, a collection's searches answer as they would in the pool (what they allow tells
    nothing of the other tenant); an operator's promotion, or an index of its own in its
    metadata, gives it an index of its own's rules. The flag is in the placement records:
    another process sees it."""
    from kinto_elasticsearch.sync.rebuild import reindex_collection

    app = _conflicting_tenants(make_app, alice)
    registry = app.app.registry
    where = registry.elasticsearch.index.locator.placement("blog", "words", refresh=True)
    assert (where.pooled, where.moved, where.shared) == (False, True, True)
    # Refused as in the pool, in the pool's words.
    explained = {"explain": True, "query": {"match_all": {}}}
    before = _search(app, alice, "blog", "numbers", explained, status=400).json["message"]
    assert "index shared with other collections" in before
    assert _search(app, alice, "blog", "words", explained, status=400).json["message"] == before
    CatchUp(registry, overlap_ms=0).run()
    assert registry.elasticsearch.index.locator.placement("blog", "words", refresh=True).moved
    other = make_app(**{"elasticsearch.pools": "1"})
    other.app.registry.storage = registry.storage
    other.app.registry.permission = registry.permission
    assert _search(other, alice, "blog", "words", explained, status=400).json["message"] == before
    # A rebuild the plugin decides (a reshape) keeps the rules; an operator's promotion
    # gives the collection its own.
    metadata = registry.storage.get(
        resource_name="collection", parent_id="/buckets/blog", object_id="words"
    )
    reindex_collection(registry.storage, registry.elasticsearch.index, "blog", "words", metadata)
    _search(app, alice, "blog", "words", explained, status=400)
    reindex_collection(
        registry.storage, registry.elasticsearch.index, "blog", "words", metadata, promote=True
    )
    hits = _search(app, alice, "blog", "words", explained).json["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["r1"] and "_explanation" in hits[0]


def test_a_type_the_collections_own_records_gave_first_costs_no_move(
    make_app, alice, engine, index_prefix
):
    """Values that disagree with the type the collection's own first record gave a field
    (a float then an integer, text then a number) are indexed as an index of its own would
    index them: in the pool, with that type."""
    app = make_app(**{"elasticsearch.pools": "1"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(_collection("blog", "mixed"), {}, headers=alice)
    uri = f"{_collection('blog', 'mixed')}/records"
    app.put_json(f"{uri}/r1", {"data": {"price": 2.5, "code": "A1"}}, headers=alice)
    app.put_json(f"{uri}/r2", {"data": {"price": 5, "code": 7}}, headers=alice)
    locator = app.app.registry.elasticsearch.index.locator
    assert locator.placement("blog", "mixed", refresh=True).pooled
    body = {"query": {"range": {"price": {"gte": 3}}}}
    assert [h["_id"] for h in _search(app, alice, "blog", "mixed", body).json["hits"]["hits"]] == [
        "r2"
    ]
    assert CatchUp(app.app.registry, overlap_ms=0).run().rebuilt == []


def test_the_catch_up_moves_a_misfit_out_of_its_pool_before_indexing_it(
    make_app, alice, engine, index_prefix, monkeypatch
):
    app = make_app(**{"elasticsearch.pools": "1"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    for collection_id in ("numbers", "words"):
        app.put_json(_collection("blog", collection_id), {}, headers=alice)
    app.put_json(f"{_collection('blog', 'numbers')}/records/r1", {"data": {"price": 5}},
                 headers=alice)  # fmt: skip
    # The sender loses the other tenant's write (a crash): the catch-up reads it.
    sender = app.app.registry.elasticsearch.sender
    monkeypatch.setattr(sender, "submit", lambda *args, **kwargs: None)
    for record_id in ("r1", "r2"):
        uri = f"{_collection('blog', 'words')}/records/{record_id}"
        app.put_json(uri, {"data": {"price": "cheap", "size": 2}}, headers=alice)
    monkeypatch.undo()
    report = CatchUp(app.app.registry, overlap_ms=0).run()
    assert report.rebuilt == [naming.alias_name(index_prefix, "blog", "words")]
    where = app.app.registry.elasticsearch.index.locator.placement("blog", "words", refresh=True)
    assert (where.pooled, where.moved) == (False, True)
    body = {"query": {"term": {"price": "cheap"}}}
    assert len(_search(app, alice, "blog", "words", body).json["hits"]["hits"]) == 2
    left_out = {"query": {"exists": {"field": "_unindexed"}}}
    assert _search(app, alice, "blog", "words", left_out).json["hits"]["hits"] == []
    # None of its documents is in the pool.
    assert _pool_documents(engine, index_prefix, "blog/words") == 0
    assert CatchUp(app.app.registry, overlap_ms=0).run().rebuilt == []


def test_a_pool_filled_anew_moves_out_the_collection_another_tenant_typed_first(
    make_app, alice, engine, index_prefix
):
    """The pool is lost with its engine; another tenant writes first to the new one, with
    other types: the rebuild of the first tenant's collection (in place, in its pool)
    stops before its records are indexed there, and moves it out instead."""
    from kinto_elasticsearch.sync.rebuild import reindex_collection

    app = make_app(**{"elasticsearch.pools": "1"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    for collection_id in ("words", "numbers"):
        app.put_json(_collection("blog", collection_id), {}, headers=alice)
    app.put_json(f"{_collection('blog', 'words')}/records/r1", {"data": {"price": "cheap"}},
                 headers=alice)  # fmt: skip
    engine.call("indices.delete", index=naming.pool_index_name(index_prefix, 0))
    registry = app.app.registry
    app.put_json(f"{_collection('blog', 'numbers')}/records/r1", {"data": {"price": 5}},
                 headers=alice)  # fmt: skip
    metadata = registry.storage.get(
        resource_name="collection", parent_id="/buckets/blog", object_id="words"
    )
    reindex_collection(registry.storage, registry.elasticsearch.index, "blog", "words", metadata)
    where = registry.elasticsearch.index.locator.placement("blog", "words", refresh=True)
    assert (where.pooled, where.moved) == (False, True)
    body = {"query": {"term": {"price": "cheap"}}}
    assert len(_search(app, alice, "blog", "words", body).json["hits"]["hits"]) == 1
    assert _pool_documents(engine, index_prefix, "blog/words") == 0


def test_a_bucket_search_reaching_only_a_moved_collection_keeps_the_pools_rules(
    make_app, alice, engine, index_prefix
):
    """Scores and shards as a bucket of pooled collections answers them: the move shows."""
    app = make_app(**{"elasticsearch.pools": "1"})
    for bucket_id, price in (("shop", 5), ("blog", "cheap"), ("news", 7)):
        app.put_json(f"/v1/buckets/{bucket_id}", {}, headers=alice)
        app.put_json(_collection(bucket_id, "c"), {}, headers=alice)
        data = {"price": price, "title": "hello world"}
        app.put_json(f"{_collection(bucket_id, 'c')}/records/r1", {"data": data}, headers=alice)
    locator = app.app.registry.elasticsearch.index.locator
    assert locator.placement("blog", "c", refresh=True).moved
    assert locator.placement("news", "c", refresh=True).pooled
    body = {"query": {"match": {"title": "hello"}}}
    moved, pooled = (
        app.post_json(f"/v1/buckets/{bucket_id}/search", body, headers=alice).json
        for bucket_id in ("blog", "news")
    )
    assert [hit["_id"] for hit in moved["hits"]["hits"]] == ["r1"]
    assert moved["hits"]["hits"][0]["_score"] == pooled["hits"]["hits"][0]["_score"]
    assert moved["_shards"] == pooled["_shards"]


def test_a_moved_collection_whose_metadata_asks_for_an_index_of_its_own_gets_its_rules(
    make_app, alice, engine, index_prefix
):
    app = _conflicting_tenants(make_app, alice)
    locator = app.app.registry.elasticsearch.index.locator
    assert locator.placement("blog", "words", refresh=True).moved
    schema = {"properties": {"price": {"type": "keyword"}}}
    app.patch_json(_collection("blog", "words"), {"data": {"index:schema": schema}}, headers=alice)
    CatchUp(app.app.registry, overlap_ms=0).run()
    CatchUp(app.app.registry, overlap_ms=0).run()
    where = locator.placement("blog", "words", refresh=True)
    assert (where.pooled, where.shared) == (False, False)
    explained = {"explain": True, "query": {"match": {"price": "cheap"}}}
    (hit,) = _search(app, alice, "blog", "words", explained).json["hits"]["hits"]
    assert "_explanation" in hit


def test_one_tenant_cannot_exhaust_the_fields_of_its_pool(
    make_app, alice, engine, index_prefix, monkeypatch
):
    from kinto_elasticsearch.index import pools

    monkeypatch.setattr(pools, "FIELD_BUDGET", 40)
    app = make_app(**{"elasticsearch.pools": "1"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)

    def write(collection_id, data):
        app.put_json(_collection("blog", collection_id), {}, headers=alice)
        uri = f"{_collection('blog', collection_id)}/records/r1"
        app.put_json(uri, {"data": data}, headers=alice)

    write("first", {f"a{i}": i for i in range(20)})
    # Thirty more fields would take the pool past its budget: this tenant moves to an index
    # of its own before its record is indexed (whole, searchable right after the write),
    # and the pool stays open to the others.
    write("wide", {f"f{i}": i for i in range(30)})
    write("later", {"colour": "red"})
    body = {"query": {"term": {"colour": "red"}}}
    assert len(_search(app, alice, "blog", "later", body).json["hits"]["hits"]) == 1
    locator = app.app.registry.elasticsearch.index.locator
    assert not locator.placement("blog", "wide", refresh=True).pooled
    body = {"query": {"term": {"f29": 29}}}
    assert len(_search(app, alice, "blog", "wide", body).json["hits"]["hits"]) == 1
    left_out = {"query": {"exists": {"field": "_unindexed"}}}
    assert _search(app, alice, "blog", "wide", left_out).json["hits"]["hits"] == []
    assert locator.placement("blog", "first").pooled
    assert locator.placement("blog", "later").pooled


def test_a_tenant_whose_keys_are_data_is_held_to_its_share_of_the_pool(
    make_app, alice, engine, index_prefix
):
    # Keys that are data (user ids, dates...) add fields at every write: however slowly,
    # such a tenant would fill its pool's mapping for every other tenant.
    app = make_app(**{"elasticsearch.pools": "1", "elasticsearch.pool_max_fields": "30"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    for collection_id in ("scores", "later"):
        app.put_json(_collection("blog", collection_id), {}, headers=alice)

    def put(collection_id, record_id, data):
        uri = f"{_collection('blog', collection_id)}/records/{record_id}"
        app.put_json(uri, {"data": data}, headers=alice)

    put("scores", "r1", {"by_user": {f"u{i}": i for i in range(20)}})
    pool = naming.pool_index_name(index_prefix, 0)
    meta = engine.call("indices.get_mapping", index=pool)[pool]["mappings"]["_meta"]
    assert placement.fields_added(meta) == {"blog/scores": 21}
    # Past its share: the tenant moves to an index of its own before the record is
    # indexed, and leaves its share (its fields stay mapped in the pool).
    put("scores", "r2", {"by_user": {f"u{i}": i for i in range(20, 40)}})
    put("later", "r1", {f"f{i}": "x" for i in range(12)})
    meta = engine.call("indices.get_mapping", index=pool)[pool]["mappings"]["_meta"]
    # "f0" is a text field with a keyword sub-field: two fields each.
    assert placement.fields_added(meta) == {"blog/later": 24}

    def found(collection_id, query):
        return _search(app, alice, "blog", collection_id, {"query": query}).json["hits"]["hits"]

    for collection_id in ("scores", "later"):
        assert found(collection_id, {"exists": {"field": "_unindexed"}}) == []
    assert len(found("scores", {"range": {"by_user.u39": {"gte": 39}}})) == 1
    assert len(found("later", {"term": {"f11": "x"}})) == 1
    index_side = app.app.registry.elasticsearch.index
    assert not index_side.locator.placement("blog", "scores", refresh=True).pooled
    assert index_side.locator.placement("blog", "later").pooled
    app.delete(_collection("blog", "later"), headers=alice)
    meta = engine.call("indices.get_mapping", index=pool)[pool]["mappings"]["_meta"]
    assert placement.fields_added(meta) == {}


def test_private_and_excluded_fields_in_a_pool(pooled_app, alice):
    reader = auth("reader")
    reader_id = pooled_app.get("/v1/", headers=reader).json["user"]["id"]
    pooled_app.put_json("/v1/buckets/hr", {}, headers=alice)
    metadata = {"index:private_fields": ["salary"], "index:exclude_fields": ["notes"]}
    pooled_app.put_json(
        _collection("hr", "staff"),
        {"data": metadata, "permissions": {"read": [reader_id]}},
        headers=alice,
    )
    assert pooled_app.app.registry.elasticsearch.index.locator.placement("hr", "staff").pooled
    person = {"name": "ann", "salary": 5000, "notes": "secret words"}
    pooled_app.put_json(
        f"{_collection('hr', 'staff')}/records/p1", {"data": person}, headers=alice
    )
    (hit,) = _search(pooled_app, reader, "hr", "staff").json["hits"]["hits"]
    assert set(hit["_source"]) == {"id", "name", "last_modified"}
    body = {"query": {"range": {"salary": {"gte": 1}}}}
    _search(pooled_app, reader, "hr", "staff", body, status=400)
    assert len(_search(pooled_app, alice, "hr", "staff", body).json["hits"]["hits"]) == 1
    words = {"query": {"match": {"notes": "secret"}}}
    assert _search(pooled_app, alice, "hr", "staff", words).json["hits"]["hits"] == []


def test_changing_the_number_of_pools_moves_no_collection(make_app, alice, engine, index_prefix):
    before = make_app(**POOLS)
    _fill(before, alice, "blog", [f"c{i}" for i in range(6)])
    where = {
        c: before.app.registry.elasticsearch.index.locator.placement("blog", c).pool
        for c in ("c0", "c5")
    }
    after = make_app(**{"elasticsearch.pools": "7"})
    after.app.registry.storage = before.app.registry.storage
    after.app.registry.permission = before.app.registry.permission
    for collection_id in ("c0", "c5"):
        uri = f"{_collection('blog', collection_id)}/records/r3"
        after.put_json(uri, {"data": {"title": "more"}}, headers=alice)
        assert len(_hits(_search(after, alice, "blog", collection_id))) == 3
        # The layout recorded first is the hash's: no alias needed to remember it.
        locator = after.app.registry.elasticsearch.index.locator
        assert locator.placement("blog", collection_id).pool == where[collection_id]
        assert _pool_documents(engine, index_prefix, f"blog/{collection_id}") == 3
    report = CatchUp(after.app.registry, overlap_ms=0).run()
    assert report.rebuilt == [] and report.created == []


THOUSAND = 1000


def test_a_thousand_collections_use_a_few_shards_and_answer_their_own_records(
    make_app, alice, engine, index_prefix
):
    """A thousand collections written to storage (as a Kinto that ran without the plugin
    would hold them), indexed by one catch-up pass, two records each with the same ids in
    every collection; then each one searched on its own, through the plugin."""
    app = make_app(**{"elasticsearch.pools": "4", "elasticsearch.pool_number_of_shards": "2"})
    app.put_json("/v1/buckets/many", {}, headers=alice)
    storage = app.app.registry.storage
    ids = [f"c{i:04}" for i in range(THOUSAND)]
    for collection_id in ids:
        storage.create(
            resource_name="collection", parent_id="/buckets/many", obj={"id": collection_id}
        )
        for record_id in ("r1", "r2"):
            storage.create(
                resource_name="record",
                parent_id=f"/buckets/many/collections/{collection_id}",
                obj={"id": record_id, "title": f"{collection_id} {record_id}"},
            )
    report = CatchUp(app.app.registry, overlap_ms=0).run()
    assert len(report.created) == THOUSAND
    shards = engine.call("cat.shards", index=f"{index_prefix}.*", format="json")
    primaries = [s for s in shards if s["prirep"] == "p" and not s["index"].endswith(".-sync")]
    assert len(primaries) <= 8
    for collection_id in ids:
        hits = _hits(_search(app, alice, "many", collection_id))
        assert [(h[0], h[1]) for h in hits] == [
            ("r1", f"{collection_id} r1"),
            ("r2", f"{collection_id} r2"),
        ], collection_id


def test_the_catch_up_removes_a_pooled_collection_deleted_behind_its_back(
    pooled_app, alice, engine, index_prefix
):
    _fill(pooled_app, alice, "blog", ["gone", "kept"])
    storage = pooled_app.app.registry.storage
    storage.delete(resource_name="collection", parent_id="/buckets/blog", object_id="gone")
    report = CatchUp(pooled_app.app.registry, overlap_ms=0).run()
    assert report.removed == [naming.alias_name(index_prefix, "blog", "gone")]
    assert _pool_documents(engine, index_prefix, "blog/gone") == 0
    assert len(_hits(_search(pooled_app, alice, "blog", "kept"))) == 2


def test_a_process_that_has_not_seen_a_promotion_still_searches_the_collection(
    make_app, alice, index_prefix
):
    from kinto_elasticsearch.sync.rebuild import reindex_collection

    promoter, reader = make_app(**POOLS), make_app(**POOLS)
    for app in (promoter, reader):
        app.app.registry.storage = promoter.app.registry.storage
        app.app.registry.permission = promoter.app.registry.permission
    _fill(reader, alice, "blog", ["c"])
    bob = reader.get("/v1/", headers=auth("bob")).json["user"]["id"]
    uri = f"{_collection('blog', 'c')}/records/r2"
    reader.patch_json(uri, {"permissions": {"read": [bob]}}, headers=alice)
    assert reader.app.registry.elasticsearch.index.locator.placement(
        "blog", "c"
    ).pooled  # Cached, pooled.
    registry = promoter.app.registry
    metadata = registry.storage.get(
        resource_name="collection", parent_id="/buckets/blog", object_id="c"
    )
    reindex_collection(
        registry.storage, registry.elasticsearch.index, "blog", "c", metadata, promote=True
    )
    locator = reader.app.registry.elasticsearch.index.locator
    assert locator.placement("blog", "c").pooled  # Still, for a while (its records' copy).
    # Searches it where it lives once its copy of the placement records is MAX_AGE old.
    locator.records._loaded_at -= MAX_AGE
    assert not locator.placement("blog", "c").pooled
    assert [h[0] for h in _hits(_search(reader, alice, "blog", "c"))] == ["r1", "r2"]
    ids = {"query": {"ids": {"values": ["r1"]}}}
    assert [h[0] for h in _hits(_search(reader, alice, "blog", "c", ids))] == ["r1"]
    assert [h[0] for h in _hits(_search(reader, auth("bob"), "blog", "c"))] == ["r2"]


# A collection's index metadata asking for an index of its own, and none.
OWN_INDEX = {"index:schema": {"properties": {"title": {"type": "keyword"}}}}


def _race_creates(first, second, bucket_id, collection_id):
    """Two processes create the collection's index at once, with different views of its
    metadata (``(index side, metadata)`` each): both look the alias up and find nothing,
    then ``first`` attaches it, then ``second`` does. Returns what each create returned."""
    import threading

    looked_up = threading.Barrier(2, timeout=10)
    first_done = threading.Event()
    results, errors = {}, []

    def pause_after_first_look_up(side, is_second):
        real = side.locator.look_up
        paused = []

        def look_up(alias, *args, **kwargs):
            found = real(alias, *args, **kwargs)
            if not paused:
                paused.append(alias)
                looked_up.wait()
                if is_second:
                    first_done.wait(10)
            return found

        side.locator.look_up = look_up

    def create(name, side, metadata):
        try:
            results[name] = side.admin.create_index(bucket_id, collection_id, metadata)
        except Exception as exc:  # Reported below: a thread's failure must fail the test.
            errors.append(exc)
        finally:
            if name == "first":
                first_done.set()

    threads = []
    for name, (side, metadata) in (("first", first), ("second", second)):
        pause_after_first_look_up(side, name == "second")
        threads.append(threading.Thread(target=create, args=(name, side, metadata)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


@pytest.mark.parametrize("pooled_first", [True, False], ids=["pooled-first", "dedicated-first"])
def test_a_pooled_and_a_dedicated_create_racing_leave_the_alias_on_one_index(
    make_app, engine, index_prefix, pooled_first
):
    """The catch-up or the sender creating a collection's index from metadata without a
    mapping (pooled) while the collection listener, or another process, creates it from
    metadata that asks for an index of its own: the alias must end up on one index, and
    writes of both must go through."""
    from kinto_elasticsearch.sync.apply import apply_changes

    sides = [make_app(**POOLS).app.registry.elasticsearch.index for _ in range(2)]
    pooled, dedicated = (sides[0], {}), (sides[1], OWN_INDEX)
    first, second = (pooled, dedicated) if pooled_first else (dedicated, pooled)
    _race_creates(first, second, "blog", "c")

    alias = naming.alias_name(index_prefix, "blog", "c")
    behind = sorted(engine.call("indices.get_alias", name=alias))
    assert len(behind) == 1, f"{alias} is on {behind}"
    # A process whose copy of the placement records is younger than MAX_AGE may still write
    # to the hash pool (the catch-up's overlap brings such writes where the collection
    # lives: the test above); once its copy is that old, it writes where the collection is.
    for side, _ in (pooled, dedicated):
        if side.locator.records._loaded_at is not None:
            side.locator.records._loaded_at -= MAX_AGE
    for i, (side, metadata) in enumerate((pooled, dedicated)):
        record = {"id": f"r{i}", "last_modified": 10 + i, "title": "t"}
        report = apply_changes(side, "blog", "c", [record], metadata, refresh=True)
        assert report.failed == [] and report.indexed == [f"r{i}"]
        assert side.locator.placement("blog", "c", metadata, refresh=True).pool == (
            behind[0] if naming.is_pool(index_prefix, behind[0]) else None
        )
    assert sorted(indexed(engine, index_prefix, "blog", "c")) == ["r0", "r1"]
