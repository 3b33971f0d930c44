"""Minimal valid shapes of each construct, aimed at T's fields (``tests/isolation_world``).

T's fields: ``name``, ``title`` (text with a ``.keyword``), ``n`` (long), ``ratio``
(float), ``flag`` (boolean), ``meta.license`` (text), ``meta.year`` (long), ``tags`` (text
array), ``nums`` (long array). Its words: "python", "client", "web", "wsgi", "schema".
Fields O writes and T never does: ``price``, ``color``, ``title_extra``, ``tiny``,
``meta.owner``, ``nick``, ``loc``, ``when`` and ``f000``... (``isolation_world``).
"""

MATCH = {"match": {"title": "python client"}}
WORDS = "python web client wsgi schema server"
ST = {"span_term": {"title": "python"}}
ST2 = {"span_term": {"title": "client"}}
NEAR = {"span_near": {"clauses": [ST, ST2], "slop": 2, "in_order": True}}
# Queries whose terms are chosen from the index's dictionary (class 1), beyond those the
# plugin already refuses to partial readers (FULL_READ_QUERIES).
DICTIONARY_QUERIES = {"prefix", "wildcard", "regexp", "intervals", "match_bool_prefix"}
DICTIONARY_AGGREGATIONS = {"significant_terms", "significant_text"}
# Aggregations whose hits, or whose sampled documents, are chosen by score.
SCORED = {"top_hits", "sampler", "diversified_sampler", "top_metrics", "random_sampler"}
GEO = {"top_left": {"lat": 2, "lon": 0}, "bottom_right": {"lat": 0, "lon": 3}}

_QUERIES = {
    "bool": {
        "must": [MATCH],
        "filter": [{"range": {"n": {"gte": 1}}}],
        "should": [{"match": {"name": "kinto"}}],
        "must_not": [{"term": {"flag": False}}],
    },
    "boosting": {
        "positive": MATCH,
        "negative": {"match": {"title": "web"}},
        "negative_boost": 0.5,
    },
    "constant_score": {"filter": MATCH, "boost": 2},
    "dis_max": {"queries": [MATCH, {"match": {"name": "python"}}], "tie_breaker": 0.3},
    "nested": {"path": "meta", "query": {"match": {"meta.license": "mit"}}},
    "has_child": {"type": "child", "query": {"match_all": {}}},
    "has_parent": {"parent_type": "parent", "query": {"match_all": {}}},
    "script_score": {"query": MATCH, "script": {"source": "_score * 2"}},
    "pinned": {"ids": ["kinto"], "organic": MATCH},
    "span_containing": {"big": NEAR, "little": ST2},
    "span_within": {"big": NEAR, "little": ST},
    "span_first": {"match": ST, "end": 3},
    "span_multi": {"match": {"prefix": {"title": {"value": "py"}}}},
    "span_near": NEAR,
    "span_or": {"clauses": [ST, {"span_term": {"title": "wsgi"}}]},
    "span_not": {"include": ST, "exclude": ST2},
    "field_masking_span": {"query": ST, "field": "name"},
    "span_field_masking": {"query": ST, "field": "name"},
    "match": {"title": "python client"},
    "match_phrase": {"title": "python client"},
    "match_phrase_prefix": {"title": "python cl"},
    "match_bool_prefix": {"title": "python cl"},
    "intervals": {"title": {"match": {"query": "python client", "max_gaps": 2}}},
    "term": {"title": "python"},
    "terms_set": {"tags": {"terms": ["web", "wsgi", "json"], "minimum_should_match_field": "n"}},
    "range": {"n": {"gte": 2, "lte": 6}},
    "prefix": {"title": {"value": "py"}},
    "wildcard": {"title": {"value": "py*"}},
    "regexp": {"title": {"value": "py.*"}},
    "fuzzy": {"title": {"value": "pythn"}},
    "geo_bounding_box": {"loc": GEO},
    "geo_distance": {"distance": "100km", "loc": {"lat": 1, "lon": 2}},
    "geo_polygon": {"loc": {"points": [{"lat": 0, "lon": 0}, {"lat": 2, "lon": 0}, [1, 3]]}},
    "geo_grid": {"loc": {"geotile": "6/32/22"}},
    "geo_shape": {"loc": {"shape": {"type": "envelope", "coordinates": [[0, 2], [3, 0]]}}},
    "shape": {"loc": {"shape": {"type": "envelope", "coordinates": [[0, 2], [3, 0]]}}},
    "xy_shape": {"loc": {"shape": {"type": "envelope", "coordinates": [[0, 2], [3, 0]]}}},
    "span_term": {"title": "python"},
    "span_gap": {"title": 2},
    "match_all": {},
    "match_none": {},
    "multi_match": {"query": "python web", "fields": ["title", "name"]},
    "combined_fields": {"query": "python web", "fields": ["title", "name"]},
    "query_string": {"query": "python AND web"},
    "simple_query_string": {"query": "python web", "fields": ["title", "name"]},
    "exists": {"field": "title"},
    "ids": {"values": ["kinto", "pyramid"]},
    "distance_feature": {"field": "n", "pivot": 2, "origin": 3},
    "rank_feature": {"field": "n"},
    "parent_id": {"type": "child", "id": "kinto"},
    "terms": {"tags": ["web", "wsgi"]},
    "more_like_this": {
        "like": "python client web",
        "fields": ["title"],
        "min_term_freq": 1,
        "min_doc_freq": 1,
    },
    "percolate": {"field": "query", "document": {"title": "python"}},
    "function_score": {
        "query": MATCH,
        "functions": [
            {"filter": {"term": {"flag": True}}, "weight": 2},
            {"field_value_factor": {"field": "n", "missing": 1}},
            {"gauss": {"n": {"origin": 3, "scale": 2}}},
        ],
        "boost_mode": "sum",
    },
    "knn": {"field": "vector", "query_vector": [1.0, 2.0], "k": 3, "num_candidates": 5},
    "script": {"script": {"source": "true"}},
    "wrapper": {"query": "eyJtYXRjaF9hbGwiOnt9fQ=="},
    "rule": {"organic": MATCH, "ruleset_ids": ["r"], "match_criteria": {}},
    "rule_query": {"organic": MATCH, "ruleset_ids": ["r"], "match_criteria": {}},
}

# Variants where one option changes what the engine reads: (suffix, body of the type).
_VARIANTS = {
    "fuzzy": [(" max_expansions=1", {"title": {"value": "pythn", "max_expansions": 1}}),
              (" constant_score", {"title": {"value": "pythn", "rewrite": "constant_score"}})],
    "prefix": [(" top_terms_1", {"title": {"value": "py", "rewrite": "top_terms_1"}})],
    "wildcard": [(" top_terms_1", {"title": {"value": "py*", "rewrite": "top_terms_1"}})],
    "intervals": [
        (" prefix", {"title": {"prefix": {"prefix": "py"}}}),
        (" wildcard", {"title": {"wildcard": {"pattern": "py*"}}}),
        (" fuzzy", {"title": {"fuzzy": {"term": "pythn"}}}),
        (" regexp", {"title": {"regexp": {"pattern": "py.*"}}}),
    ],
    "span_multi": [(" fuzzy", {"match": {"fuzzy": {"title": {"value": "pythn"}}}}),
                   (" wildcard", {"match": {"wildcard": {"title": {"value": "cl*"}}}})],
    "query_string": [(" field", {"query": "title:python"}), (" fuzzy", {"query": "pythn~1"}),
                     (" prefix", {"query": "py*"}), (" default_field ti*",
                                                    {"query": "python", "default_field": "ti*"})],
    "multi_match": [(" phrase_prefix", {"query": "python cl", "type": "phrase_prefix",
                                        "fields": ["title"]}),
                    (" best_fields ti*", {"query": "python", "fields": ["ti*"]})],
    "exists": [(" meta.*", {"field": "meta.*"})],
}  # fmt: skip


def queries(name):
    """``[(variant suffix, query)]`` for a query type: its shape, then its variants."""
    body = _QUERIES.get(name, {"title": "python"})
    found = [("", {name: body})]
    return found + [(suffix, {name: variant}) for suffix, variant in _VARIANTS.get(name, [])]


def _m(options):
    return {"match": {"title": {"query": "pythn clinet", **options}}}


# Options the walk and the rules single out, on a match (name, query, class).
OPTION_VARIANTS = [
    ("fuzziness AUTO", _m({"fuzziness": "AUTO"}), 1),
    ("fuzziness 1 max_expansions 1", _m({"fuzziness": 1, "max_expansions": 1}), 1),
    ("fuzziness AUTO fuzzy_rewrite constant_score",
     _m({"fuzziness": "AUTO", "fuzzy_rewrite": "constant_score"}), 1),
    ("fuzziness prefix_length 2", _m({"fuzziness": 2, "prefix_length": 2}), 1),
    ("fuzzy_transpositions false", _m({"fuzziness": 1, "fuzzy_transpositions": False}), 1),
    ("cutoff_frequency", {"match": {"title": {"query": WORDS, "cutoff_frequency": 0.1}}}, 1),
    ("operator and", {"match": {"title": {"query": "python client", "operator": "and"}}}, 2),
    ("minimum_should_match", {"match": {"title": {"query": WORDS,
                                                  "minimum_should_match": "50%"}}}, 2),
    ("analyzer", {"match": {"title": {"query": "Python", "analyzer": "standard"}}}, 2),
    ("zero_terms_query", {"match": {"title": {"query": "the", "zero_terms_query": "all"}}}, 2),
    ("lenient", {"match": {"n": {"query": "python", "lenient": True}}}, 4),
    ("boost _name", {"match": {"title": {"query": "python", "boost": 3, "_name": "q"}}}, 2),
    ("multi_match fuzziness", {"multi_match": {"query": "pythn", "fields": ["title", "name"],
                                               "fuzziness": "AUTO"}}, 1),
    ("query_string fuzzy_max_expansions", {"query_string": {
        "query": "pythn~2", "default_field": "title", "fuzzy_max_expansions": 1}}, 1),
    ("match_phrase_prefix max_expansions 1", {"match_phrase_prefix": {
        "title": {"query": "python cl", "max_expansions": 1}}}, 1),
    ("match_bool_prefix fuzziness", {"match_bool_prefix": {
        "title": {"query": "pythn cl", "fuzziness": 1}}}, 1),
    ("random_score _seq_no", {"function_score": {
        "query": MATCH, "random_score": {"seed": 1, "field": "_seq_no"}}}, 3),
]  # fmt: skip

_HISTOGRAM = {"histogram": {"field": "n", "interval": 2}}


def _pipeline(name, params, parent):
    avg = {"avg": {"field": "ratio"}}
    if parent:
        # A parent pipeline: under the histogram, reading its metric.
        inner = {"a": avg, "p": {name: params}}
        return {"h": {**_HISTOGRAM, "aggs": inner}}
    return {"h": {**_HISTOGRAM, "aggs": {"a": avg}}, "p": {name: params}}


_SIBLING = {"buckets_path": "h>a"}
_PARENT = {"buckets_path": "a"}
_AGGREGATIONS = {
    "boxplot": {"field": "n"},
    "cardinality": {"field": "tags.keyword"},
    "geo_bounds": {"field": "loc"},
    "geo_centroid": {"field": "loc"},
    "geo_line": {"point": {"field": "loc"}, "sort": {"field": "n"}},
    "matrix_stats": {"fields": ["n", "ratio"]},
    "percentile_ranks": {"field": "n", "values": [3]},
    "rate": {"field": "n"},
    "string_stats": {"field": "name.keyword"},
    "t_test": {"a": {"field": "n"}, "b": {"field": "ratio"}, "type": "paired"},
    "top_hits": {"size": 3},
    "top_metrics": {"metrics": {"field": "n"}, "sort": "_score"},
    "weighted_avg": {"value": {"field": "n"}, "weight": {"field": "ratio"}},
    "adjacency_matrix": {"filters": {"a": MATCH, "b": {"term": {"flag": True}}}},
    "auto_date_histogram": {"field": "n", "buckets": 3},
    "children": {"type": "child"},
    "composite": {"sources": [{"f": {"terms": {"field": "flag"}}}]},
    "date_histogram": {"field": "n", "fixed_interval": "1d"},
    "date_range": {"field": "n", "ranges": [{"to": 3}, {"from": 3}]},
    "filter": MATCH,
    "filters": {"filters": {"a": MATCH, "b": {"term": {"flag": True}}}},
    "geo_distance": {"field": "loc", "origin": "1,2", "ranges": [{"to": 100}]},
    "geohash_grid": {"field": "loc"},
    "geohex_grid": {"field": "loc"},
    "geotile_grid": {"field": "loc"},
    "histogram": {"field": "n", "interval": 2},
    "ip_prefix": {"field": "name.keyword", "prefix_length": 8},
    "ip_range": {"field": "name.keyword", "ranges": [{"to": "10.0.0.5"}]},
    "missing": {"field": "ratio"},
    "multi_terms": {"terms": [{"field": "flag"}, {"field": "meta.license.keyword"}]},
    "nested": {"path": "meta"},
    "parent": {"type": "child"},
    "range": {"field": "n", "ranges": [{"to": 3}, {"from": 3}]},
    "rare_terms": {"field": "tags.keyword"},
    "reverse_nested": {},
    "significant_terms": {"field": "tags.keyword", "min_doc_count": 1},
    "significant_text": {"field": "title", "min_doc_count": 1},
    "terms": {"field": "tags.keyword"},
    "variable_width_histogram": {"field": "n", "buckets": 3},
    "scripted_metric": {"map_script": "state.x = 1", "reduce_script": "return 1"},
    "global": {},
    "inference": {"model_id": "m", "buckets_path": {"x": "a"}},
}
_PARENT_PIPELINES = {
    "bucket_sort": {"sort": [{"a": "desc"}], "size": 2},
    "cumulative_cardinality": {"buckets_path": "c"},
    "cumulative_sum": _PARENT,
    "derivative": _PARENT,
    "moving_percentiles": {"buckets_path": "a", "window": 2},
    "normalize": {"buckets_path": "a", "method": "rescale_0_1"},
    "serial_diff": {"buckets_path": "a", "lag": 1},
    "bucket_script": {"buckets_path": {"x": "a"}, "script": "params.x"},
    "bucket_selector": {"buckets_path": {"x": "a"}, "script": "params.x > 0"},
    "moving_fn": {"buckets_path": "a", "window": 2, "script": "MovingFunctions.max(values)"},
}
_SIBLING_PIPELINES = {
    "bucket_count_ks_test": {"buckets_path": "h>_count", "alternative": ["less"]},
    "bucket_correlation": {
        "buckets_path": "h>_count",
        "function": {"count_correlation": {"indicator": {"expectations": [1, 2, 3, 4]}}},
    },
    "percentiles_bucket": {**_SIBLING, "percents": [50]},
}
_SAMPLERS = {
    "sampler": {"shard_size": 3},
    "diversified_sampler": {"shard_size": 3, "field": "flag"},
    "random_sampler": {"probability": 0.5, "seed": 1},
}


def aggregation(name):
    """The ``aggs`` of a probe of aggregation type ``name``."""
    from kinto_elasticsearch.search.walk.constructs import PIPELINE_AGGREGATIONS

    if name in _PARENT_PIPELINES:
        return _pipeline(name, _PARENT_PIPELINES[name], parent=True)
    if name in PIPELINE_AGGREGATIONS:
        return _pipeline(name, _SIBLING_PIPELINES.get(name, _SIBLING), parent=False)
    if name in _SAMPLERS:
        # What a sampler keeps is chosen by score: the terms of its best-scored documents.
        return {"s": {name: _SAMPLERS[name], "aggs": {"t": {"terms": {"field": "n"}}}}}
    return {"a": {name: _AGGREGATIONS.get(name, {"field": "n"})}}


HL = {"fields": {"title": {}}}
# Top-level keys: [(variant suffix, (body keys beside a match query, class))].
_TOP_LEVEL = {
    "query": [("", ({}, 2))],
    "post_filter": [("", ({"post_filter": {"term": {"flag": True}}}, 2))],
    "aggs": [("", ({"aggs": {"t": {"terms": {"field": "tags.keyword"}}}}, 2))],
    "aggregations": [("", ({"aggregations": {"a": {"avg": {"field": "n"}}}}, 2))],
    "size": [("", ({"size": 2}, 2))],
    "from": [("", ({"from": 2, "size": 2}, 2))],
    "sort": [(" n", ({"sort": ["n"]}, 2)), (" _score", ({"sort": ["_score"]}, 2))],
    "search_after": [("", ({"sort": [{"n": "asc"}], "search_after": [2]}, 2)),
                     (" _score", ({"sort": ["_score", "id"], "search_after": [0.5, "a"]}, 2))],
    "_source": [("", ({"_source": ["title", "meta.*"]}, 4))],
    "fields": [(" *", ({"fields": ["*"]}, 4)), (" ti*", ({"fields": ["ti*"]}, 4)),
               (" meta.*", ({"fields": ["meta.*"]}, 4))],
    "docvalue_fields": [(" n", ({"docvalue_fields": ["n"]}, 4)),
                        (" *", ({"docvalue_fields": ["*"]}, 4))],
    "stored_fields": [(" *", ({"stored_fields": ["*"]}, 4))],
    "highlight": [("", ({"highlight": HL}, 2)),
                  (" *", ({"highlight": {"fields": {"*": {}}}}, 4)),
                  (" ti*", ({"highlight": {"fields": {"ti*": {}}}}, 4))],
    "collapse": [("", ({"collapse": {"field": "flag", "inner_hits": {"name": "i", "size": 2}}},
                       2))],
    "rescore": [("", ({"rescore": {"window_size": 5, "query": {
        "rescore_query": {"match_phrase": {"title": "python client"}},
        "query_weight": 0.7}}}, 2))],
    "suggest": [("", ({"suggest": {"s": {"text": "pythn", "term": {"field": "title"}}}}, 1))],
    "min_score": [("", ({"min_score": 0.5}, 2))],
    "track_total_hits": [("", ({"track_total_hits": True}, 2))],
    "track_scores": [("", ({"sort": ["n"], "track_scores": True}, 2))],
    "explain": [("", ({"explain": True}, 1))],
    "version": [("", ({"version": True}, 3))],
    "seq_no_primary_term": [("", ({"seq_no_primary_term": True}, 3))],
    "timeout": [("", ({"timeout": "5s"}, 2))],
    "terminate_after": [("", ({"terminate_after": 3}, 3))],
    "indices_boost": [("", ({"indices_boost": [{"*": 2}]}, 2))],
    "pit": [("", ({"pit": {"id": "x"}}, 2))],
    "profile": [("", ({"profile": True}, 2))],
    "slice": [("", ({"slice": {"id": 0, "max": 2}}, 3))],
}  # fmt: skip


def top_level(key):
    return _TOP_LEVEL.get(key, [("", ({key: {}}, 2))])


# Hit options, in a top_hits aggregation and in collapse's inner hits (each a small search).
HIT_OPTIONS = {
    "_source": {"_source": ["title"]},
    "fields": {"fields": ["ti*"]},
    "docvalue_fields": {"docvalue_fields": ["*"]},
    "stored_fields": {"stored_fields": ["*"]},
    "highlight": {"highlight": HL},
    "sort": {"sort": ["_doc"]},
    "size": {"size": 2},
    "from": {"from": 1},
    "name": {"name": "x"},
    "collapse": {"collapse": {"field": "n"}},
    "ignore_unmapped": {"ignore_unmapped": True},
    "script_fields": {"script_fields": {"x": {"script": "1"}}},
}
HIT_OPTION_CLASSES = {
    "explain": 1,
    "seq_no_primary_term": 3,
    "sort": 3,
    "fields": 4,
    "docvalue_fields": 4,
    "stored_fields": 4,
}


def hit_contexts(options):
    top = {"size": 0, "query": MATCH, "aggs": {"t": {"top_hits": {"size": 3, **options}}}}
    inner = {"name": "i", "size": 2, **options}
    collapse = {"query": MATCH, "collapse": {"field": "flag", "inner_hits": inner}}
    return [("top_hits", top), ("inner_hits", collapse)]


SUGGESTIONS = {
    "term": {"s": {"text": "pythn clinet", "term": {"field": "title", "suggest_mode": "always"}}},
    "phrase": {"s": {"text": "pythn clinet", "phrase": {"field": "title"}}},
    "completion": {"s": {"prefix": "py", "completion": {"field": "name"}}},
}

# Fields T never wrote and O does: a range, a sort, a term, an aggregation, a query on each
# behaves on an unmapped field as in an index of T's own, whatever O maps.
UNWRITTEN_FIELDS = [
    ("range price", {"query": {"range": {"price": {"gte": 1}}}}),
    ("sort price", {"sort": ["price", "id"]}),
    ("sort price unmapped_type", {"sort": [{"price": {"unmapped_type": "long"}}, "id"]}),
    ("sort color", {"sort": ["color", "id"]}),
    ("term color", {"query": {"term": {"color": "red"}}}),
    ("match color", {"query": {"match": {"color": "red"}}}),
    ("exists price", {"query": {"exists": {"field": "price"}}}),
    ("must_not exists price", {"query": {"bool": {"must_not": {"exists": {"field": "price"}}}}}),
    ("avg price", {"size": 0, "aggs": {"a": {"avg": {"field": "price"}}}}),
    ("terms color", {"size": 0, "aggs": {"a": {"terms": {"field": "color"}}}}),
    ("terms color.keyword", {"size": 0, "aggs": {"a": {"terms": {"field": "color.keyword"}}}}),
    ("histogram price", {"size": 0, "aggs": {"a": {"histogram": {"field": "price",
                                                                 "interval": 5}}}}),
    ("missing when", {"size": 0, "aggs": {"a": {"missing": {"field": "when"}}}}),
    ("date_histogram when", {"size": 0, "aggs": {"a": {"date_histogram": {
        "field": "when", "calendar_interval": "month"}}}}),
    ("range when", {"query": {"range": {"when": {"gte": "2024-01-01"}}}}),
    ("query_string price", {"query": {"query_string": {"query": "price:>1"}}}),
    ("query_string color", {"query": {"query_string": {"query": "color:red OR python"}}}),
    ("geo_distance loc", {"query": {"geo_distance": {"distance": "10km", "loc": [2, 1]}}}),
    ("docvalue_fields price", {"docvalue_fields": ["price"]}),
    ("fields color", {"fields": ["color"]}),
    ("highlight color", {"query": MATCH, "highlight": {"fields": {"color": {}}}}),
    ("match nick", {"query": {"match": {"nick": "pythn"}}}),
    ("meta.owner", {"query": {"term": {"meta.owner": "bob"}}}),
]  # fmt: skip

# Patterns over field names: they must expand over T's fields only.
PATTERNS = ["*", "ti*", "meta.*", "n*"]


def pattern_bodies(pattern):
    return [
        ("fields", {"query": MATCH, "fields": [pattern]}),
        ("docvalue_fields", {"query": MATCH, "docvalue_fields": [pattern]}),
        ("highlight", {"query": MATCH, "highlight": {"fields": {pattern: {}}}}),
        ("multi_match", {"query": {"multi_match": {"query": "python", "fields": [pattern]}}}),
        ("query_string", {"query": {"query_string": {"query": "python", "fields": [pattern]}}}),
        ("simple_query_string",
         {"query": {"simple_query_string": {"query": "python", "fields": [pattern]}}}),
        ("exists", {"query": {"exists": {"field": pattern}}}),
    ]  # fmt: skip


# Searches over every field: how many clauses they make must not depend on O's fields.
ALL_FIELDS = [
    ("query_string", {"query": {"query_string": {"query": WORDS}}}),
    ("query_string lenient", {"query": {"query_string": {"query": WORDS, "lenient": True}}}),
    ("simple_query_string", {"query": {"simple_query_string": {"query": WORDS}}}),
    ("multi_match", {"query": {"multi_match": {"query": WORDS}}}),
    ("combined_fields *", {"query": {"combined_fields": {"query": WORDS, "fields": ["*"]}}}),
    ("more_like_this", {"query": {"more_like_this": {"like": WORDS, "min_term_freq": 1,
                                                     "min_doc_freq": 1}}}),
]  # fmt: skip

Q = "q=" + WORDS.replace(" ", "+")
QUERYSTRINGS = [
    ("", 2), ("q=python", 2), ("q=python+web", 2), ("q=pythn&_fuzzy=true", 1),
    ("q=py&_prefix=true", 1), ("q=pyth+cl&_prefix=true&_fuzzy=true", 1),
    ("q=python&_q_fields=title^3,name", 2), ("q=python&_q_operator=and", 2),
    ("q=title:python", 2), ("q=color:red", 4), ("q=price:>1", 4), ("q=python+OR+quokka", 1),
    ("q=python&_highlight=title", 2), ("q=python&_sort=n", 2), ("q=python&_limit=2", 2),
    (Q, 5), (Q + "&_fuzzy=true", 5), (Q + "&_prefix=true", 5),
    ("min_n=3", 4), ("max_ratio=1", 4), ("flag=true", 4), ("in_n=1,2", 4), ("not_n=2", 4),
    ("has_price=true", 4), ("has_price=false", 4), ("has_title=true", 2), ("min_price=1", 4),
    ("color=red", 4), ("like_title=*python*", 2), ("like_name=py*", 2), ("meta.year=2016", 4),
    ("min_meta.year=2017", 4), ("contains_tags=web", 4), ("contains_any_nums=2,4", 4),
    ("_sort=-n", 2), ("_sort=price", 4), ("_sort=title,-n", 2), ("_sort=meta.year", 4),
    ("_sort=color", 4), ("_limit=3", 3), ("_limit=2&_sort=n", 2), ("_fields=title,n", 2),
    ("_fields=price", 4), ("_since=3000000003000", 3), ("_before=3000000003000", 3),
]  # fmt: skip
FACETS = [
    ("", 4), ("fields=title,n,flag", 4), ("limit=3", 4), ("fields=price,color", 4),
    ("fields=name,meta.license,tags", 4), ("limit=0", 4),
]  # fmt: skip
BUCKET_BODIES = [
    ("empty", {}),
    ("match", {"query": MATCH}),
    ("sort _score", {"query": MATCH, "sort": ["_score"]}),
    ("terms", {"size": 0, "aggs": {"t": {"terms": {"field": "tags.keyword"}}}}),
    ("explain", {"query": MATCH, "explain": True}),
    ("seq_no_primary_term", {"query": MATCH, "seq_no_primary_term": True}),
    ("fields *", {"query": MATCH, "fields": ["*"]}),
]
BUCKET_QUERYSTRINGS = ["", "q=python", "q=pythn&_fuzzy=true", "min_n=3", "_sort=price"]
