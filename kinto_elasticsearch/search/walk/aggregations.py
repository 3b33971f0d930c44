"""The walk of aggregations: their types, the queries and hits they hold, their buckets."""

from kinto_elasticsearch.search.walk.buckets import bucket_count, histogram_bucket_count
from kinto_elasticsearch.search.walk.constructs import (
    AGGREGATION_DATA_KEYS,
    AGGREGATION_NODE_KEYS,
    AGGREGATIONS,
    BUCKET_SIZE_KEYS,
    COMPOSITE_SOURCES,
    FULL_READ_AGGREGATIONS,
    HISTOGRAMS,
    REFUSED_AGGREGATIONS,
    SCRIPT_AGGREGATIONS,
    SHARD_ORDER_AGGREGATIONS,
    TERMS_AGGREGATIONS,
)
from kinto_elasticsearch.search.walk.findings import (
    AGGREGATION,
    BUCKETS,
    COUNTERS,
    DEPTH,
    FORBIDDEN,
    FULL_READ,
    PATTERN,
    is_count,
    join_path,
    refuse,
)


class Aggregations:
    """Named aggregations and their sub-aggregations, each of exactly one type."""

    def __init__(self, walk):
        self.walk = walk
        # Product of the bucket counts of the enclosing aggregations.
        self.bucket_factor = 1

    def aggregations(self, aggregations, path, depth):
        if not isinstance(aggregations, dict):
            raise refuse("Aggregations must be an object keyed by aggregation name", path)
        for name, node in aggregations.items():
            node_path = join_path(path, name)
            self.walk.emit(AGGREGATION, node_path)
            self.walk.emit(DEPTH, node_path, name=name, value=depth, limit="aggregation")
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
            outer_factor, outer_nested = self.bucket_factor, self.walk.nested
            self._aggregation(
                aggregation_type, params, join_path(node_path, aggregation_type), depth
            )
            self.bucket_factor *= bucket_count(aggregation_type, params)
            if aggregation_type == "nested":
                self.walk.nested += 1
            elif aggregation_type == "reverse_nested":
                self.walk.nested = 0
            for key in ("aggs", "aggregations"):
                if key in node:
                    self.aggregations(node[key], join_path(node_path, key), depth + 1)
            self.bucket_factor, self.walk.nested = outer_factor, outer_nested

    def _aggregation(self, aggregation_type, params, path, depth):
        if aggregation_type in REFUSED_AGGREGATIONS:
            reason = REFUSED_AGGREGATIONS[aggregation_type]
            message = f"'{aggregation_type}' aggregations are not allowed: {reason}"
            self.walk.emit(FORBIDDEN, path, reason=message)
        if aggregation_type in SCRIPT_AGGREGATIONS:
            self.walk.options.option(aggregation_type, params, path)
            return
        if aggregation_type in FULL_READ_AGGREGATIONS:
            reason = FULL_READ_AGGREGATIONS[aggregation_type]
            message = f"'{aggregation_type}' aggregations are not allowed: {reason}"
            self.walk.emit(FULL_READ, path, reason=message)
        if aggregation_type in SHARD_ORDER_AGGREGATIONS:
            reason = (
                f"'{aggregation_type}' aggregations are not allowed: "
                f"{SHARD_ORDER_AGGREGATIONS[aggregation_type]}"
            )
            self.walk.emit(COUNTERS, path, reason=reason)
        if aggregation_type not in AGGREGATIONS:
            if aggregation_type in REFUSED_AGGREGATIONS:
                return
            raise refuse(f"'{aggregation_type}' is not a supported aggregation type", path)
        if aggregation_type == "filter":
            self.walk.queries.query(params, path, depth + 1)
        elif aggregation_type == "top_hits":
            self.walk.hit_options.hit_options(params, path, depth)
        elif not isinstance(params, dict):
            raise refuse(f"'{aggregation_type}' must hold an object", path)
        else:
            for key, value in params.items():
                self._option(aggregation_type, key, value, join_path(path, key), depth, params)
            if aggregation_type in HISTOGRAMS:
                self._histogram_buckets(aggregation_type, params, path)

    def _option(self, aggregation_type, key, value, path, depth, parent=None):
        if key in BUCKET_SIZE_KEYS:
            self.walk.options.size(key, value, path, "max_aggregation_size")
        elif key == "min_doc_count" and aggregation_type in TERMS_AGGREGATIONS:
            if not is_count(value):
                raise refuse("'min_doc_count' must be a whole number", path)
            if value < 1:
                reason = (
                    "'min_doc_count' below 1 is not allowed: it lists terms of records "
                    "outside the query, including ones you cannot read"
                )
                self.walk.emit(FORBIDDEN, path, reason=reason)
        elif key == "filters" and aggregation_type in ("filters", "adjacency_matrix"):
            self._named_queries(value, path, depth + 1)
        elif key == "background_filter":
            self.walk.queries.query(value, path, depth + 1)
        elif key == "sort" and aggregation_type == "top_metrics":
            self.walk.hit_options.sort(value, path, depth)
        elif key in ("a", "b") and aggregation_type == "t_test":
            self._t_test_population(value, path, depth)
        elif key == "sources" and aggregation_type == "composite":
            self._composite_sources(value, path)
        elif key in ("include", "exclude") and isinstance(value, str):
            self.walk.emit(PATTERN, path, name="regexp", value=value)
        elif key in AGGREGATION_DATA_KEYS or (key == "sort" and aggregation_type == "bucket_sort"):
            return
        else:
            self.walk.options.option(key, value, path, parent)

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
        self.walk.emit(BUCKETS, bounds_path, value=count * self.bucket_factor)

    def _named_queries(self, value, path, depth):
        if isinstance(value, dict):
            for name, query in value.items():
                self.walk.queries.query(query, join_path(path, name), depth)
        elif isinstance(value, list):
            self.walk.queries.queries(value, path, depth)
        else:
            raise refuse("Filters must be an object or a list of queries", path)

    def _t_test_population(self, population, path, depth):
        if not isinstance(population, dict):
            raise refuse("A t_test population must be an object", path)
        for key, value in population.items():
            key_path = join_path(path, key)
            if key == "filter":
                self.walk.queries.query(value, key_path, depth + 1)
            else:
                self.walk.options.option(key, value, key_path, population)

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
                self.walk.options.scan(params, type_path)
