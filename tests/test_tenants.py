"""A pooled collection is a tenant: what it answers does not depend on the other tenants of
its pool, through the real endpoint, on both engines.

A full reader of a pooled collection is refused what reads the pool's dictionaries and
statistics (as a partial reader is everywhere) or shows the shard's counts of writes; its
scores read no statistics; the engine's refusals are not passed on. The same requests in a
collection with an index of its own are answered, so each refusal here is the pool's. The
differential suite (``tests/test_isolation.py``) checks the rule itself on generated probes.
"""

import pytest

from kinto_elasticsearch.search.resolved import SHARED_REFUSAL
from tests.conftest import EngineSpy, auth, wait_until
from tests.test_query import ALLOWED, FULL_READ_ONLY, GUARD_ONLY

ALICE, BOB = auth("alice"), auth("bob")
TENANT = "/v1/buckets/tenant/collections/notes"
OTHER = "/v1/buckets/other/collections/notes"
RECORDS = {
    "both": {"title": "kinto search plugin", "n": 1},
    "one": {"title": "a plugin for something else", "n": 2},
    "none": {"title": "nothing to see", "n": 3},
}

# What shows or orders by the shard's writes, each with what it is refused for.
COUNTERS = [
    ("doc-order", {"sort": ["_doc"]}, "'_doc'"),
    ("sequence-numbers", {"seq_no_primary_term": True}, "seq_no_primary_term"),
    (
        "random-score-in-write-order",
        {"query": {"function_score": {"random_score": {"seed": 1}}}},
        "random_score",
    ),
    (
        "top-hits-sequence-numbers",
        {"aggs": {"t": {"top_hits": {"seq_no_primary_term": True}}}},
        "seq_no_primary_term",
    ),
    # Which documents these keep, among equals, is the shard's order of writes, which no
    # added sort can make total (``rules/tiebreak.py`` does it for hit contexts).
    ("terminate-after", {"terminate_after": 2}, "terminate_after"),
    (
        "sampler-of-equal-scores",
        {
            "query": {"term": {"n": 1}},
            "aggs": {"s": {"sampler": {"shard_size": 1}, "aggs": {"n": {"max": {"field": "n"}}}}},
        },
        "'sampler'",
    ),
    (
        "top-metrics-ties",
        {"aggs": {"m": {"top_metrics": {"metrics": {"field": "n"}, "sort": "_score"}}}},
        "'top_metrics'",
    ),
]
FULL_READ_BODIES = [case for case in ALLOWED if case[0] in FULL_READ_ONLY - GUARD_ONLY]


def _make(make_app, pools, **settings):
    app = make_app(**{"elasticsearch.pools": str(pools), **settings})
    for uri, headers in ((TENANT, ALICE), (OTHER, BOB)):
        app.put_json(uri.rsplit("/collections", 1)[0], {}, headers=headers)
        app.put_json(uri, {}, headers=headers)
    for rid, data in RECORDS.items():
        app.put_json(f"{TENANT}/records/{rid}", {"data": data}, headers=ALICE)
    return app


@pytest.fixture
def pooled(make_app):
    app = _make(make_app, 1)
    locator = app.app.registry.elasticsearch.index.locator
    tenant, other = (locator.placement(uri.split("/")[3], "notes") for uri in (TENANT, OTHER))
    assert tenant.pooled and tenant.pool == other.pool
    return app


@pytest.fixture
def dedicated(make_app, index_prefix):
    # The same names in a world of their own: under the pooled world's prefix, the layout
    # and documents it recorded would place these collections in its pool.
    return _make(make_app, 0, **{"elasticsearch.index_prefix": f"{index_prefix}-own"})


def _search(app, body, status=200, headers=ALICE):
    return app.post_json(f"{TENANT}/search", body, headers=headers, status=status)


@pytest.mark.parametrize(
    "body", [case[1] for case in FULL_READ_BODIES], ids=[case[0] for case in FULL_READ_BODIES]
)
def test_what_reads_the_whole_index_is_refused_to_a_full_reader_of_a_pool(pooled, dedicated, body):
    error = _search(pooled, body, status=400).json
    assert "index shared with other collections" in error["message"]
    # The same reader, with an index of its own, is answered.
    _search(dedicated, body)


@pytest.mark.parametrize(
    ("body", "named"), [c[1:] for c in COUNTERS], ids=[c[0] for c in COUNTERS]
)
def test_the_shards_counts_of_writes_are_refused_in_a_pool(pooled, dedicated, body, named):
    error = _search(pooled, body, status=400).json
    assert named in error["message"]
    answer = _search(dedicated, body, status="*")
    # An index of its own lets it through; a test server that lacks the aggregation
    # (noida-db: sampler, top_metrics; osmem-server: top_metrics) says so itself.
    assert answer.status_code == 200 or (
        "The search engine refused the query: Unknown aggregation type" in answer.json["message"]
    ), answer.json


def test_the_pools_metadata_fields_are_refused(pooled):
    # The test servers do not map them, so no dedicated index to compare with here.
    for field in ("_seq_no", "_primary_term", "_routing", "_index"):
        error = _search(pooled, {"sort": [{field: "asc"}]}, status=400).json
        assert f"field {field!r} is not searchable" in error["message"]


def _scores(app, body):
    hits = _search(app, body).json["hits"]["hits"]
    return [(hit["_id"], hit["_score"]) for hit in hits]


@pytest.mark.parametrize(
    "query",
    [
        {"match": {"title": "kinto plugin"}},
        {"multi_match": {"query": "kinto plugin", "fields": ["title^2", "id"]}},
        {"query_string": {"query": "kinto OR plugin", "default_field": "title"}},
        {"bool": {"should": [{"term": {"title": "plugin"}}, {"match": {"title": "kinto"}}]}},
        {"span_near": {"clauses": [{"span_term": {"title": "search"}}], "slop": 0}},
    ],
    ids=["match", "multi-match", "query-string", "bool", "span"],
)
def test_scores_in_a_pool_do_not_move_when_another_tenant_writes(pooled, query):
    body = {"query": query, "track_total_hits": True}
    before = _scores(pooled, body)
    assert before
    requests = [
        {"method": "PUT", "path": f"{OTHER}/records/o{i}", "body": {"data": {"title": text}}}
        for i, text in enumerate(["kinto", "plugin plugin", "kinto search", "plugin"] * 5)
    ]
    pooled.post_json("/v1/batch", {"defaults": {"headers": BOB}, "requests": requests})
    other_body = {"query": {"match": {"title": "kinto"}}}
    wait_until(
        lambda: len(pooled.post_json(f"{OTHER}/search", other_body, headers=BOB).json["hits"][
            "hits"
        ]) == 10,
        "the other tenant's records are searchable",
    )  # fmt: skip
    assert _scores(pooled, body) == before


def test_records_holding_more_of_the_words_score_higher_in_a_pool(pooled):
    scores = dict(_scores(pooled, {"query": {"match": {"title": "kinto search plugin"}}}))
    assert set(scores) == {"both", "one"}
    assert scores["both"] > scores["one"]
    # The boost still counts, as the weight of the matching words.
    boosted = {"query": {"match": {"title": {"query": "kinto search plugin", "boost": 2}}}}
    assert dict(_scores(pooled, boosted)) == {rid: 2 * s for rid, s in scores.items()}


def test_pooled_text_queries_rank_by_the_search_boxs_criteria(pooled):
    """Proximity, field weight and exactness, as the GET search box ranks, from no
    statistics: the words side by side beat the same words apart, the heavier field wins."""
    texts = {"apart": "plugin of kinto, for search", "near": "a kinto search plugin here"}
    for rid, title in texts.items():
        pooled.put_json(f"{TENANT}/records/{rid}", {"data": {"title": title}}, headers=ALICE)
    match = {"query": {"match": {"title": "kinto search plugin"}}}
    scores = dict(_scores(pooled, match))
    # "both" is the title, whole; "near" holds the words in order; "apart" only holds them.
    assert scores["both"] > scores["near"] > scores["apart"] > scores["one"]
    pooled.put_json(f"{TENANT}/records/named", {"data": {"name": "kinto"}}, headers=ALICE)
    fields = {"multi_match": {"query": "kinto plugin", "fields": ["name^4", "title"]}}
    ranked = [rid for rid, _ in _scores(pooled, {"query": fields})]
    assert ranked.index("named") < ranked.index("one")


def test_the_engines_words_are_not_passed_on_from_a_pool(pooled, dedicated):
    # The engine refuses a sort on a field no record has, naming the field.
    body = {"sort": [{"no_such_field": "asc"}]}
    assert "no_such_field" in _search(dedicated, body, status=400).json["message"]
    error = _search(pooled, body, status=400).json
    assert error["message"] == f"body: {SHARED_REFUSAL}"
    assert error["errno"] == 107


# Filters first: a field unknown to the plugin's cached mapping makes it read the mapping
# afresh, as it would in time anyway.
GET_QUERIES = [
    "min_price=a",
    "price=cheap",
    "has_price=true",
    "_sort=price,id",
    "like_title=*plugin*",
    "q=kinto",
    "q=kinto+plugin&_fuzzy=true&_prefix=true",
]


def test_get_search_in_a_pool_reads_only_the_fields_its_records_hold(make_app):
    app = _make(make_app, 1)

    spy = EngineSpy(app.app.registry.elasticsearch.index.engine)

    def answers():
        """Each answer, and the searches sent for it: what the engine is asked must not
        depend on the other tenants either (the test servers enforce no clause limit)."""
        found = {}
        for qs in GET_QUERIES:
            spy.calls.clear()
            response = app.get(f"{TENANT}/search?{qs}", headers=ALICE, status="*")
            body = response.json
            body.pop("took", None)
            sent = [
                kwargs.get("body")
                for name, kwargs in spy.calls
                # Which fields the collection's records hold is asked of every field of
                # the pool: that question varies, its answer must not.
                if name == "search" and "present" not in kwargs.get("body", {}).get("aggs", {})
            ]
            found[qs] = (response.status_int, body, response.headers.get("Total-Objects"), sent)
        return found

    before = answers()
    assert before["q=kinto"][0] == 200 and before["q=kinto"][1]["hits"]["hits"]
    # Another tenant maps "price" as a number, and text fields holding the tenant's words
    # (within its share of the pool's fields): q over every field of the pool would search
    # them, and with enough of them pass the clause limit.
    data = {"price": 5, **{f"f{i}": "kinto plugin search" for i in range(40)}}
    app.put_json(f"{OTHER}/records/o1", {"data": data}, headers=BOB)
    wait_until(
        lambda: app.post_json(f"{OTHER}/search", {}, headers=BOB).json["hits"]["hits"],
        "the other tenant's record is searchable",
    )
    after = answers()
    index = app.app.registry.elasticsearch.index
    pool = index.locator.placement("other", "notes").target
    assert "f39" in index.known.field_types("other", "notes", refresh=True, index=pool)[0]
    assert after == before


POST_BODIES = {
    "range-on-a-word": {"query": {"range": {"price": {"gte": "cheap"}}}},
    "term": {"query": {"term": {"price": "cheap"}}},
    "sort": {"sort": [{"price": {"order": "asc", "unmapped_type": "keyword"}}, "id"]},
    "terms-aggregation": {"size": 0, "aggs": {"p": {"terms": {"field": "price"}}}},
    "average": {"size": 0, "aggs": {"p": {"avg": {"field": "price"}}}},
    "nested": {"query": {"nested": {"path": "parts", "query": {"match_all": {}}}}},
    "multi-match-pattern": {"query": {"multi_match": {"query": "kinto 5", "fields": ["*"]}}},
    "returned-pattern": {"fields": ["p*", "title"], "_source": False},
    "match-other-field": {"query": {"match": {"price": "kinto"}}},
    "own-fields-still-work": {"query": {"range": {"n": {"gte": 2}}}, "sort": ["n"]},
}


def test_post_search_in_a_pool_reads_only_the_fields_its_records_hold(make_app):
    app = _make(make_app, 1)

    def answers():
        found = {}
        for name, body in POST_BODIES.items():
            response = _search(app, body, status="*")
            answer = response.json
            answer.pop("took", None)
            found[name] = (response.status_int, answer)
        return found

    before = answers()
    assert before["own-fields-still-work"][0] == 200
    assert [h["_id"] for h in before["own-fields-still-work"][1]["hits"]["hits"]] == [
        "one",
        "none",
    ]
    # Another tenant maps "price" as a number and "parts" as objects, which a nested query
    # on an index with no "parts" fails on.
    app.put_json(f"{OTHER}/records/o1", {"data": {"price": 5, "parts": [{"a": 1}]}}, headers=BOB)
    wait_until(
        lambda: app.post_json(f"{OTHER}/search", {}, headers=BOB).json["hits"]["hits"],
        "the other tenant's record is searchable",
    )
    assert answers() == before


BUCKET_SEARCH = "/v1/buckets/tenant/search"
BUCKET_QUERIES = ["_sort=price", "q=kinto", "q=kinto+plugin&_fuzzy=true", "_sort=-n&min_n=2"]
BUCKET_BODIES = [POST_BODIES[name] for name in ("range-on-a-word", "sort", "multi-match-pattern")]


def test_bucket_search_in_a_pool_reads_only_the_fields_its_collections_hold(make_app):
    app = _make(make_app, 1)

    def answers():
        found = []
        for qs in BUCKET_QUERIES:
            response = app.get(f"{BUCKET_SEARCH}?{qs}", headers=ALICE, status="*")
            found.append((response.status_int, response.json))
        for body in BUCKET_BODIES:
            response = app.post_json(BUCKET_SEARCH, body, headers=ALICE, status="*")
            found.append((response.status_int, response.json))
        for _, answer in found:
            answer.pop("took", None)
        return found

    before = answers()
    assert before[1][0] == 200 and before[1][1]["hits"]["hits"]
    data = {"price": 5, **{f"f{i}": "kinto plugin search" for i in range(40)}}
    app.put_json(f"{OTHER}/records/o1", {"data": data}, headers=BOB)
    wait_until(
        lambda: app.post_json(f"{OTHER}/search", {}, headers=BOB).json["hits"]["hits"],
        "the other tenant's record is searchable",
    )
    assert answers() == before


def test_ties_in_a_pool_come_in_kintos_order_in_every_hit_context(pooled):
    """Equal scores would come back in the shard's order of writes, which other tenants'
    writes change: in a pool every hit context ties by Kinto's order (newest first, then
    id), and no hit carries the values of that order, which nobody asked for."""
    for rid in ("t3", "t1", "t4", "t2", "t0"):
        data = {"title": "tied words", "kind": "k", "tags": [{"n": 1}]}
        pooled.put_json(f"{TENANT}/records/{rid}", {"data": data}, headers=ALICE)
    newest_first = ["t0", "t2", "t4", "t1", "t3"]
    match = {"match": {"title": "tied"}}
    top_hits = {"top_hits": {"size": 3, "_source": ["title"]}}
    body = {
        "query": match,
        "size": 3,
        "aggs": {"by_kind": {"terms": {"field": "kind.keyword"}, "aggs": {"top": top_hits}}},
        "collapse": {"field": "kind.keyword", "inner_hits": {"name": "same_kind", "size": 4}},
    }
    answer = pooled.post_json(f"{TENANT}/search", body, headers=ALICE).json
    (collapsed,) = answer["hits"]["hits"]
    assert collapsed["_id"] == newest_first[0]
    inner = collapsed["inner_hits"]["same_kind"]["hits"]["hits"]
    assert [hit["_id"] for hit in inner] == newest_first[:4]
    (bucket,) = answer["aggregations"]["by_kind"]["buckets"]
    tops = bucket["top"]["hits"]["hits"]
    assert [hit["_id"] for hit in tops] == newest_first[:3]
    for hit in [collapsed, *inner, *tops]:
        assert "sort" not in hit, hit
    assert {hit["_score"] for hit in [collapsed, *inner]} == {collapsed["_score"]} != {None}

    for without_collapse in ({"query": match, "size": 3}, {"query": match, "size": 3, "sort": []}):
        hits = pooled.post_json(f"{TENANT}/search", without_collapse, headers=ALICE).json["hits"]
        assert [hit["_id"] for hit in hits["hits"]] == newest_first[:3]
        assert hits["max_score"] == hits["hits"][0]["_score"] is not None
        assert all("sort" not in hit for hit in hits["hits"])
    # A sort of the user's own: its values only, its ties in Kinto's order too.
    by_kind = {"query": match, "size": 2, "sort": [{"kind.keyword": "asc"}]}
    hits = pooled.post_json(f"{TENANT}/search", by_kind, headers=ALICE).json["hits"]["hits"]
    assert [(hit["_id"], hit["sort"]) for hit in hits] == [("t0", ["k"]), ("t2", ["k"])]
    # Paging by search_after follows the user's own sort: it is left as it is.
    after = {**by_kind, "search_after": ["a"]}
    hits = pooled.post_json(f"{TENANT}/search", after, headers=ALICE).json["hits"]["hits"]
    assert [hit["sort"] for hit in hits] == [["k"], ["k"]]
