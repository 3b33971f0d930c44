"""The guarded query API, through the real endpoint, on both engines.

Every hostile body of the guard's unit tests is replayed against POST .../search: each is
a 400 in Kinto's format that names the offending key and its path. Every legitimate body
is replayed as a user who may read only some records, next to records they may not read
(in the same collection, another collection and another bucket) that carry a marker: the
marker never comes back, whatever the body.

Collections here have an index of their own, where a full reader may use what reads the
whole index; a pooled collection refuses more (``tests/test_tenants.py``).
"""

import functools
import json

import pytest

from tests.conftest import EngineSpy, auth
from tests.test_query import ALLOWED, FULL_READ_ONLY, GUARD_ONLY, HOSTILE

COLLECTION = "/v1/buckets/b/collections/c"
SEARCH = f"{COLLECTION}/search"
MARKER = "zzsecretzz"
READER = auth("reader")


@pytest.fixture
def make_app(make_app):
    return functools.partial(make_app, **{"elasticsearch.pools": "0"})


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
            {"data": {"title": f"hello {i}", "tags": ["a"], "x": i, "n": i, "a": i,
                      "k": f"k{i}", "t": f"text {i}", "d": f"2024-01-0{i}", "script": "print"},
             "permissions": {"read": [reader]}},
            headers=alice,
        )  # fmt: skip
    for uri in (COLLECTION, "/v1/buckets/b/collections/other", "/v1/buckets/x/collections/c"):
        for i in (1, 2):
            app.put_json(
                f"{uri}/records/s{i}",
                {
                    "data": {
                        "title": f"hello {MARKER}",
                        "tags": [MARKER],
                        "x": 100 + i,
                        "n": i,
                        "a": 1,
                        "k": MARKER,
                        "t": f"text {MARKER}",
                        "d": "2024-01-01",
                        "script": MARKER,
                    }
                },
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
    if location and error["details"][0]["name"] is None:
        # Refused while reading the body, before any path is known.
        assert reason in error["message"]
    elif location:
        assert reason in error["message"]
        assert error["message"].endswith(f"(at {location})")
        assert error["details"] == [
            {"location": "body", "name": location, "description": error["message"]}
        ]
    assert MARKER not in response.text


RUNNABLE = [case for case in ALLOWED if case[0] not in GUARD_ONLY]


@pytest.mark.parametrize(
    "body", [case[1] for case in RUNNABLE], ids=[case[0] for case in RUNNABLE]
)
def test_no_body_reveals_records_the_user_may_not_read(guarded, alice, body, request):
    """Every legitimate body runs for a partial reader (or is refused to them by design,
    and then runs for a full reader), and shows nothing of the records they cannot read."""
    name = request.node.callspec.id.split("-", 1)[1]
    if name in FULL_READ_ONLY:
        response = guarded.post_json(SEARCH, body, headers=READER, status=400)
        assert MARKER not in response.text
        guarded.post_json(SEARCH, body, headers=alice, status=200)
        return
    response = guarded.post_json(SEARCH, body, headers=READER, status=200)
    assert MARKER not in response.text
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
    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)
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
    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)
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


# Queries that choose their terms by statistics of the whole index: as a partial reader,
# their results would depend on records they cannot read. (Bodies from the engines' docs.)
STATISTICS = [
    ({"query": {"more_like_this": {"fields": ["title"], "like": "hello zzsecretzz",
                                   "min_term_freq": 1, "max_query_terms": 12}}},
     "query.more_like_this"),
    ({"query": {"more_like_this": {"fields": ["title"], "like": "hello", "max_doc_freq": 1}}},
     "query.more_like_this"),
    ({"query": {"match_phrase_prefix": {"title": {"query": "hello z", "max_expansions": 1}}}},
     "query.match_phrase_prefix"),
    ({"query": {"multi_match": {"query": "hello z", "type": "phrase_prefix",
                                "fields": ["title"]}}}, "query.multi_match.type"),
    ({"query": {"fuzzy": {"title": {"value": "zzsecretzy", "max_expansions": 1}}}},
     "query.fuzzy"),
    ({"query": {"match": {"title": {"query": "zzsecretzy", "fuzziness": "AUTO"}}}},
     "query.match.title.fuzziness"),
    ({"query": {"prefix": {"title": {"value": "z", "rewrite": "top_terms_1"}}}},
     "query.prefix.title.rewrite"),
    ({"query": {"wildcard": {"title": {"value": "z*", "rewrite": "top_terms_boost_1"}}}},
     "query.wildcard.title.rewrite"),
    ({"query": {"span_multi": {"match": {"prefix": {"title": "z"}}}}}, "query.span_multi"),
    ({"query": {"intervals": {"title": {"prefix": {"prefix": "zz"}}}}},
     "query.intervals.title.prefix"),
    ({"query": {"query_string": {"query": "zzsecretzy~1", "default_field": "title"}}},
     "query.query_string.query"),
    ({"query": {"simple_query_string": {"query": "zzsecretzy~", "fields": ["title"]}}},
     "query.simple_query_string.query"),
    ({"query": {"knn": {"field": "v", "query_vector": [1, 2], "num_candidates": 10}}},
     "query.knn"),
    ({"aggs": {"s": {"significant_text": {"field": "title"}}}}, "aggs.s.significant_text"),
]  # fmt: skip


@pytest.mark.parametrize("body,location", STATISTICS, ids=[case[1] for case in STATISTICS])
def test_partial_readers_cannot_select_terms_by_index_statistics(guarded, alice, body, location):
    response = guarded.post_json(SEARCH, body, headers=READER, status=400)
    assert response.json["details"][0]["name"] == location, response.json["message"]
    assert MARKER not in response.text


def test_partial_readers_cannot_use_fuzzy_terms_in_q(guarded):
    response = guarded.get(f"{SEARCH}?q=zzsecretzy~1", headers=READER, status=400)
    assert "fuzzy" in response.json["message"]
    # Phrase slop is not fuzziness. (On title: noida-db parses the phrase for the date field
    # too, lenient or not.)
    guarded.get(f'{SEARCH}?q="hello 1"~2&_q_fields=title', headers=READER)


def _limited(make_app, alice, **settings):
    app = make_app(**{f"elasticsearch.{k}": str(v) for k, v in settings.items()})
    app.put_json("/v1/buckets/b", {}, headers=alice)
    app.put_json(COLLECTION, {}, headers=alice)
    app.put_json(f"{COLLECTION}/records/r1", {"data": {"title": "aaa", "n": 1}}, headers=alice)
    return app


# What would make the engine work without bound, refused before it sees anything, each
# with the setting that bounds it. (A terms list of 500,000 values, pathological regular
# expressions, a million empty buckets...)
COSTLY = [
    ({"query": {"terms": {"title": [f"t{i}" for i in range(2000)]}}}, "max_clauses",
     "query.terms.title"),
    ({"query": {"bool": {"should": [{"term": {"n": i}} for i in range(1100)]}}},
     "max_clauses", "query.bool.should[1023].term"),
    ({"query": {"match": {"title": " ".join(["word"] * 1100)}}}, "max_clauses",
     "query.match.title"),
    ({"query": {"regexp": {"title": "(a+)+b"}}}, None, "query.regexp.title"),
    ({"query": {"regexp": {"title": {"value": "(.*a){20}"}}}}, None, "query.regexp.title.value"),
    ({"query": {"regexp": {"title": "[a-z]{1,5000}"}}}, "max_pattern_repetition",
     "query.regexp.title"),
    ({"query": {"regexp": {"title": "a" * 300}}}, "max_pattern_length", "query.regexp.title"),
    ({"query": {"wildcard": {"title": {"value": "*a" * 200}}}}, "max_pattern_length",
     "query.wildcard.title.value"),
    ({"query": {"query_string": {"query": "title:/(a|aa)+(b+)+/"}}}, None,
     "query.query_string.query"),
    ({"aggs": {"t": {"terms": {"field": "title.keyword", "include": "(a+)+"}}}}, None,
     "aggs.t.terms.include"),
    ({"query": {"match": {"title": {"query": "aab", "fuzziness": 2, "max_expansions": 100000}}}},
     "max_expansions", "query.match.title.max_expansions"),
    ({"aggs": {"h": {"histogram": {"field": "n", "interval": 1, "min_doc_count": 0,
                                   "extended_bounds": {"min": 0, "max": 1000000}}}}},
     "max_buckets", "aggs.h.histogram.extended_bounds"),
    ({"aggs": {"h": {"date_histogram": {"field": "last_modified", "fixed_interval": "1s",
                                        "min_doc_count": 0, "extended_bounds": {
                                            "min": "2000-01-01", "max": "2030-01-01"}}}}},
     "max_buckets", "aggs.h.date_histogram.extended_bounds"),
    ({"aggs": {"t": {"terms": {"field": "title.keyword", "size": 100}, "aggs": {
        "h": {"histogram": {"field": "n", "interval": 1, "extended_bounds": {
            "min": 0, "max": 200}}}}}}}, "max_buckets", "aggs.t.aggs.h.histogram.extended_bounds"),
]  # fmt: skip


@pytest.mark.parametrize(
    "body,limit,location",
    COSTLY,
    ids=[f"{case[1] or 'nested-repetition'}-{case[2]}" for case in COSTLY],
)
def test_costly_bodies_are_refused_naming_their_limit(make_app, alice, body, limit, location):
    app = _limited(make_app, alice)
    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)
    response = app.post_json(SEARCH, body, headers=alice, status=400)
    assert response.json["details"][0]["name"] == location, response.json["message"]
    assert spy.count("search") == 0
    if limit is None:
        # Not a matter of size: a repeated group that repeats is refused at any setting.
        assert "repeats a group that repeats itself" in response.json["message"]
        return
    assert f"(limit: elasticsearch.{limit})" in response.json["message"]
    # The setting is the operator's: raised, the same body reaches the engine.
    raised = _limited(make_app, alice, **{limit: 10**9})
    spy = EngineSpy(raised.app.registry.elasticsearch.index.engine)
    response = raised.post_json(SEARCH, body, headers=alice, status="*")
    assert "(limit: elasticsearch." not in response.text
    assert spy.count("search") == 1


def test_q_is_bounded_as_bodies_are(make_app, alice):
    app = _limited(make_app, alice)
    response = app.get(f"{SEARCH}?q=title:/a%7B1,5000%7D/", headers=alice, status=400)
    assert "(limit: elasticsearch.max_pattern_repetition)" in response.json["message"]
    response = app.get(f"{SEARCH}?q=title:/(a%2B)%2Bb/", headers=alice, status=400)
    assert "repeats a group that repeats itself" in response.json["message"]
    words = "+".join(["word"] * 1100)
    response = app.get(f"{SEARCH}?q={words}", headers=alice, status=400)
    assert "(limit: elasticsearch.max_clauses)" in response.json["message"]


def test_large_and_deep_bodies_are_refused_before_parsing(make_app, alice):
    app = _limited(make_app, alice, max_body_bytes=1000)
    big = {"query": {"terms": {"title": ["x" * 10] * 200}}}
    response = app.post_json(SEARCH, big, headers=alice, status=400)
    assert "(limit: elasticsearch.max_body_bytes)" in response.json["message"]
    app = _limited(make_app, alice)
    # Far deeper than Python's recursion limit: a 400, never a 500.
    for raw in ("[" * 60_000, '{"q":' * 6_000 + "1" + "}" * 6_000):
        response = app.post(SEARCH, raw, headers={**alice, "Content-Type": "application/json"},
                            status=400)  # fmt: skip
        assert "(limit: elasticsearch.max_body_depth)" in response.json["message"]
    # Brackets inside strings are text, not nesting.
    body = {"query": {"term": {"title": "[" * 500}}}
    assert app.post_json(SEARCH, body, headers=alice).json["hits"]["total"]["value"] == 0


def test_the_engine_is_told_to_cancel_a_search_the_plugin_gave_up_on(make_app, alice, engine):
    """OpenSearch takes ``cancel_after_time_interval``; Elasticsearch cancels a search
    whose connection the client closed (the client does so on its timeout)."""
    app = _limited(make_app, alice, search_timeout_seconds=3)
    plugin_engine = app.app.registry.elasticsearch.index.engine
    client = plugin_engine._client
    sent = []
    if engine.name == "opensearch":
        search = client.search

        def spy(*args, **kwargs):
            sent.append(kwargs)
            return search(*args, **kwargs)

        client.search = spy
    calls = EngineSpy(plugin_engine)
    app.post_json(SEARCH, {"query": {"regexp": {"title": "a.*"}}}, headers=alice)
    app.get(f"{SEARCH}?q=aaa", headers=alice)
    # The client gives up one second after the engine's own timeout...
    assert [kwargs["timeout"] for name, kwargs in calls.calls if name == "search"] == [4, 4]
    bodies = [kwargs["body"] for name, kwargs in calls.calls if name == "search"]
    assert [body["timeout"] for body in bodies] == ["3000ms"] * 2
    # ... and OpenSearch cancels the task then (the real server ran it with the parameter).
    if engine.name == "opensearch":
        assert [kwargs["cancel_after_time_interval"] for kwargs in sent] == ["4000ms"] * 2
