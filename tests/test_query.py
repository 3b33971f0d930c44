import copy
import dataclasses

import pytest

from kinto_elasticsearch.index import naming
from kinto_elasticsearch.index.placement import COLLECTION_FIELD, Placement
from kinto_elasticsearch.search.filters import RECORDS
from kinto_elasticsearch.search.rules import QueryLimits, QueryRefused, collection_search_body

# What the plugin sends for a search of one collection, here of an index of its own.
DEDICATED = Placement("blog", "articles", naming.alias_name("kinto", "blog", "articles"))
LIMITS = QueryLimits()
SCRIPTS = QueryLimits(allow_scripts=True)
LOOKUP = {"index": "other-collection", "id": "1", "path": "ids"}


def filtered(query, *filters):
    """A query as the plugin sends it: kept to live records and to ``filters``."""
    return {"bool": {"must": [query], "filter": [RECORDS, *filters]}}


def nested_bools(levels):
    query = {"match_all": {}}
    for _ in range(levels - 1):
        query = {"bool": {"must": [query]}}
    return query


def nested_aggregations(levels):
    aggregations = {"leaf": {"max": {"field": "n"}}}
    for level in range(levels - 1):
        aggregations = {f"l{level}": {"terms": {"field": "k.keyword"}, "aggs": aggregations}}
    return aggregations


def deep_list(levels):
    value = 1
    for _ in range(levels):
        value = [value]
    return value


# (id, body, readable_ids, location, words of the reason)
HOSTILE = [
    # Reads of another index or document.
    (
        "terms-lookup",
        {"query": {"bool": {"filter": [{"terms": {"id": LOOKUP}}]}}},
        None,
        "query.bool.filter[0].terms.id",
        "terms lookup is not allowed: it reads another document",
    ),
    (
        "terms-lookup-in-post-filter",
        {"post_filter": {"terms": {"tags": LOOKUP}}},
        None,
        "post_filter.terms.tags",
        "terms lookup",
    ),
    (
        "terms-lookup-in-filter-aggregation",
        {"aggs": {"f": {"filter": {"terms": {"x": LOOKUP}}}}},
        None,
        "aggs.f.filter.terms.x",
        "terms lookup",
    ),
    (
        "terms-lookup-in-filters-aggregation",
        {"aggs": {"f": {"filters": {"filters": {"mine": {"terms": {"x": LOOKUP}}}}}}},
        None,
        "aggs.f.filters.filters.mine.terms.x",
        "terms lookup",
    ),
    (
        "terms-lookup-in-t-test-population",
        {"aggs": {"t": {"t_test": {"a": {"field": "n", "filter": {"terms": {"x": LOOKUP}}}}}}},
        None,
        "aggs.t.t_test.a.filter.terms.x",
        "terms lookup",
    ),
    (
        "terms-lookup-in-sort-nested-filter",
        {
            "sort": [
                {
                    "comments.at": {
                        "nested": {"path": "comments", "filter": {"terms": {"a": LOOKUP}}}
                    }
                }
            ]
        },
        None,
        "sort[0].comments.at.nested.filter.terms.a",
        "terms lookup",
    ),
    (
        "terms-lookup-in-highlight-query",
        {"highlight": {"highlight_query": {"terms": {"t": LOOKUP}}, "fields": {"t": {}}}},
        None,
        "highlight.highlight_query.terms.t",
        "terms lookup",
    ),
    (
        "terms-lookup-in-field-highlight-query",
        {"highlight": {"fields": [{"title": {"highlight_query": {"terms": {"t": LOOKUP}}}}]}},
        None,
        "highlight.fields[0].title.highlight_query.terms.t",
        "terms lookup",
    ),
    (
        "terms-lookup-in-rescore",
        {"rescore": {"window_size": 10, "query": {"rescore_query": {"terms": {"t": LOOKUP}}}}},
        None,
        "rescore.query.rescore_query.terms.t",
        "terms lookup",
    ),
    (
        "terms-lookup-in-function-score-filter",
        {"query": {"function_score": {"functions": [{"filter": {"terms": {"t": LOOKUP}}}]}}},
        None,
        "query.function_score.functions[0].filter.terms.t",
        "terms lookup",
    ),
    (
        "terms-lookup-in-opensearch-knn-filter",
        {
            "query": {
                "knn": {"vec": {"vector": [1, 2], "k": 3, "filter": {"terms": {"t": LOOKUP}}}}
            }
        },
        None,
        "query.knn.vec.filter.terms.t",
        "terms lookup",
    ),
    (
        "terms-lookup-in-collapse-inner-hits-highlight",
        {
            "collapse": {
                "field": "author",
                "inner_hits": [
                    {"name": "i", "highlight": {"highlight_query": {"terms": {"t": LOOKUP}}}}
                ],
            }
        },
        None,
        "collapse.inner_hits[0].highlight.highlight_query.terms.t",
        "terms lookup",
    ),
    (
        "more-like-this-naming-an-index",
        {
            "query": {
                "dis_max": {
                    "queries": [
                        {"match": {"a": "b"}},
                        {"more_like_this": {"like": [{"_index": "other", "_id": "1"}]}},
                    ]
                }
            }
        },
        None,
        "query.dis_max.queries[1].more_like_this.like[0]._index",
        "read another index",
    ),
    (
        "more-like-this-by-id-with-partial-read",
        {"query": {"more_like_this": {"fields": ["title"], "like": {"_id": "secret"}}}},
        ["r1"],
        "query.more_like_this",
        "chooses its terms by their frequencies in every record",
    ),
    (
        "more-like-this-legacy-docs",
        {"query": {"more_like_this": {"docs": [{"_id": "1"}]}}},
        None,
        "query.more_like_this.docs",
        "'docs' is not allowed",
    ),
    (
        "geo-shape-indexed-shape",
        {
            "query": {
                "boosting": {
                    "positive": {"match_all": {}},
                    "negative": {
                        "geo_shape": {
                            "location": {
                                "indexed_shape": {"index": "shapes", "id": "x", "path": "s"}
                            }
                        }
                    },
                    "negative_boost": 0.5,
                }
            }
        },
        None,
        "query.boosting.negative.geo_shape.location.indexed_shape",
        "'indexed_shape' is not allowed",
    ),
    (
        "shape-indexed-shape",
        {
            "query": {
                "constant_score": {
                    "filter": {"shape": {"geometry": {"indexed_shape": {"id": "x"}}}}
                }
            }
        },
        None,
        "query.constant_score.filter.shape.geometry.indexed_shape",
        "'indexed_shape' is not allowed",
    ),
    (
        "percolate-stored-document",
        {"query": {"percolate": {"field": "q", "index": "other", "id": "1"}}},
        None,
        "query.percolate.index",
        "reads a stored document",
    ),
    (
        "pinned-document-of-another-index",
        {
            "query": {
                "pinned": {"docs": [{"_index": "other", "_id": "1"}], "organic": {"match_all": {}}}
            }
        },
        None,
        "query.pinned.docs[0]._index",
        "names another index",
    ),
    (
        "wrapper-query",
        {"query": {"bool": {"should": [{"wrapper": {"query": "eyJtYXRjaF9hbGwiOnt9fQ=="}}]}}},
        None,
        "query.bool.should[0].wrapper",
        "cannot be checked",
    ),
    (
        "rule-query",
        {
            "query": {
                "rule": {"ruleset_ids": ["r"], "match_criteria": {}, "organic": {"match_all": {}}}
            }
        },
        None,
        "query.rule",
        "stored query rules",
    ),
    (
        "wrapper-inside-span-multi",
        {
            "query": {
                "span_near": {
                    "clauses": [{"span_multi": {"match": {"wrapper": {"query": "e30="}}}}]
                }
            }
        },
        None,
        "query.span_near.clauses[0].span_multi.match.wrapper",
        "'wrapper' is not allowed",
    ),
    (
        "phrase-suggester-collate",
        {
            "suggest": {
                "s": {
                    "text": "x",
                    "phrase": {"field": "t", "collate": {"query": {"source": "{}"}}},
                }
            }
        },
        None,
        "suggest.s.phrase.collate",
        "templated query",
    ),
    (
        "knn-query-vector-builder",
        {
            "query": {
                "knn": {
                    "field": "v",
                    "query_vector_builder": {"text_embedding": {"model_id": "m"}},
                }
            }
        },
        None,
        "query.knn.query_vector_builder",
        "machine-learning model",
    ),
    ("top-level-pit", {"pit": {"id": "abc"}}, None, "pit", "'pit' is not allowed"),
    (
        "top-level-indices-boost",
        {"indices_boost": [{"other": 2}]},
        None,
        "indices_boost",
        "other indices",
    ),
    (
        "top-level-retriever",
        {"retriever": {"standard": {}}},
        None,
        "retriever",
        "permission filter",
    ),
    ("top-level-ext", {"ext": {"anything": {}}}, None, "ext", "'ext' is not allowed"),
    (
        "top-level-search-pipeline",
        {"search_pipeline": {"request_processors": []}},
        None,
        "search_pipeline",
        "pipeline",
    ),
    # Escapes from the permission filter.
    (
        "top-level-knn",
        {"knn": {"field": "v", "query_vector": [1, 2], "k": 5, "num_candidates": 10}},
        ["r1"],
        "knn",
        "escape the permission filter",
    ),
    ("global-aggregation", {"aggs": {"all": {"global": {}}}}, None, "aggs.all.global", "'global'"),
    (
        "global-aggregation-nested",
        {
            "aggs": {
                "a": {"terms": {"field": "k"}, "aggregations": {"b": {"global": {}, "aggs": {}}}}
            }
        },
        ["r1"],
        "aggs.a.aggregations.b.global",
        "ignores the query",
    ),
    (
        "suggest-with-partial-read",
        {"suggest": {"s": {"text": "x", "term": {"field": "t"}}}},
        ["r1"],
        "suggest",
        "'suggest' is not allowed",
    ),
    (
        "significant-terms-with-partial-read",
        {"aggs": {"s": {"significant_terms": {"field": "tags"}}}},
        ["r1"],
        "aggs.s.significant_terms",
        "background",
    ),
    (
        "significant-text-with-partial-read",
        {"aggs": {"s": {"sampler": {}, "aggs": {"t": {"significant_text": {"field": "body"}}}}}},
        [],
        "aggs.s.aggs.t.significant_text",
        "background",
    ),
    (
        "has-child-with-partial-read",
        {"query": {"has_child": {"type": "c", "query": {"match_all": {}}}}},
        ["r1"],
        "query.has_child",
        "related records",
    ),
    (
        "has-parent-with-partial-read",
        {
            "query": {
                "bool": {
                    "filter": {"has_parent": {"parent_type": "p", "query": {"match_all": {}}}}
                }
            }
        },
        ["r1"],
        "query.bool.filter.has_parent",
        "related records",
    ),
    (
        "children-aggregation-with-partial-read",
        {"aggs": {"c": {"children": {"type": "answer"}}}},
        ["r1"],
        "aggs.c.children",
        "related",
    ),
    (
        "terms-min-doc-count-zero",
        {"aggs": {"t": {"terms": {"field": "tags", "min_doc_count": 0}}}},
        None,
        "aggs.t.terms.min_doc_count",
        "'min_doc_count' below 1",
    ),
    (
        "multi-terms-min-doc-count-as-string",
        {"aggs": {"t": {"multi_terms": {"terms": [{"field": "a"}], "min_doc_count": "0"}}}},
        ["r1"],
        "aggs.t.multi_terms.min_doc_count",
        "whole number",
    ),
    ("explain-with-partial-read", {"explain": True}, ["r1"], "explain", "statistics"),
    ("explain-as-string", {"explain": "true"}, ["r1"], "explain", "true or false"),
    (
        "top-hits-explain-with-partial-read",
        {"aggs": {"t": {"top_hits": {"size": 1, "explain": True}}}},
        ["r1"],
        "aggs.t.top_hits.explain",
        "statistics",
    ),
    (
        "inner-hits-explain-with-partial-read",
        {
            "query": {
                "nested": {
                    "path": "c",
                    "query": {"match_all": {}},
                    "inner_hits": {"explain": True},
                }
            }
        },
        ["r1"],
        "query.nested.inner_hits.explain",
        "statistics",
    ),
    ("profile", {"profile": True}, None, "profile", "permission filter"),
    # Scripts, every form.
    (
        "script-query",
        {"query": {"bool": {"filter": [{"script": {"script": {"source": "true"}}}]}}},
        None,
        "query.bool.filter[0].script",
        "scripts are disabled",
    ),
    (
        "stored-script-by-id",
        {"query": {"script": {"script": {"id": "stored"}}}},
        None,
        "query.script",
        "scripts are disabled",
    ),
    (
        "script-score-query",
        {"query": {"script_score": {"query": {"match_all": {}}, "script": {"source": "1"}}}},
        None,
        "query.script_score",
        "scripts are disabled",
    ),
    (
        "function-score-script-function",
        {"query": {"function_score": {"functions": [{"script_score": {"script": "1"}}]}}},
        None,
        "query.function_score.functions[0].script_score",
        "'script_score' is not allowed",
    ),
    (
        "function-score-script-shorthand",
        {
            "query": {
                "function_score": {"query": {"match_all": {}}, "script_score": {"script": "1"}}
            }
        },
        None,
        "query.function_score.script_score",
        "'script_score' is not allowed",
    ),
    ("script-fields", {"script_fields": {"x": {"script": "1"}}}, None, "script_fields", "scripts"),
    (
        "runtime-mappings",
        {"runtime_mappings": {"x": {"type": "long", "script": "emit(1)"}}},
        None,
        "runtime_mappings",
        "scripts",
    ),
    (
        "opensearch-derived-fields",
        {"derived": {"x": {"type": "long", "script": "emit(1)"}}},
        None,
        "derived",
        "scripts",
    ),
    (
        "scripted-metric-aggregation",
        {"aggs": {"m": {"scripted_metric": {"map_script": "state.x = 1"}}}},
        None,
        "aggs.m.scripted_metric",
        "'scripted_metric' is not allowed",
    ),
    (
        "bucket-script-aggregation",
        {
            "aggs": {
                "h": {
                    "histogram": {"field": "n", "interval": 1},
                    "aggs": {"r": {"bucket_script": {"buckets_path": {}, "script": "1"}}},
                }
            }
        },
        None,
        "aggs.h.aggs.r.bucket_script",
        "'bucket_script' is not allowed",
    ),
    (
        "bucket-selector-aggregation",
        {
            "aggs": {
                "h": {
                    "histogram": {"field": "n", "interval": 1},
                    "aggs": {"s": {"bucket_selector": {"script": "true"}}},
                }
            }
        },
        None,
        "aggs.h.aggs.s.bucket_selector",
        "'bucket_selector' is not allowed",
    ),
    (
        "moving-fn-aggregation",
        {"aggs": {"m": {"moving_fn": {"buckets_path": "c", "window": 3, "script": "x"}}}},
        None,
        "aggs.m.moving_fn",
        "'moving_fn' is not allowed",
    ),
    (
        "terms-aggregation-script",
        {"aggs": {"t": {"terms": {"script": {"source": "doc['a'].value"}}}}},
        None,
        "aggs.t.terms.script",
        "'script' is not allowed",
    ),
    (
        "avg-aggregation-script",
        {"aggs": {"a": {"avg": {"field": "n", "script": {"source": "_value * 2"}}}}},
        None,
        "aggs.a.avg.script",
        "'script' is not allowed",
    ),
    (
        "weighted-avg-value-script",
        {"aggs": {"w": {"weighted_avg": {"value": {"script": "1"}, "weight": {"field": "w"}}}}},
        None,
        "aggs.w.weighted_avg.value.script",
        "'script' is not allowed",
    ),
    (
        "composite-source-script",
        {"aggs": {"c": {"composite": {"sources": [{"k": {"terms": {"script": "1"}}}]}}}},
        None,
        "aggs.c.composite.sources[0].k.terms.script",
        "'script' is not allowed",
    ),
    (
        "sort-by-script",
        {"sort": [{"_script": {"type": "number", "script": "1", "order": "asc"}}]},
        None,
        "sort[0]._script",
        "'_script' is not allowed",
    ),
    (
        "top-metrics-sort-by-script",
        {
            "aggs": {
                "m": {
                    "top_metrics": {
                        "metrics": {"field": "n"},
                        "sort": {"_script": {"script": "1"}},
                    }
                }
            }
        },
        None,
        "aggs.m.top_metrics.sort._script",
        "'_script' is not allowed",
    ),
    (
        "rescore-script-score",
        {
            "rescore": [
                {
                    "query": {
                        "rescore_query": {
                            "script_score": {"query": {"match_all": {}}, "script": "1"}
                        }
                    }
                }
            ]
        },
        None,
        "rescore[0].query.rescore_query.script_score",
        "scripts are disabled",
    ),
    (
        "intervals-filter-script",
        {
            "query": {
                "intervals": {
                    "body": {"match": {"query": "a", "filter": {"script": {"source": "true"}}}}
                }
            }
        },
        None,
        "query.intervals.body.match.filter.script",
        "'script' is not allowed",
    ),
    (
        "terms-set-script",
        {
            "query": {
                "terms_set": {
                    "tags": {"terms": ["a"], "minimum_should_match_script": {"source": "1"}}
                }
            }
        },
        None,
        "query.terms_set.tags.minimum_should_match_script",
        "'minimum_should_match_script' is not allowed",
    ),
    (
        "top-hits-script-fields",
        {"aggs": {"t": {"top_hits": {"script_fields": {"x": {"script": "1"}}}}}},
        None,
        "aggs.t.top_hits.script_fields",
        "'script_fields' is not allowed",
    ),
    (
        "collapse-inner-hits-script-fields",
        {
            "collapse": {
                "field": "k.keyword",
                "inner_hits": {"name": "i", "script_fields": {"x": {"script": "1"}}},
            }
        },
        None,
        "collapse.inner_hits.script_fields",
        "'script_fields' is not allowed",
    ),
    (
        "significant-terms-script-heuristic",
        {
            "aggs": {
                "s": {"significant_terms": {"field": "t", "script_heuristic": {"script": "1"}}}
            }
        },
        None,
        "aggs.s.significant_terms.script_heuristic",
        "'script_heuristic' is not allowed",
    ),
    # Caps.
    ("negative-size", {"size": -1}, None, "size", "'size' must be a whole number"),
    ("size-as-string", {"size": "10"}, None, "size", "'size' must be a whole number"),
    ("size-as-boolean", {"size": True}, None, "size", "'size' must be a whole number"),
    ("size-as-float", {"size": 10.0}, None, "size", "'size' must be a whole number"),
    ("negative-from", {"from": -1, "size": 1}, None, "from", "'from' must be a whole number"),
    (
        "from-and-size-over-window",
        {"from": 9995, "size": 10},
        None,
        "from",
        "result window of 10000",
    ),
    ("from-alone-over-window", {"from": 10001}, None, "from", "result window"),
    (
        "query-too-deep",
        {"query": nested_bools(21)},
        None,
        "query" + ".bool.must[0]" * 20 + ".match_all",
        "deeper than 20",
    ),
    (
        "aggregations-too-deep",
        {"aggs": nested_aggregations(21)},
        None,
        "aggs." + ".aggs.".join(f"l{i}" for i in range(19, -1, -1)) + ".aggs.leaf",
        "deeper than 20",
    ),
    (
        "too-many-aggregations",
        {"aggs": {f"a{i}": {"max": {"field": "n"}} for i in range(51)}},
        None,
        "aggs.a50",
        "more than 50 aggregations",
    ),
    (
        "terms-aggregation-size",
        {"aggs": {"t": {"terms": {"field": "k", "size": 5000}}}},
        None,
        "aggs.t.terms.size",
        "'size' must be a whole number from 0 to 1000",
    ),
    (
        "terms-aggregation-shard-size",
        {"aggs": {"t": {"terms": {"field": "k", "shard_size": 1001}}}},
        None,
        "aggs.t.terms.shard_size",
        "'shard_size'",
    ),
    (
        "composite-size",
        {"aggs": {"c": {"composite": {"size": 2000, "sources": []}}}},
        None,
        "aggs.c.composite.size",
        "'size'",
    ),
    (
        "auto-date-histogram-buckets",
        {"aggs": {"d": {"auto_date_histogram": {"field": "d", "buckets": 5000}}}},
        None,
        "aggs.d.auto_date_histogram.buckets",
        "'buckets'",
    ),
    (
        "top-hits-size",
        {"aggs": {"t": {"top_hits": {"size": 1001}}}},
        None,
        "aggs.t.top_hits.size",
        "'size'",
    ),
    (
        "suggester-size",
        {"suggest": {"s": {"text": "x", "term": {"field": "t", "size": 1001}}}},
        None,
        "suggest.s.term.size",
        "'size'",
    ),
    (
        "rescore-window-over",
        {"rescore": {"window_size": 20000, "query": {"rescore_query": {"match_all": {}}}}},
        None,
        "rescore.window_size",
        "'window_size'",
    ),
    (
        "regexp-determinized-states",
        {"query": {"regexp": {"t": {"value": "a.*", "max_determinized_states": 10**9}}}},
        None,
        "query.regexp.t.max_determinized_states",
        "'max_determinized_states'",
    ),
    (
        "query-string-determinized-states",
        {"query": {"query_string": {"query": "/a.*/", "max_determinized_states": 10**9}}},
        None,
        "query.query_string.max_determinized_states",
        "'max_determinized_states'",
    ),
    ("timeout-without-limit", {"timeout": "-1"}, None, "timeout", "duration"),
    ("timeout-as-number", {"timeout": 10}, None, "timeout", "duration"),
    ("negative-terminate-after", {"terminate_after": -5}, None, "terminate_after", "whole number"),
    (
        "json-nested-too-deep",
        {"query": {"range": {"n": {"gte": deep_list(200)}}}},
        None,
        "query.range.n.gte" + "[0]" * 96,
        "nests deeper than 100 levels",
    ),
    # Malformed or unsupported.
    ("body-is-a-list", [{"query": {"match_all": {}}}], None, "", "must be a JSON object"),
    ("body-is-a-string", "match_all", None, "", "must be a JSON object"),
    (
        "unknown-top-level-key",
        {"querry": {"match_all": {}}},
        None,
        "querry",
        "'querry' is not a supported search parameter",
    ),
    (
        "both-aggs-and-aggregations",
        {"aggs": {}, "aggregations": {}},
        None,
        "aggregations",
        "not both",
    ),
    (
        "query-with-two-types",
        {"query": {"match_all": {}, "term": {"a": "b"}}},
        None,
        "query",
        "exactly one query type",
    ),
    ("query-not-an-object", {"query": "a"}, None, "query", "exactly one query type"),
    (
        "unknown-query-type",
        {"query": {"bool": {"must": [{"neural": {"v": {}}}]}}},
        None,
        "query.bool.must[0].neural",
        "'neural' is not a supported query type",
    ),
    ("aggregations-not-an-object", {"aggs": ["terms"]}, None, "aggs", "keyed by aggregation name"),
    (
        "unknown-aggregation-type",
        {"aggs": {"x": {"inference": {"model_id": "m"}}}},
        None,
        "aggs.x.inference",
        "machine-learning model",
    ),
    (
        "aggregation-with-two-types",
        {"aggs": {"x": {"terms": {"field": "a"}, "max": {"field": "n"}}}},
        None,
        "aggs.x",
        "exactly one aggregation type",
    ),
    (
        "unknown-rescorer",
        {"rescore": {"learning_to_rank": {"model_id": "m"}}},
        None,
        "rescore.learning_to_rank",
        "not a supported rescorer",
    ),
    (
        "unknown-suggester",
        {"suggest": {"s": {"text": "x", "custom": {}}}},
        None,
        "suggest.s.custom",
        "not a supported suggester",
    ),
    (
        "unknown-composite-source",
        {"aggs": {"c": {"composite": {"sources": [{"k": {"geohash": {"field": "g"}}}]}}}},
        None,
        "aggs.c.composite.sources[0].k.geohash",
        "not a supported composite source",
    ),
]


@pytest.mark.parametrize(
    ("body", "readable_ids", "location", "reason"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_bodies_are_refused_where_they_offend(body, readable_ids, location, reason):
    with pytest.raises(QueryRefused) as raised:
        collection_search_body(body, LIMITS, readable_ids, DEDICATED)
    assert raised.value.location == location
    assert reason in raised.value.message
    if location:
        assert raised.value.message.endswith(f"(at {location})")


def test_hostile_ids_are_distinct():
    ids = [case[0] for case in HOSTILE]
    assert len(ids) == len(set(ids)) >= 45


def test_refusal_is_a_value_error_with_message_and_location():
    with pytest.raises(ValueError) as raised:
        collection_search_body({"query": {"terms": {"id": LOOKUP}}}, LIMITS, None, DEDICATED)
    assert str(raised.value) == raised.value.message
    assert raised.value.message == (
        "terms lookup is not allowed: it reads another document (at query.terms.id)"
    )


RICH_BODY = {
    "query": {
        "bool": {
            "must": [{"match": {"title": {"query": "kinto search", "operator": "and"}}}],
            "filter": [
                {"range": {"last_modified": {"gte": 1500000000000}}},
                {"terms": {"tags.keyword": ["a", "b"]}},
                {"nested": {"path": "comments", "query": {"exists": {"field": "comments.by"}}}},
            ],
            "should": [{"multi_match": {"query": "kinto", "fields": ["title^2", "body"]}}],
            "must_not": {"term": {"status": "draft"}},
            "minimum_should_match": 0,
        }
    },
    "post_filter": {"term": {"lang": "en"}},
    "aggs": {
        "by_tag": {
            "terms": {"field": "tags.keyword", "size": 20, "order": {"_count": "desc"}},
            "aggs": {
                "per_month": {
                    "date_histogram": {"field": "published", "calendar_interval": "month"},
                    "aggs": {"avg_score": {"avg": {"field": "score"}}},
                }
            },
        },
        "recent": {"filter": {"range": {"published": {"gte": "now-1y"}}}},
    },
    "highlight": {"fields": {"title": {}, "body": {"fragment_size": 100}}},
    "sort": [{"published": {"order": "desc"}}, "_score", {"id": "asc"}],
    "search_after": [1500000000000, 1.5, "r9"],
    "collapse": {"field": "author.keyword"},
    "_source": {"includes": ["title", "published"]},
    "track_total_hits": True,
    "size": 20,
}


def test_a_rich_query_passes_unchanged_with_full_read():
    prepared = collection_search_body(RICH_BODY, LIMITS, None, DEDICATED)
    assert prepared == {**RICH_BODY, "query": filtered(RICH_BODY["query"]), "timeout": "10s"}


def test_a_rich_query_is_wrapped_in_the_permission_filter():
    prepared = collection_search_body(RICH_BODY, LIMITS, ["r1", "r2"], DEDICATED)
    assert prepared["query"] == filtered(RICH_BODY["query"], {"ids": {"values": ["r1", "r2"]}})
    assert {k: v for k, v in prepared.items() if k != "query"} == {
        **{k: v for k, v in RICH_BODY.items() if k != "query"},
        "timeout": "10s",
    }


def test_no_readable_record_matches_nothing():
    prepared = collection_search_body({}, LIMITS, [], DEDICATED)
    assert prepared["query"] == filtered({"match_all": {}}, {"ids": {"values": []}})


def test_full_read_adds_no_permission_filter():
    prepared = collection_search_body({}, LIMITS, None, DEDICATED)
    assert prepared["query"] == filtered({"match_all": {}})


def test_a_pooled_collection_is_kept_to_its_documents_named_as_the_pool_names_them():
    pooled = Placement("blog", "articles", DEDICATED.alias, naming.pool_index_name("kinto", 0))
    body = {"query": {"ids": {"values": ["r1"]}}}
    prepared = collection_search_body(body, LIMITS, ["r2"], pooled)
    # Scored without the pool's statistics: a constant for what the ids match.
    ids = {"ids": {"values": ["blog/articles/r1", "r1"]}}
    records = {"term": {COLLECTION_FIELD: "blog/articles"}}
    readable = {"ids": {"values": ["blog/articles/r2", "r2"]}}
    query = {"constant_score": {"filter": ids, "boost": 1.0}}
    # Before the layout says the pool's tombstones are marked: records are those with an id.
    assert prepared["query"] == {"bool": {"must": [query], "filter": [RECORDS, records, readable]}}
    # After: the collection's term alone, which tombstones (``{key}/``) do not match.
    marked = dataclasses.replace(pooled, marked=True)
    prepared = collection_search_body(body, LIMITS, ["r2"], marked)
    assert prepared["query"] == {"bool": {"must": [query], "filter": [records, readable]}}


def test_the_input_is_not_modified():
    body = copy.deepcopy(RICH_BODY)
    collection_search_body(body, LIMITS, ["r1"], DEDICATED)
    assert body == RICH_BODY


def test_readable_ids_are_copied():
    ids = ["r1"]
    prepared = collection_search_body({}, LIMITS, ids, DEDICATED)
    ids.append("r2")
    assert prepared["query"]["bool"]["filter"] == [RECORDS, {"ids": {"values": ["r1"]}}]


ALLOWED = [
    (
        "field-named-script-in-term",
        {"query": {"term": {"script": "print"}}},
        ["r1"],
    ),
    (
        "field-named-script-in-match-and-range",
        {
            "query": {
                "bool": {"must": [{"match": {"_script": "x"}}, {"range": {"script": {"gt": 1}}}]}
            }
        },
        ["r1"],
    ),
    ("sort-by-field-named-script", {"sort": [{"script": {"order": "asc"}}, "script"]}, None),
    (
        "sort-by-the-keyword-of-a-field-named-script",
        {"sort": [{"script.keyword": {"order": "asc"}}, "script.keyword"]},
        ["r1"],
    ),
    (
        "aggregation-named-script-ordered-by-it",
        {
            "aggs": {
                "t": {
                    "terms": {"field": "k.keyword", "order": {"script": "desc"}},
                    "aggs": {"script": {"max": {"field": "n"}}},
                }
            }
        },
        ["r1"],
    ),
    ("highlight-field-named-script", {"highlight": {"fields": {"script": {}}}}, None),
    (
        "percolated-document-with-a-script-field",
        {"query": {"percolate": {"field": "q", "document": {"script": "x", "indexed_shape": 1}}}},
        ["r1"],
    ),
    (
        "geo-distance-sort-with-nested-filter",
        {
            "sort": [
                {
                    "_geo_distance": {
                        "script": [1, 2],
                        "nested": {"path": "p", "filter": {"term": {"a": 1}}},
                    }
                }
            ]
        },
        None,
    ),
    (
        "more-like-this-text-and-inline-document",
        {
            "query": {
                "more_like_this": {
                    "fields": ["t"],
                    "like": ["some text", {"doc": {"t": "x", "script": "y"}}],
                }
            }
        },
        None,
    ),
    (
        "more-like-this-by-id-with-full-read",
        {"query": {"more_like_this": {"like": [{"_id": "r2"}]}}},
        None,
    ),
    ("explain-with-full-read", {"explain": True}, None),
    ("explain-false-with-partial-read", {"explain": False}, ["r1"]),
    (
        "suggest-with-full-read",
        {
            "suggest": {
                "text": "kinto",
                "s": {"term": {"field": "t", "size": 5}},
                "c": {
                    "prefix": "ki",
                    "completion": {"field": "sugg", "contexts": {"script": ["a"]}},
                },
            }
        },
        None,
    ),
    (
        "significant-terms-with-full-read",
        {
            "aggs": {
                "s": {
                    "significant_terms": {"field": "t", "background_filter": {"term": {"a": "b"}}}
                }
            }
        },
        None,
    ),
    (
        "has-child-with-full-read",
        {
            "query": {
                "has_child": {"type": "c", "query": {"match_all": {}}, "inner_hits": {"size": 3}}
            }
        },
        None,
    ),
    (
        "fuzzy-expansions-rewritten-as-constant-score",
        {
            "query": {
                "bool": {
                    "should": [
                        {"fuzzy": {"t": {"value": "txet", "rewrite": "constant_score"}}},
                        {
                            "multi_match": {
                                "query": "txet",
                                "fields": ["t"],
                                "fuzziness": "AUTO",
                                "fuzzy_rewrite": "constant_score",
                            }
                        },
                    ]
                }
            }
        },
        ["r1"],
    ),
    ("parent-id-with-partial-read", {"query": {"parent_id": {"type": "c", "id": "r1"}}}, ["r1"]),
    (
        "terms-min-doc-count-one",
        {"aggs": {"t": {"terms": {"field": "k.keyword", "min_doc_count": 1}}}},
        ["r1"],
    ),
    (
        "histogram-min-doc-count-zero",
        {"aggs": {"h": {"histogram": {"field": "n", "interval": 5, "min_doc_count": 0}}}},
        ["r1"],
    ),
    (
        "filters-and-adjacency-matrix",
        {
            "aggs": {
                "f": {"filters": {"filters": [{"term": {"a": 1}}], "other_bucket": True}},
                "m": {"adjacency_matrix": {"filters": {"x": {"term": {"a": 1}}}}},
            }
        },
        ["r1"],
    ),
    (
        "top-hits-under-terms",
        {
            "aggs": {
                "k": {
                    "terms": {"field": "k.keyword"},
                    "aggs": {
                        "t": {"top_hits": {"size": 3, "sort": [{"n": "desc"}], "_source": ["t"]}}
                    },
                }
            }
        },
        ["r1"],
    ),
    (
        "term-suggester-with-full-read",
        {"suggest": {"text": "helo", "s": {"term": {"field": "title", "size": 3}}}},
        None,
    ),
    (
        "filters-aggregation",
        {"aggs": {"f": {"filters": {"filters": {"one": {"term": {"a": 1}}}}}}},
        ["r1"],
    ),
    (
        "top-hits-and-sampler",
        {
            "aggs": {
                "s": {
                    "sampler": {"shard_size": 200},
                    "aggs": {
                        "t": {"top_hits": {"size": 3, "sort": [{"n": "desc"}], "_source": ["t"]}}
                    },
                }
            }
        },
        ["r1"],
    ),
    (
        "composite-with-after",
        {
            "aggs": {
                "c": {
                    "composite": {
                        "size": 100,
                        "sources": [{"k": {"terms": {"field": "k.keyword"}}}],
                        "after": {"k": "x"},
                    }
                }
            }
        },
        ["r1"],
    ),
    (
        "pipeline-aggregations",
        {
            "aggs": {
                "h": {
                    "date_histogram": {"field": "d", "fixed_interval": "1d"},
                    "aggs": {
                        "n": {"sum": {"field": "n"}},
                        "d": {"derivative": {"buckets_path": "n"}},
                        "s": {"bucket_sort": {"sort": [{"n": "desc"}], "size": 3}},
                    },
                },
                "max_n": {"max_bucket": {"buckets_path": "h>n"}},
            }
        },
        ["r1"],
    ),
    (
        "function-score-decay-and-field-value",
        {
            "query": {
                "function_score": {
                    "query": {"match_all": {}},
                    "functions": [
                        {"filter": {"term": {"a": 1}}, "weight": 2},
                        {"gauss": {"n": {"origin": 0, "scale": 1}}},
                        {"field_value_factor": {"field": "n"}},
                    ],
                    "score_mode": "sum",
                }
            }
        },
        ["r1"],
    ),
    (
        "knn-query-with-filter",
        {
            "query": {
                "knn": {
                    "field": "v",
                    "query_vector": [1, 2],
                    "num_candidates": 10,
                    "filter": [{"term": {"a": 1}}],
                }
            }
        },
        None,
    ),
    (
        "span-near-and-intervals",
        {
            "query": {
                "bool": {
                    "should": [
                        {
                            "span_near": {
                                "clauses": [
                                    {"span_term": {"t": "text"}},
                                    {"span_term": {"t": "1"}},
                                ],
                                "slop": 2,
                                "in_order": True,
                            }
                        },
                        {"intervals": {"t": {"match": {"query": "text 1", "ordered": True}}}},
                    ]
                }
            }
        },
        ["r1"],
    ),
    (
        "pipeline-max-bucket",
        {
            "aggs": {
                "k": {"terms": {"field": "k.keyword"}, "aggs": {"n": {"sum": {"field": "n"}}}},
                "max_n": {"max_bucket": {"buckets_path": "k>n"}},
            }
        },
        ["r1"],
    ),
    (
        "span-and-intervals",
        {
            "query": {
                "bool": {
                    "should": [
                        {
                            "span_near": {
                                "clauses": [
                                    {"span_term": {"t": "a"}},
                                    {"span_multi": {"match": {"prefix": {"t": "b"}}}},
                                ],
                                "slop": 2,
                                "in_order": True,
                            }
                        },
                        {
                            "intervals": {
                                "t": {
                                    "all_of": {
                                        "intervals": [{"match": {"query": "a"}}],
                                        "ordered": True,
                                    }
                                }
                            }
                        },
                    ]
                }
            }
        },
        None,
    ),
    (
        "pinned-ids",
        {"query": {"pinned": {"ids": ["r1"], "organic": {"match": {"t": "x"}}}}},
        ["r1"],
    ),
    (
        "geo-shape-inline",
        {
            "query": {
                "geo_shape": {
                    "location": {
                        "shape": {"type": "envelope", "coordinates": [[13, 53], [14, 52]]},
                        "relation": "within",
                    }
                }
            }
        },
        ["r1"],
    ),
    (
        "collapse-with-inner-hits",
        {
            "collapse": {
                "field": "k.keyword",
                "inner_hits": {"name": "latest", "size": 2, "sort": [{"d": "desc"}]},
            }
        },
        ["r1"],
    ),
    (
        "rescore-query",
        {
            "rescore": {
                "window_size": 50,
                "query": {"rescore_query": {"match_phrase": {"t": "a b"}}, "query_weight": 0.7},
            }
        },
        ["r1"],
    ),
    (
        "response-shaping-keys",
        {
            "fields": ["t", {"field": "d", "format": "epoch_millis"}],
            "docvalue_fields": ["n"],
            "stored_fields": ["_none_"],
            "version": True,
            "seq_no_primary_term": True,
            "track_scores": True,
            "min_score": 0.5,
            "terminate_after": 1000,
        },
        ["r1"],
    ),
    (
        "regexp-within-determinized-states",
        {"query": {"regexp": {"t": {"value": "a.*", "max_determinized_states": 10000}}}},
        ["r1"],
    ),
    ("query-at-the-depth-limit", {"query": nested_bools(20)}, ["r1"]),
    ("aggregations-at-the-depth-limit", {"aggs": nested_aggregations(20)}, ["r1"]),
    (
        "aggregations-at-the-count-limit",
        {"aggs": {f"a{i}": {"max": {"field": "n"}} for i in range(50)}},
        ["r1"],
    ),
    (
        "bucket-size-at-the-limit",
        {"aggs": {"t": {"terms": {"field": "k.keyword", "size": 1000, "shard_size": 1000}}}},
        ["r1"],
    ),
]


# Legitimate bodies, refused to a partial reader by design: they read index-wide statistics
# or related records (see search/rules). ``tests/test_hostile.py`` checks both sides.
FULL_READ_ONLY = {
    "more-like-this-text-and-inline-document",
    "more-like-this-by-id-with-full-read",
    "explain-with-full-read",
    "suggest-with-full-read",
    "term-suggester-with-full-read",
    "significant-terms-with-full-read",
    "has-child-with-full-read",
    "knn-query-with-filter",
    "span-and-intervals",
}
# Legitimate bodies that need what the test servers lack (a percolator, join, geo_shape,
# completion or vector mapping, nested geo sorts on osmem-server, aggregations noida-db does
# not have, pipelines among them): checked here only. Every other class has a body both
# servers run in ALLOWED.
GUARD_ONLY = {
    "sort-by-field-named-script",
    "percolated-document-with-a-script-field",
    "geo-distance-sort-with-nested-filter",
    "suggest-with-full-read",
    "significant-terms-with-full-read",
    "has-child-with-full-read",
    "parent-id-with-partial-read",
    "filters-and-adjacency-matrix",
    "top-hits-and-sampler",
    "composite-with-after",
    "pipeline-aggregations",
    "pipeline-max-bucket",
    "knn-query-with-filter",
    "pinned-ids",
    "geo-shape-inline",
}


@pytest.mark.parametrize(
    ("body", "readable_ids"), [case[1:] for case in ALLOWED], ids=[case[0] for case in ALLOWED]
)
def test_legitimate_bodies_pass_unchanged(body, readable_ids):
    assert FULL_READ_ONLY <= {case[0] for case in ALLOWED} >= GUARD_ONLY
    prepared = collection_search_body(body, LIMITS, readable_ids, DEDICATED)
    readable = [] if readable_ids is None else [{"ids": {"values": readable_ids}}]
    assert prepared.pop("query") == filtered(body.get("query", {"match_all": {}}), *readable)
    body = {k: v for k, v in body.items() if k != "query"}
    assert prepared == {**body, "size": prepared["size"], "timeout": "10s"}


SCRIPTED = [
    (
        "script-query",
        {
            "query": {
                "script": {"script": {"source": "doc['n'].value > params.x", "params": {"x": 1}}}
            }
        },
    ),
    ("stored-script-by-id", {"query": {"script": {"script": {"id": "stored"}}}}),
    (
        "script-score",
        {"query": {"script_score": {"query": {"match_all": {}}, "script": {"source": "_score"}}}},
    ),
    (
        "script-fields-and-runtime-mappings",
        {
            "script_fields": {"x": {"script": "1"}},
            "runtime_mappings": {"y": {"type": "long", "script": "emit(1)"}},
        },
    ),
    (
        "script-aggregations",
        {
            "aggs": {
                "m": {"scripted_metric": {"map_script": "x"}},
                "h": {
                    "histogram": {"field": "n", "interval": 1},
                    "aggs": {
                        "b": {
                            "bucket_selector": {
                                "buckets_path": {"c": "_count"},
                                "script": "params.c > 1",
                            }
                        }
                    },
                },
            }
        },
    ),
    ("sort-by-script", {"sort": {"_script": {"type": "number", "script": "1"}}}),
]


@pytest.mark.parametrize(
    "body", [case[1] for case in SCRIPTED], ids=[case[0] for case in SCRIPTED]
)
def test_scripts_pass_when_allowed(body):
    with pytest.raises(QueryRefused):
        collection_search_body(body, LIMITS, None, DEDICATED)
    assert collection_search_body(body, SCRIPTS, None, DEDICATED) == {
        **body,
        "query": filtered(body.get("query", {"match_all": {}})),
        "size": 10000,
        "timeout": "10s",
    }


def test_allowing_scripts_still_walks_the_queries_they_score():
    body = {"query": {"script_score": {"query": {"terms": {"t": LOOKUP}}, "script": "1"}}}
    with pytest.raises(QueryRefused) as raised:
        collection_search_body(body, SCRIPTS, None, DEDICATED)
    assert raised.value.location == "query.script_score.query.terms.t"


@pytest.mark.parametrize(
    ("body", "limits", "size"),
    [
        ({}, LIMITS, 10000),
        ({"size": 0}, LIMITS, 0),
        ({"size": 25}, LIMITS, 25),
        ({"size": 50000}, LIMITS, 10000),
        ({"size": 200}, QueryLimits(max_size=100), 100),
        ({}, QueryLimits(max_size=100), 100),
        ({"from": 9990}, LIMITS, 10),
        ({"from": 10000}, LIMITS, 0),
        ({"from": 9000, "size": 1000}, LIMITS, 1000),
        ({}, QueryLimits(max_size=500, max_window=200), 200),
    ],
    ids=[
        "absent",
        "zero",
        "smaller",
        "larger-is-capped",
        "capped-by-kinto-page-size",
        "absent-takes-kinto-page-size",
        "absent-with-from-fills-the-window",
        "absent-at-the-end-of-the-window",
        "at-the-window",
        "absent-never-over-the-window",
    ],
)
def test_size(body, limits, size):
    assert collection_search_body(body, limits, None, DEDICATED)["size"] == size


def test_a_capped_size_still_cannot_pass_the_window():
    with pytest.raises(QueryRefused) as raised:
        collection_search_body(
            {"size": 500}, QueryLimits(max_size=500, max_window=200), None, DEDICATED
        )
    assert raised.value.location == "size"


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        (None, "10s"),
        ("2s", "2s"),
        ("500ms", "500ms"),
        ("10s", "10s"),
        ("1m", "10s"),
        ("2d", "10s"),
    ],
    ids=["absent", "shorter", "shorter-in-ms", "equal", "longer", "much-longer"],
)
def test_timeout_is_always_set_and_never_longer_than_the_limit(given, sent):
    body = {} if given is None else {"timeout": given}
    assert collection_search_body(body, LIMITS, None, DEDICATED)["timeout"] == sent


def test_limits_refuse_a_malformed_timeout():
    with pytest.raises(ValueError, match="timeout"):
        QueryLimits(timeout="10 seconds")


def test_lower_limits_are_applied():
    limits = QueryLimits(max_depth=2, max_aggregations=1, max_agg_size=5)
    with pytest.raises(QueryRefused) as raised:
        collection_search_body({"query": nested_bools(3)}, limits, None, DEDICATED)
    assert raised.value.location == "query.bool.must[0].bool.must[0].match_all"
    with pytest.raises(QueryRefused) as raised:
        collection_search_body(
            {"aggs": {"a": {"max": {"field": "n"}}, "b": {"min": {"field": "n"}}}},
            limits,
            None,
            DEDICATED,
        )
    assert raised.value.location == "aggs.b"
    with pytest.raises(QueryRefused) as raised:
        collection_search_body(
            {"aggs": {"t": {"terms": {"field": "k", "size": 6}}}}, limits, None, DEDICATED
        )
    assert raised.value.location == "aggs.t.terms.size"


@pytest.mark.parametrize(
    ("pattern", "refused"),
    [
        ("(a+)+", True),
        ("(a*b)*", True),
        ("((ab)+c)+", True),
        ("(x{2,3})+", True),
        ("(.*a){20}", True),
        ("a{1,101}", True),
        ("(ab)+", False),
        ("(a|b)*c", False),
        ("[a+]+", False),
        (r"\(a+\)+", False),
        ("a.*b.*c", False),
        ("(a?)+", False),
        ("a{1,100}", False),
    ],
)
def test_regexp_complexity(pattern, refused):
    from kinto_elasticsearch.search.rules.patterns import regexp_problem

    assert (regexp_problem(pattern, LIMITS) is not None) is refused


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"1", 0),
        (b"{}", 1),
        (b'{"a": [[{"b": 1}]]}', 4),
        (b'{"a": "[[[[{{{{"}', 1),
        (b'{"a": "\\"[[["}', 1),
        (b"[" * 5000, 5000),
    ],
)
def test_json_depth_is_measured_on_the_raw_text(raw, depth):
    from kinto_elasticsearch.search.jsonbody import json_depth

    assert json_depth(raw) == depth


@pytest.mark.parametrize(
    ("aggregation", "params", "count"),
    [
        ("histogram", {"interval": 10, "extended_bounds": {"min": 0, "max": 100}}, 11),
        ("histogram", {"interval": 0, "extended_bounds": {"min": 0, "max": 100}}, None),
        ("histogram", {"interval": 1, "extended_bounds": {"min": "a", "max": 1}}, None),
        (
            "date_histogram",
            {
                "fixed_interval": "1d",
                "extended_bounds": {"min": "2024-01-01", "max": "2024-01-31"},
            },
            31,
        ),
        (
            "date_histogram",
            {"calendar_interval": "month", "extended_bounds": {"min": 0, "max": 86400000 * 280}},
            11,
        ),
        (
            "date_histogram",
            {"fixed_interval": "1h", "extended_bounds": {"min": "now-1d", "max": "now"}},
            25,
        ),
        (
            "date_histogram",
            {"fixed_interval": "1d", "extended_bounds": {"min": "x", "max": 1}},
            None,
        ),
    ],
)
def test_histogram_buckets_are_counted_over_their_bounds(aggregation, params, count):
    from kinto_elasticsearch.search.walk.buckets import histogram_bucket_count

    assert histogram_bucket_count(aggregation, params) == count


def test_a_histogram_whose_buckets_cannot_be_counted_is_refused():
    bounds = {"min": "x||+1d", "max": 1}
    body = {"aggs": {"h": {"date_histogram": {"fixed_interval": "1d", "extended_bounds": bounds}}}}
    with pytest.raises(QueryRefused) as raised:
        collection_search_body(body, LIMITS, None, DEDICATED)
    assert raised.value.location == "aggs.h.date_histogram.extended_bounds"
