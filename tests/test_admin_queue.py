"""Collection writes answer without waiting on the engine's administration, which is done
after the response; read-your-writes waits for it, bounded (``sync.admin_queue``)."""

import time

from kinto_elasticsearch.index import naming
from tests.conftest import wait_until
from tests.servers import FaultProxy

COLLECTION = "/v1/buckets/b/collections/c"
POOLS = {"elasticsearch.pools": "2"}


def _slow_creates(seconds):
    # An index creation is a PUT of the index itself (no ``_`` part in the path).
    return lambda method, path, body: (
        seconds if method == "PUT" and "/_" not in path and path.count("/") == 1 else None
    )


def test_a_collection_create_does_not_wait_for_a_slow_index_creation(
    make_app, alice, engine_server, engine, index_prefix
):
    proxy = FaultProxy(engine_server.url)
    app = make_app(
        **{"elasticsearch.hosts": proxy.url, "elasticsearch.force_refresh": "false",
           "elasticsearch.pools": "0"}
    )  # fmt: skip
    try:
        app.put_json("/v1/buckets/b", {}, headers=alice)
        proxy.answer = _slow_creates(3.0)
        started = time.monotonic()
        app.put_json(COLLECTION, {"data": {"schema": {"type": "object"}}}, headers=alice)
        app.put_json(f"{COLLECTION}/records/r1", {"data": {"title": "a"}}, headers=alice)
        elapsed = time.monotonic() - started
        assert elapsed < 1.5, elapsed
        alias = naming.alias_name(index_prefix, "b", "c")
        assert not engine.call("indices.exists_alias", name=alias)
        # After the response: the index, then the record written right after the create.
        assert app.app.registry.elasticsearch.sender.wait_until_idle(timeout=20)
        engine.call("indices.refresh", index=alias)
        hits = engine.call("search", index=alias, body={"query": {"match_all": {}}})
        assert [hit["_source"]["title"] for hit in hits["hits"]["hits"]] == ["a"]
    finally:
        proxy.close()


def test_read_your_writes_waits_for_the_create_but_not_for_ever(
    make_app, alice, engine_server, engine, index_prefix
):
    proxy = FaultProxy(engine_server.url)
    app = make_app(
        **{"elasticsearch.hosts": proxy.url, "elasticsearch.request_timeout_seconds": "1",
           "elasticsearch.pools": "0"}
    )  # fmt: skip
    try:
        app.put_json("/v1/buckets/b", {}, headers=alice)
        proxy.answer = _slow_creates(6.0)
        started = time.monotonic()
        app.put_json(COLLECTION, {}, headers=alice)
        elapsed = time.monotonic() - started
        # At most request_timeout + 1 (here the creation's own timeout), then it answers.
        assert elapsed < 3.0, elapsed
        proxy.answer = lambda method, path, body: None
    finally:
        proxy.close()


def test_a_collection_create_with_the_engine_stopped_answers_at_once_and_indexes_later(
    make_app, alice, blackhole
):
    app = make_app(
        **{"elasticsearch.hosts": blackhole, "elasticsearch.force_refresh": "false",
           "elasticsearch.request_timeout_seconds": "1"}
    )  # fmt: skip
    app.put_json("/v1/buckets/b", {}, headers=alice)
    started = time.monotonic()
    app.put_json(COLLECTION, {"data": {"schema": {"type": "object"}}}, headers=alice)
    assert time.monotonic() - started < 0.5
    # Validating an ``index:schema`` waits inside the transaction, the request timeout in all.
    started = time.monotonic()
    app.put_json(f"{COLLECTION}2", {"data": {"index:schema": {"properties": {}}}}, headers=alice)
    assert time.monotonic() - started < 1.8


def test_a_pooled_collection_gaining_a_schema_is_searched_with_it_right_after_the_write(
    make_app, alice
):
    app = make_app(**POOLS)
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {"code": "AB-12"}}, headers=alice)
    schema = {"properties": {"code": {"type": "keyword"}}}
    app.patch_json(COLLECTION, {"data": {"index:schema": schema}}, headers=alice)
    # Right after the write (read-your-writes): the new mapping, an index of its own.
    body = {"query": {"term": {"code": "AB-12"}}}
    hits = app.post_json(f"{COLLECTION}/search", body, headers=alice).json["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["r1"]


def test_a_create_then_a_record_then_a_search_with_read_your_writes(make_app, alice):
    app = make_app(**POOLS)
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {"title": "a"}}, headers=alice)
    hits = app.post_json(f"{COLLECTION}/search", {}, headers=alice).json["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["r1"]


def test_a_deleted_collection_loses_its_documents_after_the_response(
    make_app, alice, engine, index_prefix
):
    app = make_app(**{**POOLS, "elasticsearch.force_refresh": "false"})
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {"title": "a"}}, headers=alice)
    sender = app.app.registry.elasticsearch.sender
    assert sender.wait_until_idle(timeout=10)
    app.delete(COLLECTION, headers=alice)
    assert sender.wait_until_idle(timeout=10)
    pool_docs = engine.call(
        "count", index=naming.pool_pattern(index_prefix), body={"query": {"match_all": {}}}
    )
    assert pool_docs["count"] == 0
    wait_until(
        lambda: not engine.call("indices.exists_alias", name=f"{index_prefix}.b.c"),
        what="the collection's alias gone",
    )
