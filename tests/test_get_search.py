"""GET search speaks Kinto's list querystring, and pages as GET .../records does."""

from urllib.parse import urlsplit

import pytest

from tests.conftest import auth
from tests.servers import FaultProxy

COLLECTION = "/v1/buckets/b/collections/c"
STATUSES = ["new", "open", "closed"]


def _record(i):
    return {"n": i, "status": STATUSES[i % 3], "score": (i * 7) % 10, "name": f"item {i:02}"}


@pytest.fixture
def data(app, alice):
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    for first in range(0, 24, 12):
        requests = [
            {
                "method": "PUT",
                "path": f"{COLLECTION}/records/r{i:02}",
                "body": {"data": _record(i)},
            }
            for i in range(first, first + 12)
        ]
        app.post_json("/v1/batch", {"defaults": {"headers": alice}, "requests": requests})
    return app


def _follow(app, url, headers, key):
    """Every id of every page, following Next-Page; and the page count."""
    ids, pages = [], 0
    while url:
        response = app.get(url, headers=headers)
        pages += 1
        ids += [item["id"] for item in key(response.json)]
        next_page = response.headers.get("Next-Page")
        url = None
        if next_page:
            parts = urlsplit(next_page)
            url = f"{parts.path}?{parts.query}"
    return ids, pages, response.headers.get("Total-Objects")


def _records(json):
    return json["data"]


def _hits(json):
    return [hit["_source"] for hit in json["hits"]["hits"]]


QUERYSTRINGS = [
    "",
    "status=open",
    "not_status=open",
    "min_n=5&max_n=15",
    "gt_score=3&lt_score=8",
    "in_status=new,closed",
    "exclude_status=new",
    "like_name=item 1*",
    "has_score=true",
    "_sort=score,-n",
    "_sort=-status,n",
    "status=open&_sort=-score,n",
]


@pytest.mark.parametrize("qs", QUERYSTRINGS)
def test_get_search_pages_through_what_records_lists(data, alice, qs):
    records = _follow(data, f"{COLLECTION}/records?_limit=5&{qs}", alice, _records)
    search = _follow(data, f"{COLLECTION}/search?_limit=5&{qs}", alice, _hits)
    assert search[0] == records[0]
    assert search[1] == records[1]
    assert len(records[0]) > 0
    # Kinto 26 sends Total-Objects on HEAD only; search sends it on every page.
    head = data.head(f"{COLLECTION}/records?{qs}", headers=alice)
    assert search[2] == head.headers["Total-Objects"] == str(len(records[0]))


def test_a_reader_of_some_records_pages_through_them_only(data, alice):
    reader = auth("reader")
    reader_id = data.get("/v1/", headers=reader).json["user"]["id"]
    for i in range(0, 24, 3):
        data.patch_json(f"{COLLECTION}/records/r{i:02}", {"permissions": {"read": [reader_id]}},
                        headers=alice)  # fmt: skip
    records = _follow(data, f"{COLLECTION}/records?_limit=3&_sort=n", reader, _records)
    search = _follow(data, f"{COLLECTION}/search?_limit=3&_sort=n", reader, _hits)
    assert search[:2] == records[:2]
    assert records[0] == [f"r{i:02}" for i in range(0, 24, 3)]
    assert search[2] == "8"


def test_bad_querystrings_get_kintos_own_400(data, alice):
    for qs in ("_limit=abc", "_since=abc", "_token=nope"):
        expected = data.get(f"{COLLECTION}/records?{qs}", headers=alice, status=400).json
        assert data.get(f"{COLLECTION}/search?{qs}", headers=alice, status=400).json == expected


def test_q_combines_with_filters(data, alice):
    response = data.get(f"{COLLECTION}/search?q=item&status=open&_sort=n", headers=alice)
    assert [hit["_id"] for hit in response.json["hits"]["hits"]] == [
        f"r{i:02}" for i in range(1, 24, 3)
    ]


def test_get_search_works_in_read_only_mode(make_app, alice, pg_url):
    from tests.conftest import pg_settings

    writer = make_app(**pg_settings(pg_url))
    writer.app.registry.storage.initialize_schema()
    writer.app.registry.permission.initialize_schema()
    writer.put_json("/v1/buckets/b", {}, headers=alice)
    writer.put_json(COLLECTION, {"permissions": {"read": ["system.Everyone"]}}, headers=alice)
    writer.put_json(f"{COLLECTION}/records/r1", {"data": {"status": "open"}}, headers=alice)
    reader = make_app(readonly="true", **pg_settings(pg_url))
    hits = reader.get(f"{COLLECTION}/search?status=open").json["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["r1"]
    # Read-only Kinto refuses every POST, search included: GET is the way to search there.
    reader.post_json(f"{COLLECTION}/search", {}, status=405)


def _refusing_proxy(engine_server):
    """The engine refusing every search, as it refuses a query it cannot parse."""
    refusal = {
        "error": {
            "type": "search_phase_execution_exception",
            "reason": "all shards failed",
            "root_cause": [{"type": "query_shard_exception", "reason": "failed to create query"}],
        },
        "status": 400,
    }
    return FaultProxy(
        engine_server.url,
        lambda method, path, body: (400, refusal) if "_search" in path else None,
    )


@pytest.mark.parametrize(
    "path", [f"{COLLECTION}/search", "/v1/buckets/b/search", f"{COLLECTION}/search/facets"]
)
def test_an_engine_refusal_of_a_get_search_names_the_querystring(
    make_app, alice, engine_server, path
):
    proxy = _refusing_proxy(engine_server)
    try:
        # An index of its own: a pool's refusals do not pass on the engine's words
        # (tests/test_tenants.py).
        app = make_app(**{"elasticsearch.hosts": proxy.url, "elasticsearch.pools": "0"})
        app.put_json("/v1/buckets/b", {}, headers=alice)
        app.put_json(COLLECTION, {}, headers=alice)
        app.put_json(f"{COLLECTION}/records/r", {"data": {"n": 1}}, headers=alice)
        error = app.get(f"{path}?n=1", headers=alice, status=400).json
        assert error["details"] == [
            {
                "location": "querystring",
                "name": None,
                "description": "The search engine refused the query: failed to create query",
            }
        ]
        if not path.endswith("/facets"):
            posted = app.post_json(path, {}, headers=alice, status=400).json
            assert posted["details"][0]["location"] == "body"
    finally:
        proxy.close()
