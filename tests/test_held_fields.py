"""Which fields a pooled collection's records hold is asked once, then cached until the
collection is written (``search/owned.py``): a field the tenant writes is searchable at once,
one another tenant writes never is, and a cached answer is the same as a fresh one."""

import pytest

from kinto_elasticsearch.search import owned
from tests.conftest import EngineSpy, wait_until
from tests.test_tenants import ALICE, BOB, OTHER, TENANT, _make


def _presence_requests(spy):
    return sum(
        1
        for name, kwargs in spy.calls
        if name == "search" and "present" in (kwargs.get("body") or {}).get("aggs", {})
    )


@pytest.fixture
def settled(monkeypatch):
    # The tests' writes wait for the engine's refresh (``force_refresh``): settled at once.
    monkeypatch.setattr(owned, "SETTLE_MS", 0)


def _term(app, field, value):
    body = {"query": {"term": {field: value}}}
    response = app.post_json(f"{TENANT}/search", body, headers=ALICE)
    return sorted(hit["_id"] for hit in response.json["hits"]["hits"])


def test_a_settled_collection_asks_once(make_app, settled):
    app = _make(make_app, 1)
    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)
    assert _term(app, "n", 1) == ["both"]
    assert _presence_requests(spy) == 1
    for _ in range(3):
        assert _term(app, "n", 1) == ["both"]
    assert _presence_requests(spy) == 1


def test_a_field_the_tenant_writes_is_searchable_at_once(make_app, settled):
    app = _make(make_app, 1)
    # Another tenant maps "color" first: the tenant's write changes no mapping.
    app.put_json(f"{OTHER}/records/o1", {"data": {"color": "red"}}, headers=BOB)
    assert _term(app, "color", "red") == []
    app.put_json(f"{TENANT}/records/red", {"data": {"color": "red"}}, headers=ALICE)
    assert _term(app, "color", "red") == ["red"]


def test_a_field_another_tenant_writes_stays_unmapped(make_app, settled):
    app = _make(make_app, 1)
    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)
    body = {"query": {"range": {"size": {"gte": "big"}}}, "sort": ["id"]}
    before = app.post_json(f"{TENANT}/search", body, headers=ALICE, status="*").json
    app.put_json(f"{OTHER}/records/o1", {"data": {"size": 5}}, headers=BOB)
    wait_until(
        lambda: app.post_json(f"{OTHER}/search", {}, headers=BOB).json["hits"]["hits"],
        "the other tenant's record is searchable",
    )
    asked = _presence_requests(spy)
    after = app.post_json(f"{TENANT}/search", body, headers=ALICE, status="*").json
    before.pop("took"), after.pop("took")
    assert after == before
    # The pool's mapping grew: its new field is asked about, and found not to be held.
    assert _presence_requests(spy) == asked + 1


def test_a_recent_write_is_not_cached():
    """Written ``SETTLE_MS`` ago or less, the engine may not show it yet: asked each time."""
    now = [1000.0]
    cache = owned.HeldCache(clock=lambda: now[0], wall=lambda: now[0])
    asked = []

    def ask(names):
        asked.append(names)
        return frozenset(names[:1])

    stamp = now[0] * 1000 - owned.SETTLE_MS / 2
    assert cache.held("k", lambda: stamp, ["a", "b"], ask) == {"a"}
    assert cache.held("k", lambda: stamp, ["a", "b"], ask) == {"a"}
    assert len(asked) == 2
    stamp = now[0] * 1000 - owned.SETTLE_MS * 2
    cache.held("k", lambda: stamp, ["a", "b"], ask)
    assert cache.held("k", lambda: stamp, ["b", "a"], ask) == {"a"}
    assert len(asked) == 3
    # A field the cache was not asked about, or another timestamp: asked again.
    cache.held("k", lambda: stamp, ["a", "b", "c"], ask)
    cache.held("k", lambda: stamp + 1, ["a", "b", "c"], ask)
    assert len(asked) == 5
    # However old the write, an answer is kept for MAX_AGE_SECONDS at most.
    now[0] += owned.MAX_AGE_SECONDS + 1
    cache.held("k", lambda: stamp + 1, ["a"], ask)
    assert len(asked) == 6


def test_on_postgresql_a_search_writes_nothing_and_asks_once(make_app, pg_url, settled):
    """The cache's key is read with a read-only query: Kinto's ``resource_timestamp``
    would write the timestamp of an empty collection, a write transaction per search."""
    import psycopg2

    from tests.conftest import pg_settings

    app = make_app(**{"elasticsearch.pools": "1", **pg_settings(pg_url)})
    app.app.registry.storage.initialize_schema()
    app.app.registry.permission.initialize_schema()
    app.put_json("/v1/buckets/tenant", {}, headers=ALICE)
    app.put_json(TENANT, {}, headers=ALICE)
    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)

    def timestamp_rows():
        with psycopg2.connect(pg_url) as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM timestamps"
                " WHERE parent_id = %s AND resource_name = 'record'",
                ("/buckets/tenant/collections/notes",),
            )
            return cursor.fetchone()[0]

    assert timestamp_rows() == 0
    for _ in range(3):
        assert _term(app, "n", 1) == []
    assert timestamp_rows() == 0
    # Empty, it is asked for once; a write moves the key, and the field is found.
    assert _presence_requests(spy) == 1
    app.put_json(f"{TENANT}/records/one", {"data": {"n": 1}}, headers=ALICE)
    for _ in range(3):
        assert _term(app, "n", 1) == ["one"]
    assert _presence_requests(spy) == 2


def test_a_search_of_fields_the_cache_holds_reads_no_storage_key(
    make_app, pg_url, settled, monkeypatch
):
    """The cache's key (a storage query) is read only when the answer could be stale for
    the body: a search naming fields the cache holds needs none, one naming a field it does
    not hold (or a pattern) reads it, so that a field written through another process is
    found at once."""
    from tests.conftest import pg_settings

    settings = {"elasticsearch.pools": "1", **pg_settings(pg_url)}
    writer, reader = make_app(**settings), make_app(**settings)
    writer.app.registry.storage.initialize_schema()
    writer.app.registry.permission.initialize_schema()
    writer.put_json("/v1/buckets/tenant", {}, headers=ALICE)
    writer.put_json(TENANT, {}, headers=ALICE)
    writer.put_json(f"{TENANT}/records/one", {"data": {"n": 1, "title": "kinto"}}, headers=ALICE)
    reads = []
    real = owned.record_timestamps
    monkeypatch.setattr(
        owned, "record_timestamps", lambda *args: reads.append(args) or real(*args)
    )
    assert _term(reader, "n", 1) == ["one"]
    first = len(reads)
    assert first == 1
    for body in (
        {"query": {"term": {"n": 1}}},
        {"query": {"match": {"title": "kinto"}}, "sort": [{"n": "asc"}]},
        {"query": {"range": {"title.keyword": {"gte": "a"}}}},
    ):
        hits = reader.post_json(f"{TENANT}/search", body, headers=ALICE).json["hits"]["hits"]
        assert [hit["_id"] for hit in hits] == ["one"], body
    assert len(reads) == first
    # Every field, or a field it never held: the key is read, and another process's
    # write of that field is found at once.
    everything = {"query": {"query_string": {"query": "kinto"}}}
    assert reader.post_json(f"{TENANT}/search", everything, headers=ALICE).json["hits"]["hits"]
    assert len(reads) == first + 1
    writer.put_json(f"{TENANT}/records/two", {"data": {"color": "red"}}, headers=ALICE)
    body = {"query": {"term": {"color.keyword": "red"}}}
    hits = reader.post_json(f"{TENANT}/search", body, headers=ALICE).json["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["two"]
    assert len(reads) == first + 2
