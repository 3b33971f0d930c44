import logging

import pytest

from kinto_elasticsearch.index import naming, placement
from tests.conftest import EngineSpy, auth, indexed, present_collections

COLLECTION = "/v1/buckets/blog/collections/articles"
C_URI = "/v1/buckets/b/collections/c"


@pytest.fixture
def blog(app, alice):
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    return app


def test_created_and_updated_records_are_indexed_with_their_version(
    blog, alice, engine, index_prefix
):
    created = blog.post_json(f"{COLLECTION}/records", {"data": {"title": "a"}}, headers=alice)
    record = created.json["data"]
    docs = indexed(engine, index_prefix, "blog", "articles")
    assert docs[record["id"]] == (record["last_modified"], record)

    updated = blog.patch_json(
        f"{COLLECTION}/records/{record['id']}", {"data": {"title": "b"}}, headers=alice
    ).json["data"]
    docs = indexed(engine, index_prefix, "blog", "articles")
    assert docs[record["id"]] == (updated["last_modified"], updated)


def test_deleted_records_are_unindexed(blog, alice, engine, index_prefix):
    blog.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    blog.put_json(f"{COLLECTION}/records/r2", {"data": {}}, headers=alice)
    blog.delete(f"{COLLECTION}/records/r1", headers=alice)
    assert set(indexed(engine, index_prefix, "blog", "articles")) == {"r2"}
    # Deleting every record of the collection at once (one event, many tombstones).
    blog.delete(f"{COLLECTION}/records", headers=alice)
    assert indexed(engine, index_prefix, "blog", "articles") == {}


def test_a_batch_is_one_bulk_request(blog, alice, engine, index_prefix):
    spy = EngineSpy(blog.app.registry.elasticsearch.index.engine)
    requests = [
        {"method": "PUT", "path": f"{COLLECTION}/records/r{i}", "body": {"data": {"i": i}}}
        for i in range(25)
    ]
    blog.post_json("/v1/batch", {"defaults": {"headers": alice}, "requests": requests})
    assert spy.count("bulk") == 1
    assert len(indexed(engine, index_prefix, "blog", "articles")) == 25


def test_an_older_version_never_overwrites_a_newer_one(blog, alice, engine, index_prefix):
    record = blog.put_json(f"{COLLECTION}/records/r1", {"data": {"v": 2}}, headers=alice).json[
        "data"
    ]
    stale = {**record, "v": 1, "last_modified": record["last_modified"] - 1}
    report = blog.app.registry.elasticsearch.index.writer.write(
        "blog", "articles", records=[stale]
    )
    assert report.superseded == ["r1"] and report.failed == []
    assert indexed(engine, index_prefix, "blog", "articles")["r1"][1]["v"] == 2
    # A late delete is superseded too.
    report = blog.app.registry.elasticsearch.index.writer.write(
        "blog", "articles", tombstones=[stale]
    )
    assert report.superseded == ["r1"]
    assert "r1" in indexed(engine, index_prefix, "blog", "articles")


def test_deleting_a_record_the_index_never_had_is_not_an_error(
    blog, alice, engine, index_prefix, metrics, caplog
):
    blog.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    index_side = blog.app.registry.elasticsearch.index
    index_side.removal.delete_collection_indices("blog", "articles")
    index_side.admin.create_index("blog", "articles", {})
    with caplog.at_level(logging.ERROR, logger="kinto_elasticsearch"):
        blog.delete(f"{COLLECTION}/records/r1", headers=alice)
    assert metrics.counts.get("elasticsearch.documents.failed", 0) == 0
    assert metrics.counts["elasticsearch.documents.deleted"] == 1
    assert not caplog.records


def test_indexing_is_measured(blog, alice, metrics):
    blog.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    blog.put_json(f"{COLLECTION}/records/r2", {"data": {}}, headers=alice)
    assert metrics.counts["elasticsearch.documents.indexed"] == 2
    assert len(metrics.timed["elasticsearch.bulk.seconds"]) == 2


def test_a_value_the_mapping_cannot_hold_is_left_out_logged_and_counted(
    blog, alice, metrics, caplog, engine, index_prefix
):
    blog.put_json(f"{COLLECTION}/records/r1", {"data": {"n": 1}}, headers=alice)
    with caplog.at_level(logging.WARNING, logger="kinto_elasticsearch"):
        # "n" is mapped as a number now: a string that is not one cannot be searched.
        blog.put_json(f"{COLLECTION}/records/r2", {"data": {"n": "not a number"}}, headers=alice)
    assert metrics.counts["elasticsearch.documents.partial"] == 1
    assert "elasticsearch.documents.failed" not in metrics.counts
    assert f"{COLLECTION[3:]}/records/r2 without n" in caplog.text
    version, source = indexed(engine, index_prefix, "blog", "articles")["r2"]
    assert source["_unindexed"] == ["n"]
    found = blog.post_json(
        f"{COLLECTION}/search", {"query": {"term": {"_unindexed": "n"}}}, headers=alice
    ).json["hits"]["hits"]
    assert [hit["_id"] for hit in found] == ["r2"]


def test_a_collection_gets_its_index_with_its_mapping(app, alice, engine, index_prefix):
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(
        COLLECTION,
        {"data": {"index:schema": {"properties": {"published": {"type": "date"}}}}},
        headers=alice,
    )
    alias = naming.alias_name(index_prefix, "blog", "articles")
    mapping = next(iter(engine.call("indices.get_mapping", index=alias).values()))["mappings"]
    assert mapping["properties"]["published"] == {"type": "date"}
    assert mapping["properties"]["id"] == {"type": "keyword"}


def test_a_metadata_change_updates_the_mapping(make_app, alice, engine, index_prefix):
    # In the collection's own index, at once; a pooled collection moves to one instead
    # (``test_pools``).
    blog = make_app(**{"elasticsearch.pools": "0"})
    blog.put_json("/v1/buckets/blog", {}, headers=alice)
    blog.put_json(COLLECTION, {}, headers=alice)
    blog.patch_json(
        COLLECTION,
        {"data": {"index:schema": {"properties": {"score": {"type": "float"}}}}},
        headers=alice,
    )
    alias = naming.alias_name(index_prefix, "blog", "articles")
    mapping = next(iter(engine.call("indices.get_mapping", index=alias).values()))["mappings"]
    assert mapping["properties"]["score"] == {"type": "float"}


def test_a_deleted_collection_loses_its_index(blog, alice, engine, index_prefix):
    blog.put_json("/v1/buckets/blog/collections/other", {}, headers=alice)
    blog.put_json("/v1/buckets/blog/collections/other/records/o1", {"data": {}}, headers=alice)
    blog.put_json(f"{COLLECTION}/records/r1", {"data": {"title": "gone"}}, headers=alice)
    assert present_collections(engine, index_prefix) == {"blog/other", "blog/articles"}
    blog.delete(COLLECTION, headers=alice)
    assert blog.app.registry.elasticsearch.sender.wait_until_idle(timeout=20)
    remaining = engine.call("indices.get_alias", index=f"{index_prefix}.*")
    # The plugin's own checkpoints index stays, and the other collection's index or pool.
    assert present_collections(engine, index_prefix) == {"blog/other"}
    deleted = naming.alias_name(index_prefix, "blog", "articles")
    assert not [name for name in remaining if name.startswith(f"{deleted}.")]
    # Nothing of it is left anywhere, in a pool or not.
    body = {"query": {"term": {"id": "r1"}}}
    assert engine.call("count", index=f"{index_prefix}.*", body=body)["count"] == 0


def test_deleting_a_bucket_deletes_exactly_its_indices(app, alice, engine, index_prefix):
    buckets = ["a", "ab", "A", "a-b", "a_b"]
    for bucket_id in buckets:
        app.put_json(f"/v1/buckets/{bucket_id}", {}, headers=alice)
        app.put_json(f"/v1/buckets/{bucket_id}/collections/c", {}, headers=alice)
        app.put_json(f"/v1/buckets/{bucket_id}/collections/c/records/r", {"data": {}},
                     headers=alice)  # fmt: skip
    # One bucket with an index of its own, and one in pools.
    schema = {"index:schema": {"properties": {"n": {"type": "integer"}}}}
    app.put_json("/v1/buckets/a/collections/own", {"data": schema}, headers=alice)
    app.put_json("/v1/buckets/a/collections/own/records/r", {"data": {}}, headers=alice)
    assert present_collections(engine, index_prefix) == {f"{b}/c" for b in buckets} | {"a/own"}
    app.delete("/v1/buckets/a", headers=alice)
    assert app.app.registry.elasticsearch.sender.wait_until_idle(timeout=20)
    assert present_collections(engine, index_prefix) == {f"{b}/c" for b in buckets if b != "a"}


def test_flush_deletes_only_the_plugins_indices(make_app, alice, engine, index_prefix):
    app = make_app(**{"flush_endpoint_enabled": "true"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    outsider = f"{index_prefix}-other.b.c.0"
    engine.call("indices.create", index=outsider)
    try:
        app.post("/v1/__flush__", status=202)
        assert engine.call("indices.get_alias", index=f"{index_prefix}.*") == {}
        assert engine.call("indices.get_alias", index=outsider) != {}
    finally:
        engine.call("indices.delete", index=outsider)


def test_records_of_a_collection_without_index_are_indexed_on_their_next_change(
    blog, alice, engine, index_prefix
):
    """As for a collection that existed before the plugin was enabled."""
    blog.patch_json(
        COLLECTION,
        {"data": {"index:schema": {"properties": {"n": {"type": "keyword"}}}}},
        headers=alice,
    )
    blog.app.registry.elasticsearch.index.removal.delete_collection_indices("blog", "articles")
    blog.put_json(f"{COLLECTION}/records/r1", {"data": {"n": 5}}, headers=alice)
    assert set(indexed(engine, index_prefix, "blog", "articles")) == {"r1"}
    alias = naming.alias_name(index_prefix, "blog", "articles")
    mapping = next(iter(engine.call("indices.get_mapping", index=alias).values()))["mappings"]
    # The index was created from the collection's metadata, not by dynamic mapping.
    assert mapping["properties"]["n"] == {"type": "keyword"}


def test_resources_setting_limits_what_is_indexed(make_app, alice, engine, index_prefix):
    app = make_app(**{"elasticsearch.resources": "/buckets/blog/collections/articles"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    app.put_json("/v1/buckets/blog/collections/drafts", {}, headers=alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    app.put_json("/v1/buckets/blog/collections/drafts/records/r1", {"data": {}}, headers=alice)
    assert app.app.registry.elasticsearch.sender.wait_until_idle(timeout=20)
    assert present_collections(engine, index_prefix) == {"blog/articles"}


def test_an_index_schema_the_engine_refuses_is_a_400(blog, alice):
    response = blog.patch_json(
        COLLECTION,
        {"data": {"index:schema": {"properties": {"x": {"type": "no-such-type"}}}}},
        headers=alice,
        status=400,
    )
    assert response.json["errno"] == 107
    assert "no-such-type" in response.json["message"]


def test_an_index_schema_that_is_not_an_object_is_a_400(blog, alice):
    response = blog.patch_json(
        COLLECTION, {"data": {"index:schema": ["x"]}}, headers=alice, status=400
    )
    assert response.json["details"][0]["name"] == "index:schema"


def test_writes_succeed_while_the_engine_is_down(make_app, alice):
    app = make_app(**{"elasticsearch.hosts": "http://127.0.0.1:1"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    # The mapping cannot be checked: the collection is stored, the index catches up later.
    app.put_json(
        COLLECTION,
        {"data": {"index:schema": {"properties": {"x": {"type": "no-such-type"}}}}},
        headers=alice,
    )
    app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    app.delete(f"{COLLECTION}/records/r1", headers=alice)
    app.delete("/v1/buckets/blog", headers=alice)


def test_other_users_writes_are_indexed_too(blog, alice, engine, index_prefix):
    blog.patch_json(
        COLLECTION, {"permissions": {"record:create": ["system.Authenticated"]}}, headers=alice
    )
    blog.post_json(f"{COLLECTION}/records", {"data": {"by": "bob"}}, headers=auth("bob"))
    docs = indexed(engine, index_prefix, "blog", "articles").values()
    assert [doc["by"] for _, doc in docs] == ["bob"]


def test_an_index_auto_created_under_the_alias_name_is_replaced(blog, alice, engine, index_prefix):
    index_side = blog.app.registry.elasticsearch.index
    index_side.removal.delete_collection_indices("blog", "articles")
    # What a delete sent to a missing alias by another client leaves behind.
    engine.call("indices.create", index=naming.alias_name(index_prefix, "blog", "articles"))
    blog.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    assert set(indexed(engine, index_prefix, "blog", "articles")) == {"r1"}


def test_a_delete_never_auto_creates_an_index_under_the_alias_name(
    blog, alice, engine, index_prefix
):
    blog.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    index_side = blog.app.registry.elasticsearch.index
    index_side.removal.delete_collection_indices("blog", "articles")
    # The pool itself lost too (an engine restarted empty), behind the process's back.
    pool = index_side.locator.placement("blog", "articles").pool
    engine.call("indices.delete", index=pool)
    blog.delete(f"{COLLECTION}/records/r1", headers=alice)
    # The delete is kept as a tombstone, in a proper index of the collection (its pool,
    # behind its write alias), never one the engine would auto-create under the alias's name
    # or the pool's.
    alias = naming.alias_name(index_prefix, "blog", "articles")
    listed = engine.call("indices.get_alias", index=f"{index_prefix}.*")
    assert alias not in listed
    assert pool in listed and naming.pool_write_alias(pool) in listed[pool]["aliases"]
    mapping = engine.call("indices.get_mapping", index=pool)[pool]["mappings"]
    assert mapping["properties"][placement.COLLECTION_FIELD] == {"type": "keyword"}
    assert indexed(engine, index_prefix, "blog", "articles") == {}


@pytest.mark.parametrize("force_refresh,expected", [("true", "true"), ("false", None)])
def test_force_refresh_makes_each_write_visible_at_once(make_app, alice, force_refresh, expected):
    app = make_app(**{"elasticsearch.force_refresh": force_refresh})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {}}, headers=alice)
    # Without read-your-writes the request does not wait for the bulk.
    assert app.app.registry.elasticsearch.sender.wait_until_idle(timeout=10)
    [(_, bulk)] = [call for call in spy.calls if call[0] == "bulk"]
    assert bulk.get("refresh") == expected


def test_mapping_conflicts_and_long_ids_do_not_keep_the_others_out(
    app, alice, engine, index_prefix, metrics, caplog
):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(
        C_URI,
        {"data": {"index:schema": {"properties": {"n": {"type": "long"}}}}},
        headers=alice,
    )
    long_id = "x" * 600
    requests = [
        {"method": "PUT", "path": f"{C_URI}/records/good1", "body": {"data": {"n": 1}}},
        {"method": "PUT", "path": f"{C_URI}/records/bad", "body": {"data": {"n": "abc"}}},
        {"method": "PUT", "path": f"{C_URI}/records/{long_id}", "body": {"data": {}}},
        {"method": "PUT", "path": f"{C_URI}/records/good2", "body": {"data": {"n": 2}}},
    ]
    responses = app.post_json(
        "/v1/batch", {"defaults": {"headers": alice}, "requests": requests}
    ).json["responses"]
    assert [r["status"] for r in responses] == [201, 201, 201, 201]
    documents = indexed(engine, index_prefix, "b", "c")
    # "bad" is indexed without the value its field cannot hold; only the id no engine
    # takes keeps a record out.
    assert set(documents) == {"good1", "good2", "bad"}
    assert documents["bad"][1]["_unindexed"] == ["n"]
    assert metrics.counts["elasticsearch.documents.failed"] == 1
    assert metrics.counts["elasticsearch.documents.partial"] == 1
    assert "/buckets/b/collections/c/records/bad without n" in caplog.text
    assert "longer than 512 bytes" in caplog.text


def test_a_record_too_large_for_the_engine_is_indexed_in_minimal_form(
    make_app, alice, engine_server, engine, index_prefix, metrics_factory, caplog
):
    from tests.servers import body_size_limit

    proxy = body_size_limit(engine_server.url, limit=20_000)
    try:
        app = make_app(**{"elasticsearch.hosts": proxy.url})
        metrics = metrics_factory(app)
        app.put_json("/v1/buckets/b", {}, headers=alice)
        app.put_json(C_URI, {}, headers=alice)
        requests = [
            {"method": "PUT", "path": f"{C_URI}/records/small{i}", "body": {"data": {"i": i}}}
            for i in range(4)
        ]
        requests.insert(2, {"method": "PUT", "path": f"{C_URI}/records/huge",
                            "body": {"data": {"text": "x" * 50_000}}})  # fmt: skip
        responses = app.post_json(
            "/v1/batch", {"defaults": {"headers": alice}, "requests": requests}
        ).json["responses"]
        assert [r["status"] for r in responses] == [201] * 5
    finally:
        proxy.close()
    assert proxy.answered >= 2  # The whole bulk, then the huge record alone.
    documents = indexed(engine, index_prefix, "b", "c")
    assert set(documents) == {f"small{i}" for i in range(4)} | {"huge"}
    # The huge one in its minimal form: found by id, its text not searchable.
    assert documents["huge"][1]["_unindexed"] == ["text"]
    assert metrics.counts["elasticsearch.documents.partial"] == 1
    assert "/buckets/b/collections/c/records/huge without text" in caplog.text
    assert "too large" in caplog.text


OWN_SCHEMA = {"index:schema": {"properties": {"n": {"type": "integer"}}}}


@pytest.mark.parametrize("data", [{}, OWN_SCHEMA], ids=["pooled", "dedicated"])
def test_a_collection_created_again_after_a_delete_the_engine_missed_starts_empty(
    blog, alice, engine, index_prefix, data
):
    """A collection deleted behind the plugin (its checkpoint still in the engine) and
    created again has none of the earlier one's documents; a collection whose id the engine
    holds nothing of is created without a replacement's requests (which a pooled collection
    would otherwise pay at every create)."""
    import transaction

    registry = blog.app.registry
    plugin = registry.elasticsearch
    uri = "/v1/buckets/blog/collections/again"
    blog.put_json(uri, {"data": data}, headers=alice)
    blog.put_json(f"{uri}/records/old", {"data": {"n": 1}}, headers=alice)
    assert plugin.sender.wait_until_idle(timeout=30)
    assert "old" in indexed(engine, index_prefix, "blog", "again")
    # Gone from storage only, as when the engine missed the delete.
    registry.storage.delete_all(
        resource_name="record", parent_id="/buckets/blog/collections/again", with_deleted=False
    )
    registry.storage.delete(resource_name="collection", parent_id="/buckets/blog",
                            object_id="again")  # fmt: skip
    transaction.commit()
    blog.put_json(uri, {"data": data}, headers=alice)
    assert plugin.sender.wait_until_idle(timeout=30)
    assert indexed(engine, index_prefix, "blog", "again") == {}
    spy = EngineSpy(plugin.index.engine)
    blog.put_json("/v1/buckets/blog/collections/fresh", {"data": data}, headers=alice)
    assert plugin.sender.wait_until_idle(timeout=30)
    assert spy.count("delete_by_query") == 0
    if not data:  # A pooled collection's create: a multi-get and its checkpoint only.
        assert spy.count("indices.get_alias") == 0
