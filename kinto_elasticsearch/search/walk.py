"""One walk over a search body, reporting what each construct holds.

A search body is Elasticsearch query DSL written by any user. This module knows, for every
query, aggregation, suggester, rescorer and search option it accepts, where that construct
keeps its sub-queries, the field names it reads (plain, as patterns, in ``*_field`` options,
inside span wrappers, as nested paths), its scripts, the hit contexts that bring values back
(``_source``, ``fields``, ``docvalue_fields``, ``stored_fields``, sort values, highlights,
inner hits, top hits, ``collapse.inner_hits``, suggestions) and what it costs (clauses,
patterns, expansions, buckets, sizes). It decides nothing: it hands each of those to
``report`` as a :class:`Finding`, in the order of the body, and ``rules.py`` decides. So the
guard, the private-field check, the partial-reader rules and the cost limits read one
description of the DSL and cannot drift apart.

The walk is closed-world: query types, aggregation types, suggesters, rescorers and top-level
keys are allow-listed, so a key the engine adds later is refused until someone has decided
what it holds. Field names are the users' data (a field may well be called ``script``), so
the keys of field-keyed objects are reported as fields and never read as DSL. The tables
follow the engines' reference documentation; they have not yet been checked key by key
against the Elasticsearch specification (``elastic/elasticsearch-specification``) or
OpenSearch's query and aggregation builders.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime


class QueryRefused(ValueError):
    """A search body refused before reaching the engine."""

    def __init__(self, message: str, location: str, limit: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        # The setting whose limit the body exceeds, when that is why.
        self.limit = limit


def refuse(reason, location, limit=None):
    message = f"{reason} (at {location})" if location else reason
    return QueryRefused(message, location, limit)


# What a finding is about.
FORBIDDEN = "forbidden"  # refused whoever asks (reads another index, cannot be checked...)
SCRIPT = "script"  # runs code
FULL_READ = "full-read"  # sees index-wide statistics or records beyond the permission filter
FIELD = "field"  # names a field (``name``), a pattern or a nested path (``role``)
ANY_FIELD = "any-field"  # searches fields nobody named
HITS = "hits"  # a hit context whose ``_source`` comes back (``node``, ``nested``)
SIZE = "size"  # a count option (``name``, ``value``) capped by ``limit``
DEPTH = "depth"  # a query or aggregation level (``name``, ``value``)
AGGREGATION = "aggregation"  # one more aggregation
CLAUSES = "clauses"  # ``value`` more clauses or terms for the engine to build
PATTERN = "pattern"  # a ``regexp``, ``wildcard`` or query-string text (``name``, ``value``)
EXPANSIONS = "expansions"  # a limit of term expansions (``name``, ``value``)
BUCKETS = "buckets"  # at least ``value`` buckets (empty ones included)
STATES = "states"  # ``max_determinized_states`` (``value``)
IDS = "ids"  # document ids, in ``node[name]`` (a list or one id): ``ids``, pinned, like,
# and ``term`` or ``terms`` on the engines' document id field, ``ID_FIELD``.
ID_FIELD = "_id"


@dataclass
class Finding:
    kind: str
    path: str
    name: str | None = None
    value: object = None
    reason: str = ""
    role: str = "query"
    limit: str | None = None
    node: dict | None = None
    nested: bool = False


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

_WORD = re.compile(r"\S+")


def _constant_rewrite(options):
    """Whether expansions are rewritten as a constant-score filter of every matching term:
    then no term is chosen by index-wide frequencies, whatever ``max_expansions`` says."""
    rewrite = options.get("fuzzy_rewrite", options.get("rewrite"))
    return isinstance(rewrite, str) and rewrite.startswith("constant_score")


def join_path(path, key):
    return f"{path}.{key}" if path else str(key)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _words(text):
    return len(_WORD.findall(text)) if isinstance(text, str) else 0


class Walk:
    """Walks one body, handing every finding to ``report`` (which may raise)."""

    def __init__(self, report):
        self.report = report
        # Product of the bucket counts of the enclosing aggregations.
        self._bucket_factor = 1
        self._nested = 0
        # Inside options whose expansions are rewritten as constant-score filters.
        self._constant = False

    def emit(self, kind, path, **details):
        self.report(Finding(kind, path, **details))

    def body(self, body):
        if not isinstance(body, dict):
            raise refuse("The search body must be a JSON object", "")
        if "aggs" in body and "aggregations" in body:
            raise refuse("Give aggregations in 'aggs' or 'aggregations', not both", "aggregations")
        self.emit(HITS, "", node=body)
        for key, value in body.items():
            self.top_level(key, value)

    def top_level(self, key, value):
        if key in REFUSED_TOP_LEVEL_KEYS:
            reason = f"'{key}' is not allowed: {REFUSED_TOP_LEVEL_KEYS[key]}"
            self.emit(FORBIDDEN, key, reason=reason)
        elif key in SCRIPTED_TOP_LEVEL_KEYS:
            self._option(key, value, key)
        elif key not in TOP_LEVEL_KEYS:
            raise refuse(f"'{key}' is not a supported search parameter", key)
        elif key in ("query", "post_filter"):
            self._query(value, key, 1)
        elif key in ("aggs", "aggregations"):
            self._aggregations(value, key, 1)
        elif key == "sort":
            self._sort(value, key, 0)
        elif key == "highlight":
            self._highlight(value, key, 0)
        elif key == "rescore":
            self._rescore(value, key)
        elif key == "collapse":
            self._collapse(value, key, 0)
        elif key == "suggest":
            self._suggest(value, key)
        elif key == "explain":
            self._explain(value, key)
        elif key in ("size", "from", "terminate_after"):
            if not _is_count(value):
                raise refuse(f"'{key}' must be a whole number of 0 or more", key)
        elif key in RETURNED_FIELD_OPTIONS:
            self._field_names(value, key, "returned")

    # Options, fields and scripts

    def _option(self, key, value, path):
        """Report a DSL option ``key`` and, unless it is a script, what it holds."""
        if key in SCRIPT_KEYS:
            self.emit(SCRIPT, path, name=key)
            # A script is code and parameters: nothing in it is DSL.
            return
        if key == "indexed_shape":
            reason = f"'{key}' is not allowed: it reads a shape from another document"
            self.emit(FORBIDDEN, path, reason=reason)
        elif key in FIELD_OPTIONS or key.endswith(("_field", "_fields")):
            role = "path" if key in ("path", "nested_path") else "query"
            if key in RETURNED_FIELD_OPTIONS:
                role = "returned"
            self._field_names(value, path, role)
            return
        elif key == "max_determinized_states":
            self.emit(STATES, path, value=value)
        elif key in ("max_expansions", "fuzzy_max_expansions"):
            self.emit(EXPANSIONS, path, name=key, value=value)
        elif key == "fuzziness" and value not in (0, "0") and not self._constant:
            reason = "fuzzy expansions are chosen among the terms of every record"
            self.emit(FULL_READ, path, reason=f"'{key}' is not allowed: {reason}")
        elif key in ("rewrite", "fuzzy_rewrite") and str(value).startswith("top_terms"):
            reason = "it keeps the terms that score best over every record"
            self.emit(FULL_READ, path, reason=f"'{key}: {value}' is not allowed: {reason}")
        elif key == "cutoff_frequency":
            reason = "it splits terms by their frequencies in every record"
            self.emit(FULL_READ, path, reason=f"'{key}' is not allowed: {reason}")
        elif key in EXPANDING_INTERVAL_RULES and isinstance(value, dict):
            reason = "interval expansions are chosen among the terms of every record"
            self.emit(FULL_READ, path, reason=f"'{key}' intervals are not allowed: {reason}")
            if key in ("wildcard", "regexp") and "pattern" in value:
                self.emit(PATTERN, join_path(path, "pattern"), name=key, value=value["pattern"])
        self._scan(value, path)

    def _scan(self, value, path):
        """Report every DSL key nested in an option value."""
        if isinstance(value, dict):
            outer, self._constant = self._constant, _constant_rewrite(value)
            for key, item in value.items():
                self._option(key, item, join_path(path, key))
            self._constant = outer
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._scan(item, f"{path}[{i}]")

    def _field_names(self, value, path, role):
        """Report the field names of a field option (a name, a list, or ``{"field": ...}``)."""
        if isinstance(value, str):
            # "title^2" in multi_match fields.
            self.emit(FIELD, path, name=value.split("^", 1)[0], role=role)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._field_names(item, f"{path}[{i}]", role)
        elif isinstance(value, dict):
            for key, item in value.items():
                key_path = join_path(path, key)
                if key == "field":
                    self._field_names(item, key_path, role)
                else:
                    self._option(key, item, key_path)

    def _fields_then_options(self, body, path, options=FIELD_QUERY_OPTIONS, ids=False):
        """An object keyed by field names (or by the plain ``options``). ``ids``: a
        ``term`` query, whose value on ``_id`` is a document id."""
        if not isinstance(body, dict):
            raise refuse("This must be an object", path)
        for key, value in body.items():
            key_path = join_path(path, key)
            if ids and key == ID_FIELD and isinstance(value, str):
                self.emit(IDS, key_path, name=key, node=body)
            elif ids and key == ID_FIELD and isinstance(value, dict) and "value" in value:
                self.emit(IDS, join_path(key_path, "value"), name="value", node=value)
            elif key not in options:
                self.emit(FIELD, key_path, name=key)
            self._scan(value, key_path)

    def _size(self, key, value, path, limit):
        self.emit(SIZE, path, name=key, value=value, limit=limit)

    def _explain(self, value, path):
        if not isinstance(value, bool):
            raise refuse("'explain' must be true or false", path)
        if value:
            reason = "'explain' is not allowed: it shows statistics of records you cannot read"
            self.emit(FULL_READ, path, reason=reason)

    # Queries

    def _queries(self, value, path, depth):
        if isinstance(value, list):
            for i, item in enumerate(value):
                self._query(item, f"{path}[{i}]", depth)
        else:
            self._query(value, path, depth)

    def _query(self, node, path, depth):
        if not (isinstance(node, dict) and len(node) == 1):
            raise refuse("A query must be an object holding exactly one query type", path)
        ((query_type, body),) = node.items()
        query_path = join_path(path, query_type)
        self.emit(DEPTH, query_path, name=query_type, value=depth, limit="query")
        self.emit(CLAUSES, query_path, value=1)
        if query_type in REFUSED_QUERIES:
            reason = f"'{query_type}' is not allowed: {REFUSED_QUERIES[query_type]}"
            self.emit(FORBIDDEN, query_path, reason=reason)
        if query_type in SCRIPT_KEYS:
            self.emit(SCRIPT, query_path, name=query_type)
        if query_type in FULL_READ_QUERIES and not (
            query_type == "fuzzy"
            and isinstance(body, dict)
            and body
            and all(isinstance(p, dict) and _constant_rewrite(p) for p in body.values())
        ):
            reason = f"'{query_type}' is not allowed: {FULL_READ_QUERIES[query_type]}"
            self.emit(FULL_READ, query_path, reason=reason)
        if not isinstance(body, dict):
            raise refuse(f"'{query_type}' must hold an object", query_path)
        if query_type == "script":
            # A script is code and parameters, nothing in it is DSL.
            return
        if query_type in COMPOUND_QUERIES:
            self._compound(query_type, body, query_path, depth)
        elif query_type == "function_score":
            self._function_score(body, query_path, depth)
        elif query_type == "knn":
            self._knn(body, query_path, depth)
        elif query_type == "terms":
            self._terms(body, query_path)
        elif query_type == "more_like_this":
            self._more_like_this(body, query_path)
        elif query_type == "percolate":
            self._percolate(body, query_path)
        elif query_type in FIELD_QUERIES:
            self._field_query(query_type, body, query_path)
        elif query_type in OPTION_QUERIES:
            self._option_query(query_type, body, query_path)
        else:
            raise refuse(f"'{query_type}' is not a supported query type", query_path)

    def _field_query(self, query_type, body, path):
        self._fields_then_options(body, path, ids=query_type == "term")
        for name, params in body.items():
            if name in FIELD_QUERY_OPTIONS:
                continue
            name_path = join_path(path, name)
            if query_type in ("regexp", "wildcard"):
                key = "value" if isinstance(params, dict) and "value" in params else query_type
                pattern = params.get(key) if isinstance(params, dict) else params
                pattern_path = join_path(name_path, key) if isinstance(params, dict) else name_path
                self.emit(PATTERN, pattern_path, name=query_type, value=pattern)
            elif query_type == "terms_set" and isinstance(params, dict):
                terms = params.get("terms")
                self.emit(CLAUSES, name_path, value=len(terms) if isinstance(terms, list) else 1)
            elif query_type.startswith("match") and query_type != "match_all":
                text = params.get("query") if isinstance(params, dict) else params
                self.emit(CLAUSES, name_path, value=_words(text))

    def _option_query(self, query_type, body, path):
        if query_type in TEXT_NAMES_FIELDS:
            self.emit(ANY_FIELD, path, reason=f"{query_type} can name any field in its text")
        elif query_type in ALL_FIELDS_BY_DEFAULT and not body.get("fields"):
            self.emit(ANY_FIELD, path, reason=f"{query_type} without fields searches every field")
        if query_type == "multi_match" and body.get("type") == "phrase_prefix":
            reason = "phrase_prefix expands its last term to the first terms of every record"
            self.emit(FULL_READ, join_path(path, "type"), reason=f"'{query_type}' {reason}")
        if query_type in ("query_string", "simple_query_string"):
            self.emit(PATTERN, join_path(path, "query"), name=query_type, value=body.get("query"))
        if "query" in body:
            fields = body.get("fields")
            width = len(fields) if isinstance(fields, list) and fields else 1
            self.emit(CLAUSES, join_path(path, "query"), value=_words(body["query"]) * width)
        if query_type == "ids" and isinstance(body.get("values"), list):
            self.emit(CLAUSES, join_path(path, "values"), value=len(body["values"]))
            self.emit(IDS, join_path(path, "values"), name="values", node=body)
        self._scan(body, path)

    def _compound(self, query_type, body, path, depth):
        query_keys = COMPOUND_QUERIES[query_type]
        if query_type == "nested":
            self._nested += 1
        for key, value in body.items():
            key_path = join_path(path, key)
            if key in query_keys:
                self._queries(value, key_path, depth + 1)
            elif key == "inner_hits" and query_type in INNER_HITS_QUERIES:
                self._hit_options(value, key_path, depth)
            elif key == "docs" and query_type == "pinned":
                self._pinned_docs(value, key_path)
            elif key == "ids" and query_type == "pinned" and isinstance(value, list):
                self.emit(CLAUSES, key_path, value=len(value))
                self.emit(IDS, key_path, name="ids", node=body)
            else:
                self._option(key, value, key_path)
        if query_type == "nested":
            self._nested -= 1

    def _pinned_docs(self, docs, path):
        for i, doc in enumerate(docs if isinstance(docs, list) else [docs]):
            if isinstance(doc, dict) and "_index" in doc:
                reason = "'_index' is not allowed in pinned documents: it names another index"
                self.emit(FORBIDDEN, join_path(f"{path}[{i}]", "_index"), reason=reason)
            if isinstance(doc, dict) and "_id" in doc:
                self.emit(IDS, join_path(f"{path}[{i}]", "_id"), name="_id", node=doc)

    def _function_score(self, body, path, depth):
        for key, value in body.items():
            key_path = join_path(path, key)
            if key == "query":
                self._query(value, key_path, depth + 1)
            elif key == "functions":
                if not isinstance(value, list):
                    raise refuse("'functions' must be a list", key_path)
                for i, function in enumerate(value):
                    function_path = f"{key_path}[{i}]"
                    if not isinstance(function, dict):
                        raise refuse("A score function must be an object", function_path)
                    self._score_function(function, function_path, depth)
            else:
                self._score_function({key: value}, path, depth)

    def _score_function(self, function, path, depth):
        for key, value in function.items():
            key_path = join_path(path, key)
            if key == "filter":
                self._query(value, key_path, depth + 1)
            elif key in DECAY_FUNCTIONS:
                self._fields_then_options(value, key_path, {"multi_value_mode"})
            else:
                self._option(key, value, key_path)

    def _knn(self, body, path, depth):
        # Elasticsearch names the field in "field"; OpenSearch nests options under the field.
        for key, value in body.items():
            key_path = join_path(path, key)
            if key == "filter":
                self._queries(value, key_path, depth + 1)
            elif key == "query_vector_builder":
                reason = f"'{key}' is not allowed: it runs a machine-learning model"
                self.emit(FORBIDDEN, key_path, reason=reason)
            elif isinstance(value, dict):
                self.emit(FIELD, key_path, name=key)
                self._knn(value, key_path, depth)
            else:
                self._option(key, value, key_path)

    def _terms(self, body, path):
        for key, value in body.items():
            key_path = join_path(path, key)
            if key in FIELD_QUERY_OPTIONS:
                self._scan(value, key_path)
                continue
            if key == ID_FIELD and isinstance(value, list):
                self.emit(IDS, key_path, name=key, node=body)
            else:
                self.emit(FIELD, key_path, name=key)
            if isinstance(value, dict):
                reason = "terms lookup is not allowed: it reads another document"
                self.emit(FORBIDDEN, key_path, reason=reason)
            elif isinstance(value, list):
                self.emit(CLAUSES, key_path, value=len(value))

    def _more_like_this(self, body, path):
        if not body.get("fields"):
            self.emit(ANY_FIELD, path, reason="more_like_this without fields searches every field")
        for key, value in body.items():
            key_path = join_path(path, key)
            if key in ("like", "unlike"):
                self._like(value, key_path)
            elif key in ("docs", "ids"):
                reason = (
                    f"'{key}' is not allowed in more_like_this: it reads other documents "
                    "(give their text in 'like')"
                )
                self.emit(FORBIDDEN, key_path, reason=reason)
            else:
                self._option(key, value, key_path)

    def _like(self, value, path):
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]" if isinstance(value, list) else path
            if isinstance(item, str):
                self.emit(CLAUSES, item_path, value=_words(item))
            if not isinstance(item, dict):
                continue
            if "_index" in item:
                reason = (
                    "more_like_this documents naming an '_index' are not allowed: "
                    "they read another index"
                )
                self.emit(FORBIDDEN, join_path(item_path, "_index"), reason=reason)
            # A document given inline ("doc") is only text; "_id" reads a stored record.
            if "_id" in item:
                reason = (
                    "more_like_this documents given by '_id' are not allowed: "
                    "they read records you may not be able to read"
                )
                self.emit(FULL_READ, join_path(item_path, "_id"), reason=reason)
                self.emit(IDS, join_path(item_path, "_id"), name="_id", node=item)

    def _percolate(self, body, path):
        for key in ("index", "id"):
            if key in body:
                reason = f"'{key}' is not allowed in percolate: it reads a stored document"
                self.emit(FORBIDDEN, join_path(path, key), reason=reason)
        for key, value in body.items():
            # Percolated documents are the user's data, whatever their field names.
            if key not in ("document", "documents"):
                self._option(key, value, join_path(path, key))

    # Hits: sort, highlight, rescore, collapse, inner hits

    def _sort(self, value, path, depth):
        entries = value if isinstance(value, list) else [value]
        for i, entry in enumerate(entries):
            entry_path = f"{path}[{i}]" if isinstance(value, list) else path
            if isinstance(entry, str):
                if entry not in SORT_SPECIALS:
                    self.emit(FIELD, entry_path, name=entry, role="returned")
                continue
            if not isinstance(entry, dict):
                raise refuse("A sort must be a field name or an object", entry_path)
            for key, spec in entry.items():
                key_path = join_path(entry_path, key)
                if key == "_script":
                    self._option(key, spec, key_path)
                    continue
                if key == "_geo_distance" and isinstance(spec, dict):
                    for name in spec:
                        if name not in GEO_SORT_OPTIONS:
                            self.emit(FIELD, join_path(key_path, name), name=name, role="returned")
                elif key not in SORT_SPECIALS:
                    self.emit(FIELD, key_path, name=key, role="returned")
                if isinstance(spec, dict):
                    self._sort_options(spec, key_path, depth)

    def _sort_options(self, spec, path, depth):
        # The keys are sort options or, for _geo_distance, field names: never scripts.
        for key, value in spec.items():
            key_path = join_path(path, key)
            if key == "nested":
                self._nested_sort(value, key_path, depth)
            elif key == "nested_filter":
                self._query(value, key_path, depth + 1)
            elif key == "nested_path":
                self._field_names(value, key_path, "path")
            else:
                self._scan(value, key_path)

    def _nested_sort(self, nested, path, depth):
        if not isinstance(nested, dict):
            raise refuse("'nested' must be an object", path)
        for key, value in nested.items():
            key_path = join_path(path, key)
            if key == "filter":
                self._query(value, key_path, depth + 1)
            elif key == "nested":
                self._nested_sort(value, key_path, depth + 1)
            else:
                self._option(key, value, key_path)

    def _highlight(self, highlight, path, depth):
        if not isinstance(highlight, dict):
            raise refuse("'highlight' must be an object", path)
        for key, value in highlight.items():
            key_path = join_path(path, key)
            if key == "highlight_query":
                self._query(value, key_path, depth + 1)
            elif key == "fields":
                self._highlight_fields(value, key_path, depth)
            else:
                self._option(key, value, key_path)

    def _highlight_fields(self, fields, path, depth):
        if isinstance(fields, list):
            named = [(f"{path}[{i}]", item) for i, item in enumerate(fields)]
        else:
            named = [(path, fields)]
        for named_path, item in named:
            if not isinstance(item, dict):
                raise refuse("Highlighted fields must be objects keyed by field name", named_path)
            for name, options in item.items():
                field_path = join_path(named_path, name)
                self.emit(FIELD, field_path, name=name, role="returned")
                if not isinstance(options, dict):
                    raise refuse("Highlight options must be an object", field_path)
                for key, value in options.items():
                    key_path = join_path(field_path, key)
                    if key == "highlight_query":
                        self._query(value, key_path, depth + 1)
                    elif key == "matched_fields":
                        self._field_names(value, key_path, "returned")
                    else:
                        self._option(key, value, key_path)

    def _rescore(self, rescore, path):
        items = rescore if isinstance(rescore, list) else [rescore]
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]" if isinstance(rescore, list) else path
            if not isinstance(item, dict):
                raise refuse("A rescorer must be an object", item_path)
            for key, value in item.items():
                key_path = join_path(item_path, key)
                if key == "window_size":
                    self._size(key, value, key_path, "max_result_window")
                elif key == "query":
                    self._rescore_query(value, key_path)
                else:
                    raise refuse(f"'{key}' is not a supported rescorer", key_path)

    def _rescore_query(self, body, path):
        if not isinstance(body, dict):
            raise refuse("'query' must be an object", path)
        for key, value in body.items():
            key_path = join_path(path, key)
            if key == "rescore_query":
                self._query(value, key_path, 1)
            else:
                self._option(key, value, key_path)

    def _collapse(self, collapse, path, depth):
        if not isinstance(collapse, dict):
            raise refuse("'collapse' must be an object", path)
        for key, value in collapse.items():
            key_path = join_path(path, key)
            if key == "inner_hits":
                for i, options in enumerate(value if isinstance(value, list) else [value]):
                    options_path = f"{key_path}[{i}]" if isinstance(value, list) else key_path
                    self._hit_options(options, options_path, depth)
            elif key == "field":
                self._field_names(value, key_path, "returned")
            else:
                self._option(key, value, key_path)

    def _hit_options(self, options, path, depth):
        """The options of ``top_hits`` and inner hits: a small search of their own."""
        if not isinstance(options, dict):
            raise refuse("Hit options must be an object", path)
        self.emit(HITS, path, node=options, nested=self._nested > 0)
        for key, value in options.items():
            key_path = join_path(path, key)
            if key not in HIT_CONTEXT_KEYS:
                raise refuse(f"'{key}' is not a supported option of hits", key_path)
            if key == "size":
                self._size(key, value, key_path, "max_aggregation_size")
            elif key == "from":
                self._size(key, value, key_path, "max_result_window")
            elif key == "sort":
                self._sort(value, key_path, depth)
            elif key == "highlight":
                self._highlight(value, key_path, depth)
            elif key == "explain":
                self._explain(value, key_path)
            elif key == "collapse":
                self._collapse(value, key_path, depth)
            elif key in ("_source", "name"):
                # Source filtering is rewritten by the rules; a name is the user's.
                continue
            else:
                self._option(key, value, key_path)

    # Suggesters

    def _suggest(self, suggest, path):
        reason = (
            "'suggest' is not allowed: suggesters read the terms of every record, "
            "including ones you cannot read"
        )
        self.emit(FULL_READ, path, reason=reason)
        if not isinstance(suggest, dict):
            raise refuse("'suggest' must be an object", path)
        for name, suggestion in suggest.items():
            suggestion_path = join_path(path, name)
            if name == "text":
                continue
            if not isinstance(suggestion, dict):
                raise refuse("A suggestion must be an object", suggestion_path)
            for key, value in suggestion.items():
                key_path = join_path(suggestion_path, key)
                if key in SUGGESTION_TEXT_KEYS:
                    continue
                if key not in SUGGESTERS:
                    raise refuse(f"'{key}' is not a supported suggester", key_path)
                self._suggester(value, key_path)

    def _suggester(self, params, path):
        if not isinstance(params, dict):
            raise refuse("Suggester options must be an object", path)
        for key, value in params.items():
            key_path = join_path(path, key)
            if key == "collate":
                reason = (
                    "'collate' is not allowed: it runs a templated query that cannot be checked"
                )
                self.emit(FORBIDDEN, key_path, reason=reason)
            elif key in ("size", "shard_size"):
                self._size(key, value, key_path, "max_aggregation_size")
            elif key == "direct_generator" and isinstance(value, list):
                for i, generator in enumerate(value):
                    self._scan(generator, f"{key_path}[{i}]")
            elif key != "contexts":
                # Context names are the user's; their values are plain data.
                self._option(key, value, key_path)

    # Aggregations

    def _aggregations(self, aggregations, path, depth):
        if not isinstance(aggregations, dict):
            raise refuse("Aggregations must be an object keyed by aggregation name", path)
        for name, node in aggregations.items():
            node_path = join_path(path, name)
            self.emit(AGGREGATION, node_path)
            self.emit(DEPTH, node_path, name=name, value=depth, limit="aggregation")
            if not isinstance(node, dict):
                raise refuse("An aggregation must be an object", node_path)
            if "aggs" in node and "aggregations" in node:
                raise refuse(
                    "Give sub-aggregations in 'aggs' or 'aggregations', not both",
                    join_path(node_path, "aggregations"),
                )
            types = [key for key in node if key not in AGGREGATION_NODE_KEYS]
            if len(types) != 1:
                raise refuse("An aggregation must hold exactly one aggregation type", node_path)
            (aggregation_type,) = types
            params = node[aggregation_type]
            outer_factor, outer_nested = self._bucket_factor, self._nested
            self._aggregation(
                aggregation_type, params, join_path(node_path, aggregation_type), depth
            )
            self._bucket_factor *= _bucket_count(aggregation_type, params)
            if aggregation_type == "nested":
                self._nested += 1
            elif aggregation_type == "reverse_nested":
                self._nested = 0
            for key in ("aggs", "aggregations"):
                if key in node:
                    self._aggregations(node[key], join_path(node_path, key), depth + 1)
            self._bucket_factor, self._nested = outer_factor, outer_nested

    def _aggregation(self, aggregation_type, params, path, depth):
        if aggregation_type in REFUSED_AGGREGATIONS:
            reason = REFUSED_AGGREGATIONS[aggregation_type]
            message = f"'{aggregation_type}' aggregations are not allowed: {reason}"
            self.emit(FORBIDDEN, path, reason=message)
        if aggregation_type in SCRIPT_AGGREGATIONS:
            self._option(aggregation_type, params, path)
            return
        if aggregation_type in FULL_READ_AGGREGATIONS:
            reason = FULL_READ_AGGREGATIONS[aggregation_type]
            message = f"'{aggregation_type}' aggregations are not allowed: {reason}"
            self.emit(FULL_READ, path, reason=message)
        if aggregation_type not in AGGREGATIONS:
            if aggregation_type in REFUSED_AGGREGATIONS:
                return
            raise refuse(f"'{aggregation_type}' is not a supported aggregation type", path)
        if aggregation_type == "filter":
            self._query(params, path, depth + 1)
        elif aggregation_type == "top_hits":
            self._hit_options(params, path, depth)
        elif not isinstance(params, dict):
            raise refuse(f"'{aggregation_type}' must hold an object", path)
        else:
            for key, value in params.items():
                self._aggregation_option(aggregation_type, key, value, join_path(path, key), depth)
            if aggregation_type in HISTOGRAMS:
                self._histogram_buckets(aggregation_type, params, path)

    def _aggregation_option(self, aggregation_type, key, value, path, depth):
        if key in BUCKET_SIZE_KEYS:
            self._size(key, value, path, "max_aggregation_size")
        elif key == "min_doc_count" and aggregation_type in TERMS_AGGREGATIONS:
            if not _is_count(value):
                raise refuse("'min_doc_count' must be a whole number", path)
            if value < 1:
                reason = (
                    "'min_doc_count' below 1 is not allowed: it lists terms of records "
                    "outside the query, including ones you cannot read"
                )
                self.emit(FORBIDDEN, path, reason=reason)
        elif key == "filters" and aggregation_type in ("filters", "adjacency_matrix"):
            self._named_queries(value, path, depth + 1)
        elif key == "background_filter":
            self._query(value, path, depth + 1)
        elif key == "sort" and aggregation_type == "top_metrics":
            self._sort(value, path, depth)
        elif key in ("a", "b") and aggregation_type == "t_test":
            self._t_test_population(value, path, depth)
        elif key == "sources" and aggregation_type == "composite":
            self._composite_sources(value, path)
        elif key in ("include", "exclude") and isinstance(value, str):
            self.emit(PATTERN, path, name="regexp", value=value)
        elif key in AGGREGATION_DATA_KEYS or (key == "sort" and aggregation_type == "bucket_sort"):
            return
        else:
            self._option(key, value, path)

    def _histogram_buckets(self, aggregation_type, params, path):
        """Report the empty buckets a histogram makes over its ``extended_bounds``."""
        bounds = params.get("extended_bounds")
        if bounds is None or params.get("min_doc_count", 0) not in (0, None):
            return
        bounds_path = join_path(path, "extended_bounds")
        count = histogram_bucket_count(aggregation_type, params)
        if count is None:
            raise refuse(
                "'extended_bounds' must be numbers (or ISO dates and epoch milliseconds for "
                "dates) with a positive interval, so that the buckets can be counted",
                bounds_path,
            )
        self.emit(BUCKETS, bounds_path, value=count * self._bucket_factor)

    def _named_queries(self, value, path, depth):
        if isinstance(value, dict):
            for name, query in value.items():
                self._query(query, join_path(path, name), depth)
        elif isinstance(value, list):
            self._queries(value, path, depth)
        else:
            raise refuse("Filters must be an object or a list of queries", path)

    def _t_test_population(self, population, path, depth):
        if not isinstance(population, dict):
            raise refuse("A t_test population must be an object", path)
        for key, value in population.items():
            key_path = join_path(path, key)
            if key == "filter":
                self._query(value, key_path, depth + 1)
            else:
                self._option(key, value, key_path)

    def _composite_sources(self, sources, path):
        if not isinstance(sources, list):
            raise refuse("'sources' must be a list", path)
        for i, source in enumerate(sources):
            source_path = f"{path}[{i}]"
            if not isinstance(source, dict):
                raise refuse("A composite source must be an object", source_path)
            for name, spec in source.items():
                name_path = join_path(source_path, name)
                if not (isinstance(spec, dict) and len(spec) == 1):
                    raise refuse("A composite source must hold exactly one type", name_path)
                ((source_type, params),) = spec.items()
                type_path = join_path(name_path, source_type)
                if source_type not in COMPOSITE_SOURCES:
                    message = f"'{source_type}' is not a supported composite source"
                    raise refuse(message, type_path)
                self._scan(params, type_path)


def _bucket_count(aggregation_type, params):
    """How many buckets one aggregation of this type makes at most, when that is known."""
    if not isinstance(params, dict):
        return 1
    if aggregation_type in DEFAULT_BUCKETS:
        key = "buckets" if "histogram" in aggregation_type else "size"
        count = params.get(key, DEFAULT_BUCKETS[aggregation_type])
        return count if _is_count(count) and count else 1
    if aggregation_type in ("range", "date_range", "ip_range", "geo_distance"):
        ranges = params.get("ranges")
        return max(1, len(ranges)) if isinstance(ranges, list) else 1
    if aggregation_type in ("filters", "adjacency_matrix"):
        filters = params.get("filters")
        count = len(filters) if isinstance(filters, (list, dict)) else 1
        if aggregation_type == "adjacency_matrix":
            count += count * (count - 1) // 2
        return max(1, count + bool(params.get("other_bucket")))
    if aggregation_type in HISTOGRAMS and params.get("extended_bounds") is not None:
        return histogram_bucket_count(aggregation_type, params) or 1
    return 1


# Milliseconds in an engine time unit (calendar units at their longest: a bound, not a date).
_UNIT_MILLIS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
    "M": 28 * 86_400_000,
    "q": 89 * 86_400_000,
    "y": 365 * 86_400_000,
}
_CALENDAR_NAMES = {
    "minute": "1m",
    "hour": "1h",
    "day": "1d",
    "week": "1w",
    "month": "1M",
    "quarter": "1q",
    "year": "1y",
}
_INTERVAL = re.compile(r"(\d+)(ms|s|m|h|d|w|M|q|y)")
_NOW = re.compile(r"now(?:([+-])(\d+)(ms|s|m|h|d|w|M|q|y))?(?:/[smhdwMqy])?")


def _interval_millis(value):
    value = _CALENDAR_NAMES.get(value, value)
    match = _INTERVAL.fullmatch(value) if isinstance(value, str) else None
    return int(match[1]) * _UNIT_MILLIS[match[2]] if match else None


def _date_millis(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    now = _NOW.fullmatch(value)
    if now:
        offset = int(now[2]) * _UNIT_MILLIS[now[3]] if now[2] else 0
        base = datetime.now(UTC).timestamp() * 1000
        return base - offset if now[1] == "-" else base + offset
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000


def histogram_bucket_count(aggregation_type, params):
    """The number of buckets a histogram makes over its extended bounds, or None."""
    bounds = params.get("extended_bounds")
    if not isinstance(bounds, dict):
        return None
    if aggregation_type == "histogram":
        low, high, interval = bounds.get("min"), bounds.get("max"), params.get("interval")
        numbers = (low, high, interval)
        if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
            return None
    else:
        low, high = _date_millis(bounds.get("min")), _date_millis(bounds.get("max"))
        given = [params.get(k) for k in ("fixed_interval", "calendar_interval", "interval")]
        interval = next((_interval_millis(v) for v in given if v is not None), None)
        if low is None or high is None or interval is None:
            return None
    if interval <= 0:
        return None
    return int(abs(high - low) // interval) + 1


def walk(body, report):
    """Walk a whole search body, calling ``report(finding)`` for each finding in order."""
    Walk(report).body(body)
