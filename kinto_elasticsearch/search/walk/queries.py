"""The walk of queries: every query node, and the queries that hold other queries."""

from kinto_elasticsearch.search.walk.constructs import (
    COMPOUND_QUERIES,
    DECAY_FUNCTIONS,
    FIELD_QUERIES,
    FULL_READ_QUERIES,
    INNER_HITS_QUERIES,
    OPTION_QUERIES,
    REFUSED_QUERIES,
    SCRIPT_KEYS,
)
from kinto_elasticsearch.search.walk.findings import (
    CLAUSES,
    COUNTERS,
    DEPTH,
    FIELD,
    FORBIDDEN,
    FULL_READ,
    IDS,
    SCORED,
    SCRIPT,
    join_path,
    refuse,
)
from kinto_elasticsearch.search.walk.options import constant_rewrite


class Queries:
    """Reports what every query node is, walks the compound queries (and ``function_score``,
    ``knn``) itself, and hands the queries that hold no query to the walk's leaves."""

    def __init__(self, walk):
        self.walk = walk
        # Inside a span query: its clauses are parts of it, not queries of their own.
        self.spans = 0

    def queries(self, value, path, depth):
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.query(item, f"{path}[{i}]", depth)
        else:
            self.query(value, path, depth)

    def query(self, node, path, depth):
        if not (isinstance(node, dict) and len(node) == 1):
            raise refuse("A query must be an object holding exactly one query type", path)
        ((query_type, body),) = node.items()
        query_path = join_path(path, query_type)
        self.walk.emit(DEPTH, query_path, name=query_type, value=depth, limit="query")
        self.walk.emit(CLAUSES, query_path, value=1)
        if query_type in REFUSED_QUERIES:
            reason = f"'{query_type}' is not allowed: {REFUSED_QUERIES[query_type]}"
            self.walk.emit(FORBIDDEN, query_path, reason=reason)
        if query_type in SCRIPT_KEYS:
            self.walk.emit(SCRIPT, query_path, name=query_type)
        if query_type in FULL_READ_QUERIES and not (
            query_type == "fuzzy"
            and isinstance(body, dict)
            and body
            and all(isinstance(p, dict) and constant_rewrite(p) for p in body.values())
        ):
            reason = f"'{query_type}' is not allowed: {FULL_READ_QUERIES[query_type]}"
            self.walk.emit(FULL_READ, query_path, reason=reason)
        if not isinstance(body, dict):
            raise refuse(f"'{query_type}' must hold an object", query_path)
        if query_type == "script":
            # A script is code and parameters, nothing in it is DSL.
            return
        leaves = self.walk.leaves
        span = query_type.startswith("span_") or query_type == "field_masking_span"
        if not self.spans and (
            span or query_type not in (*COMPOUND_QUERIES, "function_score", "knn")
        ):
            # A span's clauses are spans: only the outermost one is a query that scores.
            self.walk.emit(SCORED, query_path, name=query_type, node=node)
        if query_type in COMPOUND_QUERIES:
            self.spans += span
            self._compound(query_type, body, query_path, depth)
            self.spans -= span
        elif query_type == "function_score":
            self._function_score(body, query_path, depth)
        elif query_type == "knn":
            self._knn(body, query_path, depth)
        elif query_type == "terms":
            leaves.terms(body, query_path)
        elif query_type == "more_like_this":
            leaves.more_like_this(body, query_path)
        elif query_type == "percolate":
            leaves.percolate(body, query_path)
        elif query_type in FIELD_QUERIES:
            leaves.field_query(query_type, body, query_path)
        elif query_type in OPTION_QUERIES:
            leaves.option_query(query_type, body, query_path)
        else:
            raise refuse(f"'{query_type}' is not a supported query type", query_path)

    def _compound(self, query_type, body, path, depth):
        query_keys = COMPOUND_QUERIES[query_type]
        if query_type == "nested":
            self.walk.nested += 1
        for key, value in body.items():
            key_path = join_path(path, key)
            if key in query_keys:
                self.queries(value, key_path, depth + 1)
            elif key == "inner_hits" and query_type in INNER_HITS_QUERIES:
                self.walk.hit_options.hit_options(value, key_path, depth)
            elif key == "docs" and query_type == "pinned":
                self._pinned_docs(value, key_path)
            elif key == "ids" and query_type == "pinned" and isinstance(value, list):
                self.walk.emit(CLAUSES, key_path, value=len(value))
                self.walk.emit(IDS, key_path, name="ids", node=body)
            else:
                self.walk.options.option(key, value, key_path, body)
        if query_type == "nested":
            self.walk.nested -= 1

    def _pinned_docs(self, docs, path):
        for i, doc in enumerate(docs if isinstance(docs, list) else [docs]):
            if isinstance(doc, dict) and "_index" in doc:
                reason = "'_index' is not allowed in pinned documents: it names another index"
                self.walk.emit(FORBIDDEN, join_path(f"{path}[{i}]", "_index"), reason=reason)
            if isinstance(doc, dict) and "_id" in doc:
                self.walk.emit(IDS, join_path(f"{path}[{i}]", "_id"), name="_id", node=doc)

    def _function_score(self, body, path, depth):
        for key, value in body.items():
            key_path = join_path(path, key)
            if key == "query":
                self.query(value, key_path, depth + 1)
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
                self.query(value, key_path, depth + 1)
            elif key == "random_score" and not (isinstance(value, dict) and "field" in value):
                reason = (
                    "'random_score' without a 'field' is not allowed: its order is the "
                    "shard's order of writes"
                )
                self.walk.emit(COUNTERS, key_path, reason=reason)
                self.walk.options.option(key, value, key_path, function)
            elif key in DECAY_FUNCTIONS:
                self.walk.options.fields_then_options(value, key_path, {"multi_value_mode"})
            else:
                self.walk.options.option(key, value, key_path, function)

    def _knn(self, body, path, depth):
        # Elasticsearch names the field in "field"; OpenSearch nests options under the field.
        for key, value in body.items():
            key_path = join_path(path, key)
            if key == "filter":
                self.queries(value, key_path, depth + 1)
            elif key == "query_vector_builder":
                reason = f"'{key}' is not allowed: it runs a machine-learning model"
                self.walk.emit(FORBIDDEN, key_path, reason=reason)
            elif isinstance(value, dict):
                self.walk.emit(FIELD, key_path, name=key, node=body, key=key, keyed=True)
                self._knn(value, key_path, depth)
            else:
                self.walk.options.option(key, value, key_path, body)
