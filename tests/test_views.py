import pytest

from tests.conftest import auth

COLLECTION = "/v1/buckets/blog/collections/articles"
SEARCH = f"{COLLECTION}/search"


def _ids(response):
    return sorted(hit["_source"]["id"] for hit in response.json["hits"]["hits"])


def user_id(app, user):
    return app.get("/v1/", headers=auth(user)).json["user"]["id"]


@pytest.fixture
def blog(app, alice):
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    for i, title in enumerate(["hello world", "goodbye world", "hello kinto"]):
        app.put_json(
            f"{COLLECTION}/records/r{i}",
            {"data": {"title": title, "rank": i}},
            headers=alice,
        )
    # A record elsewhere with the same words must never show up.
    app.put_json("/v1/buckets/blog/collections/drafts", {}, headers=alice)
    app.put_json(
        "/v1/buckets/blog/collections/drafts/records/d0",
        {"data": {"title": "hello"}},
        headers=alice,
    )
    return app


def test_post_search_answers_with_the_engine_response(blog, alice):
    response = blog.post_json(
        SEARCH,
        {
            "query": {"match": {"title": "hello"}},
            "aggs": {"titles": {"terms": {"field": "title.keyword"}}},
        },
        headers=alice,
    )
    assert _ids(response) == ["r0", "r2"]
    assert response.json["hits"]["total"]["value"] == 2
    hit = response.json["hits"]["hits"][0]
    assert set(hit["_source"]) == {"id", "last_modified", "title", "rank"}
    keys = {b["key"] for b in response.json["aggregations"]["titles"]["buckets"]}
    assert keys == {"hello world", "hello kinto"}


def test_records_are_sortable_by_their_strings(blog, alice):
    response = blog.post_json(SEARCH, {"sort": [{"title.keyword": "asc"}]}, headers=alice)
    assert [h["_id"] for h in response.json["hits"]["hits"]] == ["r1", "r2", "r0"]


def test_get_search_takes_a_querystring_query(blog, alice):
    assert _ids(blog.get(f"{SEARCH}?q=title:kinto", headers=alice)) == ["r2"]
    assert _ids(blog.get(SEARCH, headers=alice)) == ["r0", "r1", "r2"]


def test_empty_post_body_returns_everything(blog, alice):
    assert _ids(blog.post(SEARCH, headers=alice)) == ["r0", "r1", "r2"]


def test_size_is_capped_by_kinto_pagination(make_app, alice):
    app = make_app(paginate_by="2")
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    for i in range(4):
        app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
    assert len(app.post_json(SEARCH, {"size": 100}, headers=alice).json["hits"]["hits"]) == 2
    assert len(app.post_json(SEARCH, {}, headers=alice).json["hits"]["hits"]) == 2
    assert len(app.post_json(SEARCH, {"size": 1}, headers=alice).json["hits"]["hits"]) == 1


def test_storage_max_fetch_size_caps_size_too(make_app, alice):
    app = make_app(storage_max_fetch_size="1")
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    for i in range(3):
        app.put_json(f"{COLLECTION}/records/r{i}", {"data": {}}, headers=alice)
    assert len(app.post_json(SEARCH, {"size": 5}, headers=alice).json["hits"]["hits"]) == 1


def test_a_query_the_engine_rejects_is_a_kinto_400(blog, alice):
    response = blog.post_json(SEARCH, {"query": {"no_such_query": {}}}, headers=alice, status=400)
    assert response.json["errno"] == 107
    assert response.json["error"] == "Invalid parameters"
    assert "no_such_query" in response.json["message"]


def test_a_malformed_querystring_query_is_a_400(blog, alice):
    response = blog.get(f"{SEARCH}?q=title:(((", headers=alice, status=400)
    assert "title:(((" in response.json["message"]


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"'])
def test_a_body_that_is_not_a_json_object_is_a_400(blog, alice, body):
    headers = {**alice, "Content-Type": "application/json"}
    response = blog.post(SEARCH, body, headers=headers, status=400)
    assert response.json["errno"] == 107


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # Latin-1, not UTF-8: Kinto reads JSON as UTF-8 only.
        ('{"query": {"match": {"title": "café"}}}'.encode("latin-1"), "not UTF-8"),
        # Valid JSON in UTF-16, which Python's parser would guess and take.
        ('{"query": {"match": {"title": "x"}}}'.encode("utf-16"), "not UTF-8"),
        # A lone surrogate: no character, and no UTF-8 can carry it to the engine.
        (rb'{"query": {"match": {"title": "\ud800"}}}', "surrogate"),
        (rb'{"query": {"match": {"\udfff": "x"}}}', "surrogate"),
        # Numbers no engine field holds, and JSON has no NaN or infinity.
        (b'{"query": {"term": {"n": 123456789012345678901234567890}}}', "integer"),
        (b'{"query": {"term": {"n": -9223372036854775809}}}', "integer"),
        (b'{"query": {"range": {"n": {"gt": 1e400}}}}', "number"),
        (b'{"query": {"range": {"n": {"gt": NaN}}}}', "number"),
        (b'{"query": {"range": {"n": {"lt": -Infinity}}}}', "number"),
    ],
)
def test_a_body_kinto_would_not_take_is_a_400(blog, alice, body, reason):
    headers = {**alice, "Content-Type": "application/json"}
    response = blog.post(SEARCH, body, headers=headers, status=400)
    assert response.json["errno"] == 107
    assert response.json["details"][0]["location"] == "body"
    assert reason in response.json["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": {"term": {"n": 9223372036854775807}}}',
        b'{"query": {"term": {"n": -9223372036854775808}}}',
        b'{"query": {"range": {"n": {"gt": 1.5e300}}}}',
        rb'{"query": {"match": {"title": "caf\u00e9 \ud83d\ude00"}}}',
    ],
)
def test_bodies_at_the_edges_of_what_json_holds_are_searched(blog, alice, body):
    headers = {**alice, "Content-Type": "application/json"}
    blog.post(SEARCH, body, headers=headers, status=200)


def test_an_unknown_collection_is_a_404(blog, alice):
    blog.post_json("/v1/buckets/blog/collections/nope/search", {}, headers=alice, status=404)


def test_an_unreachable_engine_is_a_503(make_app, alice):
    app = make_app(**{"elasticsearch.hosts": "http://127.0.0.1:1"})
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    response = app.post_json(SEARCH, {}, headers=alice, status=503)
    assert response.json["errno"] == 201
    assert response.headers["Retry-After"]
    app.get(SEARCH, headers=alice, status=503)


def test_searches_are_measured(blog, alice, metrics):
    blog.post_json(SEARCH, {}, headers=alice)
    assert len(metrics.timed["elasticsearch.search.seconds"]) == 1


def test_a_collection_without_index_answers_empty_with_the_engine_shape(blog, alice):
    blog.app.registry.elasticsearch.index.removal.delete_collection_indices("blog", "articles")
    response = blog.post_json(SEARCH, {"aggs": {"n": {"max": {"field": "rank"}}}}, headers=alice)
    assert response.json["hits"]["total"]["value"] == 0
    assert "n" in response.json["aggregations"]


# Permissions: exactly what GET .../records returns to the same user.


def _listed(app, headers):
    return sorted(r["id"] for r in app.get(f"{COLLECTION}/records", headers=headers).json["data"])


def test_anonymous_gets_401(blog):
    blog.post_json(SEARCH, {}, status=401)
    blog.get(SEARCH, status=401)


def test_a_user_without_access_gets_403(blog):
    blog.post_json(SEARCH, {}, headers=auth("mallory"), status=403)
    blog.get(SEARCH, headers=auth("mallory"), status=403)


def test_bucket_readers_see_everything(blog, alice):
    bob = auth("bob")
    blog.patch_json(
        "/v1/buckets/blog", {"permissions": {"read": [user_id(blog, "bob")]}}, headers=alice
    )
    assert (
        _ids(blog.post_json(SEARCH, {}, headers=bob))
        == _listed(blog, bob)
        == [
            "r0",
            "r1",
            "r2",
        ]
    )


def test_collection_readers_see_everything(blog, alice):
    bob = auth("bob")
    blog.patch_json(COLLECTION, {"permissions": {"read": ["system.Everyone"]}}, headers=alice)
    assert _ids(blog.post_json(SEARCH, {}, headers=bob)) == _listed(blog, bob)
    assert _ids(blog.get(SEARCH)) == _listed(blog, {}) == ["r0", "r1", "r2"]


def test_a_user_sees_only_the_records_shared_with_them(blog, alice):
    bob = auth("bob")
    blog.patch_json(
        f"{COLLECTION}/records/r1",
        {"permissions": {"read": [user_id(blog, "bob")]}},
        headers=alice,
    )
    body = {
        "query": {"match": {"title": "world"}},
        "aggs": {"titles": {"terms": {"field": "title.keyword"}}},
    }
    response = blog.post_json(SEARCH, body, headers=bob)
    assert _ids(response) == ["r1"]
    # Totals and aggregations respect the filter too.
    assert response.json["hits"]["total"]["value"] == 1
    assert [b["key"] for b in response.json["aggregations"]["titles"]["buckets"]] == [
        "goodbye world"
    ]
    assert _ids(blog.get(SEARCH, headers=bob)) == _listed(blog, bob) == ["r1"]


def test_writers_of_a_record_see_it(blog, alice):
    blog.patch_json(
        COLLECTION, {"permissions": {"record:create": ["system.Authenticated"]}}, headers=alice
    )
    bob = auth("bob")
    blog.put_json(f"{COLLECTION}/records/bobs", {"data": {"title": "hello"}}, headers=bob)
    assert _ids(blog.post_json(SEARCH, {}, headers=bob)) == _listed(blog, bob) == ["bobs"]


def test_a_user_who_may_only_create_gets_an_empty_result(blog, alice):
    blog.patch_json(
        COLLECTION, {"permissions": {"record:create": ["system.Authenticated"]}}, headers=alice
    )
    response = blog.post_json(SEARCH, {}, headers=auth("carol"))
    assert response.json["hits"]["hits"] == [] == _listed(blog, auth("carol"))
    assert response.json["hits"]["total"]["value"] == 0


def test_search_works_in_the_default_bucket(app, alice):
    app.put_json(
        "/v1/buckets/default/collections/notes/records/n1", {"data": {"t": "x"}}, headers=alice
    )
    response = app.post_json("/v1/buckets/default/collections/notes/search", {}, headers=alice)
    assert _ids(response) == ["n1"]
    assert _ids(app.get("/v1/buckets/default/collections/notes/search", headers=alice)) == ["n1"]
    # Another user's default bucket is another bucket.
    response = app.post_json(
        "/v1/buckets/default/collections/notes/search", {}, headers=auth("bob")
    )
    assert response.json["hits"]["hits"] == []


def test_a_hung_engine_answers_503_within_the_search_timeout(make_app, alice, blackhole):
    import time

    app = make_app(
        **{
            "elasticsearch.hosts": blackhole,
            "elasticsearch.search_timeout_seconds": "0.5",
            "elasticsearch.request_timeout_seconds": "0.2",
        }
    )
    app.put_json("/v1/buckets/blog", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    started = time.monotonic()
    app.post_json(SEARCH, {}, headers=alice, status=503)
    # Bounded by the search timeout (a 30 s default would hang the test).
    assert time.monotonic() - started < 3
