"""The guarded query API, through the real endpoint, on both engines.

Every hostile body of the guard's unit tests is replayed against POST .../search: each is
a 400 in Kinto's format that names the offending key and its path. Every legitimate body
is replayed as a user who may read only some records, next to records they may not read
(in the same collection, another collection and another bucket) that carry a marker: the
marker never comes back, whatever the body.
"""

import json

import pytest

from tests.conftest import EngineSpy, auth
from tests.test_query import ALLOWED, HOSTILE

COLLECTION = "/v1/buckets/b/collections/c"
SEARCH = f"{COLLECTION}/search"
MARKER = "zzsecretzz"
READER = auth("reader")


@pytest.fixture
def guarded(app, alice):
    reader = app.get("/v1/", headers=READER).json["user"]["id"]
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json("/v1/buckets/x", {}, headers=alice)
    for uri in (COLLECTION, "/v1/buckets/b/collections/other", "/v1/buckets/x/collections/c"):
        app.put_json(uri, {}, headers=alice)
    for i in (1, 2):
        app.put_json(
            f"{COLLECTION}/records/r{i}",
            {"data": {"title": f"hello {i}", "tags": ["a"], "x": i, "n": i},
             "permissions": {"read": [reader]}},
            headers=alice,
        )  # fmt: skip
    for uri in (COLLECTION, "/v1/buckets/b/collections/other", "/v1/buckets/x/collections/c"):
        for i in (1, 2):
            app.put_json(
                f"{uri}/records/s{i}",
                {"data": {"title": f"hello {MARKER}", "tags": [MARKER], "x": 100 + i, "n": i}},
                headers=alice,
            )
    return app


@pytest.mark.parametrize(
    ("body", "readable_ids", "location", "reason"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_bodies_are_refused_by_the_endpoint(
    guarded, alice, body, readable_ids, location, reason
):
    headers = READER if readable_ids is not None else alice
    response = guarded.post_json(SEARCH, body, headers=headers, status=400)
    error = response.json
    assert (error["code"], error["errno"], error["error"]) == (400, 107, "Invalid parameters")
    if location:
        assert reason in error["message"]
        assert error["message"].endswith(f"(at {location})")
        assert error["details"] == [
            {"location": "body", "name": location, "description": error["message"]}
        ]
    assert MARKER not in response.text


@pytest.mark.parametrize("body", [case[1] for case in ALLOWED], ids=[case[0] for case in ALLOWED])
def test_no_body_reveals_records_the_user_may_not_read(guarded, body):
    response = guarded.post_json(SEARCH, body, headers=READER, status="*")
    assert response.status_int in (200, 400), response.text
    assert MARKER not in response.text
    if response.status_int == 200:
        hits = response.json["hits"]
        # Some bodies (stored_fields: _none_) ask for hits without ids: count them instead.
        assert len(hits["hits"]) <= 2
        assert {hit.get("_id", "r1") for hit in hits["hits"]} <= {"r1", "r2"}
        total = hits.get("total", {"value": 0})
        assert (total["value"] if isinstance(total, dict) else total) <= 2


def test_a_partial_reader_gets_only_readable_aggregations(guarded):
    body = {
        "size": 50,
        "aggs": {
            "tags": {"terms": {"field": "tags.keyword", "size": 50}},
            "max_x": {"max": {"field": "x"}},
            "top": {"top_hits": {"size": 10}},
        },
        "highlight": {"fields": {"title": {}}},
        "query": {"match": {"title": "hello"}},
        "post_filter": {"range": {"x": {"gte": 0}}},
    }
    response = guarded.post_json(SEARCH, body, headers=READER)
    aggregations = response.json["aggregations"]
    assert [b["key"] for b in aggregations["tags"]["buckets"]] == ["a"]
    assert aggregations["max_x"]["value"] == 2
    assert {h["_id"] for h in aggregations["top"]["hits"]["hits"]} == {"r1", "r2"}
    assert MARKER not in json.dumps(response.json)


def test_sizes_and_timeouts_are_capped_before_the_engine(make_app, alice):
    app = make_app(paginate_by="5", **{"elasticsearch.search_timeout_seconds": "2"})
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    spy = EngineSpy(app.app.registry.indexer.engine)
    app.post_json(SEARCH, {"size": 10_000, "timeout": "1h"}, headers=alice)
    app.post_json(SEARCH, {"size": 3, "timeout": "500ms"}, headers=alice)
    sent = [kwargs["body"] for name, kwargs in spy.calls if name == "search"]
    assert [(b["size"], b["timeout"]) for b in sent] == [(5, "2000ms"), (3, "500ms")]
    response = app.post_json(SEARCH, {"from": 9_999, "size": 5}, headers=alice, status=400)
    assert "(at from)" in response.json["message"] or "(at size)" in response.json["message"]


def test_every_search_the_plugin_sends_has_the_server_side_timeout(make_app, alice):
    app = make_app(**{"elasticsearch.search_timeout_seconds": "3"})
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    spy = EngineSpy(app.app.registry.indexer.engine)
    app.post_json(SEARCH, {}, headers=alice)
    app.get(f"{SEARCH}?q=title:a*", headers=alice)
    app.get(f"{SEARCH}/facets", headers=alice)
    app.post_json("/v1/buckets/b/search", {}, headers=alice)
    app.get("/v1/buckets/b/search?q=title:a*", headers=alice)
    sent = [kwargs["body"] for name, kwargs in spy.calls if name == "search"]
    assert [body.get("timeout") for body in sent] == ["3000ms"] * 5


def test_operators_set_the_caps(make_app, alice):
    app = make_app(
        **{
            "elasticsearch.max_aggregations": "1",
            "elasticsearch.max_query_depth": "3",
            "elasticsearch.max_aggregation_size": "10",
            "elasticsearch.max_result_window": "20",
        }
    )
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    two_aggs = {"aggs": {"a": {"max": {"field": "n"}}, "b": {"min": {"field": "n"}}}}
    assert "aggregations" in app.post_json(SEARCH, two_aggs, headers=alice, status=400).text
    deep = {"query": {"bool": {"must": [{"bool": {"must": [{"bool": {"must": [
        {"match_all": {}}]}}]}}]}}}  # fmt: skip
    app.post_json(SEARCH, deep, headers=alice, status=400)
    big = {"aggs": {"t": {"terms": {"field": "n", "size": 11}}}}
    assert "aggs.t.terms.size" in app.post_json(SEARCH, big, headers=alice, status=400).text
    app.post_json(SEARCH, {"from": 15, "size": 10}, headers=alice, status=400)


@pytest.mark.parametrize("allow", ["false", "true"])
def test_scripts_need_the_operators_consent(make_app, alice, allow):
    app = make_app(**{"elasticsearch.allow_scripts": allow})
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    body = {"query": {"script": {"script": {"source": "true"}}}}
    response = app.post_json(SEARCH, body, headers=alice, status="*")
    refused_by_guard = "(at query.script)" in response.text
    assert refused_by_guard == (allow == "false")
