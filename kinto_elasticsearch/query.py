"""Turning an untrusted search body into one that is safe to send to the engine.

A search body is Elasticsearch query DSL written by any user, but it must run against one
collection's index only, see only the records the user may read, run no code and stay within
bounds. ``prepare_search`` walks the whole body and refuses, with the offending key and its
path, anything that could break one of those promises; it then caps what is capped and wraps
the query in the permission filter.

The walk is closed-world: query types, aggregation types, suggesters, rescorers and top-level
keys are allow-listed, so a feature the engine adds later is refused until someone has decided
it is safe. Every object that can hold a query (aggregation filters, ``post_filter``,
``highlight_query``, ``rescore_query``, sort ``nested.filter``, ``function_score`` filters,
``knn`` filters, inner hits...) is walked as a query; other option objects are scanned for
script keys, and field names (which are the users' data, a field may well be called ``script``)
are never mistaken for DSL keys.

What is refused, and why:

- Reads of another index or document: terms lookup, ``more_like_this`` documents naming an
  ``_index``, ``indexed_shape`` (``geo_shape``, ``shape``), ``percolate`` of a stored document,
  ``pinned`` documents naming an ``_index``, ``wrapper`` (a base64 query that cannot be
  checked), phrase suggester ``collate`` (a templated query), ``rule`` queries, and the
  top-level ``indices_boost``, ``pit``, ``knn``, ``retriever``, ``rank``, ``sub_searches``.
- Escapes from the permission filter: ``global`` aggregations, top-level ``knn`` (its hits are
  added to the query's), ``min_doc_count`` below 1 on terms aggregations (it lists terms found
  only in other records, deleted ones included, so it is refused even with full read access).
  When the user may read only some records (``readable_ids`` is a list), also: ``suggest``
  (suggesters read the whole index), ``significant_terms`` and ``significant_text`` (their
  background frequencies are index-wide), ``has_child``/``has_parent`` queries and
  ``children``/``parent`` aggregations (they match on or return related documents the filter
  does not cover), ``more_like_this`` by ``_id`` (it reads the referenced record) and
  ``explain`` (it prints index-wide term statistics). Relevance scores still derive from
  index-wide statistics, as in any shared index; this is not something a query guard can fix.
- Scripts in every form (queries, functions, sorts, aggregations, script fields, runtime or
  derived fields, stored scripts by id) unless ``QueryLimits.allow_scripts``.
- Machine-learning features that run models (``query_vector_builder``, ``inference``) and
  plugin extensions (``ext``, ``search_pipeline``), whose effect this module cannot check.
- ``profile`` (it shows index names, shards and the permission filter), ``stats`` (it writes to
  the cluster's statistics) and ``slice`` (meaningless without a scroll or point in time).
"""

import copy
import re
from dataclasses import dataclass


class QueryRefused(ValueError):
    """A search body refused before reaching the engine."""

    def __init__(self, message: str, location: str):
        super().__init__(message)
        self.message = message
        self.location = location


_DURATION = re.compile(r"(\d+)(nanos|micros|ms|s|m|h|d)")
_NANOSECONDS = {
    "nanos": 1,
    "micros": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
}


def _duration_nanos(value):
    """Nanoseconds in an engine duration such as ``"500ms"``, or None if it is not one."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    return int(match[1]) * _NANOSECONDS[match[2]] if match else None


@dataclass(frozen=True)
class QueryLimits:
    """Bounds on what one search may ask of the engine."""

    max_size: int = 10000
    max_window: int = 10000
    max_depth: int = 20
    max_aggregations: int = 50
    max_agg_size: int = 1000
    timeout: str = "10s"
    allow_scripts: bool = False

    def __post_init__(self):
        if _duration_nanos(self.timeout) is None:
            raise ValueError(f"timeout must be a duration such as '10s', not {self.timeout!r}")


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

# Lucene's own default: a larger automaton for one regular expression costs CPU and memory
# before any timeout applies.
MAX_DETERMINIZED_STATES = 10000

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
JOIN_QUERIES = frozenset({"has_child", "has_parent"})

# Query types holding no other query, keyed by field name (plus a few plain options).
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

REFUSED_QUERIES = {
    "wrapper": "it hides a base64-encoded query that cannot be checked",
    "rule": "it reads stored query rules that pin documents of any index",
    "rule_query": "it reads stored query rules that pin documents of any index",
}

DECAY_FUNCTIONS = frozenset({"gauss", "exp", "linear"})

AGGREGATIONS = frozenset(
    {
        # metrics
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
        # buckets
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
        # pipelines
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
SCRIPT_AGGREGATIONS = frozenset(
    {"scripted_metric", "bucket_script", "bucket_selector", "moving_fn"}
)
JOIN_AGGREGATIONS = frozenset({"children", "parent"})
SIGNIFICANT_AGGREGATIONS = frozenset({"significant_terms", "significant_text"})
TERMS_AGGREGATIONS = frozenset({"terms", "multi_terms"}) | SIGNIFICANT_AGGREGATIONS
REFUSED_AGGREGATIONS = {
    "global": "it ignores the query and the permission filter",
    "inference": "it runs a machine-learning model",
}
BUCKET_SIZE_KEYS = frozenset({"size", "shard_size", "buckets"})
# Aggregation options whose keys and values are the user's names and values, never DSL.
AGGREGATION_DATA_KEYS = frozenset(
    {"order", "buckets_path", "after", "missing", "format", "include", "exclude"}
)
COMPOSITE_SOURCES = frozenset({"terms", "histogram", "date_histogram", "geotile_grid"})
AGGREGATION_NODE_KEYS = frozenset({"aggs", "aggregations", "meta"})

SUGGESTERS = frozenset({"term", "phrase", "completion"})
SUGGESTION_TEXT_KEYS = frozenset({"text", "prefix", "regex"})


def _join(path, key):
    return f"{path}.{key}" if path else str(key)


def _refuse(reason, location):
    message = f"{reason} (at {location})" if location else reason
    return QueryRefused(message, location)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_nesting(body, limits):
    """Refuse bodies nested deeper than any query within ``max_depth`` can be.

    A query or aggregation level spans a few JSON levels (``bool`` -> ``must`` -> ``[0]``),
    leaf values a few more (GeoJSON coordinates). Checked without recursion, first, so that
    walking and copying the body can never exhaust Python's recursion limit.
    """
    deepest = 5 * limits.max_depth + 10
    pending = [(body, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, dict):
            children = [(_join(path, key), item) for key, item in value.items()]
        elif isinstance(value, list):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(value)]
        else:
            continue
        if depth > deepest:
            raise _refuse(f"The body nests deeper than {deepest} levels", path)
        pending.extend((item, item_path, depth + 1) for item_path, item in children)


class _Guard:
    """One walk over a body, refusing the first thing that is not allowed."""

    def __init__(self, limits, restricted):
        self.limits = limits
        # True when the user may read only some records of the collection.
        self.restricted = restricted
        self.aggregations = 0

    def top_level(self, key, value):
        if key in REFUSED_TOP_LEVEL_KEYS:
            raise _refuse(f"'{key}' is not allowed: {REFUSED_TOP_LEVEL_KEYS[key]}", key)
        if key in SCRIPTED_TOP_LEVEL_KEYS:
            self._option(key, value, key)
        elif key not in TOP_LEVEL_KEYS:
            raise _refuse(f"'{key}' is not a supported search parameter", key)
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

    # Options and scripts

    def _option(self, key, value, path):
        """Check a DSL option ``key`` and, unless it is a permitted script, what it holds."""
        if key in SCRIPT_KEYS:
            if not self.limits.allow_scripts:
                raise _refuse(f"'{key}' is not allowed: scripts are disabled", path)
            # A permitted script is code and parameters: nothing in it is DSL.
            return
        if key == "indexed_shape":
            raise _refuse(f"'{key}' is not allowed: it reads a shape from another document", path)
        if key == "max_determinized_states" and not (
            _is_count(value) and value <= MAX_DETERMINIZED_STATES
        ):
            raise _refuse(
                f"'{key}' must be a whole number of at most {MAX_DETERMINIZED_STATES}", path
            )
        self._scan(value, path)

    def _scan(self, value, path):
        """Check every DSL key nested in an option value."""
        if isinstance(value, dict):
            for key, item in value.items():
                self._option(key, item, _join(path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._scan(item, f"{path}[{i}]")

    def _scan_below_names(self, body, path):
        """Scan an object whose keys are field names (or plain options), but not the keys."""
        if not isinstance(body, dict):
            raise _refuse("This must be an object", path)
        for key, value in body.items():
            self._scan(value, _join(path, key))

    def _count(self, key, value, path, cap):
        if not (_is_count(value) and value <= cap):
            raise _refuse(f"'{key}' must be a whole number from 0 to {cap}, not {value!r}", path)

    def _explain(self, value, path):
        if not isinstance(value, bool):
            raise _refuse("'explain' must be true or false", path)
        if value and self.restricted:
            raise _refuse(
                "'explain' is not allowed: it shows statistics of records you cannot read",
                path,
            )

    # Queries

    def _queries(self, value, path, depth):
        if isinstance(value, list):
            for i, item in enumerate(value):
                self._query(item, f"{path}[{i}]", depth)
        else:
            self._query(value, path, depth)

    def _query(self, node, path, depth):
        if not (isinstance(node, dict) and len(node) == 1):
            raise _refuse("A query must be an object holding exactly one query type", path)
        ((query_type, body),) = node.items()
        query_path = _join(path, query_type)
        if depth > self.limits.max_depth:
            raise _refuse(
                f"'{query_type}' nests queries deeper than {self.limits.max_depth} levels",
                query_path,
            )
        if query_type in REFUSED_QUERIES:
            raise _refuse(
                f"'{query_type}' is not allowed: {REFUSED_QUERIES[query_type]}", query_path
            )
        if query_type in SCRIPT_KEYS and not self.limits.allow_scripts:
            raise _refuse(f"'{query_type}' is not allowed: scripts are disabled", query_path)
        if query_type in JOIN_QUERIES and self.restricted:
            raise _refuse(
                f"'{query_type}' is not allowed: it matches on related records "
                "you may not be able to read",
                query_path,
            )
        if not isinstance(body, dict):
            raise _refuse(f"'{query_type}' must hold an object", query_path)
        if query_type == "script":
            # Permitted above; a script is code and parameters, nothing in it is DSL.
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
            self._scan_below_names(body, query_path)
        elif query_type in OPTION_QUERIES:
            self._scan(body, query_path)
        else:
            raise _refuse(f"'{query_type}' is not a supported query type", query_path)

    def _compound(self, query_type, body, path, depth):
        query_keys = COMPOUND_QUERIES[query_type]
        for key, value in body.items():
            key_path = _join(path, key)
            if key in query_keys:
                self._queries(value, key_path, depth + 1)
            elif key == "inner_hits" and query_type in INNER_HITS_QUERIES:
                self._hit_options(value, key_path, depth)
            elif key == "docs" and query_type == "pinned":
                self._pinned_docs(value, key_path)
            else:
                self._option(key, value, key_path)

    def _pinned_docs(self, docs, path):
        for i, doc in enumerate(docs if isinstance(docs, list) else [docs]):
            if isinstance(doc, dict) and "_index" in doc:
                raise _refuse(
                    "'_index' is not allowed in pinned documents: it names another index",
                    _join(f"{path}[{i}]", "_index"),
                )

    def _function_score(self, body, path, depth):
        for key, value in body.items():
            key_path = _join(path, key)
            if key == "query":
                self._query(value, key_path, depth + 1)
            elif key == "functions":
                if not isinstance(value, list):
                    raise _refuse("'functions' must be a list", key_path)
                for i, function in enumerate(value):
                    function_path = f"{key_path}[{i}]"
                    if not isinstance(function, dict):
                        raise _refuse("A score function must be an object", function_path)
                    self._score_function(function, function_path, depth)
            else:
                self._score_function({key: value}, path, depth)

    def _score_function(self, function, path, depth):
        for key, value in function.items():
            key_path = _join(path, key)
            if key == "filter":
                self._query(value, key_path, depth + 1)
            elif key in DECAY_FUNCTIONS:
                self._scan_below_names(value, key_path)
            else:
                self._option(key, value, key_path)

    def _knn(self, body, path, depth):
        # Elasticsearch names the field in "field"; OpenSearch nests options under the field.
        for key, value in body.items():
            key_path = _join(path, key)
            if key == "filter":
                self._queries(value, key_path, depth + 1)
            elif key == "query_vector_builder":
                reason = "it runs a machine-learning model"
                raise _refuse(f"'{key}' is not allowed: {reason}", key_path)
            elif isinstance(value, dict):
                self._knn(value, key_path, depth)
            else:
                self._scan(value, key_path)

    def _terms(self, body, path):
        for key, value in body.items():
            key_path = _join(path, key)
            if isinstance(value, dict):
                raise _refuse("terms lookup is not allowed: it reads another document", key_path)
            self._scan(value, key_path)

    def _more_like_this(self, body, path):
        for key, value in body.items():
            key_path = _join(path, key)
            if key in ("like", "unlike"):
                self._like(value, key_path)
            elif key in ("docs", "ids"):
                raise _refuse(
                    f"'{key}' is not allowed in more_like_this: it reads other documents "
                    "(give their text in 'like')",
                    key_path,
                )
            else:
                self._option(key, value, key_path)

    def _like(self, value, path):
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]" if isinstance(value, list) else path
            if not isinstance(item, dict):
                continue
            if "_index" in item:
                raise _refuse(
                    "more_like_this documents naming an '_index' are not allowed: "
                    "they read another index",
                    _join(item_path, "_index"),
                )
            # A document given inline ("doc") is only text; "_id" reads a stored record.
            if "_id" in item and self.restricted:
                raise _refuse(
                    "more_like_this documents given by '_id' are not allowed: "
                    "they read records you may not be able to read",
                    _join(item_path, "_id"),
                )

    def _percolate(self, body, path):
        for key in ("index", "id"):
            if key in body:
                raise _refuse(
                    f"'{key}' is not allowed in percolate: it reads a stored document",
                    _join(path, key),
                )
        for key, value in body.items():
            # Percolated documents are the user's data, whatever their field names.
            if key not in ("document", "documents"):
                self._option(key, value, _join(path, key))

    # Hits: sort, highlight, rescore, collapse, inner hits

    def _sort(self, value, path, depth):
        entries = value if isinstance(value, list) else [value]
        for i, entry in enumerate(entries):
            entry_path = f"{path}[{i}]" if isinstance(value, list) else path
            if not isinstance(entry, dict):
                continue
            for key, spec in entry.items():
                key_path = _join(entry_path, key)
                if key == "_script":
                    self._option(key, spec, key_path)
                elif isinstance(spec, dict):
                    self._sort_options(spec, key_path, depth)

    def _sort_options(self, spec, path, depth):
        # The keys are sort options or, for _geo_distance, field names: never scripts.
        for key, value in spec.items():
            key_path = _join(path, key)
            if key == "nested":
                self._nested_sort(value, key_path, depth)
            elif key == "nested_filter":
                self._query(value, key_path, depth + 1)
            else:
                self._scan(value, key_path)

    def _nested_sort(self, nested, path, depth):
        if not isinstance(nested, dict):
            raise _refuse("'nested' must be an object", path)
        for key, value in nested.items():
            key_path = _join(path, key)
            if key == "filter":
                self._query(value, key_path, depth + 1)
            elif key == "nested":
                self._nested_sort(value, key_path, depth + 1)
            else:
                self._option(key, value, key_path)

    def _highlight(self, highlight, path, depth):
        if not isinstance(highlight, dict):
            raise _refuse("'highlight' must be an object", path)
        for key, value in highlight.items():
            key_path = _join(path, key)
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
                raise _refuse("Highlighted fields must be objects keyed by field name", named_path)
            for field, options in item.items():
                field_path = _join(named_path, field)
                if not isinstance(options, dict):
                    raise _refuse("Highlight options must be an object", field_path)
                for key, value in options.items():
                    key_path = _join(field_path, key)
                    if key == "highlight_query":
                        self._query(value, key_path, depth + 1)
                    else:
                        self._option(key, value, key_path)

    def _rescore(self, rescore, path):
        items = rescore if isinstance(rescore, list) else [rescore]
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]" if isinstance(rescore, list) else path
            if not isinstance(item, dict):
                raise _refuse("A rescorer must be an object", item_path)
            for key, value in item.items():
                key_path = _join(item_path, key)
                if key == "window_size":
                    self._count(key, value, key_path, self.limits.max_window)
                elif key == "query":
                    self._rescore_query(value, key_path)
                else:
                    raise _refuse(f"'{key}' is not a supported rescorer", key_path)

    def _rescore_query(self, body, path):
        if not isinstance(body, dict):
            raise _refuse("'query' must be an object", path)
        for key, value in body.items():
            key_path = _join(path, key)
            if key == "rescore_query":
                self._query(value, key_path, 1)
            else:
                self._option(key, value, key_path)

    def _collapse(self, collapse, path, depth):
        if not isinstance(collapse, dict):
            raise _refuse("'collapse' must be an object", path)
        for key, value in collapse.items():
            key_path = _join(path, key)
            if key == "inner_hits":
                for i, options in enumerate(value if isinstance(value, list) else [value]):
                    options_path = f"{key_path}[{i}]" if isinstance(value, list) else key_path
                    self._hit_options(options, options_path, depth)
            else:
                self._option(key, value, key_path)

    def _hit_options(self, options, path, depth):
        """The options of ``top_hits`` and inner hits: a small search of their own."""
        if not isinstance(options, dict):
            raise _refuse("Hit options must be an object", path)
        for key, value in options.items():
            key_path = _join(path, key)
            if key == "size":
                self._count(key, value, key_path, self.limits.max_agg_size)
            elif key == "from":
                self._count(key, value, key_path, self.limits.max_window)
            elif key == "sort":
                self._sort(value, key_path, depth)
            elif key == "highlight":
                self._highlight(value, key_path, depth)
            elif key == "explain":
                self._explain(value, key_path)
            elif key == "collapse":
                self._collapse(value, key_path, depth)
            else:
                self._option(key, value, key_path)

    # Suggesters

    def _suggest(self, suggest, path):
        if self.restricted:
            raise _refuse(
                "'suggest' is not allowed: suggesters read the terms of every record, "
                "including ones you cannot read",
                path,
            )
        if not isinstance(suggest, dict):
            raise _refuse("'suggest' must be an object", path)
        for name, suggestion in suggest.items():
            suggestion_path = _join(path, name)
            if name == "text":
                continue
            if not isinstance(suggestion, dict):
                raise _refuse("A suggestion must be an object", suggestion_path)
            for key, value in suggestion.items():
                key_path = _join(suggestion_path, key)
                if key in SUGGESTION_TEXT_KEYS:
                    continue
                if key not in SUGGESTERS:
                    raise _refuse(f"'{key}' is not a supported suggester", key_path)
                self._suggester(value, key_path)

    def _suggester(self, params, path):
        if not isinstance(params, dict):
            raise _refuse("Suggester options must be an object", path)
        for key, value in params.items():
            key_path = _join(path, key)
            if key == "collate":
                raise _refuse(
                    "'collate' is not allowed: it runs a templated query that cannot be checked",
                    key_path,
                )
            if key in ("size", "shard_size"):
                self._count(key, value, key_path, self.limits.max_agg_size)
            elif key != "contexts":
                # Context names are the user's; their values are plain data.
                self._option(key, value, key_path)

    # Aggregations

    def _aggregations(self, aggregations, path, depth):
        if not isinstance(aggregations, dict):
            raise _refuse("Aggregations must be an object keyed by aggregation name", path)
        for name, node in aggregations.items():
            node_path = _join(path, name)
            self.aggregations += 1
            if self.aggregations > self.limits.max_aggregations:
                raise _refuse(
                    f"The body holds more than {self.limits.max_aggregations} aggregations",
                    node_path,
                )
            if depth > self.limits.max_depth:
                raise _refuse(
                    f"Aggregations nest deeper than {self.limits.max_depth} levels", node_path
                )
            if not isinstance(node, dict):
                raise _refuse("An aggregation must be an object", node_path)
            if "aggs" in node and "aggregations" in node:
                raise _refuse(
                    "Give sub-aggregations in 'aggs' or 'aggregations', not both",
                    _join(node_path, "aggregations"),
                )
            types = [key for key in node if key not in AGGREGATION_NODE_KEYS]
            if len(types) != 1:
                raise _refuse("An aggregation must hold exactly one aggregation type", node_path)
            (aggregation_type,) = types
            self._aggregation(
                aggregation_type, node[aggregation_type], _join(node_path, aggregation_type), depth
            )
            for key in ("aggs", "aggregations"):
                if key in node:
                    self._aggregations(node[key], _join(node_path, key), depth + 1)

    def _aggregation(self, aggregation_type, params, path, depth):
        if aggregation_type in REFUSED_AGGREGATIONS:
            reason = REFUSED_AGGREGATIONS[aggregation_type]
            raise _refuse(f"'{aggregation_type}' aggregations are not allowed: {reason}", path)
        if aggregation_type in SCRIPT_AGGREGATIONS:
            self._option(aggregation_type, params, path)
            return
        if aggregation_type in JOIN_AGGREGATIONS and self.restricted:
            raise _refuse(
                f"'{aggregation_type}' aggregations are not allowed: they reach related "
                "records you may not be able to read",
                path,
            )
        if aggregation_type in SIGNIFICANT_AGGREGATIONS and self.restricted:
            raise _refuse(
                f"'{aggregation_type}' aggregations are not allowed: their background "
                "frequencies count records you cannot read",
                path,
            )
        if aggregation_type not in AGGREGATIONS:
            raise _refuse(f"'{aggregation_type}' is not a supported aggregation type", path)
        if aggregation_type == "filter":
            self._query(params, path, depth + 1)
        elif aggregation_type == "top_hits":
            self._hit_options(params, path, depth)
        elif not isinstance(params, dict):
            raise _refuse(f"'{aggregation_type}' must hold an object", path)
        else:
            for key, value in params.items():
                self._aggregation_option(aggregation_type, key, value, _join(path, key), depth)

    def _aggregation_option(self, aggregation_type, key, value, path, depth):
        if key in BUCKET_SIZE_KEYS:
            self._count(key, value, path, self.limits.max_agg_size)
        elif key == "min_doc_count" and aggregation_type in TERMS_AGGREGATIONS:
            if not _is_count(value):
                raise _refuse("'min_doc_count' must be a whole number", path)
            if value < 1:
                raise _refuse(
                    "'min_doc_count' below 1 is not allowed: it lists terms of records "
                    "outside the query, including ones you cannot read",
                    path,
                )
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
        elif key in AGGREGATION_DATA_KEYS or (key == "sort" and aggregation_type == "bucket_sort"):
            return
        else:
            self._option(key, value, path)

    def _named_queries(self, value, path, depth):
        if isinstance(value, dict):
            for name, query in value.items():
                self._query(query, _join(path, name), depth)
        elif isinstance(value, list):
            self._queries(value, path, depth)
        else:
            raise _refuse("Filters must be an object or a list of queries", path)

    def _t_test_population(self, population, path, depth):
        if not isinstance(population, dict):
            raise _refuse("A t_test population must be an object", path)
        for key, value in population.items():
            key_path = _join(path, key)
            if key == "filter":
                self._query(value, key_path, depth + 1)
            else:
                self._option(key, value, key_path)

    def _composite_sources(self, sources, path):
        if not isinstance(sources, list):
            raise _refuse("'sources' must be a list", path)
        for i, source in enumerate(sources):
            source_path = f"{path}[{i}]"
            if not isinstance(source, dict):
                raise _refuse("A composite source must be an object", source_path)
            for name, spec in source.items():
                name_path = _join(source_path, name)
                if not (isinstance(spec, dict) and len(spec) == 1):
                    raise _refuse("A composite source must hold exactly one type", name_path)
                ((source_type, params),) = spec.items()
                type_path = _join(name_path, source_type)
                if source_type not in COMPOSITE_SOURCES:
                    message = f"'{source_type}' is not a supported composite source"
                    raise _refuse(message, type_path)
                self._scan(params, type_path)


def _result_window(body, limits):
    """The size to send: the user's, capped silently as Kinto caps ``_limit``."""
    start = body.get("from", 0)
    if not _is_count(start):
        raise _refuse("'from' must be a whole number of 0 or more", "from")
    if "size" in body:
        size = body["size"]
        if not _is_count(size):
            raise _refuse("'size' must be a whole number of 0 or more", "size")
        size = min(size, limits.max_size)
    else:
        size = max(0, min(limits.max_size, limits.max_window - start))
    if start + size > limits.max_window:
        raise _refuse(
            f"'from' + 'size' ({start + size}) is over the result window of {limits.max_window}",
            "from" if "from" in body else "size",
        )
    return size


def _timeout(body, limits):
    """The user's timeout when it is shorter than the server's, else the server's."""
    if "timeout" not in body:
        return limits.timeout
    given = _duration_nanos(body["timeout"])
    if given is None:
        raise _refuse("'timeout' must be a duration such as '5s' or '500ms'", "timeout")
    return body["timeout"] if given <= _duration_nanos(limits.timeout) else limits.timeout


def prepare_search(body, limits: QueryLimits, readable_ids: list[str] | None) -> dict:
    """Validate a user search body and return the body to send to the engine.

    ``readable_ids`` is None when the user may read every document the search can reach,
    else the ids of the records they may read: the query is then wrapped so that hits,
    totals, aggregations and highlights only ever see those. Raises ``QueryRefused`` naming
    the first offending key and its path. The input is never modified.
    """
    body = guard_search(body, limits, restricted=readable_ids is not None)
    if readable_ids is None:
        return body
    return with_filter(body, {"ids": {"values": list(readable_ids)}})


def with_filter(body, permission_filter):
    """``body`` with its query restricted by ``permission_filter``.

    The filter wraps the query itself, so hits, totals, aggregations, highlights and inner
    hits all see only what it matches (``post_filter`` would leave aggregations out).
    """
    query = body.get("query", {"match_all": {}})
    return {**body, "query": {"bool": {"must": [query], "filter": [permission_filter]}}}


def guard_search(body, limits: QueryLimits, restricted: bool) -> dict:
    """Validate and cap a user search body, leaving the permission filter to the caller.

    ``restricted``: the search can reach documents the user may not read, so nothing that
    reads index-wide statistics or other documents is allowed (see the module docstring).
    """
    if not isinstance(body, dict):
        raise _refuse("The search body must be a JSON object", "")
    _check_nesting(body, limits)
    body = copy.deepcopy(body)
    guard = _Guard(limits, restricted=restricted)
    if "aggs" in body and "aggregations" in body:
        raise _refuse("Give aggregations in 'aggs' or 'aggregations', not both", "aggregations")
    for key, value in body.items():
        guard.top_level(key, value)
    if "terminate_after" in body and not _is_count(body["terminate_after"]):
        raise _refuse("'terminate_after' must be a whole number of 0 or more", "terminate_after")
    body["size"] = _result_window(body, limits)
    body["timeout"] = _timeout(body, limits)
    return body
