import pytest

from tests.conftest import auth

BUCKET = "/v1/buckets/blog"
SEARCH = f"{BUCKET}/search"


def user_id(app, user):
    return app.get("/v1/", headers=auth(user)).json["user"]["id"]


@pytest.fixture
def blog(app, alice):
    app.put_json(BUCKET, {}, headers=alice)
    for collection_id in ("articles", "drafts", "comments"):
        app.put_json(f"{BUCKET}/collections/{collection_id}", {}, headers=alice)
        for i in range(2):
            app.put_json(
                f"{BUCKET}/collections/{collection_id}/records/{collection_id[0]}{i}",
                {"data": {"title": f"hello {collection_id} {i}"}},
                headers=alice,
            )
    # Another bucket with the same words must never show up.
    app.put_json("/v1/buckets/other", {}, headers=alice)
    app.put_json("/v1/buckets/other/collections/articles", {}, headers=alice)
    app.put_json(
        "/v1/buckets/other/collections/articles/records/x0",
        {"data": {"title": "hello"}},
        headers=alice,
    )
    return app


def _hits(response):
    return sorted((hit["_collection"], hit["_id"]) for hit in response.json["hits"]["hits"])


def test_bucket_search_covers_every_collection(blog, alice):
    response = blog.post_json(SEARCH, {"query": {"match": {"title": "hello"}}}, headers=alice)
    assert _hits(response) == [
        ("articles", "a0"), ("articles", "a1"), ("comments", "c0"), ("comments", "c1"),
        ("drafts", "d0"), ("drafts", "d1"),
    ]  # fmt: skip
    assert _hits(blog.get(f"{SEARCH}?q=title:drafts", headers=alice)) == [
        ("drafts", "d0"), ("drafts", "d1"),
    ]  # fmt: skip


def test_bucket_search_is_one_engine_request(blog, alice):
    from tests.conftest import EngineSpy

    spy = EngineSpy(blog.app.registry.elasticsearch.index.engine)
    blog.post_json(SEARCH, {}, headers=alice)
    assert spy.count("search") == 1


def test_each_collection_keeps_its_own_permissions(blog, alice):
    bob = user_id(blog, "bob")
    # Full read on articles, one shared record in drafts, nothing in comments.
    blog.patch_json(
        f"{BUCKET}/collections/articles", {"permissions": {"read": [bob]}}, headers=alice
    )
    blog.patch_json(
        f"{BUCKET}/collections/drafts/records/d1", {"permissions": {"read": [bob]}}, headers=alice
    )
    body = {"aggs": {"per_title": {"terms": {"field": "title.keyword"}}}}
    response = blog.post_json(SEARCH, body, headers=auth("bob"))
    assert _hits(response) == [("articles", "a0"), ("articles", "a1"), ("drafts", "d1")]
    assert response.json["hits"]["total"]["value"] == 3
    keys = {b["key"] for b in response.json["aggregations"]["per_title"]["buckets"]}
    assert keys == {"hello articles 0", "hello articles 1", "hello drafts 1"}
    for collection_id in ("articles", "drafts", "comments"):
        listed = blog.get(
            f"{BUCKET}/collections/{collection_id}/records", headers=auth("bob"), status="*"
        )
        ids = sorted(r["id"] for r in listed.json.get("data", []))
        assert ids == sorted(i for c, i in _hits(response) if c == collection_id)


def test_bucket_readers_see_everything(blog, alice):
    blog.patch_json(BUCKET, {"permissions": {"read": [user_id(blog, "bob")]}}, headers=alice)
    assert len(_hits(blog.post_json(SEARCH, {}, headers=auth("bob")))) == 6


def test_no_access_is_401_or_403(blog):
    blog.post_json(SEARCH, {}, status=401)
    blog.post_json(SEARCH, {}, headers=auth("mallory"), status=403)
    blog.get("/v1/buckets/unknown/search", headers=auth("mallory"), status=403)


def test_a_query_the_engine_rejects_is_a_400(blog, alice):
    response = blog.post_json(SEARCH, {"query": {"nope": {}}}, headers=alice, status=400)
    assert response.json["errno"] == 107


def test_bucket_get_search_takes_kintos_querystring_and_pages(blog, alice):
    from urllib.parse import urlsplit

    url, ids = f"{SEARCH}?_limit=2&_sort=-title&like_title=hello*", []
    while url:
        response = blog.get(url, headers=alice)
        assert response.headers["Total-Objects"] == "6"
        ids += [(hit["_collection"], hit["_id"]) for hit in response.json["hits"]["hits"]]
        next_page = response.headers.get("Next-Page")
        url = next_page and "{0.path}?{0.query}".format(urlsplit(next_page))
    assert ids == [
        ("drafts", "d1"), ("drafts", "d0"), ("comments", "c1"), ("comments", "c0"),
        ("articles", "a1"), ("articles", "a0"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "bucket_id", ["*", "b*", "blog,other", "blog*", "_all", "-blog", "bl%3Fg"]
)
def test_bucket_ids_outside_kintos_rules_name_no_index(blog, alice, bucket_id):
    """The id is never turned into an index pattern: the answer is Kinto's for the
    bucket's collections (a 401, 403 or 404: ``test_path_ids``)."""
    for headers in (alice, {}):
        listing = blog.get(f"/v1/buckets/{bucket_id}/collections", headers=headers, status="*")
        assert listing.status_int in (401, 403, 404), listing.text
        for method in (blog.post_json, blog.get):
            args = ({},) if method is blog.post_json else ()
            url = f"/v1/buckets/{bucket_id}/search"
            response = method(url, *args, headers=headers, status="*")
            assert (response.status_int, response.json) == (listing.status_int, listing.json)
            assert "hello" not in response.text


@pytest.mark.parametrize("collection_id", ["*", "art*", "articles,drafts", "_all"])
def test_collection_ids_outside_kintos_rules_are_not_found(blog, alice, collection_id):
    for suffix in ("search", "search/facets"):
        url = f"{BUCKET}/collections/{collection_id}/{suffix}"
        response = blog.get(url, headers=alice, status="*")
        assert response.status_int == 404, response.text
        assert "hello" not in response.text
    response = blog.post_json(f"{BUCKET}/collections/{collection_id}/search", {}, headers=alice,
                              status=404)  # fmt: skip
    assert "hello" not in response.text


@pytest.mark.parametrize("pools", ["0", "16"])
def test_shards_count_only_the_collections_the_caller_may_read(make_app, alice, pools):
    """With indices of their own, the caller's collections' shards; under a pool's rules,
    one shard, however many collections and pools the search reads (how many would say
    where they live)."""
    app = make_app(**{"elasticsearch.pools": pools})
    app.put_json(BUCKET, {}, headers=alice)
    for collection_id in ("articles", "drafts", "comments"):
        uri = f"{BUCKET}/collections/{collection_id}"
        app.put_json(uri, {}, headers=alice)
        app.put_json(f"{uri}/records/r1", {"data": {"title": "hello"}}, headers=alice)
    bob = user_id(app, "bob")
    app.patch_json(
        f"{BUCKET}/collections/drafts/records/r1", {"permissions": {"read": [bob]}}, headers=alice
    )
    everything = app.post_json(SEARCH, {}, headers=alice).json
    one_collection = app.post_json(SEARCH, {}, headers=auth("bob")).json
    assert everything["hits"]["total"]["value"] == 3
    assert one_collection["hits"]["total"]["value"] == 1
    if pools == "0":
        assert everything["_shards"]["total"] == 3 * one_collection["_shards"]["total"]
    else:
        shards = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
        assert everything["_shards"] == one_collection["_shards"] == shards


def test_a_bucket_whose_readable_collections_have_no_index_finds_nothing(app, alice):
    app.put_json("/v1/buckets/empty", {}, headers=alice)
    app.put_json("/v1/buckets/empty/collections/c", {}, headers=alice)
    app.app.registry.elasticsearch.index.removal.delete_collection_indices("empty", "c")
    response = app.post_json("/v1/buckets/empty/search", {}, headers=alice)
    assert response.json["hits"] == {"total": {"value": 0, "relation": "eq"}, "max_score": None,
                                     "hits": []}  # fmt: skip
