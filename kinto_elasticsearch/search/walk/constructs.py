"""The constructs of the DSL the walk accepts, and where each keeps what it holds.

Closed-world tables: top-level keys, query types, aggregation types, suggesters and hit
options are listed, with where each keeps its sub-queries, fields and scripts and what the
rules must know of it (refused, full-read only, scripted). A key missing here is refused
until someone has decided what it holds. The tables follow the engines' reference
documentation; they have not yet been checked key by key against the Elasticsearch
specification (``elastic/elasticsearch-specification``) or OpenSearch's query and aggregation
builders.
"""

TOP_LEVEL_KEYS = frozenset(
    {
        "query",
        "post_filter",
        "aggs",
        "aggregations",
        "size",
        "from",
        "sort",
        "search_after",
        "_source",
        "fields",
        "docvalue_fields",
        "stored_fields",
        "highlight",
        "collapse",
        "rescore",
        "suggest",
        "min_score",
        "track_total_hits",
        "track_scores",
        "explain",
        "version",
        "seq_no_primary_term",
        "timeout",
        "terminate_after",
    }
)

REFUSED_TOP_LEVEL_KEYS = {
    "indices_boost": "it names other indices",
    "pit": "a point in time brings its own indices instead of the collection's",
    "knn": "its hits are added to the query's and escape the permission filter "
    "(use the knn query instead)",
    "retriever": "it replaces the query and escapes the permission filter",
    "rank": "it merges searches that escape the permission filter",
    "sub_searches": "it runs searches that escape the permission filter",
    "profile": "it shows index names, shards and the permission filter",
    "stats": "it writes to the cluster's search statistics",
    "ext": "plugin extensions cannot be checked",
    "search_pipeline": "a pipeline rewrites the search after it has been checked",
    "slice": "slicing needs a scroll or a point in time",
}

SCRIPTED_TOP_LEVEL_KEYS = frozenset({"script_fields", "runtime_mappings", "derived"})

# Keys that introduce a script wherever they appear as a DSL key (not as a field name).
SCRIPT_KEYS = frozenset(
    {
        "script",
        "_script",
        "script_score",
        "script_fields",
        "runtime_mappings",
        "derived",
        "scripted_metric",
        "bucket_script",
        "bucket_selector",
        "moving_fn",
        "minimum_should_match_script",
        "script_heuristic",
        "init_script",
        "map_script",
        "combine_script",
        "reduce_script",
    }
)

# Options whose values are field names (a string, a list, or objects with a "field"); any
# option ending in "_field" or "_fields" is one too (minimum_should_match_field, use_field,
# source_fields, docvalue_fields, stored_fields...).
FIELD_OPTIONS = frozenset({"field", "fields", "default_field", "path", "nested_path"})
RETURNED_FIELD_OPTIONS = frozenset({"fields", "docvalue_fields", "stored_fields"})

# Query types whose listed keys hold a query or a list of queries.
COMPOUND_QUERIES = {
    "bool": ("must", "filter", "should", "must_not"),
    "boosting": ("positive", "negative"),
    "constant_score": ("filter",),
    "dis_max": ("queries",),
    "nested": ("query",),
    "has_child": ("query",),
    "has_parent": ("query",),
    "script_score": ("query",),
    "pinned": ("organic",),
    "span_containing": ("big", "little"),
    "span_within": ("big", "little"),
    "span_first": ("match",),
    "span_multi": ("match",),
    "span_near": ("clauses",),
    "span_or": ("clauses",),
    "span_not": ("include", "exclude"),
    "field_masking_span": ("query",),
    "span_field_masking": ("query",),
}
INNER_HITS_QUERIES = frozenset({"nested", "has_child", "has_parent"})

# Query types holding no other query, keyed by field name (plus the options below).
FIELD_QUERIES = frozenset(
    {
        "match",
        "match_phrase",
        "match_phrase_prefix",
        "match_bool_prefix",
        "intervals",
        "term",
        "terms_set",
        "range",
        "prefix",
        "wildcard",
        "regexp",
        "fuzzy",
        "geo_bounding_box",
        "geo_distance",
        "geo_polygon",
        "geo_grid",
        "geo_shape",
        "shape",
        "xy_shape",
        "span_term",
        "span_gap",
    }
)
# The keys of a field-keyed query that are its own options, not fields.
FIELD_QUERY_OPTIONS = frozenset(
    {
        "boost",
        "_name",
        "ignore_unmapped",
        "distance",
        "distance_type",
        "validation_method",
        "type",
        "unit",
    }
)
# Query types holding no other query, made of options only.
OPTION_QUERIES = frozenset(
    {
        "match_all",
        "match_none",
        "multi_match",
        "combined_fields",
        "query_string",
        "simple_query_string",
        "exists",
        "ids",
        "distance_feature",
        "rank_feature",
        "parent_id",
    }
)
# Queries whose text selects fields, or that search every field unless told which.
TEXT_NAMES_FIELDS = frozenset({"query_string"})
ALL_FIELDS_BY_DEFAULT = frozenset(
    {"multi_match", "simple_query_string", "combined_fields", "more_like_this"}
)

REFUSED_QUERIES = {
    "wrapper": "it hides a base64-encoded query that cannot be checked",
    "rule": "it reads stored query rules that pin documents of any index",
    "rule_query": "it reads stored query rules that pin documents of any index",
}

# Constructs whose result depends on records outside the permission filter.
JOIN_REASON = "it matches on or returns related records you may not be able to read"
FULL_READ_QUERIES = {
    "has_child": JOIN_REASON,
    "has_parent": JOIN_REASON,
    "more_like_this": "it chooses its terms by their frequencies in every record",
    "fuzzy": "its expansions are chosen among the terms of every record",
    "match_phrase_prefix": "its last term expands to the first terms of every record",
    "span_multi": "its expansions are chosen (or refused) by the terms of every record",
    "knn": "it picks its nearest neighbours among every record before the permission filter",
}
# Interval rules that expand to at most 128 terms of the whole index, or fail.
EXPANDING_INTERVAL_RULES = frozenset({"prefix", "wildcard", "regexp", "fuzzy"})

DECAY_FUNCTIONS = frozenset({"gauss", "exp", "linear"})

# Aggregations whose answer depends on the shard's order of documents, which is the order
# of every tenant's writes in a pool (and which merges of segments reshuffle): refused
# there (``rules``), allowed in an index of one's own.
_TIES = "among documents of equal {}, which ones it keeps is the shard's order of writes"
SHARD_ORDER_AGGREGATIONS = {
    "random_sampler": "it samples in the shard's order of writes",
    "sampler": _TIES.format("score") + " (a filter aggregation keeps them all)",
    "diversified_sampler": _TIES.format("score") + " (a filter aggregation keeps them all)",
    "top_metrics": _TIES.format("sort values")
    + " (top_hits with size 1 breaks ties in Kinto's order)",
}

METRIC_AGGREGATIONS = frozenset(
    {
        "avg",
        "boxplot",
        "cardinality",
        "extended_stats",
        "geo_bounds",
        "geo_centroid",
        "geo_line",
        "matrix_stats",
        "max",
        "median_absolute_deviation",
        "min",
        "percentile_ranks",
        "percentiles",
        "rate",
        "stats",
        "string_stats",
        "sum",
        "t_test",
        "top_hits",
        "top_metrics",
        "value_count",
        "weighted_avg",
    }
)
BUCKET_AGGREGATIONS = frozenset(
    {
        "adjacency_matrix",
        "auto_date_histogram",
        "children",
        "composite",
        "date_histogram",
        "date_range",
        "diversified_sampler",
        "filter",
        "filters",
        "geo_distance",
        "geohash_grid",
        "geohex_grid",
        "geotile_grid",
        "histogram",
        "ip_prefix",
        "ip_range",
        "missing",
        "multi_terms",
        "nested",
        "parent",
        "random_sampler",
        "range",
        "rare_terms",
        "reverse_nested",
        "sampler",
        "significant_terms",
        "significant_text",
        "terms",
        "variable_width_histogram",
    }
)
PIPELINE_AGGREGATIONS = frozenset(
    {
        "avg_bucket",
        "bucket_count_ks_test",
        "bucket_correlation",
        "bucket_sort",
        "cumulative_cardinality",
        "cumulative_sum",
        "derivative",
        "extended_stats_bucket",
        "max_bucket",
        "min_bucket",
        "moving_percentiles",
        "normalize",
        "percentiles_bucket",
        "serial_diff",
        "stats_bucket",
        "sum_bucket",
    }
)
AGGREGATIONS = METRIC_AGGREGATIONS | BUCKET_AGGREGATIONS | PIPELINE_AGGREGATIONS
SCRIPT_AGGREGATIONS = frozenset(
    {"scripted_metric", "bucket_script", "bucket_selector", "moving_fn"}
)
FULL_READ_AGGREGATIONS = {
    "children": JOIN_REASON,
    "parent": JOIN_REASON,
    "significant_terms": "its background frequencies count records you cannot read",
    "significant_text": "its background frequencies count records you cannot read",
}
TERMS_AGGREGATIONS = frozenset({"terms", "multi_terms", "significant_terms", "significant_text"})
HISTOGRAMS = frozenset({"histogram", "date_histogram"})
REFUSED_AGGREGATIONS = {
    "global": "it ignores the query and the permission filter",
    "inference": "it runs a machine-learning model",
}
BUCKET_SIZE_KEYS = frozenset({"size", "shard_size", "buckets"})
# Default bucket counts, to estimate how many buckets a histogram under them makes.
DEFAULT_BUCKETS = {
    "terms": 10,
    "multi_terms": 10,
    "significant_terms": 10,
    "significant_text": 10,
    "composite": 10,
    "auto_date_histogram": 10,
    "variable_width_histogram": 10,
    "geohash_grid": 10000,
    "geotile_grid": 10000,
    "geohex_grid": 10000,
}
# Aggregation options whose keys and values are the user's names and values, never DSL.
AGGREGATION_DATA_KEYS = frozenset(
    {"order", "buckets_path", "after", "missing", "format", "include", "exclude", "keyed"}
)
COMPOSITE_SOURCES = frozenset({"terms", "histogram", "date_histogram", "geotile_grid"})
AGGREGATION_NODE_KEYS = frozenset({"aggs", "aggregations", "meta"})

SUGGESTERS = frozenset({"term", "phrase", "completion"})
SUGGESTION_TEXT_KEYS = frozenset({"text", "prefix", "regex"})

# Sort keys that are not field names.
SORT_SPECIALS = frozenset({"_score", "_doc", "_shard_doc"})
GEO_SORT_OPTIONS = frozenset(
    {
        "order",
        "unit",
        "mode",
        "distance_type",
        "ignore_unmapped",
        "validation_method",
        "nested",
        "nested_path",
        "nested_filter",
        "_name",
    }
)

HIT_CONTEXT_KEYS = frozenset(
    {
        "_source",
        "fields",
        "docvalue_fields",
        "stored_fields",
        "highlight",
        "sort",
        "size",
        "from",
        "explain",
        "version",
        "seq_no_primary_term",
        "track_scores",
        "name",
        "collapse",
        "ignore_unmapped",
        "script_fields",
    }
)
